"""The run store: one SQLite file holding everything a search run has learnt.

`rules` has one row per distinct rule evaluated (keyed by the rule's canonical key, findable by its
fingerprint), so a rule the search draws again is a cache hit, not a second training run. `samples`
has one row per sample the search drew, in draw order, pointing at the rule it produced. `updates`
holds the controller's statistics of each learning step (pg_loss, entropy, ...), by round. `lengths`
holds the trainings of promoted rules at lengths past the search's own (one row per rule and length,
with the round that promoted it) and `variants` the decayed variants trained beside them
(controller/promotion.py); `top` ranks by the longest length a rule reached. `meta`
holds the schema version, the run's id (a uuid its controller checkpoint repeats) and the round the
store has recorded up to (`progress`: rounds ended and samples they drew).

Crash safety comes from SQLite itself: the file is in WAL mode with `synchronous=FULL` and every write
below is one explicit transaction, so a process killed mid-write (kill -9, power loss) loses at most
the transaction in flight and never leaves half of one behind. Nothing is ever deleted: a round's
samples, its update statistics and the progress it made are one transaction, and writing the same
samples again (a replayed round) checks them against the rows there instead of adding rows.

One process writes a run (the search, under the run directory's lock); every other command reads it
through `RunStore.open_readonly`, which never writes, never changes the journal mode and, with no writer
about, opens the file as immutable so not even SQLite's side files appear.

    with RunStore.open(run_dir) as store:
        hit = store.lookup(rule.key, rule.fingerprint)
        ...
        store.record_evaluation(record, result, waiting_samples)
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.rows import Progress, RuleRecord, SampleRecord, SampleRow, StoredRule, TrainingRow
from controller.schema import MIGRATIONS, SCHEMA_VERSION
from nos_symbolic.errors import NosError
from nos_symbolic.result import EvalResult

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "STORE_FILENAME", "Progress", "RuleRecord", "RunStore", "SampleRecord",
           "SampleRow", "StoreError", "StoredRule", "TrainingRow"]

STORE_FILENAME = "store.sqlite"
_SQLITE_HEADER = b"SQLite format 3\x00"
_WAL_VERSION_BYTE = 18  # the header's "file format write version": 2 in WAL mode, 1 otherwise
# Long enough to outwait an analysis reader's checkpoint, short enough to surface a stuck lock.
_BUSY_TIMEOUT_S = 30.0
_FETCH_CHUNK = 500


# What a damaged or foreign store's rows raise when read: SQLite's errors, a missing column (IndexError),
# a value of the wrong type or unparsable JSON (TypeError, ValueError, KeyError).
_READ_ERRORS = (sqlite3.Error, IndexError, KeyError, TypeError, ValueError)


def _reads(method: Callable) -> Callable:
    """Make a reading method (a plain one or a generator) turn a damaged store's errors into a StoreError
    that names the file and the way out."""
    def refuse(self: "RunStore", err: Exception) -> StoreError:
        return StoreError(f"cannot read run store {self.path} ({type(err).__name__}: {' '.join(str(err).split())}); "
                          f"it is damaged or not a run store this release reads: restore it from a backup, "
                          f"or pass another run directory")

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generate(self: "RunStore", *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except StoreError:
                raise
            except _READ_ERRORS as err:
                raise refuse(self, err) from None
        return generate

    @functools.wraps(method)
    def read(self: "RunStore", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except _READ_ERRORS as err:
            raise refuse(self, err) from None
    return read


class StoreError(NosError):
    """The store cannot be opened or written; the message names the file and what to do."""


_TRAINING_COLUMNS = tuple(f.name for f in dataclasses.fields(TrainingRow))
# The unique key (study, key, task, seed) makes a second write of the same training a no-op.
_INSERT_TRAINING = (
    f"INSERT INTO trainings ({', '.join(_TRAINING_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _TRAINING_COLUMNS)}) ON CONFLICT DO NOTHING"
)



_RULE_COLUMNS = (
    "key", "fingerprint", "scale_fingerprint", "text", "canonical", "latex", "status", "reward", "lr",
    "val_acc", "test_acc", "steps", "seconds", "seed", "reason", "loss_curve", "val_curve", "created_at",
    "updated_at",
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
# A replayed round writes its update statistics again; the first write stands.
_INSERT_UPDATE = "INSERT INTO updates (round, idx, stats) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"


class RunStore:
    """A search run's SQLite store. Open with `RunStore.open`; use as a context manager."""

    def __init__(self, db: sqlite3.Connection, path: Path, readonly: bool = False) -> None:
        self._db = db
        self.path = path
        self.readonly = readonly

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str) -> RunStore:
        """Open the store at `path` (the file, or an existing run directory holding `store.sqlite`).

        A missing file is created; an older schema is migrated in place; a newer schema, or a file
        that is not a run store, raises `StoreError` without touching the file.
        """
        path = _store_path(path)
        _check_header(path)

        def setup(db: sqlite3.Connection) -> None:
            _read_version(db, path)  # a foreign database is refused before anything below changes it
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"cannot put run store {path} in WAL mode (got {mode!r})")
            # FULL syncs the WAL on every commit: one fsync per evaluation is cheap beside training a
            # network, and it makes "a commit survived" hold through power loss, not just kill -9.
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            _migrate(db, path)

        return cls(_connect(path, str(path), setup), path)

    @classmethod
    def open_readonly(cls, path: Path | str) -> RunStore:
        """Open an existing store for reading only (`nos top`, analysis), even while a search writes it.

        The file is never written: no migration (an older schema is read as it is), no journal-mode
        change, and every write method raises `StoreError`. With no writer about (no `-wal` file) the
        file is opened immutable, so SQLite creates no side files either; a writer that starts during
        the read leaves the main file alone until its first checkpoint, a thousand pages later.
        """
        path = _store_path(path)
        if not path.is_file():
            raise StoreError(f"no run store at {path}")
        _check_header(path)
        with path.open("rb") as f:
            wal = f.read(_WAL_VERSION_BYTE + 1)[_WAL_VERSION_BYTE:] == b"\x02"
        idle = wal and not path.with_name(path.name + "-wal").exists()
        uri = f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if idle else "")

        def setup(db: sqlite3.Connection) -> None:
            version = _read_version(db, path)
            if version == 0:
                raise StoreError(f"{path} is an empty SQLite database, not a run store")
            _refuse_newer(version, path)

        return cls(_connect(path, uri, setup, uri=True), path, readonly=True)

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

    def set_meta_items(self, items: Mapping[str, Any]) -> None:
        """Store several JSON-serialisable values in one transaction."""
        if "schema_version" in items:
            raise ValueError("'schema_version' is managed by the store and cannot be set")
        rows = [(key, json.dumps(value)) for key, value in items.items()]
        with self._write():
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rows,
            )

    @_reads
    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under `key`, or `default`."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    @property
    @_reads
    def schema_version(self) -> int:
        return int(self.get_meta("schema_version"))

    @property
    @_reads
    def run_id(self) -> str | None:
        """The run's id (a uuid set when the search starts; None in a store from before run ids)."""
        return self.get_meta("run_id")

    @property
    @_reads
    def progress(self) -> Progress:
        """Rounds the store has recorded as ended, and the samples they drew (0, 0 for a fresh run)."""
        return Progress(**self.get_meta("progress", {}))

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

    def record_samples(self, samples: Sequence[SampleRecord]) -> int:
        """Write consecutive samples whose rules are stored, in one transaction (see `record_round`)."""
        return self.record_round(samples)

    def record_round(
        self,
        samples: Sequence[SampleRecord],
        updates: Sequence[Mapping[str, float]] = (),
        ended_round: int | None = None,
    ) -> int:
        """Write a round's samples (consecutive indices), its controller update statistics and, when
        `ended_round` is given, the progress it made, all in one transaction; returns the index one past
        the round's last sample.

        Samples already stored at those indices (the same round drawn again after a crash) are checked,
        not added: if they are the same draws the round is recorded where it is; if they differ (a
        strategy that draws differently after a resume) they stay, and the round goes after them.
        Either way no row is removed and the samples stay a gap-free prefix 0..n-1.
        """
        if not samples and ended_round is None:
            return self.next_sample_index()
        with self._write():
            first = samples[0].idx if samples else self.next_sample_index()
            samples = self._placed(samples, first)
            end = samples[-1].idx + 1 if samples else first
            now = _now()
            stored = self.next_sample_index()  # rows below this are the same draws, already there
            self._db.executemany(_INSERT_SAMPLE, [_sample_params(s, now) for s in samples if s.idx >= stored])
            if ended_round is not None:
                self._db.executemany(_INSERT_UPDATE, [(ended_round, i, json.dumps(dict(u)))
                                                      for i, u in enumerate(updates)])
                progress = json.dumps(dataclasses.asdict(Progress(ended_round + 1, end)))
                self._db.execute("INSERT INTO meta (key, value) VALUES ('progress', ?) "
                                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (progress,))
        return end

    def record_updates(self, rows: Sequence[tuple[int, int, Mapping[str, float]]]) -> None:
        """Write (round, step, statistics) rows of controller updates; rows already there stand."""
        with self._write():
            self._db.executemany(_INSERT_UPDATE, [(r, i, json.dumps(dict(u))) for r, i, u in rows])

    def _placed(self, samples: Sequence[SampleRecord], first: int) -> list[SampleRecord]:
        """`samples` where they go: at their own indices if the rows there are the same draws, else
        renumbered to follow the last stored sample."""
        for i, s in enumerate(samples):
            if s.idx != first + i:
                raise ValueError(f"sample indices must be consecutive: {s.idx} after {first + i - 1}")
        next_free = self.next_sample_index()
        if first > next_free:
            raise ValueError(f"sample {first} would leave a gap after sample {next_free - 1}")
        rows = self._db.execute("SELECT * FROM samples WHERE idx >= ? ORDER BY idx LIMIT ?",
                                (first, len(samples))).fetchall()
        if all(_same_draw(row, s) for row, s in zip(rows, samples)):
            return list(samples)
        return [dataclasses.replace(s, idx=next_free + i) for i, s in enumerate(samples)]

    # -- reading -------------------------------------------------------------------------------------

    @_reads
    def lookup(self, key: str, fingerprint: str | None) -> StoredRule | None:
        """The stored rule with this key, else the first stored with this fingerprint, else None."""
        row = self._db.execute("SELECT * FROM rules WHERE key = ?", (key,)).fetchone()
        if row is None and fingerprint is not None:
            row = self._db.execute(
                "SELECT * FROM rules WHERE fingerprint = ? ORDER BY rowid LIMIT 1", (fingerprint,)
            ).fetchone()
        return None if row is None else _stored_rule(row)

    @_reads
    def next_sample_index(self) -> int:
        """One past the largest sample index recorded (0 for a fresh run).

        Assign indices when recording, not when drawing, and the table stays a gap-free prefix
        0..n-1 even when evaluations finish out of order or the run is killed and resumed.
        """
        row = self._db.execute("SELECT MAX(idx) AS m FROM samples").fetchone()
        return 0 if row["m"] is None else int(row["m"]) + 1

    @_reads
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

    @_reads
    def sample_keys(self, before: int) -> dict[str, str]:
        """The rules drawn by samples with index < `before`: key -> status."""
        rows = self._db.execute(
            "SELECT DISTINCT r.key, r.status FROM samples s JOIN rules r ON r.key = s.rule_key WHERE s.idx < ?",
            (before,),
        ).fetchall()
        return {row["key"]: row["status"] for row in rows}

    @_reads
    def n_samples(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    @_reads
    def n_cache_hits(self) -> int:
        """Samples whose rule was already stored when drawn."""
        return int(self._db.execute("SELECT COUNT(*) FROM samples WHERE cache_hit").fetchone()[0])

    @_reads
    def top(self, k: int, status: str | None = "ok") -> list[StoredRule]:
        """The `k` best rules: those trained at the longest length first, each ranked by its score
        at the longest length it reached (its `result` is that training's, `epochs` its length);
        then by reward at the search's length (ties: first evaluated first). `status` filters on
        the status at that longest length (`None`: any status). Reads the promoted rules and at most
        k + their number of the others, not the whole table."""
        longer = self.lengths()
        promoted = []
        for key, results in longer.items():
            row = self._db.execute("SELECT rowid AS n, * FROM rules WHERE key = ?", (key,)).fetchone()
            epochs, result = max(results.items())
            if row is not None and (status is None or result.status == status):
                base = _stored_rule(row)
                stored = dataclasses.replace(base, result=result, epochs=epochs, search_result=base.result)
                promoted.append(((epochs, result.reward, -row["n"]), stored))
        promoted.sort(key=lambda t: t[0], reverse=True)
        out = [stored for _, stored in promoted[:k]]
        where, params = ("", ()) if status is None else ("WHERE status = ?", (status,))
        rows = self._db.execute(f"SELECT * FROM rules {where} ORDER BY reward DESC, rowid LIMIT ?",
                                (*params, max(0, k - len(out)) + len(longer))).fetchall()
        out += [_stored_rule(r) for r in rows if r["key"] not in longer]
        return out[:k]

    @_reads
    def recent_val_curves(self, n: int) -> list[tuple[tuple[int, float], ...]]:
        """The validation curves of the last `n` distinct trained rules that recorded samples point
        at (rounds already finished), newest first: what a hurdle threshold is taken from. Rules of a
        round still running are left out, so a replayed round sees what its first attempt saw."""
        rows = self._db.execute(
            "SELECT r.val_curve FROM rules r JOIN (SELECT rule_key, MAX(idx) AS last FROM samples "
            "WHERE rule_key IS NOT NULL GROUP BY rule_key) s ON s.rule_key = r.key "
            "WHERE r.status != 'rejected' ORDER BY s.last DESC LIMIT ?", (n,)).fetchall()
        return [tuple((int(step), float(acc)) for step, acc in json.loads(row[0])) for row in rows]

    @_reads
    def rules(self) -> Iterator[StoredRule]:
        """Every stored rule, in the order first evaluated."""
        for row in self._iterate("SELECT * FROM rules ORDER BY rowid"):
            yield _stored_rule(row)

    @_reads
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

    @_reads
    def updates(self) -> Iterator[tuple[int, int, dict[str, float]]]:
        """Every controller update as (round, step within the round, statistics), in order.

        Empty for a store from before the updates table (schema 1), which is read as it is.
        """
        if "updates" not in self._tables():
            return
        for row in self._iterate("SELECT * FROM updates ORDER BY round, idx"):
            yield row["round"], row["idx"], json.loads(row["stats"])

    # -- lengths (multi-fidelity promotion) ------------------------------------------------------------

    def record_length(self, key: str, epochs: float, round_: int, result: EvalResult) -> bool:
        """Write one training of rule `key` at `epochs` (promoted in round `round_`), in one
        transaction; False, writing nothing, when that (rule, length) is already stored."""
        with self._write():
            cursor = self._db.execute(
                "INSERT INTO lengths (key, epochs, round, result, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING", (key, float(epochs), int(round_), json.dumps(result.to_dict()), _now()))
        return cursor.rowcount == 1

    def record_variant(self, key: str, parent: str, round_: int) -> None:
        """Note that rule `key` is a decayed variant of rule `parent`, made in round `round_`."""
        with self._write():
            self._db.execute("INSERT INTO variants (key, parent, round) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                             (key, parent, int(round_)))

    @_reads
    def lengths(self, before_round: int | None = None) -> dict[str, dict[float, EvalResult]]:
        """rule key -> {epochs: result} of every training past the search's length (those promoted
        before round `before_round` when given). Empty for a store from before lengths (schema < 3)."""
        if "lengths" not in self._tables():
            return {}
        where, params = ("", ()) if before_round is None else ("WHERE round < ?", (before_round,))
        out: dict[str, dict[float, EvalResult]] = {}
        for row in self._db.execute(f"SELECT key, epochs, result FROM lengths {where} ORDER BY rowid", params):
            out.setdefault(row["key"], {})[float(row["epochs"])] = EvalResult.from_dict(json.loads(row["result"]))
        return out

    @_reads
    def variants(self, before_round: int | None = None) -> dict[str, str]:
        """variant key -> the key of the rule it decays (those made before round `before_round`)."""
        if "variants" not in self._tables():
            return {}
        where, params = ("", ()) if before_round is None else ("WHERE round < ?", (before_round,))
        return {row["key"]: row["parent"] for row in self._db.execute(f"SELECT key, parent FROM variants {where}",
                                                                       params)}

    @_reads
    def n_promoted(self, before_round: int | None = None) -> int:
        """Trainings the promotions cost: every training at a longer length, and the decayed variants'
        trainings at the search's length (those of rounds before `before_round` when given)."""
        return self._count("lengths", before_round) + self._count("variants", before_round)

    @_reads
    def n_trainings(self) -> int:
        """Trainings of every length: the rules trained at the search's length and every longer one."""
        return self.n_evaluations() + self._count("lengths")

    def _count(self, table: str, before_round: int | None = None) -> int:
        """Rows of `table` (lengths or variants; 0 in a store from before them), those of rounds before
        `before_round` when given."""
        if table not in self._tables():
            return 0
        where, params = ("", ()) if before_round is None else (" WHERE round < ?", (before_round,))
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}{where}", params).fetchone()[0])

    # -- trainings (confirm, transfer) ---------------------------------------------------------------

    def record_training(self, training: TrainingRow) -> bool:
        """Write one finished training of a study, in one transaction; its `created_at` is set now.

        Returns False, writing nothing, when the store already holds that (study, key, task, seed):
        a resumed study trains only what is missing, and a training is never recorded twice.
        """
        row = {**dataclasses.asdict(training), "created_at": _now()}
        row["metrics"] = json.dumps(training.metrics)
        with self._write():
            cursor = self._db.execute(_INSERT_TRAINING, row)
        return cursor.rowcount == 1

    @_reads
    def trainings(self, study: str | None = None) -> list[TrainingRow]:
        """The trainings of `study` (every study when None), in the order they were recorded.

        Empty for a store from before the trainings table (schema 1), which is read as it is.
        """
        if "trainings" not in self._tables():
            return []
        where, params = ("", ()) if study is None else ("WHERE study = ?", (study,))
        rows = self._db.execute(f"SELECT * FROM trainings {where} ORDER BY id", params).fetchall()
        return [TrainingRow(**{c: r[c] for c in _TRAINING_COLUMNS if c != "metrics"},
                            metrics=json.loads(r["metrics"])) for r in rows]

    # -- helpers -------------------------------------------------------------------------------------

    @_reads
    def _tables(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

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
        if self.readonly:
            raise StoreError(f"run store {self.path} is open read-only")
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


def _connect(path: Path, target: str, setup: Callable[[sqlite3.Connection], None],
             uri: bool = False) -> sqlite3.Connection:
    """A connection to the store at `path` (`target`: the file, or a URI) on which `setup` ran; SQLite's
    complaints become a StoreError naming the file, and a connection that fails `setup` is closed."""
    try:
        db = sqlite3.connect(target, uri=uri, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open run store {path}: {e}") from None
    db.row_factory = sqlite3.Row
    try:
        setup(db)
    except StoreError:
        db.close()
        raise
    except sqlite3.Error as e:
        db.close()
        raise StoreError(f"{path} is not a readable run store: {e}") from None
    return db


def _refuse_newer(version: int, path: Path) -> None:
    if version > len(MIGRATIONS):
        raise StoreError(f"{path} has store schema version {version}, but this nos-symbolic reads versions up "
                         f"to {len(MIGRATIONS)}; open it with a newer nos-symbolic")


def _store_path(path: Path | str) -> Path:
    path = Path(path)
    return path / STORE_FILENAME if path.is_dir() else path


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
        _refuse_newer(version, path)
        for v in range(version, latest):
            MIGRATIONS[v](db)
        if version < latest:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(latest),),
            )


def _read_version(db: sqlite3.Connection, path: Path) -> int:
    """The store's schema version (0 for an empty file); StoreError for a database that is no store."""
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
        "val_curve": json.dumps([list(point) for point in result.val_curve]),
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


def _same_draw(row: sqlite3.Row, s: SampleRecord) -> bool:
    return (row["strategy"], tuple(json.loads(row["tokens"])), row["rule_key"], row["reward"],
            bool(row["cache_hit"])) == (s.strategy, tuple(int(t) for t in s.tokens), s.rule_key, s.reward,
                                        bool(s.cache_hit))


def _stored_rule(row: sqlite3.Row) -> StoredRule:
    result = EvalResult(
        status=row["status"],
        reward=row["reward"],
        lr=row["lr"],
        val_acc=row["val_acc"],
        test_acc=row["test_acc"],
        loss_curve=tuple(json.loads(row["loss_curve"])),
        # A v1 store read without migrating (read-only) has no val_curve column.
        val_curve=tuple((int(step), float(acc)) for step, acc in
                        json.loads(row["val_curve"] if "val_curve" in row.keys() else "[]")),
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
