"""Evaluation protocols: halving's lr search, the hurdle, pause and resume, and `full` unchanged."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from nos_symbolic.tasks import get_task
from nos_symbolic.tasks.baselines import BASELINES
from nos_symbolic.tasks.protocol import (
    HALF_DECADE,
    SEED_STRIDE,
    Halving,
    halving,
    hurdle_threshold,
    run_named_protocol,
)
from nos_symbolic.tasks.train import evaluate_factory, train_run

LRS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """Tiny MNIST-1D: 320 train, 10 steps of 32 an epoch, 2 epochs (20 steps); one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield get_task("mnist1d", num_samples=1000, n_train=320, batch_size=32, epochs=2)
    torch.set_num_threads(threads)


class NoisySGD(torch.optim.SGD):
    """SGD plus Gaussian noise from torch's global generator: a resumed run must restore it."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step()
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(torch.randn_like(p), alpha=1e-3)


class Counting:
    """A factory that counts optimizer steps per lr and records each run's (lr, total_steps)."""

    def __init__(self) -> None:
        self.steps, self.made = Counter(), []

    def __call__(self, params, lr, total_steps):
        self.made.append((lr, total_steps))
        counts = self.steps

        class Counted(torch.optim.SGD):
            def step(self, closure=None):
                counts[lr] += 1
                return super().step(closure)

        return Counted(params, lr=lr, momentum=0.9)


def same(a, b) -> bool:
    """Equal results but for wall time."""
    da, db = a.to_dict(), b.to_dict()
    da.pop("seconds"), db.pop("seconds")
    return da == db


def noisy(params, lr, total_steps):
    return NoisySGD(params, lr=lr)


@pytest.mark.parametrize("pauses", [(3,), (10,), (2, 10, 15)])
def test_paused_and_resumed_run_equals_one_run_straight_through(task, pauses):
    straight = train_run(task, noisy, 0.05, seed=3, test=True, curve=True)
    out = None
    for at in pauses:
        out = train_run(task, noisy, 0.05, seed=3, curve=True, pause_at=at,
                        resume=out.state if out else None)
        assert out.status == "paused" and out.steps == at and out.val_acc is not None
    resumed = train_run(task, noisy, 0.05, seed=3, test=True, curve=True, resume=out.state)
    assert resumed.status == "ok" and resumed.steps == straight.steps == 20
    assert resumed.loss_curve == straight.loss_curve
    assert (resumed.val_acc, resumed.test_acc, resumed.val_curve) == \
        (straight.val_acc, straight.test_acc, straight.val_curve)


def test_resume_refuses_another_run(task):
    paused = train_run(task, noisy, 0.05, seed=3, pause_at=2)
    with pytest.raises(ValueError, match="lr, seed, total_steps"):
        train_run(task, noisy, 0.1, seed=3, resume=paused.state)
    with pytest.raises(ValueError, match="not after"):
        train_run(task, noisy, 0.05, seed=3, pause_at=2, resume=paused.state)


def test_full_is_evaluate_factory_unchanged(task):
    factory = BASELINES["momentum"]
    assert same(run_named_protocol("full", task, factory, seed=1, lrs=LRS, grid_epochs=0.5),
                evaluate_factory(task, factory, seed=1, lrs=LRS, grid_epochs=0.5))
    with pytest.raises(ValueError, match="no hurdle"):
        run_named_protocol("full", task, factory, hurdle_threshold=0.5)
    with pytest.raises(ValueError, match="unknown protocol 'fast'; expected one of full, halving"):
        run_named_protocol("fast", task, factory)


def test_halving_keeps_the_better_half_then_brackets_the_winner(task):
    knobs = Halving(screen_epochs=0.25, halvings=1)  # 2 steps for every lr, 4 for the top 3
    screen = {lr: train_run(task, BASELINES["momentum"], lr, seed=0, pause_at=2).val_acc or 0.0
              for lr in LRS}
    # BASELINES["momentum"] is SGD(momentum=0.9): Counting builds the same optimizer
    assert screen == {lr: train_run(task, Counting(), lr, seed=0, pause_at=2).val_acc or 0.0
                      for lr in LRS}
    counting = Counting()
    result = halving(task, counting, lrs=LRS, seed=0, knobs=knobs)
    top3 = sorted(LRS, key=lambda lr: -screen[lr])[:3]
    went_on = {lr for lr in LRS if counting.steps[lr] > 2}
    assert went_on == set(top3)
    winner = max(top3, key=lambda lr: train_run(task, Counting(), lr, seed=0, pause_at=4).val_acc)
    neighbours = {lr for lr, _ in counting.made} - set(LRS)
    assert neighbours == {winner / HALF_DECADE, winner * HALF_DECADE}
    assert result.lr in neighbours | {winner}
    # every run is a prefix of the final run: built for its 20 steps, and the winner's run goes on
    assert {t for _, t in counting.made} == {20}
    assert counting.steps[result.lr] == 20 and result.steps == sum(counting.steps.values())
    assert result.steps == 5 * 2 + 3 * 2 + 2 * 4 + 16


def test_the_hurdle_stops_a_weak_run_and_lets_a_good_one_finish(task):
    factory = BASELINES["momentum"]
    free = halving(task, factory, lrs=LRS, seed=0)
    hurdle_step = task.steps_per_epoch
    (step, acc), = free.val_curve  # the accuracy at the hurdle is recorded for the next threshold
    assert step == hurdle_step and free.status == "ok"
    passed = halving(task, factory, lrs=LRS, seed=0, hurdle_threshold=acc)
    assert same(passed, free)
    stopped = halving(task, factory, lrs=LRS, seed=0, hurdle_threshold=acc + 1e-9)
    assert stopped.status == "hurdled" and stopped.reward == stopped.val_acc == acc
    assert "below the hurdle" in stopped.reason and stopped.lr == free.lr
    assert stopped.steps == free.steps - (20 - hurdle_step)


def test_same_seed_same_result(task):
    a = run_named_protocol("halving", task, noisy, seed=4, lrs=LRS, hurdle_threshold=0.2)
    b = run_named_protocol("halving", task, noisy, seed=4, lrs=LRS, hurdle_threshold=0.2)
    assert same(a, b)


def test_the_lr_search_must_end_before_the_hurdle(task):
    with pytest.raises(ValueError, match="must end before the hurdle"):
        halving(task, noisy, lrs=LRS, knobs=Halving(screen_epochs=0.5, halvings=1))


def test_hurdle_threshold_is_the_quantile_of_runs_that_reached_the_step():
    curves = [[(20, 0.1 * k), (40, 0.5)] for k in range(1, 11)] + [[(10, 0.9)], []]
    assert hurdle_threshold(curves, 20, 0.5) == pytest.approx(0.55)
    assert hurdle_threshold(curves, 20, 1.0) == pytest.approx(1.0)
    assert hurdle_threshold(curves, 20, 0.5, min_count=11) is None
    assert hurdle_threshold(curves, 30, 0.5, min_count=1) is None
    with pytest.raises(ValueError, match=r"quantile must lie in \[0, 1\], got 1.5"):
        hurdle_threshold(curves, 20, 1.5)


def test_more_seeds_average_final_runs_at_the_chosen_lr(task):
    one = halving(task, noisy, lrs=LRS, seed=2, test=True, knobs=Halving())
    two = halving(task, noisy, lrs=LRS, seed=2, test=True, knobs=Halving(seeds=2))
    assert two.lr == one.lr  # only the first seed screens
    other = train_run(task, noisy, one.lr, seed=2 + SEED_STRIDE, test=True)
    assert two.reward == pytest.approx((one.reward + other.val_acc) / 2)
    assert two.test_acc == pytest.approx((one.test_acc + other.test_acc) / 2)
    assert two.steps == one.steps + other.steps and two.status == "ok"
    assert two.loss_curve == one.loss_curve  # the first run's


def test_a_hurdled_rule_costs_no_further_seeds(task):
    free = halving(task, noisy, lrs=LRS, seed=0, knobs=Halving(seeds=3))
    (_, acc), = free.val_curve
    stopped = halving(task, noisy, lrs=LRS, seed=0, hurdle_threshold=acc + 1e-9, knobs=Halving(seeds=3))
    alone = halving(task, noisy, lrs=LRS, seed=0, hurdle_threshold=acc + 1e-9, knobs=Halving())
    assert stopped.status == "hurdled" and same(stopped, alone)


def test_tail_averages_validation_over_the_last_epoch_without_changing_the_run(task):
    plain = halving(task, noisy, lrs=LRS, seed=1, test=True, knobs=Halving())
    tailed = halving(task, noisy, lrs=LRS, seed=1, test=True, knobs=Halving(tail=2))
    assert tailed.test_acc == plain.test_acc and tailed.loss_curve == plain.loss_curve
    half = train_run(task, noisy, plain.lr, seed=1, pause_at=20 - 5)  # 10 steps an epoch, 2 measures
    assert tailed.reward == pytest.approx((half.val_acc + plain.val_acc) / 2)
    assert tailed.steps == plain.steps


def test_refinement_can_be_kept_inside_the_grid(task):
    counting = Counting()
    result = halving(task, counting, lrs=(1e-2, 1e-1, 1.0), seed=0,
                     knobs=Halving(screen_epochs=0.2, refine_outside=False))
    made = {lr for lr, _ in counting.made}
    assert all(1e-2 * (1 - 1e-9) <= lr <= 1.0 * (1 + 1e-9) for lr in made), made
    assert result.lr in made


def test_a_shorter_final_run_sets_every_runs_length(task):
    counting = Counting()
    result = halving(task, counting, lrs=LRS, seed=0, knobs=Halving(screen_epochs=0.2, final_epochs=1.5))
    assert {t for _, t in counting.made} == {15} and counting.steps[result.lr] == 15


@pytest.mark.parametrize("knobs, message", [
    (dict(seeds=0), "seeds must be an integer >= 1"), (dict(tail=1.5), "tail must be an integer"),
    (dict(final_epochs=0), "final_epochs must be positive")])
def test_bad_knobs_are_refused(knobs, message):
    with pytest.raises(ValueError, match=message):
        Halving(**knobs)


def test_one_lr_is_not_searched(task):
    counting = Counting()  # a screen of 0.9 epochs would not fit before the hurdle: never run
    result = halving(task, counting, lrs=(0.05,), seed=0, knobs=Halving(screen_epochs=0.9, refine=True))
    assert result.lr == 0.05 and counting.made == [(0.05, 20)] and result.steps == 20
    straight = train_run(task, Counting(), 0.05, seed=0)
    assert result.reward == straight.val_acc and result.loss_curve == straight.loss_curve
