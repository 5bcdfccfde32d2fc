"""The best rules of a search run."""
from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    run: str = field(metadata={"positional": True, "help": "run directory"})
    k: int = field(default=10, metadata={"short": "-k", "flag": "--top", "help": "how many rules"})
    json: bool = field(default=False, metadata={"help": "print a JSON list"})


def run(config: Config) -> int:
    from pathlib import Path

    from controller.store import STORE_FILENAME, RunStore
    from nos_symbolic.dsl import dsl_text
    from nos_symbolic.errors import NosError

    path = Path(config.run)
    if config.k < 0:
        raise NosError(f"--top must be an integer >= 0, got {config.k}")
    if not path.exists():
        raise NosError(f"run directory {path} not found")
    if path.is_dir() and not (path / STORE_FILENAME).is_file():
        raise NosError(f"{path} is not a run directory (no {STORE_FILENAME})")
    with RunStore.open_readonly(path) as store:  # never writes: a search may be running
        top = store.top(config.k)
    rows = [{"rule": dsl_text(r.text), "canonical": r.canonical, "latex": r.latex, "key": r.key, "reward": r.result.reward,
             "val_acc": r.result.val_acc, "test_acc": r.result.test_acc, "lr": r.result.lr,
             "status": r.result.status} for r in top]
    if config.json:
        print(json.dumps(rows))
        return 0
    print(f"{'reward':>7}  {'test':>6}  {'lr':>7}  rule")
    for r in rows:
        test = "-" if r["test_acc"] is None else f"{r['test_acc']:.4f}"
        lr = "-" if r["lr"] is None else f"{r['lr']:.0e}"
        print(f"{r['reward']:7.4f}  {test:>6}  {lr:>7}  {r['rule']}")
    return 0
