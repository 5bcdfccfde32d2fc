"""The training protocol that scores an optimizer on a child task. Pure computation: no I/O.

An optimizer enters as a factory, (params, lr, total_steps) -> torch.optim.Optimizer, so a rule
compiled from the DSL, a torch built-in and a hand-written class are scored the same way.

    outcome = train_run(task, factory, lr=0.1, epochs=5, seed=0)       # one run at one lr
    result = evaluate_factory(task, factory, seed=0)                   # lr grid, then the final run

Kills, so a search spends little on hopeless rules (AutoML-Zero's degenerate-candidate kill and
hurdle): a run ends at once as `diverged` when the training loss turns NaN/Inf or exceeds
DIVERGENCE_FACTOR x max(initial loss, ln(num_classes)) (about 23 for ten classes, where a guess
scores 2.3: a net that wrong has left training behind), or when the weights turn non-finite; it
ends as `failed` when validation accuracy after the first epoch is still within CHANCE_MARGIN of
chance.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nos_symbolic.result import EvalResult
from nos_symbolic.tasks import Task
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

RunStatus = Literal["ok", "diverged", "failed"]


@dataclass(frozen=True)
class TrainOutcome:
    """One training run at one lr.

    val_acc:    accuracy on validation at the end of an ok run; for failed and diverged runs the
                accuracy measured after epoch 1 (validation runs then, for the chance kill, and at
                the end), or None when the kill came first.
    test_acc:   accuracy on test at the end of an ok run when asked for, else None.
    loss_curve: mean training loss of each epoch that ran to its end (a last fractional epoch
                counts); always finite.
    steps:      optimizer steps taken.
    """

    status: RunStatus
    val_acc: float | None
    test_acc: float | None
    loss_curve: tuple[float, ...]
    steps: int
    seconds: float
    reason: str = ""


def train_run(
    task: Task,
    factory: OptimizerFactory,
    lr: float,
    epochs: float | None = None,
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    test: bool = False,
    check_every: int | None = None,
    divergence_factor: float = DIVERGENCE_FACTOR,
    chance_margin: float = CHANCE_MARGIN,
) -> TrainOutcome:
    """Train task's network from seed for epochs (default task.epochs; fractions allowed) at lr.

    The seed fixes the initial weights, the batch order and every random draw the optimizer makes
    from torch's global generator (which is restored afterwards), so on CPU the same seed gives the
    same outcome. check_every: steps between divergence checks; each one waits for the device, so
    the default is every step on CPU and every 10 steps elsewhere. An exception raised by the
    factory or by an optimizer step propagates.
    """
    start = time.perf_counter()
    dev = torch.device(device)
    spe = task.steps_per_epoch
    total_steps = max(1, round((task.epochs if epochs is None else epochs) * spe))
    check_every = check_every or (1 if dev.type == "cpu" else 10)
    train, val = task.train.to(dev), task.val.to(dev)
    batch = min(task.batch_size, len(train))
    order = torch.Generator().manual_seed(seed)

    with _seeded(seed, dev):
        model = task.make_model(seed).to(dev)
        optimizer = factory(model.parameters(), lr, total_steps)
        model.train()
        curve: list[float] = []
        val_acc: float | None = None
        bound = math.inf
        step = 0

        def outcome(status: RunStatus, reason: str = "", test_acc: float | None = None):
            return TrainOutcome(status, val_acc, test_acc, tuple(curve), step,
                                time.perf_counter() - start, reason)

        for epoch in range(math.ceil(total_steps / spe)):
            n = min(spe, total_steps - step)
            perm = torch.randperm(len(train), generator=order)[: n * batch].to(dev)
            xs, ys = train.x[perm], train.y[perm]  # one gather per epoch, then contiguous slices
            loss_sum = torch.zeros((), device=dev)
            loss_max = torch.zeros((), device=dev)
            for i in range(n):
                logits = model(xs[i * batch:(i + 1) * batch])
                loss = F.cross_entropy(logits, ys[i * batch:(i + 1) * batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                loss = loss.detach()
                loss_sum += loss
                torch.maximum(loss_max, loss, out=loss_max)  # NaN propagates through maximum
                if step == 1:
                    bound = divergence_factor * max(loss.item(), math.log(task.num_classes))
                if step % check_every == 0 or i == n - 1:
                    total, worst = torch.stack([loss_sum, loss_max]).tolist()
                    if not (math.isfinite(total) and worst <= bound):
                        return outcome("diverged", _divergence_reason(worst, bound, step, epoch))
            curve.append(total / n)  # the check at i == n - 1 has just read the epoch's sum

            if epoch > 0 and step < total_steps:
                continue  # validation runs after epoch 1 (the chance kill) and at the end only
            acc, finite = _accuracy(model, val)
            if not finite:
                return outcome("diverged", f"weights turned non-finite by step {step} "
                                           f"(epoch {epoch + 1})")
            val_acc = acc
            if epoch == 0 and n == spe and acc <= task.chance + chance_margin:
                return outcome("failed", f"validation accuracy {acc:.3f} after epoch 1 is "
                                         f"within {chance_margin} of chance ({task.chance:.3f})")
            model.train()

        test_acc = _accuracy(model, task.test.to(dev))[0] if test else None
        return outcome("ok", test_acc=test_acc)


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
) -> EvalResult:
    """Score an optimizer on task: the paper's reward, validation accuracy after a short run.

    Each lr in lrs gets a run of grid_epochs (fractions allowed); the lr with the best validation
    accuracy (the first among equals; diverged runs never win) then gets the full run of epochs
    (default task.epochs), and that run's status, reason and accuracies make the result. A single
    lr skips the grid. Every run uses the same seed, so lrs are compared on equal terms.
    steps and seconds count the whole evaluation, grid included: they are its cost.
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

    final = train_run(task, factory, best_lr, epochs, seed, device=device, test=test)
    return EvalResult(
        status=final.status,
        reward=final.val_acc or 0.0,
        lr=best_lr,
        val_acc=final.val_acc,
        test_acc=final.test_acc,
        loss_curve=final.loss_curve,
        steps=steps + final.steps,
        seconds=time.perf_counter() - start,
        seed=seed,
        reason=final.reason,
    )


def _divergence_reason(worst: float, bound: float, step: int, epoch: int) -> str:
    where = f"by step {step} (epoch {epoch + 1})"
    if not math.isfinite(worst):
        return f"training loss turned {worst} {where}"
    return f"training loss {worst:.3g} exceeded the bound {bound:.3g} {where}"


def _accuracy(model: nn.Module, split: Split) -> tuple[float, bool]:
    """(accuracy, whether every logit was finite), in eval mode."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    finite = torch.ones((), dtype=torch.bool, device=split.x.device)
    with torch.inference_mode():
        for i in range(0, len(split), EVAL_BATCH):
            logits = model(split.x[i:i + EVAL_BATCH])
            correct += (logits.argmax(1) == split.y[i:i + EVAL_BATCH]).sum()
            finite &= torch.isfinite(logits).all()
    return correct.item() / max(1, len(split)), bool(finite.item())


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
