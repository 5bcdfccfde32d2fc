"""Tasks of the user's own: "module:function" names a function whose keyword arguments are the
task's options and which returns a `Task`.

    path = module_dir("my_tasks:blobs")              # the directory to import my_tasks from
    task = build_custom_task("my_tasks:blobs", {"n": 600}, path)
    check_task(task, "my_tasks:blobs")               # one forward and one loss on a batch of 2

The module is imported from sys.path, then from the current directory (so `nos search --task
my_tasks:blobs` finds ./my_tasks.py). A run records the directory it was found in, and worker
processes (local or Ray) put it on their sys.path before importing it. Every mistake the user can
fix is a NosError naming it.
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nos_symbolic.errors import NosError, SettingError
from nos_symbolic.user_module import ON_PATH, import_user_module
from nos_symbolic.tasks.task import Task

# spec -> the metric name of the task it built in this process, so tables can name a score from
# the spec alone (a study builds its tasks before it summarises them)
METRIC_NAMES: dict[str, str] = {}


def split_spec(spec: str) -> tuple[str, str]:
    """(module, function) of "module:function"."""
    module, _, function = spec.partition(":")
    if not module or not function or ":" in function or not all(
            part.isidentifier() for part in (*module.split("."), function)):
        raise NosError(f"task {spec!r} is not module:function; write e.g. my_tasks:blobs for a function "
                       f"blobs in my_tasks.py that returns a nos_symbolic.Task")
    return module, function


def module_dir(spec: str) -> str:
    """The directory the spec's module is imported from: the sys.path entry holding it (the current
    directory is tried last)."""
    module, _ = split_spec(spec)
    _with_path(os.getcwd())
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as err:
        raise NosError(f"importing module {module!r} for task {spec!r} failed: {err}") from None
    if found is None or found.origin is None or not os.path.exists(found.origin):
        raise NosError(f"no module {module!r} for task {spec!r}: put {module.split('.')[0]}.py in the current "
                       f"directory or its directory on PYTHONPATH")
    origin = Path(found.origin).resolve()
    levels = len(module.split(".")) + (origin.name == "__init__.py")
    return str(origin.parents[levels - 1])


def build_custom_task(spec: str, options: dict[str, Any], path: str | None = None) -> Task:
    """Import spec's module (with path on sys.path) and call its function with options."""
    module_name, function = split_spec(spec)
    _with_path(path if path is not None else os.getcwd())
    loaded = sys.modules.get(module_name)
    if path is not None and loaded is not None and not _inside(getattr(loaded, "__file__", None), path):
        del sys.modules[module_name]  # a module of that name from elsewhere: import the recorded one
    where = f"in {path}" if path is not None else ON_PATH
    module = import_user_module(module_name, f"task {spec!r}", where)
    make = getattr(module, function, None)
    if make is None or not callable(make):
        found = sorted(n for n, v in vars(module).items()
                       if inspect.isfunction(v) and v.__module__ == module.__name__ and not n.startswith("_"))
        what = "no function" if make is None else "a non-callable"
        raise NosError(f"module {module_name!r} has {what} {function!r} for task {spec!r}; its functions: "
                       f"{', '.join(found) or 'none'}")
    try:
        inspect.signature(make).bind(**options)
    except TypeError as err:
        raise SettingError(f"task {spec!r} cannot take the option(s) {', '.join(sorted(options)) or '(none)'} "
                           f"({{0}}): {err}", "task_options") from None
    except ValueError:  # no signature to check (a builtin): let the call say
        pass
    try:
        task = make(**options)
    except NosError:
        raise
    except Exception as err:
        raise NosError(f"task {spec!r} raised {type(err).__name__}: {err}") from None
    if not isinstance(task, Task):
        raise NosError(f"task {spec!r} returned a {type(task).__name__}, not a nos_symbolic.Task; return "
                       f"Task(name, train, val, test, make_model, ...)")
    METRIC_NAMES[spec] = task.metric_name
    return task


def check_task(task: Task, spec: str) -> None:
    """Refuse a task no training could use: splits whose inputs or targets differ in shape, a
    network that fails on a batch of 2 training inputs, a loss that cannot take its outputs and the
    targets or is not a finite scalar, a metric that is not a number."""
    train = task.train
    for split in ("val", "test"):
        other = getattr(task, split)
        for part, name in (("x", "inputs"), ("y", "targets")):
            a, b = getattr(train, part), getattr(other, part)
            if a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
                raise NosError(f"task {spec!r}: the {split} split's {name} are {_describe(b)} per batch but the "
                               f"train split's are {_describe(a)}")
    x, y = train.x[:2], train.y[:2]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = task.make_model(0)
        except Exception as err:
            raise NosError(f"task {spec!r}: make_model(0) raised {type(err).__name__}: {err}") from None
        if not isinstance(model, nn.Module):
            raise NosError(f"task {spec!r}: make_model(0) returned a {type(model).__name__}, not a torch nn.Module")
        try:
            out = model(x)
        except Exception as err:
            raise NosError(f"task {spec!r}: the network fails on a batch of 2 training inputs "
                           f"({_describe(x)}): {type(err).__name__}: {_line(err)}") from None
        if not isinstance(out, torch.Tensor):
            raise NosError(f"task {spec!r}: the network returned a {type(out).__name__}, not a tensor")
        shapes = f"the network's outputs ({_describe(out)}) and the targets ({_describe(y)})"
        try:
            with warnings.catch_warnings():  # e.g. mse_loss broadcasting (2, 3) outputs against (2, 1) targets
                warnings.simplefilter("error")
                loss = task.loss(out, y)
        except Exception as err:
            raise NosError(f"task {spec!r}: the loss cannot take {shapes}: {type(err).__name__}: "
                           f"{_line(err)}") from None
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise NosError(f"task {spec!r}: the loss of {shapes} must be a scalar tensor with a gradient, "
                           f"got {loss!r:.80}")
        if not torch.isfinite(loss).all():
            raise NosError(f"task {spec!r}: the loss of {shapes} is {loss.item()} before any training")
        with torch.no_grad():
            try:
                score = float(task.metric(out.detach(), y))
            except Exception as err:
                raise NosError(f"task {spec!r}: the metric ({task.metric_name}) fails on {shapes}: "
                               f"{type(err).__name__}: {_line(err)}") from None
    if score != score:
        raise NosError(f"task {spec!r}: the metric ({task.metric_name}) of {shapes} is NaN")


def _with_path(path: str) -> None:
    """Put path on sys.path (last: the user's module must not shadow an installed package)."""
    if path and path not in sys.path and not (path == os.getcwd() and "" in sys.path):
        sys.path.append(path)


def _inside(file: str | None, folder: str) -> bool:
    return file is not None and Path(file).resolve().is_relative_to(Path(folder).resolve())


def _describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, {str(t.dtype).removeprefix('torch.')}"


def _line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]
