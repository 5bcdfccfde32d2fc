"""The training protocol: learning, determinism, kills and the lr-grid evaluation."""
from __future__ import annotations

import math

import pytest
import torch

from nos_symbolic.result import EvalResult
from nos_symbolic.tasks import get_task
from nos_symbolic.tasks.baselines import BASELINES
from nos_symbolic.tasks.train import TrainOutcome, evaluate_factory, train_run


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """Tiny MNIST-1D: 640 train, 160 val, 200 test, 20 steps of 32 an epoch.

    One thread, as the search's workers run: faster for a net this small, and immune to
    thread oversubscription when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield get_task("mnist1d", num_samples=1000, batch_size=32, epochs=3)
    torch.set_num_threads(threads)


class Recorder:
    """A factory that records the total_steps it is given and counts optimizer steps."""

    def __init__(self, inner=BASELINES["momentum"]) -> None:
        self.inner, self.total_steps, self.calls = inner, [], 0

    def __call__(self, params, lr, total_steps):
        self.total_steps.append(total_steps)
        self.calls += 1
        return self.inner(params, lr, total_steps)


class Poison(torch.optim.SGD):
    """SGD that writes `value` into every parameter at step `at`."""

    def __init__(self, params, lr: float, value: float, at: int = 1) -> None:
        super().__init__(params, lr=lr)
        self.value, self.at, self.t = value, at, 0

    @torch.no_grad()
    def step(self, closure=None):
        super().step()
        self.t += 1
        if self.t == self.at:
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(self.value)


def test_sgd_learns_above_chance(task):
    out = train_run(task, BASELINES["momentum"], lr=0.1, seed=0, test=True)
    assert isinstance(out, TrainOutcome)
    assert out.status == "ok" and out.reason == ""
    assert out.val_acc > 0.4 and out.test_acc > 0.4
    assert len(out.loss_curve) == 3 and out.loss_curve[-1] < out.loss_curve[0]
    assert out.steps == 3 * task.steps_per_epoch and out.seconds > 0


def test_mlp_task_trains(task, tmp_path, monkeypatch):
    monkeypatch.setenv("NOS_CACHE_DIR", str(tmp_path))
    mlp = get_task("mnist1d-mlp", num_samples=1000, batch_size=32)
    out = train_run(mlp, BASELINES["adam"], lr=1e-2, epochs=2, seed=0)
    assert out.status == "ok" and out.val_acc > 0.2


def test_same_seed_same_outcome_and_callers_rng_untouched(task):
    state = torch.get_rng_state()
    a = train_run(task, BASELINES["adam"], lr=1e-2, epochs=2, seed=7)
    b = train_run(task, BASELINES["adam"], lr=1e-2, epochs=2, seed=7)
    c = train_run(task, BASELINES["adam"], lr=1e-2, epochs=2, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.loss_curve == b.loss_curve and a.val_acc == b.val_acc
    assert a.loss_curve != c.loss_curve


def test_factory_gets_the_runs_total_steps(task):
    rec = Recorder()
    train_run(task, rec, lr=0.1, epochs=2, seed=0)
    half = train_run(task, rec, lr=0.1, epochs=0.5, seed=0)
    assert rec.total_steps == [2 * task.steps_per_epoch, task.steps_per_epoch // 2]
    assert half.steps == task.steps_per_epoch // 2 and len(half.loss_curve) == 1


def test_huge_lr_diverges_at_once(task):
    out = train_run(task, BASELINES["sgd"], lr=1e6, seed=0)
    assert out.status == "diverged"
    assert out.steps < task.steps_per_epoch and "training loss" in out.reason
    assert out.val_acc is None and out.loss_curve == ()


def test_nan_weights_diverge(task):
    out = train_run(task, lambda p, lr, n: Poison(p, lr, math.nan, at=3), lr=0.1, seed=0)
    assert out.status == "diverged" and "nan" in out.reason
    assert out.steps == 4  # the step after the poisoning shows a NaN loss


def test_nan_written_by_the_last_step_is_caught(task):
    last = 2 * task.steps_per_epoch
    out = train_run(task, lambda p, lr, n: Poison(p, lr, math.inf, at=last), lr=0.1, epochs=2,
                    seed=0)
    assert out.status == "diverged" and "non-finite" in out.reason
    assert len(out.loss_curve) == 2 and all(math.isfinite(x) for x in out.loss_curve)
    assert out.val_acc is not None  # the accuracy reached after epoch 1 is kept


def test_chance_accuracy_after_one_epoch_fails(task):
    out = train_run(task, lambda p, lr, n: Poison(p, lr, 0.0), lr=0.0, seed=0, chance_margin=0.5)
    assert out.status == "failed" and "chance" in out.reason
    assert out.steps == task.steps_per_epoch and len(out.loss_curve) == 1


def test_errors_propagate(task):
    def broken_factory(params, lr, total_steps):
        raise RuntimeError("no optimizer here")

    class BrokenStep(torch.optim.SGD):
        def step(self, closure=None):
            raise ZeroDivisionError("bad update")

    with pytest.raises(RuntimeError, match="no optimizer here"):
        train_run(task, broken_factory, lr=0.1, seed=0)
    with pytest.raises(ZeroDivisionError):
        train_run(task, lambda p, lr, n: BrokenStep(p, lr=lr), lr=0.1, seed=0)


def test_evaluate_factory_picks_an_lr_from_the_grid(task):
    rec = Recorder()
    lrs = (1e-4, 1e-1, 1e6)
    result = evaluate_factory(task, rec, lrs=lrs, epochs=2, grid_epochs=0.5, seed=0)
    assert isinstance(result, EvalResult)
    assert result.status == "ok" and result.lr == 1e-1
    assert result.reward == result.val_acc > 0.3 and result.test_acc is not None
    grid_steps = task.steps_per_epoch // 2
    assert rec.total_steps == [grid_steps] * 3 + [2 * task.steps_per_epoch]
    assert result.steps <= 3 * grid_steps + 2 * task.steps_per_epoch
    assert EvalResult.from_dict(result.to_dict()) == result

    again = evaluate_factory(task, rec, lrs=lrs, epochs=2, grid_epochs=0.5, seed=0)
    assert {**again.to_dict(), "seconds": 0} == {**result.to_dict(), "seconds": 0}


def test_evaluate_factory_single_lr_skips_the_grid(task):
    rec = Recorder()
    result = evaluate_factory(task, rec, lrs=(0.05,), seed=1, test=False)
    assert rec.calls == 1 and result.lr == 0.05 and result.seed == 1
    assert result.steps == task.epochs * task.steps_per_epoch and result.test_acc is None


def test_evaluate_factory_all_diverged(task):
    rec = Recorder(BASELINES["sgd"])
    result = evaluate_factory(task, rec, lrs=(1e6, 1e7), grid_epochs=0.5, seed=0)
    assert result.status == "diverged" and result.reward == 0.0 and result.lr is None
    assert rec.calls == 2 and "every lr" in result.reason


def test_curve_records_every_epoch_and_changes_nothing_else(task):
    plain = train_run(task, BASELINES["adam"], lr=1e-2, seed=3, test=True)
    traced = train_run(task, BASELINES["adam"], lr=1e-2, seed=3, test=True, curve=True)
    spe = task.steps_per_epoch
    assert [step for step, _ in traced.val_curve] == [spe, 2 * spe, 3 * spe]
    assert traced.val_curve[-1][1] == traced.val_acc == plain.val_acc
    assert traced.loss_curve == plain.loss_curve and traced.test_acc == plain.test_acc
    assert plain.val_curve == ()
    assert 0 < traced.val_loss < math.log(10) and 0 < traced.test_loss < math.log(10)


def test_evaluate_factory_passes_the_curve_and_losses_on(task):
    result = evaluate_factory(task, BASELINES["adam"], lrs=(1e-2,), epochs=2, seed=0, curve=True)
    assert [step for step, _ in result.val_curve] == [task.steps_per_epoch, 2 * task.steps_per_epoch]
    assert result.val_loss is not None and result.test_loss is not None
    assert EvalResult.from_dict(result.to_dict()) == result
    old = {k: v for k, v in result.to_dict().items() if k not in ("val_curve", "val_loss", "test_loss")}
    assert EvalResult.from_dict(old).val_curve == ()  # a result stored before the curve existed


class _SequenceTagger(torch.nn.Module):
    """(B, T) ids -> (B, T, C) logits: a per-position classifier, the shape of a language model."""

    def __init__(self, vocab: int = 5) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, vocab)

    def forward(self, ids):
        return self.embed(ids)


def test_sequence_outputs_are_scored_per_position():
    from nos_symbolic.tasks import Task
    from nos_symbolic.tasks.data import Split

    ids = torch.randint(0, 5, (64, 8), generator=torch.Generator().manual_seed(0))
    split = Split(ids, (ids + 1) % 5)  # each position's label is a function of its own id

    def make(seed):
        torch.manual_seed(seed)
        return _SequenceTagger()

    task = Task("tagger", split, split, split, make, num_classes=5, batch_size=16, epochs=5)
    out = train_run(task, BASELINES["adam"], lr=0.1, seed=0, test=True)
    assert out.status == "ok" and out.test_acc == 1.0 and out.test_loss < 0.5
