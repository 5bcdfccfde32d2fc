"""Group the trained rules of a search run (or of a rules file: one rule per line, optionally a tab and
its reward) into behavioural families by how each rule responds on probes: to the scale of g, to v, to
agreement between sign(g) and sign(m), which operand its direction follows, its decays and its
stochastic parts. Families (PowerSign, AddSign, Adam-like, RMSProp-like, SignMomentum, SignSGD,
SGD/Momentum, ...) and sub-families carry ids (F1, F1.2) and that signature in words. Rules the
pre-screen rejected are counted, not grouped."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Config:
    run: str | None = field(default=None, metadata={"positional": True, "help": "run directory"})
    rules: str | None = field(default=None, metadata={"help": "a rules file instead of a run"})
    json: bool = field(default=False, metadata={"help": 'print {"families": [...], "rules": [...]} as JSON'})
    out: str | None = field(default=None, metadata={
        "help": "write the family tree (PNG, GraphML, DOT, text), families.json and families.tex here"})


def run(config: Config) -> int:
    from analysis.report import run_families

    report = run_families(Path(config.run) if config.run else None, Path(config.rules) if config.rules else None,
                          Path(config.out) if config.out else None)
    if config.json:
        print(json.dumps(report.json))
    else:
        print(report.tree_text, end="")
        for kind, path in report.paths.items():
            print(f"{kind}: {path}")
    return 0
