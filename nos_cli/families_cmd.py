"""Group the trained rules of a search run (or of a rules file: one rule per line, optionally a tab and
its reward) into behavioural families: rules that move the weights alike (1 - mean cosine of their
updates on the pre-screen's probes) cluster together, cut into families and sub-families, each named
by the known optimizer it holds (SGD, Momentum, Adam, RMSProp, SignSGD, SignMomentum, PowerSign,
AddSign, ...) or else by its simplest member. Rules the pre-screen rejected are counted, not grouped."""
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
    # analysis.families.FAMILY_CUT and SUBFAMILY_CUT (not imported here, so `nos parse` starts fast)
    family_cut: float = field(default=0.6, metadata={
        "help": "distance (1 - mean cosine) at which families are cut"})
    subfamily_cut: float = field(default=0.1, metadata={
        "help": "distance at which sub-families are cut"})


def run(config: Config) -> int:
    from analysis.report import run_families

    report = run_families(Path(config.run) if config.run else None, Path(config.rules) if config.rules else None,
                          Path(config.out) if config.out else None, config.family_cut, config.subfamily_cut)
    if config.json:
        print(json.dumps(report.json))
    else:
        print(report.tree_text, end="")
        for kind, path in report.paths.items():
            print(f"{kind}: {path}")
    return 0
