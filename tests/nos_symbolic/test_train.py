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


# ---------------------------------------------------------------------------------------------------
# A tiny run's exact outcome, pinned: any change to the steps taken, the batches drawn or the random
# numbers an optimizer draws from torch's global generator changes these numbers.


class _NoisyMomentum(torch.optim.SGD):
    """SGD with momentum plus Gaussian noise drawn from torch's global generator at every step."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step()
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(torch.randn_like(p), alpha=1e-2)


def _noisy_momentum(params, lr, total_steps):
    return _NoisyMomentum(params, lr=lr, momentum=0.9)


@pytest.fixture(scope="module")
def quadrants():
    """200 points in 8-d labelled by the quadrant of their first two coordinates: 10 steps of 16 an
    epoch, 3 epochs; small enough that a run takes milliseconds. One thread, as the workers run."""
    from nos_symbolic.tasks import Task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()

    def make(seed):
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))

    yield Task("quadrants", (x[:160], y[:160]), (x[160:180], y[160:180]), (x[180:], y[180:]), make,
               num_classes=4, batch_size=16, epochs=3)
    torch.set_num_threads(threads)


def _matches(out: TrainOutcome, status, steps, val_acc, test_acc, losses, val_loss, test_loss, val_curve,
             reason="") -> bool:
    """Exact for everything counted; floats to 1e-6 relative, so a CPU whose kernels round the last
    bit differently still passes while any other step, batch or random draw does not."""
    close = lambda a, b: a == b if a is None or b is None else math.isclose(a, b, rel_tol=1e-6)  # noqa: E731
    assert (out.status, out.steps, out.reason) == (status, steps, reason)
    assert [step for step, _ in out.val_curve] == [step for step, _ in val_curve]
    floats = [(out.val_acc, val_acc), (out.test_acc, test_acc), (out.val_loss, val_loss), (out.test_loss, test_loss)]
    floats += list(zip(out.loss_curve, losses, strict=True)) + list(zip(
        [acc for _, acc in out.val_curve], [acc for _, acc in val_curve], strict=True))
    return all(close(a, b) for a, b in floats)


LOSSES = (1.3559372901916504, 0.9792022705078125, 0.5188449382781982)
CURVE = ((10, 0.3), (20, 0.7), (30, 0.85))


def test_a_tiny_runs_outcome_is_pinned(quadrants):
    t, f = quadrants, _noisy_momentum
    straight = train_run(t, f, 0.1, seed=5, test=True, curve=True)
    assert _matches(straight, "ok", 30, 0.85, 0.9, LOSSES, 0.4525611996650696, 0.2320718765258789, CURVE)
    paused = train_run(t, f, 0.1, seed=5, curve=True, pause_at=14)
    assert _matches(paused, "paused", 14, 0.55, None, LOSSES[:1], 1.0455148220062256, None, CURVE[:1])
    resumed = train_run(t, f, 0.1, seed=5, test=True, curve=True, resume=paused.state)
    assert _matches(resumed, "ok", 30, 0.85, 0.9, LOSSES, 0.4525611996650696, 0.2320718765258789, CURVE)
    hurdled = train_run(t, f, 0.1, seed=5, hurdle=(2, 0.9))
    assert _matches(hurdled, "hurdled", 20, 0.7, None, LOSSES[:2], 0.7446301579475403, None, CURVE[1:2],
                    "validation accuracy 0.700 after epoch 2 is below the hurdle 0.900")
    short = train_run(t, f, 0.1, epochs=1.5, seed=6, check_every=4)
    assert _matches(short, "ok", 15, 0.5, None, (1.269998836517334, 0.888038444519043), 1.0522491931915283,
                    None, ())
    diverged = train_run(t, f, 30.0, seed=5)
    assert _matches(diverged, "diverged", 3, None, None, (), None, None, (),
                    "training loss 828 exceeded the bound 14.5 by step 3 (epoch 1)")
    failed = train_run(t, f, 0.1, seed=5, chance_margin=0.5)
    assert _matches(failed, "failed", 10, 0.3, None, LOSSES[:1], 1.265175700187683, None, (),
                    "validation accuracy 0.300 after epoch 1 is within 0.5 of chance (0.250)")
