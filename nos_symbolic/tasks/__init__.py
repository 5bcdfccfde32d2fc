"""Child tasks: a data set, a network and the protocol's sizes, bundled as one `Task`.

    task = get_task("mnist1d")                          # ConvNet1d on MNIST-1D (the default)
    task = get_task("mnist1d-mlp")                      # a two-layer MLP on the same data
    task = get_task("cifar10", data_dir="~/data", subset=5000)   # the paper's ConvNet on CIFAR-10
    task = get_task("mnist1d-shuffled")                 # the ConvNet on position-shuffled MNIST-1D
    task = get_task("charlm")                           # a character Transformer on the stdlib

MNIST-1D stands in for CIFAR-10 during search: it is generated locally and one 5-epoch run of the
ConvNet takes well under a second on one CPU core. CIFAR-10 is the paper's task, for confirmation;
mnist1d-mlp, mnist1d-shuffled and charlm are held-out tasks for transfer (a different network, a
task where the ConvNet's locality bias is gone, and a language model).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from nos_symbolic.errors import NosError
from nos_symbolic.tasks.charlm import CharTransformer, load_charlm
from nos_symbolic.tasks.data import DataError, Split, Splits, load_cifar10, load_mnist1d
from nos_symbolic.tasks.models import MLP, CifarConvNet, ConvNet1d, seeded
from nos_symbolic.tasks.shuffled import load_mnist1d_shuffled

__all__ = ["Task", "get_task", "metric_of", "TASK_NAMES", "DataError", "Split"]

TASK_NAMES: tuple[str, ...] = ("mnist1d", "mnist1d-mlp", "mnist1d-shuffled", "cifar10", "charlm")
# What a task's accuracy counts (charlm: next-character accuracy over every position of a window).
METRICS: dict[str, str] = {"charlm": "next-character accuracy"}
DEFAULT_METRIC = "accuracy"


@dataclass(frozen=True, eq=False)
class Task:
    """Everything a training run needs besides the optimizer.

    make_model: seed -> freshly initialised network (weights depend only on the seed).
    batch_size: 100, the size most reimplementations of the paper use (the paper does not say).
    epochs:     5, the length of the final run in every reimplementation.
    """

    name: str
    train: Split
    val: Split
    test: Split
    make_model: Callable[[int], nn.Module]
    num_classes: int = 10
    batch_size: int = 100
    epochs: int = 5
    classes: tuple[str, ...] = ()

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch: full batches only (a last partial batch is dropped, so
        batch-norm never sees a batch of one), and at least one step on a tiny training set."""
        return max(1, len(self.train) // self.batch_size)


# name -> (data loader, network); a loader's keyword arguments are the task's data options
_SPECS: dict[str, tuple[Callable[..., Splits], Callable[[], nn.Module]]] = {
    "mnist1d": (load_mnist1d, ConvNet1d),
    "mnist1d-mlp": (load_mnist1d, MLP),
    "mnist1d-shuffled": (load_mnist1d_shuffled, ConvNet1d),
    "cifar10": (load_cifar10, CifarConvNet),
    "charlm": (load_charlm, CharTransformer),
}
# A window of 64 characters holds 64 predictions, so a batch of 32 windows (2,048 predictions) is
# already larger than an image task's batch of 100.
_BATCH_SIZES = {"charlm": 32}


def get_task(name: str = "mnist1d", **options: Any) -> Task:
    """The task called name, built with options.

    Every task takes batch_size (100; charlm 32) and epochs (5). mnist1d, mnist1d-mlp and
    mnist1d-shuffled take num_samples (5000), data_seed (42), val_fraction (0.2), n_train (None:
    all) and split_seed (0), mnist1d-shuffled also perm_seed (0); cifar10 takes data_dir
    (required), subset (None: all), val_fraction (0.1) and split_seed (0); charlm takes data_dir
    (None: the standard library), max_chars (250,000), val_fraction and test_fraction (0.1).
    Unknown names and bad options raise NosError (a ValueError); missing data raises DataError.
    """
    if name not in _SPECS:
        raise NosError(f"unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}")
    load, model = _SPECS[name]
    known = {"batch_size", "epochs", *inspect.signature(load).parameters}
    unknown = sorted(set(options) - known)
    if unknown:
        raise NosError(f"unknown option(s) {', '.join(unknown)} for task {name}; "
                         f"expected some of {', '.join(sorted(known))}")
    batch_size = options.pop("batch_size", _BATCH_SIZES.get(name, 100))
    epochs = options.pop("epochs", 5)
    if batch_size < 1 or epochs < 1:
        raise NosError(f"batch_size and epochs must be positive, got {batch_size} and {epochs}")
    if name == "cifar10" and options.get("data_dir") is None:
        raise DataError("task cifar10 needs data_dir: a folder holding cifar-10-batches-py/ "
                        "or train/<class>/ and test/<class>/ image folders")
    splits = load(**options)
    return Task(name=name, train=splits.train, val=splits.val, test=splits.test,
                make_model=seeded(model), num_classes=len(splits.classes), batch_size=batch_size,
                epochs=epochs, classes=splits.classes)


def metric_of(name: str) -> str:
    """What the accuracy of task `name` measures, for tables."""
    return METRICS.get(name, DEFAULT_METRIC)
