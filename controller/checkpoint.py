"""The controller checkpoint (controller.pt): the strategy's state after a round, with the run's id,
replaced atomically; and the reader of the updates log of runs from before the store kept it."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from controller.store import RunStore
from nos_symbolic.errors import NosError

CHECKPOINT_FILE = "controller.pt"
LEGACY_UPDATES_FILE = "updates.jsonl"  # where runs before the store's updates table logged them


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

    run_id: str | None
    rounds: int
    samples: int
    strategy: dict


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
        if "next_sample" in ckpt:  # written before checkpoints carried a run id
            return Checkpoint(None, int(ckpt["round"]), int(ckpt["next_sample"]), ckpt["strategy"])
        return Checkpoint(ckpt["run_id"], int(ckpt["rounds"]), int(ckpt["samples"]), ckpt["strategy"])
    except Exception as err:
        raise NosError(f"cannot read the controller checkpoint {path} ({type(err).__name__}: {err}); move it "
                       f"away and resume again to rebuild the controller from the store") from None


def check_checkpoint(ckpt: Checkpoint, store: RunStore, run_dir: Path) -> None:
    """Refuse a checkpoint that is not this store's: another run's, or ahead of what it recorded."""
    fix = (f"put this run's {CHECKPOINT_FILE} back, or move {run_dir / CHECKPOINT_FILE} away and resume again "
           f"to rebuild the controller from the store")
    if store.run_id is not None and ckpt.run_id != store.run_id:
        raise NosError(f"{run_dir / CHECKPOINT_FILE} belongs to another run (run id {ckpt.run_id}, the store's "
                       f"is {store.run_id}); {fix}")
    recorded = store.progress if store.run_id is not None else None
    if ckpt.samples > store.next_sample_index() or (
            recorded is not None and (ckpt.rounds > recorded.rounds or
                                      (ckpt.rounds == recorded.rounds and ckpt.samples != recorded.samples))):
        raise NosError(f"{run_dir / CHECKPOINT_FILE} is ahead of the run's store (round {ckpt.rounds}, "
                       f"{ckpt.samples} samples; the store holds {store.n_samples()} samples"
                       + ("" if recorded is None else f" of {recorded.rounds} rounds") + f"); {fix}")


def legacy_updates(path: Path) -> list[tuple[int, int, dict[str, float]]]:
    """The rows of an old run's updates.jsonl; a torn or foreign line is skipped."""
    rows: list[tuple[int, int, dict[str, float]]] = []
    steps: dict[int, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            r = int(entry.pop("round"))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        rows.append((r, steps.get(r, 0), entry))
        steps[r] = steps.get(r, 0) + 1
    return rows
