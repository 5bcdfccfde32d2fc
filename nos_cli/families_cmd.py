"""Group rules into families (PowerSign, AddSign, sign-momentum, Adam-like, SGD-like, their decay and
weight-decay variants, and clusters of the rest), from a run directory or a rules file (one rule per
line, optionally followed by a tab and a reward)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Config:
    run: str | None = field(default=None, metadata={"positional": True, "help": "run directory"})
    rules: str | None = field(default=None, metadata={"help": "a rules file instead of a run"})
    json: bool = field(default=False, metadata={"help": "print a JSON list of families"})
    out: str | None = field(default=None, metadata={"help": "write the family tree (PNG, DOT, text) and the LaTeX table here"})


def run(config: Config) -> int:
    from analysis.report import run_families

    report = run_families(Path(config.run) if config.run else None, Path(config.rules) if config.rules else None,
                          Path(config.out) if config.out else None)
    if config.json:
        print(json.dumps(report.families))
    else:
        print(report.tree_text)
        for kind, path in report.paths.items():
            print(f"{kind}: {path}")
    return 0
