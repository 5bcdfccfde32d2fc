"""The controller checkpoint (controller.pt): the strategy's state after a round, with the run's id,
replaced atomically; the checks that it is its store's, and restoring a strategy from it.

The store is the record and the checkpoint only a shortcut to it: one that is missing is rebuilt by
replaying the store's rounds, so each refusal below tells the user to move the file away.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from controller.store import RunStore
from nos_symbolic.errors import NosError

CHECKPOINT_FILE = "controller.pt"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace path's contents with data all at once: a reader sees the old file or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Checkpoint:
    """The strategy's state after `rounds` rounds, which drew samples 0..samples-1 of run `run_id`."""

    run_id: str
    rounds: int
    samples: int
    strategy: dict


def save_checkpoint(run_dir: Path, ckpt: Checkpoint) -> None:
    """Replace the run's checkpoint with `ckpt`, atomically."""
    buf = io.BytesIO()
    torch.save({"run_id": ckpt.run_id, "rounds": ckpt.rounds, "samples": ckpt.samples,
                "strategy": ckpt.strategy}, buf)
    write_atomic(run_dir / CHECKPOINT_FILE, buf.getvalue())


def load_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The run's controller checkpoint, or None if there is none."""
    path = run_dir / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, weights_only=False)
        if not isinstance(ckpt, dict):
            raise TypeError(f"it holds {type(ckpt).__name__}, not a dict")
        if not isinstance(ckpt.get("strategy"), dict):
            raise TypeError(f"its strategy entry is {type(ckpt.get('strategy')).__name__}, not a state dict")
        return Checkpoint(str(ckpt["run_id"]), int(ckpt["rounds"]), int(ckpt["samples"]), ckpt["strategy"])
    except Exception as err:
        raise NosError(f"cannot read the controller checkpoint {path} ({type(err).__name__}: {err}); move it "
                       f"away and resume again to rebuild the controller from the store") from None


def check_checkpoint(ckpt: Checkpoint, store: RunStore, run_dir: Path) -> None:
    """Refuse a checkpoint that is not this store's: another run's, or ahead of what it recorded."""
    fix = (f"put this run's {CHECKPOINT_FILE} back, or move {run_dir / CHECKPOINT_FILE} away and resume again "
           f"to rebuild the controller from the store")
    if ckpt.run_id != store.run_id:
        raise NosError(f"{run_dir / CHECKPOINT_FILE} belongs to another run (run id {ckpt.run_id}, the store's "
                       f"is {store.run_id}); {fix}")
    recorded = store.progress
    if ckpt.samples > store.next_sample_index() or ckpt.rounds > recorded.rounds or (
            ckpt.rounds == recorded.rounds and ckpt.samples != recorded.samples):
        raise NosError(f"{run_dir / CHECKPOINT_FILE} is ahead of the run's store (round {ckpt.rounds}, "
                       f"{ckpt.samples} samples; the store holds {store.n_samples()} samples of "
                       f"{recorded.rounds} rounds); {fix}")


def restore_strategy(strategy: Any, ckpt: Checkpoint, run_dir: Path) -> None:
    """Load the checkpoint's strategy state; one the strategy refuses is an error saying how to rebuild it."""
    path = run_dir / CHECKPOINT_FILE
    try:
        strategy.load_state_dict(ckpt.strategy)
    except Exception as err:
        raise NosError(f"cannot restore the controller from {path} ({type(err).__name__}: "
                       f"{' '.join(str(err).split())[:200]}); move it away (`mv {path} {path}.bad`) and "
                       f"resume again to rebuild the controller from the store") from None
