"""Write report.md and report.html (one self-contained file) for a search run: best-reward curve,
reward distribution, behavioural families and their tree, best rules, the confirmation and transfer
tables where the run has them. With several runs, the first is reported and the best-so-far curves of
all are overlaid (e.g. PPO, random and evolution side by side)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Config:
    runs: list[str] = field(metadata={"positional": True, "nargs": "+", "help": "run directories"})
    out: str | None = field(default=None, metadata={"help": "output folder (default RUN/report of the first run)"})


def run(config: Config) -> int:
    from analysis.report import run_report

    report = run_report([Path(r) for r in config.runs], Path(config.out) if config.out else None)
    print(report)
    print(report.with_suffix(".html"))
    return 0
