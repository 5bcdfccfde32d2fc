"""Score rules and torch's baselines on a child task: each with its own best learning rate.

Names sgd, momentum, adam and rmsprop run torch's own optimizers; anything else is a rule (DSL text or
a rule name such as powersign-cd) run by SymbolicOptimizer, through the same protocol.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from nos_cli.config import command_config, settings_from
from nos_symbolic.eval_config import EvalConfig


@dataclass(frozen=True)
class Options:
    """`nos eval`'s own options; how each rule is scored is EvalConfig's (nos_symbolic/eval_config.py)."""

    rules: tuple[str, ...] = field(metadata={"positional": True, "nargs": "+",
                                             "help": "rules or names (sgd, momentum, adam, rmsprop, adam-cosine, "
                                                     "powersign-cd, ...)"})
    seeds: int = field(default=1, metadata={"help": "seeds per rule (0, 1, ...); scores are mean ± std"})
    json: bool = field(default=False, metadata={"help": "print a JSON list"})


# The seed is --seeds' and a single rule has no recent rules to hurdle against.
Config = command_config(Options, EvalConfig, skip=frozenset({"seed", "hurdle_quantile"}))


def run(config: Config) -> int:
    from tqdm import tqdm

    from controller.api import evaluate
    from nos_symbolic.errors import NosError

    if config.seeds < 1:
        raise NosError(f"--seeds must be at least 1, got {config.seeds}")
    base = settings_from(config, EvalConfig)
    for spec in config.rules:  # fail fast, naming the rule that does not parse
        _check_rule(spec)
    with tqdm(total=len(config.rules) * config.seeds, desc="eval", unit="run", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        rows = evaluate(config.rules, seeds=config.seeds, config=base,
                        on_result=lambda spec, seed, result: (bar.set_postfix_str(spec[:40]), bar.update()))
    if config.json:
        print(json.dumps(rows))
    else:
        print(_table(rows, base, config.seeds))
    return 0


def _check_rule(spec: str) -> None:
    """Parse `spec` unless it names a torch baseline; a NosError naming the rule when it does not parse."""
    from nos_symbolic.errors import NosError, RuleError
    from nos_symbolic.evaluate import BASELINE_NAMES
    from nos_symbolic.rule import parse_rule

    if spec in BASELINE_NAMES:
        return
    try:
        parse_rule(spec)
    except RuleError as err:
        raise NosError(f"rule {spec!r}: {err}") from None


def _cell(mean: float | None, std: float | None, percent: bool) -> str:
    """mean ± std, in percent for an accuracy, else as the metric's own number."""
    if mean is None:
        return "-"
    return f"{100 * mean:5.1f} ± {100 * std:3.1f}" if percent else f"{mean:.4g} ± {std:.2g}"


def _table(rows: list[dict], config, seeds: int) -> str:
    metric = rows[0]["metric"] if rows else "accuracy"
    percent = metric.endswith("accuracy")
    head = {"accuracy": ("val acc %", "test acc %")}.get(metric, (f"val {metric}" + " %" * percent,
                                                                    f"test {metric}" + " %" * percent))
    width = max(12, *(len(r["rule"]) for r in rows))
    cell = max(12, *(len(h) for h in head))
    lines = [f"task {config.task}, {config.protocol} protocol, {config.epochs} epochs, {seeds} seed(s), "
             f"lr grid {list(config.lrs)}, device {config.device}, score: {metric}",
             f"{'rule':<{width}}  {'lr':>7}  {head[0]:>{cell}}  {head[1]:>{cell}}  {'status':<8}  {'s':>6}"]
    missing = -float("inf")
    for r in sorted(rows, key=lambda r: -(missing if r["val_acc"] is None else r["val_acc"])):
        lr = "-" if r["lr"] is None else f"{r['lr']:.0e}"
        line = (f"{r['rule']:<{width}}  {lr:>7}  {_cell(r['val_acc'], r['val_acc_std'], percent):>{cell}}  "
                f"{_cell(r['test_acc'], r['test_acc_std'], percent):>{cell}}  {r['status']:<8}  {r['seconds']:6.1f}")
        lines.append(line + (f"  ({r['reason']})" if r["status"] != "ok" and r["reason"] else ""))
    return "\n".join(lines)
