"""The training protocol that scores an optimizer on a child task. Pure computation: no I/O.

An optimizer enters as a factory, (params, lr, total_steps) -> torch.optim.Optimizer, so a rule
compiled from the DSL, a torch built-in and a hand-written class are scored the same way.

    outcome = train_run(task, factory, lr=0.1, epochs=5, seed=0)       # one run at one lr
    result = evaluate_factory(task, factory, seed=0)                   # lr grid, then the final run

Kills, so a search spends little on hopeless rules (AutoML-Zero's degenerate-candidate kill and
hurdle): a run ends at once as `diverged` when the training loss turns NaN/Inf or exceeds the
bound s + (DIVERGENCE_FACTOR - 1) |s|, with s = max(initial loss, ln(num_classes)) for a classifier
(10 x 2.3 = 23 for ten classes, where a guess scores 2.3: a net that wrong has left training
behind) and s = the initial loss otherwise (a regression's MSE, say), or when the weights turn
non-finite; a classifier scored by accuracy (a task with a chance level) ends as `failed` when
validation accuracy after the first epoch is still within CHANCE_MARGIN of chance.

The task's loss trains and its metric (higher is better; accuracy by default) scores: `val_acc`
and `test_acc` hold the metric, whatever it is. With the defaults a network maps a batch to logits
(B, C) for labels (B,), or to (B, T, C) for labels (B, T) (a language model's next-token
predictions); loss and accuracy are taken over every prediction.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch import nn

from nos_symbolic.result import EvalResult
from nos_symbolic.tasks import BUILTIN_EPOCHS, Task
from nos_symbolic.tasks.data import Split

OptimizerFactory = Callable[[Iterable[nn.Parameter], float, int], torch.optim.Optimizer]

# The paper does not give its lr protocol; a reimplementation grid-searches these with one epoch
# each. One default MNIST-1D evaluation (6 grid epochs + 5 final epochs, 352 steps) takes about
# 1.3 s on one CPU core (bench/bench_train.py).
DEFAULT_LRS: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
DEFAULT_GRID_EPOCHS: float = 1
DIVERGENCE_FACTOR = 10.0
CHANCE_MARGIN = 0.02  # about two standard errors of a chance-level guess on MNIST-1D's 800 val
EVAL_BATCH = 1000  # one pass for MNIST-1D's splits; bounds activation memory on CIFAR-10

RunStatus = Literal["ok", "diverged", "failed", "hurdled", "paused"]


@dataclass(frozen=True)
class TrainOutcome:
    """One training run at one lr.

    val_acc:    the task's metric (accuracy by default) on validation at the end of an ok run; for
                failed and diverged runs the metric measured after epoch 1 (validation runs then, for the chance kill, and at
                the end), or None when the kill came first.
    test_acc:   the metric on test at the end of an ok run when asked for, else None.
    loss_curve: mean training loss of each epoch that ran to its end (a last fractional epoch
                counts); always finite.
    steps:      optimizer steps taken.
    val_loss, test_loss: the task's loss (mean cross-entropy in nats by default) next to val_acc
                and test_acc, when finite.
    val_curve:  (step, validation metric) after each epoch, when asked for (curve=True), and
                after the hurdle's epoch when there is one.
    state:      for a `paused` run (pause_at), what train_run(..., resume=state) continues from;
                its val_acc and val_loss are then measured at the pause.
    """

    status: RunStatus
    val_acc: float | None
    test_acc: float | None
    loss_curve: tuple[float, ...]
    steps: int
    seconds: float
    reason: str = ""
    val_loss: float | None = None
    test_loss: float | None = None
    val_curve: tuple[tuple[int, float], ...] = ()
    state: RunState | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Score:
    """A network measured on one split: the task's metric (accuracy by default), its loss (mean
    cross-entropy in nats by default; None when not finite) and whether every output was finite."""

    acc: float | None
    loss: float | None
    finite: bool


UNMEASURED = Score(None, None, True)  # a split not (yet) measured


@dataclass(eq=False)
class RunState:
    """A run paused at a step (train_run's `pause_at`), continued by train_run(..., resume=state)
    with the same lr, epochs and seed. It holds everything the training loop holds (network,
    optimizer, batch order, the global generators, the epoch in progress), so a paused and resumed
    run takes the very steps of one run straight through. Resuming consumes it."""

    key: tuple[float, int, int]  # (lr, seed, total_steps) the run was started with
    model: nn.Module
    optimizer: torch.optim.Optimizer
    order: torch.Generator
    rng: tuple[torch.Tensor, torch.Tensor | None, tuple]  # torch's CPU and CUDA generators, numpy's
    losses: list[float]
    val_curve: list[tuple[int, float]]
    val: Score | None
    bound: float
    step: int
    partial: tuple | None  # the epoch in progress (n, xs, ys, loss_sum, loss_max); None at its start


def train_run(
    task: Task,
    factory: OptimizerFactory,
    lr: float,
    epochs: float | None = None,
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    test: bool = False,
    curve: bool = False,
    check_every: int | None = None,
    divergence_factor: float = DIVERGENCE_FACTOR,
    chance_margin: float = CHANCE_MARGIN,
    hurdle: tuple[int, float] | None = None,
    pause_at: int | None = None,
    resume: RunState | None = None,
) -> TrainOutcome:
    """Train task's network from seed for epochs (default task.epochs, else 5; fractions allowed) at lr.

    The seed fixes the initial weights, the batch order and every random draw the optimizer makes
    from torch's global generator (which is restored afterwards), so on CPU the same seed gives the
    same outcome. Validation runs after epoch 1 (the chance kill) and at the end; curve=True runs it
    after every epoch as well (evaluation mode draws no random numbers, so the training is the
    same). check_every: steps between divergence checks; each one waits for the device, so the
    default is every step on CPU and every 10 steps elsewhere. An exception raised by the factory or
    by an optimizer step propagates.

    hurdle=(k, threshold): validation also runs after epoch k, and a run below threshold there
    ends as `hurdled` (AutoML-Zero's hurdle). pause_at=s: the run stops after step s as `paused`,
    with its validation measured there and a `state` that resume= continues (the same lr, epochs
    and seed); None, or s at the end, runs to the end.
    """
    start = time.perf_counter()
    dev = torch.device(device)
    spe = task.steps_per_epoch
    total_steps = max(1, round((epochs or task.epochs or BUILTIN_EPOCHS) * spe))
    check_every = check_every or (1 if dev.type == "cpu" else 10)
    train, val_split = task.train.to(dev), task.val.to(dev)
    batch = min(task.batch_size, len(train))
    order = torch.Generator().manual_seed(seed)
    partial = None  # the epoch in progress, when a paused run resumes inside one

    with _seeded(seed, dev):
        if resume is None:
            model = task.make_model(seed).to(dev)
            optimizer = factory(model.parameters(), lr, total_steps)
            losses: list[float] = []
            val_curve: list[tuple[int, float]] = []
            val: Score | None = None
            bound = math.inf
            step = 0
        else:
            model, optimizer, order, losses, val_curve, val, bound, step, partial = _resume(
                resume, (lr, seed, total_steps), pause_at, dev)
        model.train()

        def outcome(status: RunStatus, reason: str = "", test: Score | None = None):
            last, end = val or UNMEASURED, test or UNMEASURED
            return TrainOutcome(status, last.acc, end.acc, tuple(losses), step,
                                time.perf_counter() - start, reason, val_loss=last.loss,
                                test_loss=end.loss, val_curve=tuple(val_curve))

        def paused(epoch_in_progress: tuple | None) -> TrainOutcome:
            # measured apart from `val`, which keeps the last epoch-end score a kill reports
            at = score_split(model, val_split, task)
            state = RunState((lr, seed, total_steps), model, optimizer, order, _rng_state(dev),
                             losses, val_curve, val, bound, step, epoch_in_progress)
            return TrainOutcome("paused", at.acc if at.finite else None, None, tuple(losses), step,
                                time.perf_counter() - start, val_loss=at.loss,
                                val_curve=tuple(val_curve), state=state)

        for epoch in range(step // spe, math.ceil(total_steps / spe)):
            if step == pause_at and partial is None:
                return paused(None)
            if partial is None:
                n = min(spe, total_steps - step)
                perm = torch.randperm(len(train), generator=order)[: n * batch].to(dev)
                xs, ys = train.x[perm], train.y[perm]  # one gather per epoch, then contiguous slices
                loss_sum = torch.zeros((), device=dev)
                loss_max = torch.zeros((), device=dev)
            else:
                n, xs, ys, loss_sum, loss_max = partial
                partial = None
            for i in range(step - epoch * spe, n):
                loss = task.loss(model(xs[i * batch:(i + 1) * batch]), ys[i * batch:(i + 1) * batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                loss = loss.detach()
                loss_sum += loss
                torch.maximum(loss_max, loss, out=loss_max)  # NaN propagates through maximum
                if step == 1:
                    bound = divergence_bound(loss.item(), task.num_classes, divergence_factor)
                if step % check_every == 0 or i == n - 1:
                    total, worst = torch.stack([loss_sum, loss_max]).tolist()
                    if not (math.isfinite(total) and worst <= bound):
                        return outcome("diverged", _divergence_reason(worst, bound, step, epoch))
                if step == pause_at and i < n - 1:
                    return paused((n, xs, ys, loss_sum, loss_max))
            losses.append(total / n)  # the check at i == n - 1 has just read the epoch's sum

            at_hurdle = hurdle is not None and epoch + 1 == hurdle[0]
            if not (curve or at_hurdle) and epoch > 0 and step < total_steps:
                continue
            score = score_split(model, val_split, task)
            if not score.finite:
                return outcome("diverged", f"weights turned non-finite by step {step} "
                                           f"(epoch {epoch + 1})")
            val = score
            if curve or at_hurdle:  # the hurdle's point: the next hurdle's threshold reads it
                val_curve.append((step, score.acc))
            if task.chance is not None and epoch == 0 and n == spe and score.acc <= task.chance + chance_margin:
                return outcome("failed", f"validation accuracy {score.acc:.3f} after epoch 1 is "
                                         f"within {chance_margin} of chance ({task.chance:.3f})")
            if at_hurdle and score.acc < hurdle[1]:
                return outcome("hurdled", f"validation {task.metric_name} {score.acc:.3f} after epoch "
                                          f"{epoch + 1} is below the hurdle {hurdle[1]:.3f}")
            model.train()

        return outcome("ok", test=score_split(model, task.test.to(dev), task) if test else None)


def evaluate_factory(
    task: Task,
    factory: OptimizerFactory,
    *,
    lrs: Sequence[float] = DEFAULT_LRS,
    epochs: float | None = None,
    grid_epochs: float = DEFAULT_GRID_EPOCHS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    test: bool = True,
    curve: bool = False,
) -> EvalResult:
    """Score an optimizer on task: the paper's reward, validation accuracy after a short run.

    Each lr in lrs gets a run of grid_epochs (fractions allowed); the lr with the best validation
    accuracy (the first among equals; diverged runs never win) then gets the full run of epochs
    (default task.epochs), and that run's status, reason and accuracies make the result. A single
    lr skips the grid. Every run uses the same seed, so lrs are compared on equal terms.
    steps and seconds count the whole evaluation, grid included: they are its cost. curve=True
    records the final run's per-epoch validation accuracy (its steps count the final run only).
    """
    if not lrs:
        raise ValueError("lrs must name at least one learning rate")
    start = time.perf_counter()
    steps, best_lr = 0, lrs[0]
    if len(lrs) > 1:
        best_acc = -1.0
        for lr in lrs:
            run = train_run(task, factory, lr, grid_epochs, seed, device=device)
            steps += run.steps
            if run.status != "diverged" and (run.val_acc or 0.0) > best_acc:
                best_lr, best_acc = lr, run.val_acc or 0.0
        if best_acc < 0:
            return EvalResult(status="diverged", steps=steps, seed=seed,
                              seconds=time.perf_counter() - start,
                              reason=f"diverged at every lr in {tuple(lrs)}")

    final = train_run(task, factory, best_lr, epochs, seed, device=device, test=test, curve=curve)
    return result_of(final, lr=best_lr, steps=steps + final.steps,
                     seconds=time.perf_counter() - start, seed=seed)


def result_of(final: TrainOutcome, *, lr: float, steps: int, seconds: float, seed: int) -> EvalResult:
    """An evaluation's result from its final run, with the lr chosen and the whole cost."""
    return EvalResult(
        status=final.status,
        reward=final.val_acc or 0.0,
        lr=lr,
        val_acc=final.val_acc,
        test_acc=final.test_acc,
        loss_curve=final.loss_curve,
        steps=steps,
        seconds=seconds,
        seed=seed,
        reason=final.reason,
        val_loss=final.val_loss,
        test_loss=final.test_loss,
        val_curve=final.val_curve,
    )


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None, tuple]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda, np.random.get_state()


def _resume(state: RunState, key: tuple[float, int, int], pause_at: int | None,
            device: torch.device) -> tuple:
    """The loop's variables from a paused run, with the global generators set as they were."""
    if state.key != key:
        raise ValueError(f"resume= holds a run of (lr, seed, total_steps) {state.key}, not {key}")
    if pause_at is not None and pause_at <= state.step:
        raise ValueError(f"pause_at {pause_at} is not after the resumed run's step {state.step}")
    cpu, cuda, np_state = state.rng
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)
    np.random.set_state(np_state)
    return (state.model, state.optimizer, state.order, state.losses, state.val_curve, state.val,
            state.bound, state.step, state.partial)


def _divergence_reason(worst: float, bound: float, step: int, epoch: int) -> str:
    where = f"by step {step} (epoch {epoch + 1})"
    if not math.isfinite(worst):
        return f"training loss turned {worst} {where}"
    return f"training loss {worst:.3g} exceeded the bound {bound:.3g} {where}"


def divergence_bound(initial: float, num_classes: int | None, factor: float = DIVERGENCE_FACTOR) -> float:
    """The training loss past which a run has diverged: s + (factor - 1) |s|, which is factor x s for
    a positive s, with s = max(initial, ln(num_classes)) for a classifier and s = initial otherwise
    (a loss that may be negative, such as a Gaussian negative log-likelihood, stays bounded above)."""
    s = max(initial, math.log(num_classes)) if num_classes else initial
    return s + (factor - 1) * max(abs(s), 1e-12)


def score_split(model: nn.Module, split: Split, task: Task) -> Score:
    """task's metric and mean loss over the whole split, in eval mode: the outputs of EVAL_BATCH
    inputs at a time, concatenated, so any metric (not only a mean over examples) is exact."""
    model.eval()
    with torch.inference_mode():
        outputs = torch.cat([model(split.x[i:i + EVAL_BATCH]) for i in range(0, len(split), EVAL_BATCH)])
        finite = bool(torch.isfinite(outputs).all().item())
        loss = float(task.loss(outputs, split.y)) if len(split) else math.nan
        metric = float(task.metric(outputs, split.y)) if len(split) else 0.0
    return Score(metric, loss if math.isfinite(loss) else None, finite)


def untrained_score(task: Task, seed: int = 0, device: str | torch.device = "cpu", split: str = "val") -> float:
    """task's metric on split (val or test) of the network make_model(seed) builds, before any
    training: what a rule that does not train at all would score."""
    dev = torch.device(device)
    with _seeded(seed, dev):
        model = task.make_model(seed).to(dev)
    score = score_split(model, getattr(task, split).to(dev), task)
    return score.acc if score.acc is not None and math.isfinite(score.acc) else 0.0


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's and numpy's global generators for the block, then restore the caller's."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(np_state)
