"""Write report.md for a search run: best rules, families, family tree, LaTeX table and plots."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Config:
    run: str = field(metadata={"positional": True, "help": "run directory"})
    out: str | None = field(default=None, metadata={"help": "output folder (default RUN/report)"})


def run(config: Config) -> int:
    from analysis.report import run_report

    print(run_report(Path(config.run), Path(config.out) if config.out else None))
    return 0
