"""`Task`: what a training run needs besides the optimizer, for a built-in task or the user's own.

    task = Task("blobs", train=(x_train, y_train), val=(x_val, y_val), test=(x_test, y_test),
                make_model=lambda seed: nn.Linear(8, 3), num_classes=3)
    task = Task("sine", train=..., val=..., test=..., make_model=make_regressor,
                loss=F.mse_loss, metric=lambda out, y: -F.mse_loss(out, y), metric_name="negative MSE")

A split is an (inputs, targets) pair of tensors (or numpy arrays) or a torch `Dataset` of
(input, target) items, read once into two stacked tensors; float64 arrays become float32, the
networks' dtype. The loss is minimised; the metric (higher is better) scores validation and test.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from nos_symbolic.errors import NosError
from nos_symbolic.tasks.data import Split

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Metric = Callable[[torch.Tensor, torch.Tensor], Any]
SPLITS = ("train", "val", "test")


def flat(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) logits and (N,) labels: one row per prediction, for classifiers ((B, C) and (B,)) and
    language models ((B, T, C) and (B, T))."""
    return outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The default loss: mean cross-entropy (nats) over every prediction, -mean_i log softmax(z_i)[y_i]."""
    return F.cross_entropy(*flat(outputs, targets))


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """The default metric: the share of predictions whose argmax is the label, mean_i [argmax z_i = y_i]."""
    logits, labels = flat(outputs, targets)
    return (logits.argmax(1) == labels).sum().item() / max(1, labels.numel())


@dataclass(frozen=True, eq=False)
class Task:
    """A data set, a network and how it is scored.

    name:        what tables and the run call it
    train, val, test: (inputs, targets) pairs or Datasets; the search scores on val, studies on test
    make_model:  seed -> a freshly initialised network (its weights should depend only on the seed;
                 it is called with torch's generator seeded, so plain nn.Module construction is)
    loss:        (outputs, targets) -> scalar tensor to minimise (default: cross-entropy on class labels)
    metric:      (outputs, targets) -> number, higher is better (default: accuracy), over a whole split
    metric_name: the metric's name in every table ("accuracy"; e.g. "negative MSE")
    batch_size:  100, the size most reimplementations of the paper use (the paper does not say)
    epochs:      the final run's length (None: the protocol's, 3 with halving, 5 with full)
    num_classes: a classifier's classes; with the default metric it sets the chance level, whose runs
                 are killed as `failed` after epoch 1 (None: no chance level, no such kill)
    classes:     the class names, when known
    """

    name: str
    train: Any
    val: Any
    test: Any
    make_model: Callable[[int], nn.Module]
    loss: Loss | None = None
    metric: Metric | None = None
    metric_name: str = "accuracy"
    batch_size: int = 100
    epochs: int | None = None
    num_classes: int | None = None
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise NosError(f"a task's name must be a non-empty string, got {self.name!r}")
        for split in SPLITS:
            object.__setattr__(self, split, as_split(getattr(self, split), f"task {self.name}: the {split} split"))
        if not callable(self.make_model):
            raise NosError(f"task {self.name}: make_model must be a function seed -> nn.Module")
        object.__setattr__(self, "loss", cross_entropy if self.loss is None else self.loss)
        object.__setattr__(self, "metric", accuracy if self.metric is None else self.metric)
        for what in ("loss", "metric"):
            if not callable(getattr(self, what)):
                raise NosError(f"task {self.name}: {what} must be a function (outputs, targets) -> number")
        for what, low in (("batch_size", 1), ("epochs", 1), ("num_classes", 2)):
            value = getattr(self, what)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise NosError(f"task {self.name}: {what} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.metric_name, str) or not self.metric_name.strip():
            raise NosError(f"task {self.name}: metric_name must be a non-empty string")

    @property
    def chance(self) -> float | None:
        """The accuracy of a guess, 1 / num_classes, for a classifier scored by accuracy; else None."""
        return 1.0 / self.num_classes if self.num_classes and self.metric is accuracy else None

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch: full batches only (a last partial batch is dropped, so
        batch-norm never sees a batch of one), and at least one step on a tiny training set."""
        return max(1, len(self.train) // self.batch_size)


def as_split(data: Any, what: str) -> Split:
    """A Split from a Split, an (inputs, targets) pair or a Dataset of (input, target) items."""
    if isinstance(data, Split):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        items = [data[i] for i in range(len(data))]
        if not items:
            raise NosError(f"{what} is empty")
        try:
            x = torch.stack([torch.as_tensor(item[0]) for item in items])
            y = torch.stack([torch.as_tensor(item[1]) for item in items])
        except (TypeError, RuntimeError, IndexError) as err:
            raise NosError(f"{what}: a Dataset's items must be (input, target) pairs of one shape each: "
                           f"{err}") from None
    else:
        raise NosError(f"{what} must be an (inputs, targets) pair or a torch Dataset, got {type(data).__name__}")
    try:
        x, y = _tensor(x), _tensor(y)
    except (TypeError, RuntimeError, ValueError) as err:
        raise NosError(f"{what}: inputs and targets must be tensors or arrays: {err}") from None
    if x.ndim == 0 or y.ndim == 0:
        raise NosError(f"{what}: inputs and targets need a first (example) dimension")
    if len(x) != len(y):
        raise NosError(f"{what} has {len(x)} inputs but {len(y)} targets; they must be the same length")
    if len(y) == 0:
        raise NosError(f"{what} is empty")
    return Split(x, y)


def _tensor(value: Any) -> torch.Tensor:
    t = torch.as_tensor(value)
    return t.float() if t.dtype == torch.float64 else t
