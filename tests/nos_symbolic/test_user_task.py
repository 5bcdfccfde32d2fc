"""The public Task: splits from pairs or Datasets, its loss and metric in training, the chance kill
only for classifiers, a divergence bound relative to the initial loss, and the search's reward."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from nos_symbolic import NosError, Task
from nos_symbolic.evaluate import reward_of
from nos_symbolic.tasks import get_task
from nos_symbolic.tasks.baselines import BASELINES
from nos_symbolic.tasks.train import divergence_bound, train_run, untrained_score


def _line(n: int = 256, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, x @ torch.tensor([[1.5], [-2.0]]) + 0.5


def regression(**kw) -> Task:
    x, y = _line()
    return Task("line", (x[:160], y[:160]), (x[160:208], y[160:208]), (x[208:], y[208:]),
                lambda seed: nn.Linear(2, 1), loss=F.mse_loss, metric=lambda out, y: -F.mse_loss(out, y),
                metric_name="negative MSE", batch_size=16, **kw)


def test_splits_from_pairs_datasets_and_arrays_are_the_same():
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    from_pair = Task("a", (x, y), (x, y), (x, y), lambda s: nn.Linear(3, 2))
    from_dataset = Task("b", TensorDataset(x, y), (x, y), (x, y), lambda s: nn.Linear(3, 2))
    from_numpy = Task("c", (x.double().numpy(), y.numpy()), (x, y), (x, y), lambda s: nn.Linear(3, 2))
    assert torch.equal(from_pair.train.x, from_dataset.train.x) and torch.equal(from_pair.train.y, from_dataset.train.y)
    assert from_numpy.train.x.dtype == torch.float32  # float64 arrays become the networks' dtype
    with pytest.raises(NosError, match="the val split has 12 inputs but 11 targets"):
        Task("d", (x, y), (x, y[:11]), (x, y), lambda s: nn.Linear(3, 2))
    with pytest.raises(NosError, match="batch_size must be an integer >= 1"):
        Task("e", (x, y), (x, y), (x, y), lambda s: nn.Linear(3, 2), batch_size=0)


def test_only_a_classifier_scored_by_accuracy_has_a_chance_level():
    x, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    assert Task("c", (x, y), (x, y), (x, y), lambda s: nn.Linear(3, 3), num_classes=3).chance == pytest.approx(1 / 3)
    assert Task("c", (x, y), (x, y), (x, y), lambda s: nn.Linear(3, 3)).chance is None
    assert regression().chance is None
    assert get_task("mnist1d", num_samples=300).chance == pytest.approx(0.1)


def test_divergence_bound_is_relative_to_the_initial_loss():
    assert divergence_bound(2.0, 10) == pytest.approx(10 * math.log(10))  # a classifier: as before
    assert divergence_bound(0.05, None) == pytest.approx(0.5)  # a regression: 10x its initial MSE
    assert divergence_bound(-3.0, None) == pytest.approx(24.0)  # a negative loss stays bounded above


def test_a_regression_trains_on_its_loss_and_is_scored_by_its_metric():
    task = regression(epochs=5)
    out = train_run(task, BASELINES["adam"], lr=0.3, seed=0, test=True)
    assert out.status == "ok" and -0.1 < out.val_acc <= 0 and out.test_acc <= 0
    assert out.val_loss == pytest.approx(-out.val_acc, rel=1e-5)  # MSE and its negative
    assert out.val_acc > untrained_score(task)  # training helped
    wild = train_run(task, BASELINES["sgd"], lr=50.0, seed=0)
    assert wild.status == "diverged"  # never "failed": a regression has no chance level


def test_the_reward_counts_from_the_untrained_network_for_a_metric_other_than_accuracy():
    task = regression()
    floor = untrained_score(task)
    assert floor < 0
    assert reward_of(task, floor / 4) == pytest.approx(-floor * 3 / 4)
    assert reward_of(task, 2 * floor) == 0.0 and reward_of(task, None) == 0.0
    mnist = get_task("mnist1d", num_samples=300)
    assert reward_of(mnist, 0.42) == 0.42  # accuracy: the reward is the accuracy


def test_a_task_with_a_non_mean_metric_is_scored_over_the_whole_split():
    task = regression(epochs=1)
    median = Task("line", task.train, task.val, task.test, task.make_model, loss=F.mse_loss,
                  metric=lambda out, y: -float(np.median((out - y).abs().numpy())), metric_name="negative median error",
                  batch_size=16, epochs=1)
    out = train_run(median, BASELINES["adam"], lr=0.05, seed=0)
    assert out.status == "ok" and out.val_acc <= 0
