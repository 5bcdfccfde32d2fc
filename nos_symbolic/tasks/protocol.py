"""Evaluation protocols: how an optimizer's reward is measured, chosen by name.

    full     every lr of the grid for grid_epochs, then the final run at the best
             (train.evaluate_factory, the paper's reimplementation; unchanged).
    halving  successive halving of the lr grid on the first steps of the final run itself, optionally
             a finer half-decade grid around the winner, the winner's run continued into the final
             run, validation averaged over its last epoch, and a hurdle part-way through it.

    result = run_named_protocol("halving", task, factory, seed=0)
    threshold = hurdle_threshold(recent_curves, step=task.steps_per_epoch, quantile=0.5)
    result = run_named_protocol("halving", task, factory, seed=0, hurdle_threshold=threshold)

Where halving saves: full trains 6 one-epoch grid runs (6 epochs) before its 5-epoch final run;
halving screens each lr for a fraction of an epoch, and since every screening run is a prefix of
the final run at its lr (the same seed and the same total steps T, so schedules such as ld and cd
see the final run's T), the winner's steps count toward the final run instead of being thrown
away. With DEFAULT_HALVING on MNIST-1D (32 steps an epoch) an evaluation takes about 115 optimizer
steps against full's 320 to 352 (bench/bench_protocol.py). Where it cuts noise: the reward is the
mean of `tail` validation measurements over the final run's last epoch instead of one, and
`seeds` > 1 averages final runs from several seeds. The hurdle (AutoML-Zero) ends a final run whose
validation accuracy after its hurdle epoch falls below a threshold the search takes from its
recent results (`hurdle_threshold`), so weak rules cost a fraction of a run. Pure computation: no
I/O.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from nos_symbolic.result import EvalResult
from nos_symbolic.tasks import Task
from nos_symbolic.tasks.train import (
    DEFAULT_GRID_EPOCHS,
    DEFAULT_LRS,
    OptimizerFactory,
    TrainOutcome,
    evaluate_factory,
    result_of,
    train_run,
)

PROTOCOL_NAMES: tuple[str, ...] = ("full", "halving")
HALF_DECADE = math.sqrt(10.0)


@dataclass(frozen=True)
class Halving:
    """The knobs of the halving protocol.

    screen_epochs: how long every grid lr runs first (a fraction of an epoch allowed).
    halvings:      rounds after the screen; each keeps the better half (ceil) of the runs still in
                   and doubles their length, so with 6 lrs and 1 round: 6 runs to s, 3 on to 2s.
    refine:        half-decade neighbours of the winner (lr / sqrt(10), lr * sqrt(10)) are run to
                   the winner's length and the best of the three goes on.
    refine_outside: whether refine may leave the grid (lr * sqrt(10) above its largest lr, say);
                   False keeps a neighbour only inside [min(lrs), max(lrs)].
    hurdle_epoch:  the final run's epoch after which the hurdle is taken (its accuracy there is
                   always recorded in val_curve, for later thresholds).
    final_epochs:  length of the final run (None: the evaluation's epochs, task.epochs by default).
    seeds:         final runs at the chosen lr, from seeds seed, seed + SEED_STRIDE, ...; the
                   reward is their mean (only the first one is screened, continued and hurdled).
    tail:          the final run's validation accuracy is the mean of `tail` measurements spread
                   evenly over its last epoch, ending at its last step (1: the last step only).
    """

    screen_epochs: float = 0.25
    halvings: int = 1
    refine: bool = True
    refine_outside: bool = True
    hurdle_epoch: int = 1
    final_epochs: float | None = None
    seeds: int = 1
    tail: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1, got {self.seeds!r}")
        if isinstance(self.tail, bool) or not isinstance(self.tail, int) or self.tail < 1:
            raise ValueError(f"tail must be an integer >= 1, got {self.tail!r}")
        if self.final_epochs is not None and not self.final_epochs > 0:
            raise ValueError(f"final_epochs must be positive, got {self.final_epochs!r}")


SEED_STRIDE = 1000  # the final runs of protocol seed s use s, s + 1000, ...: seeds 0 and 1 share none
# The defaults, chosen on bench/bench_protocol.py (120 rules of a real run): every lr for an eighth
# of an epoch, halved twice, no refinement (it costs a third of the lr search and moved the reward off
# full's ranking), a 3-epoch final run averaged over 4 points of its last epoch, a hurdle at the 0.25
# quantile (PROTOCOL_HURDLES below): 2.2x full's evaluations per CPU minute, seed-to-seed Spearman
# 0.93 against full's 0.91.
DEFAULT_HALVING = Halving(screen_epochs=0.125, halvings=2, refine=False, tail=4)
PROTOCOL_EPOCHS: dict[str, int] = {"full": 5, "halving": 3}  # the final run's default length
PROTOCOL_HURDLES: dict[str, float | None] = {"full": None, "halving": 0.25}  # the default hurdle quantile


def run_named_protocol(
    name: str,
    task: Task,
    factory: OptimizerFactory,
    *,
    seed: int = 0,
    lrs: Sequence[float] = DEFAULT_LRS,
    epochs: float | None = None,
    grid_epochs: float = DEFAULT_GRID_EPOCHS,
    hurdle_threshold: float | None = None,
    device: str | torch.device = "cpu",
    test: bool = True,
    curve: bool = False,
    halving_knobs: Halving = DEFAULT_HALVING,
) -> EvalResult:
    """Score factory on task with the protocol called name (one of PROTOCOL_NAMES).

    grid_epochs applies to full only, hurdle_threshold and halving_knobs to halving only (full has
    no hurdle: it stays the paper's protocol). Same seed, same result on CPU.
    """
    if name == "full":
        if hurdle_threshold is not None:
            raise ValueError("the full protocol has no hurdle; pass hurdle_threshold only with halving")
        return evaluate_factory(task, factory, lrs=lrs, epochs=epochs, grid_epochs=grid_epochs,
                                seed=seed, device=device, test=test, curve=curve)
    if name == "halving":
        return halving(task, factory, lrs=lrs, epochs=epochs, seed=seed, device=device, test=test,
                       curve=curve, hurdle_threshold=hurdle_threshold, knobs=halving_knobs)
    raise ValueError(f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOL_NAMES)}")



def halving(
    task: Task,
    factory: OptimizerFactory,
    *,
    lrs: Sequence[float] = DEFAULT_LRS,
    epochs: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    test: bool = True,
    curve: bool = False,
    hurdle_threshold: float | None = None,
    knobs: Halving = DEFAULT_HALVING,
) -> EvalResult:
    """Successive halving of the lr grid on prefixes of the final run, then the final run.

    Every lr starts the final run (epochs, default task.epochs) and pauses after
    s = screen_epochs x steps_per_epoch steps; `halvings` times the better half by validation
    accuracy (the first among equals; diverged and failed runs drop out) go on to twice their
    length; the best one's half-decade neighbours are run to the same length; the best of those
    three runs on to the end, with the hurdle after hurdle_epoch when hurdle_threshold is given.
    The result is that run's, its validation accuracy the mean over the `tail` points of its last
    epoch, averaged with the final runs from seeds seed + k x SEED_STRIDE (k < `seeds`) at the same
    lr; steps and seconds count every run (the cost); lr is the chosen lr.
    """
    if not lrs:
        raise ValueError("lrs must name at least one learning rate")
    start = time.perf_counter()
    spe = task.steps_per_epoch
    if knobs.final_epochs is not None:
        epochs = knobs.final_epochs
    total = max(1, round((task.epochs if epochs is None else epochs) * spe))
    rung = max(1, round(knobs.screen_epochs * spe))
    hurdle_step = knobs.hurdle_epoch * spe
    single = len(lrs) == 1  # one lr: nothing to search (as full skips its grid)
    if not single and rung * 2 ** knobs.halvings >= min(hurdle_step, total):
        raise ValueError(f"the lr search ({rung} x 2^{knobs.halvings} steps) must end before the "
                         f"hurdle (step {hurdle_step}) and the end of training (step {total})")
    cost = _Cost()

    def advance(lr: float, to: int, resume: TrainOutcome | None = None) -> TrainOutcome:
        out = train_run(task, factory, lr, epochs, seed, device=device, curve=curve, pause_at=to,
                        resume=resume.state if resume else None)
        cost.add(out, resume)
        return out

    if single:
        best, runs = lrs[0], {lrs[0]: None}
    else:
        runs = {lr: advance(lr, rung) for lr in lrs}
        for _ in range(knobs.halvings):
            keep = math.ceil(len(_alive(runs)) / 2)
            rung *= 2
            runs = {lr: advance(lr, rung, runs[lr]) for lr in _ranked(runs)[:keep]}
        if not _alive(runs):
            return EvalResult(status="diverged", steps=cost.steps, seed=seed,
                              seconds=time.perf_counter() - start,
                              reason=f"no lr in {tuple(lrs)} lasted {rung} steps")
        best = _ranked(runs)[0]
        if knobs.refine:
            low, high = min(lrs), max(lrs)
            near = [lr for lr in (best / HALF_DECADE, best * HALF_DECADE)
                    if knobs.refine_outside or low * (1 - 1e-9) <= lr <= high * (1 + 1e-9)]
            runs = {lr: runs[best] if lr == best else advance(lr, rung) for lr in sorted([best, *near])}
            best = _ranked(runs)[0]

    # -inf: no hurdle yet, but the accuracy there is recorded for the next threshold
    hurdle = (knobs.hurdle_epoch, -math.inf if hurdle_threshold is None else hurdle_threshold)
    tails = _tail_steps(total, spe, knobs.tail)
    finals = [_final_run(task, factory, best, epochs, seed, tails, cost, device=device, test=test,
                         curve=curve, hurdle=hurdle, resume=runs[best])]
    for k in range(1, knobs.seeds):
        if finals[0][0].status != "ok":
            break  # a hurdled, diverged or failed rule costs no further seeds
        finals.append(_final_run(task, factory, best, epochs, seed + k * SEED_STRIDE, tails, cost,
                                 device=device, test=test, curve=curve))
    return _combined(finals, lr=best, steps=cost.steps, seconds=time.perf_counter() - start, seed=seed)


def _tail_steps(total: int, spe: int, tail: int) -> list[int]:
    """The steps at which the final run's accuracy is measured: `tail` of them spread evenly over
    its last epoch (or over the whole run when it is shorter), the last one at its end."""
    span = min(spe, total)
    steps = sorted({total - (span * j) // tail for j in range(tail)})
    return [s for s in steps if s >= 1]


def _final_run(task: Task, factory: OptimizerFactory, lr: float, epochs: float | None, seed: int,
               tails: list[int], cost: "_Cost", *, device, test: bool, curve: bool,
               hurdle: tuple[int, float] | None = None,
               resume: TrainOutcome | None = None) -> tuple[TrainOutcome, float | None]:
    """One final run (continuing `resume` when given), paused at each tail step but the last to
    measure validation accuracy there: (the run's outcome, the mean of those accuracies and the
    last; None when a measurement was not finite)."""
    measured: list[float | None] = []
    out = resume
    for at in tails[:-1]:
        if out is not None and out.steps >= at:
            continue  # a screening run went past it (a final run shorter than the lr search)
        nxt = train_run(task, factory, lr, epochs, seed, device=device, curve=curve, hurdle=hurdle,
                        pause_at=at, resume=out.state if out else None)
        cost.add(nxt, out)
        out = nxt
        if out.status != "paused":
            return out, out.val_acc
        measured.append(out.val_acc)
    final = train_run(task, factory, lr, epochs, seed, device=device, test=test, curve=curve,
                      hurdle=hurdle, resume=out.state if out else None)
    cost.add(final, out)
    if final.status != "ok":
        return final, final.val_acc
    measured.append(final.val_acc)
    if any(m is None for m in measured):
        return final, None
    return final, sum(measured) / len(measured)


def _combined(finals: list[tuple[TrainOutcome, float | None]], *, lr: float, steps: int, seconds: float,
              seed: int) -> EvalResult:
    """The result of one or more final runs: the first run's, with the accuracies and losses
    averaged over the runs (the status is the first run's that did not end ok)."""
    first = result_of(finals[0][0], lr=lr, steps=steps, seconds=seconds, seed=seed)
    scores = [score for _, score in finals]
    bad = next((out for out, _ in finals if out.status != "ok"), None)

    def mean(values):
        return None if any(v is None for v in values) else sum(values) / len(values)

    val = mean(scores)
    return replace(
        first,
        status=bad.status if bad is not None else "ok",
        reason=bad.reason if bad is not None else "",
        reward=val or 0.0,
        val_acc=val,
        test_acc=mean([out.test_acc for out, _ in finals]),
        val_loss=mean([out.val_loss for out, _ in finals]),
        test_loss=mean([out.test_loss for out, _ in finals]),
    )


class _Cost:
    """Optimizer steps taken over every run of an evaluation (a resumed run's earlier steps once)."""

    def __init__(self) -> None:
        self.steps = 0

    def add(self, out: TrainOutcome, resumed: TrainOutcome | None) -> None:
        self.steps += out.steps - (resumed.steps if resumed else 0)


def _alive(runs: dict[float, TrainOutcome]) -> list[float]:
    """The lrs whose run is still going (paused) or ended well (ok)."""
    return [lr for lr, out in runs.items() if out.status in ("paused", "ok")]


def _ranked(runs: dict[float, TrainOutcome]) -> list[float]:
    """Live lrs by validation accuracy, best first; the first among equals (a stable sort)."""
    return sorted(_alive(runs), key=lambda lr: -(runs[lr].val_acc or 0.0))


def hurdle_threshold(
    curves: Sequence[Sequence[tuple[int, float]]],
    step: int,
    quantile: float,
    min_count: int = 10,
) -> float | None:
    """The hurdle for the next final run: the quantile of past runs' validation accuracy at step.

    curves are recent results' val_curve ((step, accuracy) pairs); only runs that reached step
    count (a run killed before it has no accuracy there). quantile 0.5 stops about half of the runs
    like the recent ones; None (no hurdle yet) while fewer than min_count runs reached step.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"the hurdle quantile must lie in [0, 1], got {quantile}")
    at = [acc for curve in curves for s, acc in curve if s == step]
    if len(at) < max(1, min_count):
        return None
    return float(np.quantile(at, quantile))

