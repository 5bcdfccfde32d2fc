"""A search's run directory: the checks a new run or a resume makes before it writes anything, where
a resume starts from, and the run's config.json (its store is controller/store.py, its controller
checkpoint controller/checkpoint.py).

A new run goes only into a directory that holds no run and no file named like a run's that is not a
nos run's. A resume needs the run's config (config.json, or the copy in its store) to match the one
given, its store, and a checkpoint of that store or none (then every round is replayed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from controller.checkpoint import (CHECKPOINT_FILE, check_checkpoint, load_checkpoint, restore_strategy,
                                   write_atomic)
from controller.run_config import CONFIG_FILE, SearchConfig, config_difference, read_run_config
from controller.store import STORE_FILENAME, RunStore, StoreError
from nos_symbolic.errors import NosError, SettingError

# The settings a message about the run directory names: the CLI writes them as its flags.
_RUN_DIR, _RESUME = "run_dir", "resume"


@dataclass(frozen=True)
class StartPoint:
    """Where a search starts: its run's id, the rounds already ended and the samples they drew, and
    what a resume rebuilt (for the user)."""

    run_id: str
    rounds: int = 0
    samples: int = 0
    notes: tuple[str, ...] = ()


def refuse_occupied(run_dir: Path) -> None:
    """Refuse a new run in a directory that already holds one or holds a store.sqlite or config.json
    that is not a nos run's; writes nothing."""
    if not run_dir.is_dir():
        return
    foreign = _foreign_files(run_dir)
    store_ok = not any(f.startswith(STORE_FILENAME) for f in foreign)
    if (store_ok and holds_run(run_dir)) or (not foreign and (run_dir / CONFIG_FILE).exists()):
        raise SettingError(f"{run_dir} already holds a run; " + "set {1} to continue it, or choose another {0}",
                           _RUN_DIR, _RESUME)
    if foreign:
        raise SettingError(f"{run_dir} is not a nos run but holds {' and '.join(foreign)}; nos writes a new run "
                           "only into a new or empty directory: choose another {0}", _RUN_DIR)


def resume_point(run_dir: Path, config: SearchConfig, strategy: Any) -> StartPoint:
    """Check that `run_dir` holds the run `config` describes and restore `strategy` from its checkpoint;
    where the resumed search starts. Writes nothing."""
    stored = read_run_config(run_dir)
    diff = config_difference(stored, config.to_dict())
    if diff:
        raise NosError(f"refusing to resume {run_dir} with a different config: {'; '.join(diff)}")
    if not (run_dir / STORE_FILENAME).is_file():
        raise SettingError(f"{run_dir} has {CONFIG_FILE} but no {STORE_FILENAME}: the run's evaluations are gone. "
                           f"Restore {STORE_FILENAME} from a backup, or start a new run in another " + "{0}",
                           _RUN_DIR)
    ckpt = load_checkpoint(run_dir)
    with RunStore.open_readonly(run_dir) as store:
        recorded = store.get_meta("config")
        diff = config_difference(recorded if isinstance(recorded, dict) else stored, stored)
        if diff:
            raise NosError(f"{run_dir / CONFIG_FILE} is not the config the run was made with "
                           f"({'; '.join(d.replace('given', 'in config.json') for d in diff)}); undo the edit")
        if store.run_id is None:  # a store whose run never began: there is nothing to continue
            raise SettingError(f"{run_dir} holds no run to resume (its store records no run id); start a new run "
                               "in another {0}", _RUN_DIR)
        if ckpt is not None:
            check_checkpoint(ckpt, store, run_dir)
            restore_strategy(strategy, ckpt, run_dir)
            return StartPoint(store.run_id, ckpt.rounds, ckpt.samples)
        rounds = store.progress.rounds
        notes = (f"{CHECKPOINT_FILE} is missing: rebuilding the controller by replaying {rounds} rounds from the "
                 f"store",) if rounds > 0 else ()
        return StartPoint(store.run_id, notes=notes)


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Record the run's config in config.json, unless it holds that already (a resume with a new
    budget or worker count rewrites it)."""
    path = run_dir / CONFIG_FILE
    if not path.exists() or json.loads(path.read_text(encoding="utf-8")) != config:
        write_atomic(path, json.dumps(config, indent=2).encode())


def holds_run(run_dir: Path) -> bool:
    """A store with a run id or any rows (one without is the debris of a start killed mid-way); a file
    that is no run store counts too, so nothing is written over it."""
    path = run_dir / STORE_FILENAME
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with RunStore.open_readonly(run_dir) as store:
            return store.run_id is not None or store.n_samples() > 0 or store.n_evaluations(True) > 0
    except StoreError:
        return True


def _foreign_files(run_dir: Path) -> list[str]:
    """The files named like a run's (store.sqlite, config.json) in run_dir that are not a nos run's, each
    with what it is instead."""
    found = []
    store = run_dir / STORE_FILENAME
    if store.exists() and not (store.is_file() and store.stat().st_size == 0):
        try:
            RunStore.open_readonly(run_dir).close()
        except StoreError as err:
            found.append(f"{STORE_FILENAME}, which is no run store ({' '.join(str(err).split())[:160]})")
    config = run_dir / CONFIG_FILE
    if config.exists() and not _is_run_config(config):
        found.append(f"a {CONFIG_FILE} that is not a nos run's config")
    return found


def _is_run_config(path: Path) -> bool:
    """Whether path holds a config nos search recorded: a JSON object of SearchConfig's settings."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = {f.name for f in fields(SearchConfig)}
    return isinstance(recorded, dict) and {"strategy", "eval"} <= set(recorded) and set(recorded) <= names
