"""What a study trains: contenders (rules and baselines) and the seeds they all share.

A contender is the text a training job evaluates (DSL text, or the name of one of torch's
optimizers), the key its trainings are stored under and where it came from:

    search    one of the best distinct rules a search run found (RunStore.top, one per fingerprint)
    baseline  torch's SGD, Momentum (0.9), Adam, RMSProp and Adam with a cosine decay of its lr to
              zero (what a practitioner runs), and PowerSign, AddSign and their -cd variants (the
              paper's rules), all through the same lr protocol as every rule
    given     a rule from a rules file
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from controller.store import RunStore
from nos_symbolic.errors import NosError, SettingError
from nos_symbolic.evaluate import BASELINE_NAMES

Source = Literal["search", "baseline", "given"]
TORCH_BASELINES: tuple[str, ...] = BASELINE_NAMES
RULE_BASELINES: tuple[str, ...] = ("powersign", "powersign-cd", "addsign", "addsign-cd")
BASELINES: tuple[str, ...] = TORCH_BASELINES + RULE_BASELINES
TARGET_BASELINE = "adam"  # steps-to-target: the step a contender reaches tuned Adam's final accuracy
_TORCH_PREFIX = "torch:"  # keys of torch's optimizers, apart from every rule key (16 hex digits)


@dataclass(frozen=True)
class Contender:
    """rule: what a person reads and the job evaluates (DSL text, or a torch optimizer's name);
    key: the rule's key (torch:NAME for torch's optimizers); fingerprint: None for torch's."""

    rule: str
    key: str
    source: Source
    fingerprint: str | None = None


def baseline_key(name: str) -> str:
    """The key a baseline's trainings are stored under."""
    return _TORCH_PREFIX + name if name in TORCH_BASELINES else _parsed(name).key


def baselines() -> list[Contender]:
    """The study baselines, in BASELINES order."""
    out = [Contender(name, baseline_key(name), "baseline") for name in TORCH_BASELINES]
    for name in RULE_BASELINES:
        rule = _parsed(name)
        out.append(Contender(name, rule.key, "baseline", rule.fingerprint))
    return out


def study_seeds(n: int, search_seed: int) -> list[int]:
    """The first n seeds 1, 2, 3, ... that are not the search's evaluation seed: fresh weights and
    batch orders for every contender, and the same n for all of them (so results pair by seed).
    A larger n later extends the same list."""
    if n < 1:
        raise SettingError(f"{{0}} must be at least 1, got {n}", "seeds")
    return list(itertools.islice((s for s in itertools.count(1) if s != search_seed), n))


def best_of_run(store: RunStore, k: int, exclude: list[Contender]) -> list[Contender]:
    """The k best rules of a run that trained to the end, one per fingerprint (several spellings of
    one behaviour count once), leaving out rules that behave as one of `exclude` (a baseline the
    search rediscovered is trained once, as the baseline)."""
    from nos_symbolic.dsl import to_dsl

    if k < 1:
        raise SettingError(f"{{0}} must be at least 1, got {k}", "top")
    seen = {c.fingerprint for c in exclude if c.fingerprint} | {c.key for c in exclude}
    picked: list[Contender] = []
    for stored in store.top(store.n_evaluations(count_rejected=True)):
        marks = {stored.key, stored.fingerprint} - {None}
        if marks & seen:
            continue
        seen |= marks
        picked.append(Contender(to_dsl(_parsed(stored.text)), stored.key, "search", stored.fingerprint))
        if len(picked) == k:
            break
    if not picked:
        raise NosError(f"{store.path.parent} holds no rule that trained to the end; run or resume the "
                       f"search first")
    return picked


def read_rules_file(path: Path) -> list[Contender]:
    """The rules of a rules file (nos_symbolic/rules_file.py), one contender per distinct key."""
    from nos_symbolic.dsl import to_dsl
    from nos_symbolic.rules_file import read_rules_file as read_lines

    out: dict[str, Contender] = {}
    for line in read_lines(path):
        out.setdefault(line.rule.key, Contender(to_dsl(line.rule), line.rule.key, "given", line.rule.fingerprint))
    if not out:
        raise NosError(f"rules file {path} holds no rule; write one DSL rule per line")
    return list(out.values())


def _parsed(text: str):
    from nos_symbolic.rule import parse_rule

    return parse_rule(text)
