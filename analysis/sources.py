"""Where analysis reads its rules and samples: a run directory's SQLite store or a plain rules file.

Analysis works on the plain rows below, never on the run store's classes, so a report can be made of a
run written by an older (or newer) nos-symbolic as long as the two tables keep their core columns:

    rules   (key, text, canonical, latex, status, reward, lr, val_acc, test_acc, seconds, ...)
    samples (idx, strategy, tokens, rule_key, reward, cache_hit, ...)

The store is opened read-only, so a report can be made while the search is still writing (WAL lets
a reader and the one writer work at once).
"""
from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from nos_symbolic.errors import NosError
from nos_symbolic.rule import parse_rule

STORE_FILENAME = "store.sqlite"


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


@dataclass(frozen=True)
class SampleRow:
    """One rule the search drew, in draw order; rule_key is None where the tokens spelt no rule."""

    idx: int
    strategy: str
    tokens: tuple[int, ...]
    rule_key: str | None
    reward: float
    cache_hit: bool


@dataclass(frozen=True)
class RunData:
    """Everything analysis reads from one run directory."""

    path: Path
    rules: tuple[RuleRow, ...]
    samples: tuple[SampleRow, ...]


def load_rules_file(path: Path | str) -> list[RuleRow]:
    """Rules from a text file: one rule per line, optionally a TAB and its reward.

    Blank lines and lines starting with # are skipped. A line that does not parse raises NosError
    naming the file and the line number.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NosError(f"rules file {path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise NosError(f"cannot read rules file {path}: {e}") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text, _, reward_text = line.partition("\t")
        text = text.strip()
        try:
            rule = parse_rule(text)
        except ValueError as e:  # NosError, or a rule the compiler cannot map
            raise NosError(f"{path}, line {number}: {e}") from None
        rows.append(RuleRow(key=rule.key, text=text, canonical=rule.canonical_text, latex=rule.latex(),
                            reward=_reward(reward_text, path, number)))
    return rows


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


def load_run(run_dir: Path | str) -> RunData:
    """The rules and samples of a run directory (or of its store.sqlite file given directly)."""
    run_dir = Path(run_dir)
    store = run_dir / STORE_FILENAME if run_dir.is_dir() else run_dir
    if not store.is_file():
        if not run_dir.exists():
            raise NosError(f"run directory {run_dir} not found")
        raise NosError(f"no run store in {run_dir} (expected {STORE_FILENAME}); is it a run directory?")
    try:
        db = _connect(store)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = {"rules", "samples"} - tables
            if missing:
                raise NosError(f"{store} is not a run store (no {' or '.join(sorted(missing))} table)")
            rules = tuple(_rule_row(r) for r in db.execute("SELECT * FROM rules ORDER BY rowid"))
            samples = tuple(_sample_row(r) for r in db.execute("SELECT * FROM samples ORDER BY idx"))
        finally:
            db.close()
    except sqlite3.Error as e:
        raise NosError(f"cannot read run store {store}: {e}") from None
    return RunData(path=run_dir if run_dir.is_dir() else store.parent, rules=rules, samples=samples)


def _connect(store: Path) -> sqlite3.Connection:
    # Read-only: analysis never changes a run (SQLite may still create the WAL's -shm side file).
    db = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def _get(row: sqlite3.Row, column: str):
    return row[column] if column in row.keys() else None


def _rule_row(row: sqlite3.Row) -> RuleRow:
    return RuleRow(
        key=row["key"],
        text=row["text"],
        canonical=_get(row, "canonical"),
        latex=_get(row, "latex"),
        status=_get(row, "status"),
        reward=_get(row, "reward"),
        lr=_get(row, "lr"),
        val_acc=_get(row, "val_acc"),
        test_acc=_get(row, "test_acc"),
        seconds=_get(row, "seconds"),
    )


def _sample_row(row: sqlite3.Row) -> SampleRow:
    tokens = _get(row, "tokens")
    return SampleRow(
        idx=int(row["idx"]),
        strategy=_get(row, "strategy") or "unknown",
        tokens=tuple(json.loads(tokens)) if tokens else (),
        rule_key=_get(row, "rule_key"),
        reward=float(_get(row, "reward") or 0.0),
        cache_hit=bool(_get(row, "cache_hit")),
    )
