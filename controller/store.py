"""The run store: one SQLite file holding everything a search run has learnt.

`rules` has one row per distinct rule evaluated (keyed by the rule's canonical key, findable by its
fingerprint), so a rule the search draws again is a cache hit, not a second training run. `samples`
has one row per sample the search drew, in draw order, pointing at the rule it produced. `updates`
holds the controller's statistics of each learning step (pg_loss, entropy, ...), by round. `lengths`
holds the trainings of promoted rules at lengths past the search's own (one row per rule and length,
with the round that promoted it) and `variants` the decayed variants trained beside them
(controller/promotion.py); `top` ranks by the longest length a rule reached. `trainings` holds the
studies' runs (confirm, transfer). `meta` holds the schema version, the run's id (a uuid its controller
checkpoint repeats) and the round the store has recorded up to (`progress`).

The row types and their mapping to columns are controller/rows.py, the schema controller/schema.py,
the SQLite plumbing controller/store_db.py; this module is the API on top.

Crash safety comes from SQLite itself: the file is in WAL mode with `synchronous=FULL` and every write
below is one explicit transaction, so a process killed mid-write (kill -9, power loss) loses at most
the transaction in flight and never leaves half of one behind. Nothing is ever deleted: a round's
samples, its update statistics and the progress it made are one transaction, and writing the same
samples again (a replayed round) checks them against the rows there instead of adding rows.

One process writes a run (the search, under the run directory's lock); every other command reads it
through `RunStore.open_readonly`, which never writes.

    with RunStore.open(run_dir) as store:
        hit = store.lookup(rule.key, rule.fingerprint)
        ...
        store.record_evaluation(record, result, waiting_samples)
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.rows import (LENGTHS, META, RULES, SAMPLES, TRAININGS, UPDATES, VARIANTS, LengthRow, MetaRow,
                             RecordedRounds, RuleRecord, SampleRecord, SampleRow, StoredRule, TrainingRow, UpdateRow,
                             VariantRow)
from controller.schema import MIGRATIONS, SCHEMA_VERSION
from controller.store_db import (STORE_FILENAME, Connection, StoreError, connect_reader, connect_writer, reads,
                                 store_path, writing)
from nos_symbolic.result import EvalResult

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "STORE_FILENAME", "RecordedRounds", "RuleRecord", "RunStore", "SampleRecord",
           "SampleRow", "StoreError", "StoredRule", "TrainingRow"]

_FETCH_CHUNK = 500
# On re-evaluation every column but the first sighting's timestamp is replaced.
_UPSERT_RULE = RULES.upsert_sql("key", keep=("created_at",))
_INSERT_SAMPLE = SAMPLES.insert_sql()
_SET_META = META.upsert_sql("key")
# A replayed round writes its update statistics again, a resumed study a training again: the first
# write stands.
_INSERT_UPDATE = UPDATES.insert_sql("ON CONFLICT DO NOTHING")
_INSERT_TRAINING = TRAININGS.insert_sql("ON CONFLICT DO NOTHING")
_INSERT_LENGTH = LENGTHS.insert_sql("ON CONFLICT DO NOTHING")
_INSERT_VARIANT = VARIANTS.insert_sql("ON CONFLICT DO NOTHING")


class RunStore:
    """A search run's SQLite store. Open with `RunStore.open`; use as a context manager."""

    def __init__(self, db: Connection, path: Path, readonly: bool = False) -> None:
        self._db = db
        self.path = path
        self.readonly = readonly

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str) -> RunStore:
        """Open the store at `path` (the file, or an existing run directory holding `store.sqlite`).

        A missing file is created; a store of an earlier version of this schema is migrated in place;
        one this release does not read (a newer release's, or an earlier one's), or a file that is not
        a run store, raises `StoreError` without touching the file.
        """
        path = store_path(path)
        return cls(connect_writer(path), path)

    @classmethod
    def open_readonly(cls, path: Path | str) -> RunStore:
        """Open an existing store for reading only (`nos top`, analysis), even while a search writes it.

        The file is never written: no migration, no journal-mode change, no side files, and every write
        method raises `StoreError`.
        """
        path = store_path(path)
        return cls(connect_reader(path), path, readonly=True)

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
        self.set_meta_items({key: value})

    def set_meta_items(self, items: Mapping[str, Any]) -> None:
        """Store several JSON-serialisable values in one transaction."""
        if "schema_version" in items:
            raise ValueError("'schema_version' is managed by the store and cannot be set")
        rows = [META.to_params(MetaRow(key, value)) for key, value in items.items()]
        with self._write():
            self._db.executemany(_SET_META, rows)

    @reads
    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under `key`, or `default`."""
        row = self._db.execute("SELECT * FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else META.from_row(row).value

    @property
    @reads
    def schema_version(self) -> int:
        return int(self.get_meta("schema_version"))

    @property
    @reads
    def run_id(self) -> str | None:
        """The run's id (a uuid the search sets when it starts; None before that)."""
        return self.get_meta("run_id")

    @property
    @reads
    def progress(self) -> RecordedRounds:
        """Rounds the store has recorded as ended, and the samples they drew (0, 0 for a fresh run)."""
        return RecordedRounds(**self.get_meta("progress", {}))

    # -- writing -------------------------------------------------------------------------------------

    def record_evaluation(self, rule_row: RuleRecord, result: EvalResult, samples: Sequence[SampleRecord]) -> None:
        """Write a rule's evaluation and the samples that waited on it, in one transaction.

        Recording a key again (a re-evaluation) replaces the row but keeps its `created_at`.
        """
        for s in samples:
            if s.rule_key != rule_row.key:
                raise ValueError(
                    f"sample {s.idx} points at rule {s.rule_key!r}, not the rule being recorded "
                    f"({rule_row.key!r})"
                )
        result = dataclasses.replace(result, reward=_finite("reward", result.reward))
        now = _now()
        row = RULES.to_params(dataclasses.replace(rule_row, result=result, created_at=now, updated_at=now))
        sample_rows = [_sample_params(s, now) for s in samples]
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
                self._db.executemany(_INSERT_UPDATE, [UPDATES.to_params(UpdateRow(ended_round, i, dict(u)))
                                                      for i, u in enumerate(updates)])
                progress = dataclasses.asdict(RecordedRounds(ended_round + 1, end))
                self._db.execute(_SET_META, META.to_params(MetaRow("progress", progress)))
        return end

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
        if all(_same_draw(SAMPLES.from_row(row), s) for row, s in zip(rows, samples)):
            return list(samples)
        return [dataclasses.replace(s, idx=next_free + i) for i, s in enumerate(samples)]

    # -- reading -------------------------------------------------------------------------------------

    @reads
    def lookup(self, key: str, fingerprint: str | None) -> StoredRule | None:
        """The stored rule with this key, else the first stored with this fingerprint, else None."""
        row = self._db.execute("SELECT * FROM rules WHERE key = ?", (key,)).fetchone()
        if row is None and fingerprint is not None:
            row = self._db.execute(
                "SELECT * FROM rules WHERE fingerprint = ? ORDER BY rowid LIMIT 1", (fingerprint,)
            ).fetchone()
        return None if row is None else RULES.from_row(row)

    @reads
    def next_sample_index(self) -> int:
        """One past the largest sample index recorded (0 for a fresh run).

        Assign indices when recording, not when drawing, and the table stays a gap-free prefix
        0..n-1 even when evaluations finish out of order or the run is killed and resumed.
        """
        row = self._db.execute("SELECT MAX(idx) AS m FROM samples").fetchone()
        return 0 if row["m"] is None else int(row["m"]) + 1

    @reads
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

    @reads
    def sample_keys(self, before: int) -> dict[str, str]:
        """The rules drawn by samples with index < `before`: key -> status."""
        rows = self._db.execute(
            "SELECT DISTINCT r.key, r.status FROM samples s JOIN rules r ON r.key = s.rule_key WHERE s.idx < ?",
            (before,),
        ).fetchall()
        return {row["key"]: row["status"] for row in rows}

    @reads
    def n_samples(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    @reads
    def n_cache_hits(self) -> int:
        """Samples whose rule was already stored when drawn."""
        return int(self._db.execute("SELECT COUNT(*) FROM samples WHERE cache_hit").fetchone()[0])

    @reads
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
                base = RULES.from_row(row)
                stored = dataclasses.replace(base, result=result, epochs=epochs, search_result=base.result)
                promoted.append(((epochs, result.reward, -row["n"]), stored))
        promoted.sort(key=lambda t: t[0], reverse=True)
        out = [stored for _, stored in promoted[:k]]
        where, params = ("", ()) if status is None else ("WHERE status = ?", (status,))
        rows = self._db.execute(f"SELECT * FROM rules {where} ORDER BY reward DESC, rowid LIMIT ?",
                                (*params, max(0, k - len(out)) + len(longer))).fetchall()
        out += [RULES.from_row(r) for r in rows if r["key"] not in longer]
        return out[:k]

    @reads
    def recent_val_curves(self, n: int) -> list[tuple[tuple[int, float], ...]]:
        """The validation curves of the last `n` distinct trained rules that recorded samples point
        at (rounds already finished), newest first: what a hurdle threshold is taken from. Rules of a
        round still running are left out, so a replayed round sees what its first attempt saw."""
        rows = self._db.execute(
            "SELECT r.* FROM rules r JOIN (SELECT rule_key, MAX(idx) AS last FROM samples "
            "WHERE rule_key IS NOT NULL GROUP BY rule_key) s ON s.rule_key = r.key "
            "WHERE r.status != 'rejected' ORDER BY s.last DESC LIMIT ?", (n,)).fetchall()
        return [RULES.from_row(row).result.val_curve for row in rows]

    @reads
    def rules(self) -> Iterator[StoredRule]:
        """Every stored rule, in the order first evaluated."""
        for row in self._iterate("SELECT * FROM rules ORDER BY rowid"):
            yield RULES.from_row(row)

    @reads
    def samples(self) -> Iterator[SampleRow]:
        """Every sample, by index."""
        for row in self._iterate("SELECT * FROM samples ORDER BY idx"):
            yield SAMPLES.from_row(row)

    @reads
    def updates(self) -> Iterator[tuple[int, int, dict[str, float]]]:
        """Every controller update as (round, step within the round, statistics), in order."""
        for row in self._iterate("SELECT * FROM updates ORDER BY round, idx"):
            update = UPDATES.from_row(row)
            yield update.round, update.idx, update.stats

    # -- lengths (multi-fidelity promotion) ------------------------------------------------------------

    def record_length(self, key: str, epochs: float, round_: int, result: EvalResult) -> bool:
        """Write one training of rule `key` at `epochs` (promoted in round `round_`), in one
        transaction; False, writing nothing, when that (rule, length) is already stored."""
        row = LENGTHS.to_params(LengthRow(key, float(epochs), int(round_), result, _now()))
        with self._write():
            cursor = self._db.execute(_INSERT_LENGTH, row)
        return cursor.rowcount == 1

    def record_variant(self, key: str, parent: str, round_: int) -> None:
        """Note that rule `key` is a decayed variant of rule `parent`, made in round `round_`."""
        with self._write():
            self._db.execute(_INSERT_VARIANT, VARIANTS.to_params(VariantRow(key, parent, int(round_))))

    @reads
    def lengths(self, before_round: int | None = None) -> dict[str, dict[float, EvalResult]]:
        """rule key -> {epochs: result} of every training past the search's length (those promoted
        before round `before_round` when given)."""
        out: dict[str, dict[float, EvalResult]] = {}
        for row in self._rows_before("lengths", before_round, "ORDER BY rowid"):
            length = LENGTHS.from_row(row)
            out.setdefault(length.key, {})[float(length.epochs)] = length.result
        return out

    @reads
    def variants(self, before_round: int | None = None) -> dict[str, str]:
        """variant key -> the key of the rule it decays (those made before round `before_round`)."""
        return {v.key: v.parent for v in map(VARIANTS.from_row, self._rows_before("variants", before_round))}

    @reads
    def n_promoted(self, before_round: int | None = None) -> int:
        """Trainings the promotions cost: every training at a longer length, and the decayed variants'
        trainings at the search's length (those of rounds before `before_round` when given)."""
        return self._count("lengths", before_round) + self._count("variants", before_round)

    @reads
    def n_trainings(self) -> int:
        """Trainings of every length: the rules trained at the search's length and every longer one."""
        return self.n_evaluations() + self._count("lengths")

    def _rows_before(self, table: str, before_round: int | None, order: str = "") -> list[Any]:
        """The rows of `table` (lengths or variants), those of rounds before `before_round` when given."""
        where, params = ("", ()) if before_round is None else ("WHERE round < ?", (before_round,))
        return self._db.execute(f"SELECT * FROM {table} {where} {order}", params).fetchall()

    def _count(self, table: str, before_round: int | None = None) -> int:
        """Rows of `table` (lengths or variants), those of rounds before `before_round` when given."""
        where, params = ("", ()) if before_round is None else (" WHERE round < ?", (before_round,))
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}{where}", params).fetchone()[0])

    # -- trainings (confirm, transfer) ---------------------------------------------------------------

    def record_training(self, training: TrainingRow) -> bool:
        """Write one finished training of a study, in one transaction; its `created_at` is set now.

        Returns False, writing nothing, when the store already holds that (study, key, task, seed):
        a resumed study trains only what is missing, and a training is never recorded twice.
        """
        row = TRAININGS.to_params(dataclasses.replace(training, created_at=_now()))
        with self._write():
            cursor = self._db.execute(_INSERT_TRAINING, row)
        return cursor.rowcount == 1

    @reads
    def trainings(self, study: str | None = None) -> list[TrainingRow]:
        """The trainings of `study` (every study when None), in the order they were recorded."""
        where, params = ("", ()) if study is None else ("WHERE study = ?", (study,))
        rows = self._db.execute(f"SELECT * FROM trainings {where} ORDER BY id", params).fetchall()
        return [TRAININGS.from_row(r) for r in rows]

    # -- helpers -------------------------------------------------------------------------------------

    def _iterate(self, sql: str) -> Iterator[Any]:
        """The rows of a query, fetched a chunk at a time (a long run's samples need not fit in memory)."""
        cursor = self._db.execute(sql)
        try:
            while chunk := cursor.fetchmany(_FETCH_CHUNK):
                yield from chunk
        finally:
            cursor.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction; refused on a store opened read-only."""
        if self.readonly:
            raise StoreError(f"run store {self.path} is open read-only")
        with writing(self._db, self.path):
            yield


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _finite(name: str, x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return float(x)


def _sample_params(s: SampleRecord, now: str) -> dict[str, Any]:
    return SAMPLES.to_params(dataclasses.replace(s, idx=int(s.idx), reward=_finite("reward", s.reward),
                                                 created_at=now))


def _same_draw(stored: SampleRow, s: SampleRecord) -> bool:
    """Whether a stored sample is the draw `s` (its index and timestamp aside)."""
    return (stored.strategy, stored.tokens, stored.rule_key, stored.reward, stored.cache_hit) == (
        s.strategy, tuple(int(t) for t in s.tokens), s.rule_key, s.reward, bool(s.cache_hit))
