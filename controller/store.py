"""The run store: one SQLite file holding everything a search run has learnt.

Two tables matter. `rules` has one row per distinct rule evaluated (keyed by the rule's canonical key,
findable by its fingerprint), so a rule the search draws again is a cache hit, not a second training
run. `samples` has one row per sample the search drew, in draw order, pointing at the rule it produced.
A third table, `meta`, holds the schema version and any JSON metadata the run wants to keep.

Crash safety comes from SQLite itself: the file is in WAL mode with `synchronous=FULL` and every write
below is one explicit transaction, so a process killed mid-write (kill -9, power loss) loses at most
the transaction in flight and never leaves half of one behind. The search process is the only writer;
analysis may read the same file while a run is going (WAL lets readers and one writer coexist).

    with RunStore.open(run_dir) as store:
        hit = store.lookup(rule.key, rule.fingerprint)
        ...
        store.record_evaluation(record, result, waiting_samples)
"""
from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from nos_symbolic.errors import NosError
from nos_symbolic.result import EvalResult

STORE_FILENAME = "store.sqlite"
_SQLITE_HEADER = b"SQLite format 3\x00"
# Long enough to outwait an analysis reader's checkpoint, short enough to surface a stuck lock.
_BUSY_TIMEOUT_S = 30.0
_FETCH_CHUNK = 500


class StoreError(NosError):
    """The store cannot be opened or written; the message names the file and what to do."""


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


@dataclass(frozen=True)
class SampleRow:
    """A `samples` row read back."""

    idx: int
    strategy: str
    tokens: tuple[int, ...]
    rule_key: str | None
    reward: float
    cache_hit: bool
    created_at: str


# ---------------------------------------------------------------------------------------------------
# Schema. MIGRATIONS[v] takes a store at version v to version v + 1; a fresh file is version 0, so
# creating a store and upgrading an old one run the same code. Add a version by appending a function;
# never edit one that has shipped, since old run directories replay it.


def _create_v1(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        """CREATE TABLE rules (
            key TEXT PRIMARY KEY,
            fingerprint TEXT,
            scale_fingerprint TEXT,
            text TEXT NOT NULL,
            canonical TEXT,
            latex TEXT,
            status TEXT NOT NULL,
            reward REAL NOT NULL,
            lr REAL,
            val_acc REAL,
            test_acc REAL,
            steps INTEGER NOT NULL,
            seconds REAL NOT NULL,
            seed INTEGER NOT NULL,
            reason TEXT NOT NULL,
            loss_curve TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX rules_fingerprint ON rules (fingerprint)")
    db.execute(
        """CREATE TABLE samples (
            idx INTEGER PRIMARY KEY,
            strategy TEXT NOT NULL,
            tokens TEXT NOT NULL,
            rule_key TEXT REFERENCES rules (key),
            reward REAL NOT NULL,
            cache_hit INTEGER NOT NULL,
            created_at TEXT NOT NULL)"""
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_v1]
SCHEMA_VERSION = len(MIGRATIONS)

_RULE_COLUMNS = (
    "key", "fingerprint", "scale_fingerprint", "text", "canonical", "latex", "status", "reward", "lr",
    "val_acc", "test_acc", "steps", "seconds", "seed", "reason", "loss_curve", "created_at", "updated_at",
)
_SAMPLE_COLUMNS = ("idx", "strategy", "tokens", "rule_key", "reward", "cache_hit", "created_at")
# On re-evaluation every column but the first sighting's timestamp is replaced.
_UPSERT_RULE = (
    f"INSERT INTO rules ({', '.join(_RULE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _RULE_COLUMNS)}) ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RULE_COLUMNS if c not in ("key", "created_at"))
)
_INSERT_SAMPLE = (
    f"INSERT INTO samples ({', '.join(_SAMPLE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _SAMPLE_COLUMNS)})"
)


class RunStore:
    """A search run's SQLite store. Open with `RunStore.open`; use as a context manager."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str) -> RunStore:
        """Open the store at `path` (the file, or an existing run directory holding `store.sqlite`).

        A missing file is created; an older schema is migrated in place; a newer schema, or a file
        that is not a run store, raises `StoreError` without touching the file.
        """
        path = Path(path)
        if path.is_dir():
            path = path / STORE_FILENAME
        _check_header(path)
        try:
            db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open run store {path}: {e}") from None
        db.row_factory = sqlite3.Row
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"cannot put run store {path} in WAL mode (got {mode!r})")
            # FULL syncs the WAL on every commit: one fsync per evaluation is cheap beside training a
            # network, and it makes "a commit survived" hold through power loss, not just kill -9.
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            _migrate(db, path)
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as e:
            db.close()
            raise StoreError(f"{path} is not a readable run store: {e}") from None
        return cls(db, path)

    def close(self) -> None:
        """Close the connection; committed data is already on disk."""
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- metadata ------------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under `key` (e.g. the run's config and seeds)."""
        if key == "schema_version":
            raise ValueError("'schema_version' is managed by the store and cannot be set")
        text = json.dumps(value)
        with self._write():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under `key`, or `default`."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    @property
    def schema_version(self) -> int:
        return int(self.get_meta("schema_version"))

    # -- writing -------------------------------------------------------------------------------------

    def record_evaluation(
        self, rule_row: RuleRecord, result: EvalResult, samples: Sequence[SampleRecord]
    ) -> None:
        """Write a rule's evaluation and the samples that waited on it, in one transaction.

        Recording a key again (a re-evaluation) replaces the row but keeps its `created_at`.
        """
        for s in samples:
            if s.rule_key != rule_row.key:
                raise ValueError(
                    f"sample {s.idx} points at rule {s.rule_key!r}, not the rule being recorded "
                    f"({rule_row.key!r})"
                )
        row = _rule_params(rule_row, result)
        sample_rows = [_sample_params(s, row["created_at"]) for s in samples]
        with self._write():
            self._db.execute(_UPSERT_RULE, row)
            self._db.executemany(_INSERT_SAMPLE, sample_rows)

    def record_samples(self, samples: Sequence[SampleRecord]) -> None:
        """Write samples whose rule is already stored (cache hits), in one transaction."""
        now = _now()
        rows = [_sample_params(s, now) for s in samples]
        with self._write():
            self._db.executemany(_INSERT_SAMPLE, rows)

    def discard_samples_from(self, idx: int) -> int:
        """Delete samples with index >= `idx` (one transaction); returns how many were deleted.

        For resuming: samples recorded after the controller's last checkpoint belong to a round that
        will be drawn again. Rules rows stay; they are the cache the replayed round hits.
        """
        with self._write():
            return self._db.execute("DELETE FROM samples WHERE idx >= ?", (idx,)).rowcount

    # -- reading -------------------------------------------------------------------------------------

    def lookup(self, key: str, fingerprint: str | None) -> StoredRule | None:
        """The stored rule with this key, else the first stored with this fingerprint, else None."""
        row = self._db.execute("SELECT * FROM rules WHERE key = ?", (key,)).fetchone()
        if row is None and fingerprint is not None:
            row = self._db.execute(
                "SELECT * FROM rules WHERE fingerprint = ? ORDER BY rowid LIMIT 1", (fingerprint,)
            ).fetchone()
        return None if row is None else _stored_rule(row)

    def next_sample_index(self) -> int:
        """One past the largest sample index recorded (0 for a fresh run).

        Assign indices when recording, not when drawing, and the table stays a gap-free prefix
        0..n-1 even when evaluations finish out of order or the run is killed and resumed.
        """
        row = self._db.execute("SELECT MAX(idx) AS m FROM samples").fetchone()
        return 0 if row["m"] is None else int(row["m"]) + 1

    def n_evaluations(self, count_rejected: bool = False) -> int:
        """Rules rows that count toward the search budget.

        Every status counts (an `error` still cost worker time) except `rejected`, which by default
        does not: a pre-screen rejection trains nothing, and the budget, as in the paper, counts
        child-network trainings. Pass `count_rejected=True` to count every row.
        """
        sql = "SELECT COUNT(*) FROM rules"
        if not count_rejected:
            sql += " WHERE status != 'rejected'"
        return int(self._db.execute(sql).fetchone()[0])

    def n_samples(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def n_cache_hits(self) -> int:
        """Samples whose rule was already stored when drawn."""
        return int(self._db.execute("SELECT COUNT(*) FROM samples WHERE cache_hit").fetchone()[0])

    def top(self, k: int, status: str | None = "ok") -> list[StoredRule]:
        """The `k` best rules by reward (ties: first evaluated first); `status=None` for any status."""
        where, params = ("", ()) if status is None else ("WHERE status = ?", (status,))
        rows = self._db.execute(
            f"SELECT * FROM rules {where} ORDER BY reward DESC, rowid LIMIT ?", (*params, k)
        ).fetchall()
        return [_stored_rule(r) for r in rows]

    def rules(self) -> Iterator[StoredRule]:
        """Every stored rule, in the order first evaluated."""
        for row in self._iterate("SELECT * FROM rules ORDER BY rowid"):
            yield _stored_rule(row)

    def samples(self) -> Iterator[SampleRow]:
        """Every sample, by index."""
        for row in self._iterate("SELECT * FROM samples ORDER BY idx"):
            yield SampleRow(
                idx=row["idx"],
                strategy=row["strategy"],
                tokens=tuple(json.loads(row["tokens"])),
                rule_key=row["rule_key"],
                reward=row["reward"],
                cache_hit=bool(row["cache_hit"]),
                created_at=row["created_at"],
            )

    # -- helpers -------------------------------------------------------------------------------------

    def _iterate(self, sql: str) -> Iterator[sqlite3.Row]:
        cursor = self._db.execute(sql)
        try:
            while chunk := cursor.fetchmany(_FETCH_CHUNK):
                yield from chunk
        finally:
            cursor.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One transaction; SQLite's complaints become a StoreError that names the file."""
        try:
            with _transaction(self._db):
                yield
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to run store {self.path}: {e}") from None


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a second writer fails here, not half-way through.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _check_header(path: Path) -> None:
    """Refuse a non-SQLite file before SQLite sees it, so the file is never touched."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if head and head != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a run store (not a SQLite database); pass a run directory "
                         f"or a {STORE_FILENAME} file")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    latest = len(MIGRATIONS)
    # Read the version inside the write transaction so two processes opening an old store cannot
    # both migrate it.
    with _transaction(db):
        version = _read_version(db, path)
        if version > latest:
            raise StoreError(
                f"{path} has store schema version {version}, but this nos-symbolic reads versions up "
                f"to {latest}; open it with a newer nos-symbolic"
            )
        for v in range(version, latest):
            MIGRATIONS[v](db)
        if version < latest:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(latest),),
            )


def _read_version(db: sqlite3.Connection, path: Path) -> int:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        if tables:
            raise StoreError(f"{path} is a SQLite database but not a run store (no 'meta' table)")
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(json.loads(row[0]))
    except (TypeError, ValueError):
        raise StoreError(f"{path} has no valid schema_version; it is not a run store") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _finite(name: str, x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return float(x)


def _rule_params(rule: RuleRecord, result: EvalResult) -> dict[str, Any]:
    now = _now()
    return {
        "key": rule.key,
        "fingerprint": rule.fingerprint,
        "scale_fingerprint": rule.scale_fingerprint,
        "text": rule.text,
        "canonical": rule.canonical,
        "latex": rule.latex,
        "status": result.status,
        "reward": _finite("reward", result.reward),
        "lr": result.lr,
        "val_acc": result.val_acc,
        "test_acc": result.test_acc,
        "steps": result.steps,
        "seconds": result.seconds,
        "seed": rule.seed,
        "reason": result.reason,
        # A diverged run's curve may hold inf/nan; Python's json writes and reads them back.
        "loss_curve": json.dumps(list(result.loss_curve)),
        "created_at": now,
        "updated_at": now,
    }


def _sample_params(s: SampleRecord, now: str) -> dict[str, Any]:
    return {
        "idx": int(s.idx),
        "strategy": s.strategy,
        "tokens": json.dumps([int(t) for t in s.tokens]),
        "rule_key": s.rule_key,
        "reward": _finite("reward", s.reward),
        "cache_hit": int(bool(s.cache_hit)),
        "created_at": now,
    }


def _stored_rule(row: sqlite3.Row) -> StoredRule:
    result = EvalResult(
        status=row["status"],
        reward=row["reward"],
        lr=row["lr"],
        val_acc=row["val_acc"],
        test_acc=row["test_acc"],
        loss_curve=tuple(json.loads(row["loss_curve"])),
        steps=row["steps"],
        seconds=row["seconds"],
        seed=row["seed"],
        reason=row["reason"],
    )
    return StoredRule(
        key=row["key"],
        fingerprint=row["fingerprint"],
        scale_fingerprint=row["scale_fingerprint"],
        text=row["text"],
        canonical=row["canonical"],
        latex=row["latex"],
        seed=row["seed"],
        result=result,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
