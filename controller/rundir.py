"""Run directories: nos creates them itself, and never writes into a directory that holds anything else.

A run directory is one that holds a run store (`store.sqlite`) or a run config (`config.json`). Every
command that writes one takes its lock (controller.lock.run_lock) first; the lock file `.nos.lock`
alone does not make a directory a run, nor non-empty (a start that failed leaves only it behind).

    path = create_run_dir(Path(args.run_dir) if args.run_dir else default_run_dir("confirm"))
    with run_lock(path, "nos confirm"):
        ...

Call both only after every check of the command line has passed: a refused command writes nothing.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from controller.lock import LOCK_FILE
from nos_symbolic.errors import NosError, SettingError

RUNS_ROOT = Path("runs")
# Files whose presence makes a directory a run (the store, and the config a search records first).
RUN_MARKERS = ("store.sqlite", "config.json")


class RunDirError(NosError):
    """A run directory cannot be created or used; the message says which and what to do."""


class RunDirSettingError(SettingError, RunDirError):
    """A run directory nos cannot make itself; the message names the setting (`run_dir`) that picks
    one instead, which each front end writes its own way (the CLI as its flag)."""


def is_run_dir(path: Path) -> bool:
    """Whether `path` is a directory holding a run (a store or a run config)."""
    return path.is_dir() and any((path / name).exists() for name in RUN_MARKERS)


def default_run_dir(prefix: str, root: Path = RUNS_ROOT) -> Path:
    """Reserve a fresh directory `root/PREFIX-YYYYmmdd-HHMMSS-ffffff` and return it.

    The name has microsecond resolution and the directory is made with an exclusive mkdir, so two
    commands started in the same instant get two directories (the later one gets a `-2` suffix). It is
    created empty; `create_run_dir` accepts it.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _cannot_make(root, err) from None
    base = f"{prefix}-{datetime.now():%Y%m%d-%H%M%S-%f}"
    for n in range(1, 1000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as err:
            raise _cannot_make(path, err) from None
        return path
    raise RunDirSettingError(f"cannot find a free run directory name under {root}; " + "set {0}", "run_dir")


def _cannot_make(path: Path, err: OSError) -> RunDirSettingError:
    """The error for a default run directory (or its root) that cannot be made."""
    return RunDirSettingError(f"cannot create run directory {path} ({err.strerror or type(err).__name__}); run "
                              "nos where it can write, or set {0} to a writable place", "run_dir")


def create_run_dir(path: Path) -> Path:
    """Create the run directory `path` (and its parents), or accept an empty or run directory there.

    An existing directory that holds anything but a run and its lock file is refused, so nos never
    writes among a user's own files; so is a file at `path`. Creating the last component is one mkdir,
    which either makes the directory or finds it there.
    """
    path = Path(path)
    if path.parent != path:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirError(f"cannot create run directory {path}: {err.strerror or err}") from None
    try:
        os.mkdir(path)
        return path
    except FileExistsError:
        pass
    except OSError as err:
        raise RunDirError(f"cannot create run directory {path}: {err.strerror or err}") from None
    if not path.is_dir():
        raise RunDirError(f"{path} exists and is not a directory; choose another run directory")
    if is_run_dir(path):
        return path
    try:
        others = sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)
    except OSError as err:
        raise RunDirError(f"cannot read {path}: {err.strerror or err}") from None
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise RunDirError(f"{path} is not empty and holds no run ({shown}); nos writes only into a new "
                          f"or empty directory: choose another run directory")
    return path


def discard_run_dir(path: Path) -> None:
    """Remove a run directory that a failed start created: only if it holds nothing but its lock file.

    Anything else in it (a store, a config, a user's file) is left as it is.
    """
    path = Path(path)
    try:
        if {p.name for p in path.iterdir()} <= {LOCK_FILE}:
            (path / LOCK_FILE).unlink(missing_ok=True)
            path.rmdir()
    except OSError:
        pass  # something appeared meanwhile (another command's lock, a user's file): keep the directory
