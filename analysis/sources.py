"""Where analysis reads its rules and samples: a run directory's store or a plain rules file.

A run is read through the store's read-only API (`RunStore.open_readonly`), which never writes to it,
so a report can be made while the search is still writing. Rules
become `RuleRow`s, the one row type for both sources (a rules file knows only text and reward);
samples are the store's own `SampleRow`s.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.store import STORE_FILENAME, RunStore, SampleRow, StoredRule, StoreError
from nos_symbolic.errors import NosError
from nos_symbolic.rules_file import read_rules_file

__all__ = ["RuleRow", "RunData", "SampleRow", "STORE_FILENAME", "load_rules_file", "load_run"]


@dataclass(frozen=True)
class RuleRow:
    """One rule with what is known of its evaluation (None where unknown, e.g. from a rules file)."""

    key: str
    text: str
    canonical: str | None = None
    latex: str | None = None
    status: str | None = None
    reward: float | None = None
    lr: float | None = None
    val_acc: float | None = None
    test_acc: float | None = None
    seconds: float | None = None

    @classmethod
    def from_stored(cls, rule: StoredRule) -> RuleRow:
        """The row of a rule read from a run store."""
        r = rule.result
        return cls(key=rule.key, text=rule.text, canonical=rule.canonical, latex=rule.latex, status=r.status,
                   reward=r.reward, lr=r.lr, val_acc=r.val_acc, test_acc=r.test_acc, seconds=r.seconds)


LEADERBOARD_SIZE = 10


@dataclass(frozen=True)
class RunData:
    """Everything analysis reads from one run directory."""

    path: Path
    rules: tuple[RuleRow, ...]
    samples: tuple[SampleRow, ...]
    leaderboard: tuple[StoredRule, ...] = ()  # the best rules by the longest length reached (RunStore.top)


def load_rules_file(path: Path | str) -> list[RuleRow]:
    """The rules of a rules file (nos_symbolic/rules_file.py), with their rewards where given."""
    return [RuleRow(key=line.rule.key, text=line.text, canonical=line.rule.canonical_text, latex=line.rule.latex(),
                    reward=line.reward) for line in read_rules_file(path)]


def load_run(run_dir: Path | str) -> RunData:
    """The rules and samples of a run directory (or of its store.sqlite file given directly)."""
    run_dir = Path(run_dir)
    store = run_dir / STORE_FILENAME if run_dir.is_dir() else run_dir
    if not store.is_file():
        if not run_dir.exists():
            raise NosError(f"run directory {run_dir} not found")
        raise NosError(f"no run store in {run_dir} (expected {STORE_FILENAME}); is it a run directory?")
    with RunStore.open_readonly(store) as opened:
        try:
            rules = tuple(RuleRow.from_stored(r) for r in opened.rules())
            samples = tuple(opened.samples())
            leaderboard = tuple(opened.top(LEADERBOARD_SIZE))
        except StoreError as e:  # a file damaged after it opened
            raise NosError(f"cannot read run store {store}: {e}") from None
    return RunData(path=run_dir if run_dir.is_dir() else store.parent, rules=rules, samples=samples,
                   leaderboard=leaderboard)
