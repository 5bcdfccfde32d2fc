"""Child tasks: a data set, a network and how it is scored, bundled as one `Task`.

    task = get_task("mnist1d")                          # ConvNet1d on MNIST-1D (the default)
    task = get_task("mnist1d-mlp")                      # a two-layer MLP on the same data
    task = get_task("cifar10", data_dir="~/data", subset=5000)   # the paper's ConvNet on CIFAR-10
    task = get_task("mnist1d-shuffled")                 # the ConvNet on position-shuffled MNIST-1D
    task = get_task("charlm")                           # a character Transformer on the stdlib
    task = get_task("my_tasks:blobs", n=600)            # the user's own: my_tasks.blobs(n=600) -> Task

MNIST-1D stands in for CIFAR-10 during search: it is generated locally and one 5-epoch run of the
ConvNet takes well under a second on one CPU core. CIFAR-10 is the paper's task, for confirmation;
mnist1d-mlp, mnist1d-shuffled and charlm are held-out tasks for transfer (a different network, a
task where the ConvNet's locality bias is gone, and a language model). A name with a colon,
"module:function", is a task of the user's own (tasks/custom.py).
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
from nos_symbolic.tasks.task import Task, accuracy, cross_entropy

__all__ = ["Task", "get_task", "metric_of", "data_options", "is_custom", "TASK_NAMES", "DataError", "Split",
           "accuracy", "cross_entropy"]


@dataclass(frozen=True)
class Builtin:
    """A built-in task: its data loader (whose keyword arguments are the task's data options), its
    network, its batch size and what its accuracy counts."""

    load: Callable[..., Splits]
    model: Callable[[], nn.Module]
    batch_size: int = 100
    metric_name: str = "accuracy"


BUILTINS: dict[str, Builtin] = {
    "mnist1d": Builtin(load_mnist1d, ConvNet1d),
    "mnist1d-mlp": Builtin(load_mnist1d, MLP),
    "mnist1d-shuffled": Builtin(load_mnist1d_shuffled, ConvNet1d),
    "cifar10": Builtin(load_cifar10, CifarConvNet),
    # A window of 64 characters holds 64 predictions, so a batch of 32 windows (2,048 predictions)
    # is already larger than an image task's batch of 100; its accuracy is over every position.
    "charlm": Builtin(load_charlm, CharTransformer, batch_size=32, metric_name="next-character accuracy"),
}
TASK_NAMES: tuple[str, ...] = tuple(BUILTINS)
BUILTIN_EPOCHS = 5  # the length of the final run in every reimplementation


def is_custom(name: str) -> bool:
    """Whether name is a task of the user's own, "module:function"."""
    return isinstance(name, str) and ":" in name


def data_options(name: str) -> dict[str, inspect.Parameter]:
    """The data options of built-in task `name` (its loader's keyword arguments)."""
    return dict(inspect.signature(_builtin(name).load).parameters)


def get_task(name: str = "mnist1d", **options: Any) -> Task:
    """The task called name, built with options.

    Every built-in task takes batch_size (100; charlm 32) and epochs (5). mnist1d, mnist1d-mlp and
    mnist1d-shuffled take num_samples (5000), data_seed (42), val_fraction (0.2), n_train (None:
    all) and split_seed (0), mnist1d-shuffled also perm_seed (0); cifar10 takes data_dir
    (required), subset (None: all), val_fraction (0.1) and split_seed (0); charlm takes data_dir
    (None: the standard library), max_chars (250,000), val_fraction and test_fraction (0.1).
    "module:function" calls the user's function with options (tasks/custom.py). Unknown names and
    bad options raise NosError (a ValueError); missing data raises DataError.
    """
    if is_custom(name):
        from nos_symbolic.tasks.custom import build_custom_task

        return build_custom_task(name, options)
    spec = _builtin(name)
    known = {"batch_size", "epochs", *data_options(name)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise NosError(f"unknown option(s) {', '.join(unknown)} for task {name}; "
                         f"expected some of {', '.join(sorted(known))}")
    batch_size = options.pop("batch_size", spec.batch_size)
    epochs = options.pop("epochs", None) or BUILTIN_EPOCHS
    if batch_size < 1 or epochs < 1:
        raise NosError(f"batch_size and epochs must be positive, got {batch_size} and {epochs}")
    if name == "cifar10" and options.get("data_dir") is None:
        raise DataError("task cifar10 needs data_dir: a folder holding cifar-10-batches-py/ "
                        "or train/<class>/ and test/<class>/ image folders")
    splits = spec.load(**options)
    return Task(name=name, train=splits.train, val=splits.val, test=splits.test,
                make_model=seeded(spec.model), metric_name=spec.metric_name, batch_size=batch_size,
                epochs=epochs, num_classes=len(splits.classes), classes=splits.classes)


def metric_of(name: str) -> str:
    """What the score of task `name` measures, for tables: a built-in's from its table, a task of the
    user's own from its Task when this process built it ("score" otherwise)."""
    if name in BUILTINS:
        return BUILTINS[name].metric_name
    from nos_symbolic.tasks.custom import METRIC_NAMES

    return METRIC_NAMES.get(name, "score")


def _builtin(name: str) -> Builtin:
    if name not in BUILTINS:
        raise NosError(f"unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}, or module:function "
                       f"for a task of your own")
    return BUILTINS[name]
