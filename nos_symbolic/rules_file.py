"""The rules file: one DSL rule per line, optionally a TAB and its reward; blank lines and lines
starting with # are skipped. Read by `nos families`/`nos report --rules` and `nos transfer --rules`.

    sign(m) * g	0.94
    # a comment
    exp(sign(g) * sign(m)) * g
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from nos_symbolic.errors import NosError
from nos_symbolic.rule import Rule, parse_rule


@dataclass(frozen=True)
class RuleLine:
    """One rule of a rules file: its line number, its text as written, the parsed rule, its reward."""

    number: int
    text: str
    rule: Rule
    reward: float | None


def read_rules_file(path: Path | str) -> list[RuleLine]:
    """Every rule of the file, in order; a NosError naming the file (and the line) for a file that
    cannot be read, a line that does not parse or a reward that is no finite number."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a byte-order mark is no part of a rule
    except FileNotFoundError:
        raise NosError(f"rules file {path} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NosError(f"cannot read rules file {path}: {err}") from None
    rules = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text, _, reward_text = line.partition("\t")
        text = text.strip()
        try:
            rule = parse_rule(text)
        except ValueError as err:  # NosError, or a rule the compiler cannot map
            raise NosError(f"{path}, line {number}: {err}") from None
        rules.append(RuleLine(number, text, rule, _reward(reward_text, path, number)))
    return rules


def _reward(text: str, path: Path, number: int) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        reward = float(text)
    except ValueError:
        reward = math.nan
    if not math.isfinite(reward):
        raise NosError(f"{path}, line {number}: reward {text!r} is not a finite number")
    return reward
