"""The run store's row types: one frozen dataclass per kind of row the store writes or reads.

RuleRecord and SampleRecord are what the search writes; StoredRule, SampleRow, Progress and
TrainingRow what a reader gets back (controller/store.py maps them to and from SQLite).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nos_symbolic.result import EvalResult


@dataclass(frozen=True)
class RuleRecord:
    """What the search knows about a rule before its evaluation: identity, forms and seed."""

    key: str
    fingerprint: str | None
    scale_fingerprint: str | None
    text: str
    canonical: str | None
    latex: str | None
    seed: int


@dataclass(frozen=True)
class SampleRecord:
    """One sample drawn by the search: the tokens, the rule they spelt and the reward it got."""

    idx: int
    strategy: str
    tokens: tuple[int, ...]
    rule_key: str | None
    reward: float
    cache_hit: bool


@dataclass(frozen=True)
class StoredRule:
    """A `rules` row read back. `result.seed` is the row's seed (the one the search chose)."""

    key: str
    fingerprint: str | None
    scale_fingerprint: str | None
    text: str
    canonical: str | None
    latex: str | None
    seed: int
    result: EvalResult
    created_at: str
    updated_at: str
    epochs: float | None = None  # the length `result` was trained at (None: the search's own length)
    search_result: EvalResult | None = None  # the result at the search's length, when `result` is longer


@dataclass(frozen=True)
class SampleRow:
    """A `samples` row read back: one rule the search drew, in draw order (rule_key None where the
    tokens spelt no rule)."""

    idx: int
    strategy: str
    tokens: tuple[int, ...]
    rule_key: str | None
    reward: float
    cache_hit: bool
    created_at: str = ""


@dataclass(frozen=True)
class Progress:
    """How far the store has recorded a search: rounds ended and the samples those rounds drew."""

    rounds: int = 0
    samples: int = 0


# -- trainings (confirm, transfer): the row type; the methods are RunStore's section of that name.


@dataclass(frozen=True)
class TrainingRow:
    """One training of a study (`confirm`, `transfer`): a rule or baseline on a task with one seed.

    rule:    DSL text (a baseline's name for torch's optimizers); key: the rule's key or that name
    source:  `search` (a rule the search found), `baseline` or `given` (from a rules file)
    metrics: JSON-safe extras of the training (per-epoch validation curve, losses, reason, ...)
    """

    study: str
    rule: str
    key: str
    source: str
    task: str
    seed: int
    status: str
    lr: float | None
    val_acc: float | None
    test_acc: float | None
    metrics: dict[str, Any]
    seconds: float
    created_at: str = ""
