"""mnist1d-shuffled: MNIST-1D with one fixed permutation of positions."""
from __future__ import annotations

import pytest
import torch

from nos_symbolic.tasks import get_task
from nos_symbolic.tasks.data import load_mnist1d
from nos_symbolic.tasks.shuffled import load_mnist1d_shuffled, position_permutation


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NOS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def test_every_sequence_is_permuted_the_same_way():
    plain = load_mnist1d(num_samples=500)
    shuffled = load_mnist1d_shuffled(num_samples=500, perm_seed=3)
    perm = position_permutation(40, 3)
    assert sorted(perm.tolist()) == list(range(40)) and perm.tolist() != list(range(40))
    for a, b in ((plain.train, shuffled.train), (plain.val, shuffled.val), (plain.test, shuffled.test)):
        assert torch.equal(b.x, a.x[..., perm]) and torch.equal(b.y, a.y)


def test_permutation_depends_on_its_seed_only():
    assert torch.equal(position_permutation(40, 0), position_permutation(40, 0))
    assert not torch.equal(position_permutation(40, 0), position_permutation(40, 1))


def test_task_uses_the_convnet_on_shuffled_data():
    task = get_task("mnist1d-shuffled", num_samples=500)
    plain = get_task("mnist1d", num_samples=500)
    assert type(task.make_model(0)) is type(plain.make_model(0))
    assert not torch.equal(task.train.x, plain.train.x)
    assert torch.equal(task.train.x.sort(-1).values, plain.train.x.sort(-1).values)
