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
from typing import Callable, Iterable, Iterator, Literal, NamedTuple, Sequence

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
                failed and diverged runs the metric measured after epoch 1 (validation runs then, for
                the chance kill, and at the end), or None when the kill came first.
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


class _Epoch(NamedTuple):
    """An epoch's batches, drawn at its start, and its running training loss on the device."""

    n: int  # steps in the epoch (fewer than steps_per_epoch in a last fractional epoch)
    xs: torch.Tensor  # the epoch's n batches of inputs, one after another
    ys: torch.Tensor
    loss_sum: torch.Tensor  # summed and maxed in place, so the device is waited on only at checks
    loss_max: torch.Tensor


@dataclass(eq=False)
class RunState:
    """The variables a training run carries from step to step. A run paused at a step (train_run's
    `pause_at`) hands them out, and train_run(..., resume=state) continues from them with the same
    lr, epochs and seed: with the network, optimizer, batch order, the global generators and the
    epoch in progress, a paused and resumed run takes the very steps of one run straight through.
    Resuming consumes it."""

    key: tuple[float, int, int]  # (lr, seed, total_steps) the run was started with
    model: nn.Module
    optimizer: torch.optim.Optimizer
    order: torch.Generator  # the batch order's own generator, apart from the global ones
    losses: list[float] = field(default_factory=list)
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    val: Score | None = None  # the last epoch-end validation, which a kill reports
    bound: float = math.inf  # the divergence bound, set by the first step's loss
    step: int = 0
    partial: _Epoch | None = None  # the epoch in progress; None at its start
    # torch's CPU and CUDA generators and numpy's at the pause; None while the run goes on
    rng: tuple[torch.Tensor, torch.Tensor | None, tuple] | None = None


@dataclass(frozen=True)
class _Watch:
    """train_run's knobs that decide when validation runs and when a run stops early."""

    check_every: int
    divergence_factor: float
    chance_margin: float
    hurdle: tuple[int, float] | None
    curve: bool
    pause_at: int | None

    def at_hurdle(self, epoch: int) -> bool:
        """Whether the hurdle stands after `epoch` (counted from 0)."""
        return self.hurdle is not None and epoch + 1 == self.hurdle[0]

    def kill(self, task: Task, score: Score, epoch: int, n: int) -> tuple[RunStatus, str] | None:
        """(status, reason) when validation after `epoch` (of n steps) ends the run: still at chance
        after a whole first epoch (`failed`) or below the hurdle at its epoch (`hurdled`)."""
        at_chance = task.chance is not None and score.acc <= task.chance + self.chance_margin
        if at_chance and epoch == 0 and n == task.steps_per_epoch:
            return "failed", (f"validation accuracy {score.acc:.3f} after epoch 1 is within "
                              f"{self.chance_margin} of chance ({task.chance:.3f})")
        if self.hurdle is not None and self.at_hurdle(epoch) and score.acc < self.hurdle[1]:
            return "hurdled", (f"validation {task.metric_name} {score.acc:.3f} after epoch {epoch + 1} "
                               f"is below the hurdle {self.hurdle[1]:.3f}")
        return None


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
    key = (lr, seed, max(1, round((epochs or task.epochs or BUILTIN_EPOCHS) * task.steps_per_epoch)))
    watch = _Watch(check_every or (1 if dev.type == "cpu" else 10), divergence_factor, chance_margin,
                   hurdle, curve, pause_at)
    with _seeded(seed, dev):
        state = _fresh(task, factory, key, dev) if resume is None else _resumed(resume, key, pause_at, dev)
        return _Loop(task, dev, watch, start).run(state, test)


def _fresh(task: Task, factory: OptimizerFactory, key: tuple[float, int, int], device: torch.device) -> RunState:
    """A new run's state; call with the global generators seeded, since the network draws its weights."""
    lr, seed, total_steps = key
    model = task.make_model(seed).to(device)
    optimizer = factory(model.parameters(), lr, total_steps)
    return RunState(key, model, optimizer, torch.Generator().manual_seed(seed))


def _resumed(state: RunState, key: tuple[float, int, int], pause_at: int | None, device: torch.device) -> RunState:
    """A paused run's state, checked against the run asked for, with the global generators set as
    they were at the pause."""
    if state.key != key:
        raise ValueError(f"resume= holds a run of (lr, seed, total_steps) {state.key}, not {key}")
    if pause_at is not None and pause_at <= state.step:
        raise ValueError(f"pause_at {pause_at} is not after the resumed run's step {state.step}")
    if state.rng is None:  # taken by the resume that consumed it
        raise ValueError("resume= holds a run that was already resumed; resume the latest outcome's state")
    cpu, cuda, np_state = state.rng
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)
    np.random.set_state(np_state)
    state.rng = None
    return state


class _Loop:
    """One call of train_run: the task's splits on the device, the knobs and the clock. It moves a
    RunState on step by step until the last step, a kill or the pause."""

    def __init__(self, task: Task, device: torch.device, watch: _Watch, start: float) -> None:
        self.task, self.device, self.watch, self.start = task, device, watch, start
        self.train, self.val_split = task.train.to(device), task.val.to(device)
        self.batch = min(task.batch_size, len(self.train))

    def run(self, state: RunState, test: bool) -> TrainOutcome:
        """Train epoch by epoch from where `state` stands; test=True scores test at the end."""
        spe, total_steps = self.task.steps_per_epoch, state.key[2]
        state.model.train()
        for epoch in range(state.step // spe, math.ceil(total_steps / spe)):
            if state.step == self.watch.pause_at and state.partial is None:
                return self._pause(state, None)
            if state.partial is None:
                ep = self._draw_epoch(state.order, min(spe, total_steps - state.step))
            else:
                ep, state.partial = state.partial, None
            stopped = self._train_epoch(state, epoch, ep)
            if stopped is None:
                stopped = self._end_epoch(state, epoch, ep.n)
            if stopped is not None:
                return stopped
        end = score_split(state.model, self.task.test.to(self.device), self.task) if test else None
        return self._outcome(state, "ok", test=end)

    def _draw_epoch(self, order: torch.Generator, n: int) -> _Epoch:
        """The epoch's n batches: one gather from the training split, then contiguous slices."""
        perm = torch.randperm(len(self.train), generator=order)[: n * self.batch].to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        loss_max = torch.zeros((), device=self.device)
        return _Epoch(n, self.train.x[perm], self.train.y[perm], loss_sum, loss_max)

    def _train_epoch(self, state: RunState, epoch: int, ep: _Epoch) -> TrainOutcome | None:
        """The epoch's remaining steps; the outcome when the run diverges or pauses inside it."""
        n, xs, ys, loss_sum, loss_max = ep
        b, watch = self.batch, self.watch
        for i in range(state.step - epoch * self.task.steps_per_epoch, n):
            loss = self.task.loss(state.model(xs[i * b:(i + 1) * b]), ys[i * b:(i + 1) * b])
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            state.step += 1
            loss = loss.detach()
            loss_sum += loss  # in place, so a pause keeps the epoch's running sum in `ep`
            torch.maximum(loss_max, loss, out=loss_max)  # NaN propagates through maximum
            if state.step == 1:
                state.bound = divergence_bound(loss.item(), self.task.num_classes, watch.divergence_factor)
            if state.step % watch.check_every == 0 or i == n - 1:
                total, worst = torch.stack([loss_sum, loss_max]).tolist()
                if not (math.isfinite(total) and worst <= state.bound):
                    return self._outcome(state, "diverged",
                                         _divergence_reason(worst, state.bound, state.step, epoch))
            if state.step == watch.pause_at and i < n - 1:
                return self._pause(state, ep)
        state.losses.append(total / n)  # the check at i == n - 1 has just read the epoch's sum
        return None

    def _end_epoch(self, state: RunState, epoch: int, n: int) -> TrainOutcome | None:
        """Validate when due (after epoch 1, at the hurdle, at the end, every epoch with curve=True);
        the outcome when the weights turned non-finite or a kill ends the run there."""
        at_hurdle, curve = self.watch.at_hurdle(epoch), self.watch.curve
        if not (curve or at_hurdle) and epoch > 0 and state.step < state.key[2]:
            return None
        score = score_split(state.model, self.val_split, self.task)
        if not score.finite:
            return self._outcome(state, "diverged", f"weights turned non-finite by step {state.step} "
                                                    f"(epoch {epoch + 1})")
        state.val = score
        if curve or at_hurdle:  # the hurdle's point: the next hurdle's threshold reads it
            state.val_curve.append((state.step, score.acc))
        kill = self.watch.kill(self.task, score, epoch, n)
        if kill is not None:
            return self._outcome(state, *kill)
        state.model.train()
        return None

    def _pause(self, state: RunState, ep: _Epoch | None) -> TrainOutcome:
        """The `paused` outcome after this step, scored on validation, with the state to resume."""
        # measured apart from state.val, which keeps the last epoch-end score a kill reports
        at = score_split(state.model, self.val_split, self.task)
        state.partial, state.rng = ep, _rng_state(self.device)
        return TrainOutcome("paused", at.acc if at.finite else None, None, tuple(state.losses), state.step,
                            time.perf_counter() - self.start, val_loss=at.loss,
                            val_curve=tuple(state.val_curve), state=state)

    def _outcome(self, state: RunState, status: RunStatus, reason: str = "",
                 test: Score | None = None) -> TrainOutcome:
        """The run's outcome as it stands: the last validation, and `test` when measured."""
        last, end = state.val or UNMEASURED, test or UNMEASURED
        return TrainOutcome(status, last.acc, end.acc, tuple(state.losses), state.step,
                            time.perf_counter() - self.start, reason, val_loss=last.loss,
                            test_loss=end.loss, val_curve=tuple(state.val_curve))


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
