"""Parse a rule and print its DSL text (`rule`), canonical form, LaTeX, key, fingerprints and flags."""
from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    rule: str = field(metadata={"positional": True, "help": "rule in the DSL, e.g. 'exp(sign(g)*sign(m))*g', or a name such as powersign-cd"})
    json: bool = field(default=False, metadata={"help": "print one JSON object"})


def run(config: Config) -> int:
    from nos_symbolic import parse_rule
    from nos_symbolic.dsl import to_dsl

    rule = parse_rule(config.rule)
    info = rule.to_dict()
    # The DSL text a person reads (re-parses to the same key), after what was typed, as every command's `rule`.
    info = {"input": info.pop("input"), "rule": to_dsl(rule), **info}
    if config.json:
        print(json.dumps(info))
        return 0
    width = max(len(k) for k in info)
    for name, value in info.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{name:<{width}}  {shown if shown != '' else '-'}")
    return 0
