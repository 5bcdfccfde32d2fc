"""Score rules and torch's baselines on a child task: each with its own best learning rate.

Names sgd, momentum, adam and rmsprop run torch's own optimizers; anything else is a rule (DSL text or
a rule name such as powersign-cd) run by SymbolicOptimizer, through the same protocol.
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field, replace

from nos_symbolic.evaluate import DEFAULT_PROTOCOL
from nos_symbolic.tasks import TASK_NAMES
from nos_symbolic.tasks.train import DEFAULT_LRS


@dataclass(frozen=True)
class Config:
    rules: tuple[str, ...] = field(metadata={"positional": True, "nargs": "+",
                                             "help": "rules or names (sgd, momentum, adam, rmsprop, powersign-cd, ...)"})
    task: str = field(default="mnist1d", metadata={"choices": list(TASK_NAMES),
                                                   "help": "child task (default mnist1d)"})
    data_dir: str | None = field(default=None, metadata={"help": "CIFAR-10 folder (cifar-10-batches-py/ or train/ and test/ image folders)"})
    subset: int | None = field(default=None, metadata={"help": "CIFAR-10: use N training images (class-balanced)"})
    seeds: int = field(default=1, metadata={"help": "seeds per rule; accuracies are mean ± std"})
    epochs: int | None = field(default=None, metadata={"help": "epochs of the final run (default: 3 with halving, 5 "
                                                                "with full)"})
    protocol: str = field(default=DEFAULT_PROTOCOL, metadata={"help": "halving (the search's default) or full (the lr grid, "
                                                               "then the final run)"})
    lrs: tuple[float, ...] = field(default=DEFAULT_LRS, metadata={"nargs": "+", "help": "learning-rate grid"})
    grid_epochs: float = field(default=1.0, metadata={"help": "epochs of each grid run"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    json: bool = field(default=False, metadata={"help": "print a JSON list"})


def run(config: Config) -> int:
    from tqdm import tqdm

    from nos_symbolic.errors import NosError
    from nos_symbolic.evaluate import BASELINE_NAMES, EvalConfig, evaluate, task_for
    from nos_symbolic.rule import parse_rule

    if config.seeds < 1 or (config.epochs is not None and config.epochs < 1):
        raise NosError("--seeds and --epochs must be at least 1")
    base = EvalConfig(task=config.task, data_dir=config.data_dir, subset=config.subset, epochs=config.epochs,
                      lrs=tuple(config.lrs), grid_epochs=config.grid_epochs, device=config.device,
                      protocol=config.protocol)
    keys = {spec: None if spec in BASELINE_NAMES else parse_rule(spec).key for spec in config.rules}  # fail fast
    task_for(base)  # load data before the progress bar starts (and fail fast on a bad --data-dir)
    rows = []
    with tqdm(total=len(config.rules) * config.seeds, desc="eval", unit="run", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        for spec in config.rules:
            results = []
            for i in range(config.seeds):
                bar.set_postfix_str(spec[:40])
                results.append(evaluate(spec, replace(base, seed=i)))
                bar.update()
            rows.append(_summary(spec, keys[spec], results))
    if config.json:
        print(json.dumps(rows))
    else:
        print(_table(rows, config))
    return 0


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), statistics.pstdev(present) if len(present) > 1 else 0.0


def _summary(spec: str, key: str | None, results: list) -> dict:
    statuses = [r.status for r in results]
    status = next((s for s in statuses if s != "ok"), "ok")
    lrs = [r.lr for r in results if r.lr is not None]
    val, val_std = _mean_std([r.val_acc for r in results])
    test, test_std = _mean_std([r.test_acc for r in results])
    return {
        "rule": spec, "key": key, "status": status,
        "lr": Counter(lrs).most_common(1)[0][0] if lrs else None,
        "val_acc": val, "val_acc_std": val_std, "test_acc": test, "test_acc_std": test_std,
        "seconds": sum(r.seconds for r in results),
        "reason": next((r.reason for r in results if r.reason), ""),
    }


def _pct(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else f"{100 * mean:5.1f} ± {100 * std:3.1f}"


def _table(rows: list[dict], config: Config) -> str:
    width = max(12, *(len(r["rule"]) for r in rows))
    lines = [f"task {config.task}, {config.epochs} epochs, {config.seeds} seed(s), lr grid {list(config.lrs)}",
             f"{'rule':<{width}}  {'lr':>7}  {'val acc %':>12}  {'test acc %':>12}  {'status':<8}  {'s':>6}"]
    for r in sorted(rows, key=lambda r: -(r["val_acc"] or -1)):
        lr = "-" if r["lr"] is None else f"{r['lr']:.0e}"
        line = (f"{r['rule']:<{width}}  {lr:>7}  {_pct(r['val_acc'], r['val_acc_std']):>12}  "
                f"{_pct(r['test_acc'], r['test_acc_std']):>12}  {r['status']:<8}  {r['seconds']:6.1f}")
        lines.append(line + (f"  ({r['reason']})" if r["status"] != "ok" and r["reason"] else ""))
    return "\n".join(lines)
