"""The run store: round trips, lookups, one transaction per record, versions and crash safety."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import controller.schema as schema_module
import controller.store as store_module
from controller.store import RecordedRounds, RunStore, RuleRecord, SampleRecord, StoreError
from nos_symbolic.result import EvalResult

REPO = Path(__file__).resolve().parents[2]


def rule(n: int, fingerprint: str | None = None, seed: int = 0) -> RuleRecord:
    return RuleRecord(
        key=f"key{n}",
        fingerprint=fingerprint or f"fp{n}",
        scale_fingerprint=f"sfp{n}",
        text=f"g * {n}",
        canonical=f"{n}*g",
        latex=rf"{n} g",
        seed=seed,
    )


def sample(idx: int, key: str | None, reward: float = 0.0, hit: bool = False) -> SampleRecord:
    return SampleRecord(idx=idx, strategy="random", tokens=(1, idx, 3), rule_key=key,
                        reward=reward, cache_hit=hit)


@pytest.fixture
def store(tmp_path: Path):
    with RunStore.open(tmp_path) as s:
        yield s


def test_evaluation_round_trips(tmp_path: Path):
    result = EvalResult(status="diverged", reward=0.25, lr=1e-3, val_acc=0.25, test_acc=0.2,
                        loss_curve=(2.3, 1.5, float("inf")), steps=40, seconds=1.5, seed=7,
                        reason="loss exploded")
    with RunStore.open(tmp_path) as s:
        assert s.path == tmp_path / "store.sqlite"
        s.record_evaluation(rule(1, seed=7), result, [sample(0, "key1", 0.25)])
    with RunStore.open(tmp_path / "store.sqlite") as s:
        got = s.lookup("key1", None)
        assert got is not None
        assert got.result == result
        assert (got.key, got.fingerprint, got.scale_fingerprint) == ("key1", "fp1", "sfp1")
        assert (got.text, got.canonical, got.latex, got.seed) == ("g * 1", "1*g", "1 g", 7)
        assert got.created_at.endswith("+00:00") and got.created_at == got.updated_at
        [row] = s.samples()
        assert (row.idx, row.strategy, row.tokens, row.rule_key) == (0, "random", (1, 0, 3), "key1")
        assert (row.reward, row.cache_hit) == (0.25, False)


def test_every_row_type_has_exactly_its_tables_columns(tmp_path: Path):
    """The schema and the row types agree: a field without its column (or a column without its field)
    is caught here, not in a run."""
    from controller import rows

    tables = (rows.META, rows.RULES, rows.SAMPLES, rows.UPDATES, rows.TRAININGS, rows.LENGTHS, rows.VARIANTS)
    with RunStore.open(tmp_path) as s:
        for table in tables:
            columns = {r["name"] for r in s._db.execute(f"PRAGMA table_info({table.name})")}
            assert columns - {"id"} == set(table.columns), table.name  # trainings' id: SQLite's row number


def test_lookup_by_key_then_fingerprint(store: RunStore):
    store.record_evaluation(rule(1, "shared"), EvalResult(status="ok", reward=0.5), [])
    store.record_evaluation(rule(2, "shared"), EvalResult(status="ok", reward=0.6), [])
    store.record_evaluation(rule(3), EvalResult(status="ok", reward=0.7), [])
    assert store.lookup("key3", "shared").key == "key3"  # the key wins
    assert store.lookup("unseen", "shared").key == "key1"  # first with that fingerprint
    assert store.lookup("unseen", "fp-unseen") is None
    assert store.lookup("unseen", None) is None


def test_samples_counts_and_cache_hits(store: RunStore):
    assert store.next_sample_index() == 0
    store.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5),
                            [sample(0, "key1", 0.5), sample(1, "key1", 0.5)])
    store.record_samples([sample(2, "key1", 0.5, hit=True), sample(3, None)])
    assert store.next_sample_index() == 4 and store.n_samples() == 4
    rows = list(store.samples())
    assert [r.idx for r in rows] == [0, 1, 2, 3]
    assert [r.cache_hit for r in rows] == [False, False, True, False]
    assert rows[3].rule_key is None
    assert store.n_cache_hits() == 1


def test_a_round_is_one_transaction_of_samples_updates_and_progress(store: RunStore):
    store.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [])
    assert store.progress == RecordedRounds(0, 0)
    end = store.record_round([sample(0, "key1", 0.5), sample(1, "key1", 0.5, hit=True)],
                             [{"pg_loss": 0.5}, {"pg_loss": 0.25}], ended_round=0)
    assert end == 2 and store.progress == RecordedRounds(rounds=1, samples=2)
    assert list(store.updates()) == [(0, 0, {"pg_loss": 0.5}), (0, 1, {"pg_loss": 0.25})]
    with pytest.raises(StoreError, match="FOREIGN KEY"):  # a bad sample: nothing of the round is kept
        store.record_round([sample(2, "key1"), sample(3, "no-such-rule")], [{"pg_loss": 9.0}], ended_round=1)
    assert store.progress == RecordedRounds(1, 2) and store.n_samples() == 2 and len(list(store.updates())) == 2


def test_a_replayed_round_finds_its_samples_and_adds_none(store: RunStore):
    store.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [])
    round0 = [sample(i, "key1", 0.5) for i in range(3)]
    store.record_samples(round0[:2])  # an interrupted attempt kept what had finished
    assert store.record_round(round0, [{"x": 1.0}], ended_round=0) == 3
    assert store.record_round(round0, [{"x": 2.0}], ended_round=0) == 3  # the same round once more
    assert [r.idx for r in store.samples()] == [0, 1, 2]
    assert list(store.updates()) == [(0, 0, {"x": 1.0})]  # the first write stands


def test_a_round_that_draws_differently_goes_after_the_stored_samples(store: RunStore):
    store.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [])
    store.record_samples([sample(0, "key1", 0.5), sample(1, "key1", 0.5)])
    other = [SampleRecord(i, "random", (9, 9), "key1", 0.5, False) for i in range(2)]
    assert store.record_round(other, ended_round=0) == 4
    rows = list(store.samples())
    assert [r.idx for r in rows] == [0, 1, 2, 3] and [r.tokens for r in rows] == [(1, 0, 3), (1, 1, 3), (9, 9), (9, 9)]
    assert store.progress == RecordedRounds(1, 4)
    with pytest.raises(ValueError, match="gap"):
        store.record_samples([sample(7, "key1")])


def test_sample_keys_before_an_index(store: RunStore):
    store.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [sample(0, "key1")])
    store.record_evaluation(rule(2), EvalResult(status="rejected"), [sample(1, "key2")])
    assert store.sample_keys(1) == {"key1": "ok"}
    assert store.sample_keys(5) == {"key1": "ok", "key2": "rejected"}


def test_budget_counts_and_top(store: RunStore):
    statuses = ["ok", "ok", "rejected", "diverged", "error", "ok"]
    rewards = [0.5, 0.9, 0.0, 0.3, 0.0, 0.9]
    for n, (status, reward) in enumerate(zip(statuses, rewards)):
        store.record_evaluation(rule(n), EvalResult(status=status, reward=reward), [])
    assert store.n_evaluations() == 5
    assert store.n_evaluations(count_rejected=True) == 6
    assert [r.key for r in store.top(2)] == ["key1", "key5"]  # ties: first evaluated first
    assert [r.key for r in store.top(10)] == ["key1", "key5", "key0"]
    assert [r.key for r in store.top(2, status=None)] == ["key1", "key5"]
    assert [r.key for r in store.top(5, status="diverged")] == ["key3"]
    assert [r.key for r in store.rules()] == [f"key{n}" for n in range(6)]


def test_re_evaluation_replaces_the_row_and_keeps_created_at(store: RunStore):
    store.record_evaluation(rule(1), EvalResult(status="error", reason="timed out"), [])
    first = store.lookup("key1", None)
    time.sleep(0.01)
    store.record_evaluation(rule(1), EvalResult(status="ok", reward=0.8), [])
    second = store.lookup("key1", None)
    assert second.result.status == "ok" and second.result.reward == 0.8
    assert second.created_at == first.created_at < second.updated_at
    assert store.n_evaluations() == 1


def test_a_failed_record_leaves_nothing(store: RunStore):
    store.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [sample(0, "key1")])
    # The second sample reuses index 0: the insert fails after the rule row was written.
    with pytest.raises(StoreError, match="UNIQUE"):
        store.record_evaluation(rule(2), EvalResult(status="ok", reward=0.6),
                                [sample(1, "key2"), sample(0, "key2")])
    assert store.lookup("key2", None) is None
    assert store.n_samples() == 1
    with pytest.raises(StoreError, match="FOREIGN KEY"):
        store.record_samples([sample(1, "key1"), sample(2, "no-such-rule")])
    assert store.n_samples() == 1


def test_bad_inputs_are_refused(store: RunStore):
    with pytest.raises(ValueError, match="not the rule being recorded"):
        store.record_evaluation(rule(1), EvalResult(status="ok"), [sample(0, "key2")])
    with pytest.raises(ValueError, match="reward must be finite"):
        store.record_evaluation(rule(1), EvalResult(status="ok", reward=float("nan")), [])
    with pytest.raises(ValueError, match="managed by the store"):
        store.set_meta("schema_version", 9)


def test_meta_persists(tmp_path: Path):
    with RunStore.open(tmp_path) as s:
        assert s.schema_version == store_module.SCHEMA_VERSION == 4
        s.set_meta("config", {"budget": 10, "seeds": [1, 2]})
        s.set_meta("config", {"budget": 20, "seeds": [1, 2]})
    with RunStore.open(tmp_path) as s:
        assert s.get_meta("config") == {"budget": 20, "seeds": [1, 2]}
        assert s.get_meta("missing", "default") == "default"


def _set_version(tmp_path: Path, version: int) -> None:
    db = sqlite3.connect(tmp_path / "store.sqlite", isolation_level=None)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    db.close()


def test_newer_schema_is_refused(tmp_path: Path):
    RunStore.open(tmp_path).close()
    _set_version(tmp_path, 99)
    with pytest.raises(StoreError, match=r"schema version 99.*up to 4"):
        RunStore.open(tmp_path)
    with pytest.raises(StoreError, match=r"schema version 99.*up to 4"):
        RunStore.open_readonly(tmp_path)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_store_of_an_earlier_release_is_refused_untouched_naming_its_version(tmp_path: Path, version: int):
    with RunStore.open(tmp_path) as s:
        s.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [sample(0, "key1", 0.5)])
    _set_version(tmp_path, version)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for opener in (RunStore.open, RunStore.open_readonly):
        with pytest.raises(StoreError, match=rf"store.sqlite was written by store schema version {version} "
                                             rf"\(an earlier nos-symbolic\); this version reads version 4: "
                                             rf"start a new run"):
            opener(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_later_migration_upgrades_the_store_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with RunStore.open(tmp_path) as s:
        s.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [])
    add_notes = ("ALTER TABLE rules ADD COLUMN notes TEXT NOT NULL DEFAULT ''",)
    monkeypatch.setattr(schema_module, "MIGRATIONS", [*schema_module.MIGRATIONS, add_notes])
    with RunStore.open(tmp_path) as s:
        assert s.schema_version == 5
        assert s.lookup("key1", None).result.reward == 0.5
        assert s._db.execute("SELECT notes FROM rules").fetchone()[0] == ""
    with RunStore.open(tmp_path) as s:  # opening again does not migrate twice
        assert s.schema_version == 5
    with RunStore.open_readonly(tmp_path) as s:
        assert s.schema_version == 5 and [r.key for r in s.rules()] == ["key1"]


def test_a_read_only_store_never_writes(tmp_path: Path):
    with RunStore.open(tmp_path) as s:
        s.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [sample(0, "key1", 0.5)])
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with RunStore.open_readonly(tmp_path) as s:
        assert s.readonly and s.top(1)[0].key == "key1"
        with pytest.raises(StoreError, match="read-only"):
            s.record_samples([sample(1, "key1")])
        with pytest.raises(StoreError, match="read-only"):
            s.set_meta("x", 1)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files  # not even a -wal or -shm file
    with pytest.raises(StoreError, match="no run store"):
        RunStore.open_readonly(tmp_path / "nowhere")


def test_a_read_only_store_sees_a_running_writer(tmp_path: Path):
    with RunStore.open(tmp_path) as writer:
        writer.record_evaluation(rule(1), EvalResult(status="ok", reward=0.5), [])
        with RunStore.open_readonly(tmp_path) as reader:
            assert reader.n_evaluations() == 1
            writer.record_evaluation(rule(2), EvalResult(status="ok", reward=0.6), [])
            assert reader.n_evaluations() == 2


def test_garbage_file_is_refused_untouched(tmp_path: Path):
    path = tmp_path / "store.sqlite"
    garbage = b"this is not a database\x00\xff" * 50
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match=f"{path}.*not a run store"):
        RunStore.open(tmp_path)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.sqlite"]


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    before = path.read_bytes()
    for opener in (RunStore.open, RunStore.open_readonly):
        with pytest.raises(StoreError, match="not a run store"):
            opener(path)
    assert path.read_bytes() == before  # still in rollback-journal mode: nothing switched it to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


# A writer that records evaluations as fast as it can; each transaction writes one rule row and
# BATCH samples, so a torn transaction would show as a sample count that is not a multiple of BATCH.
WRITER = textwrap.dedent("""
    import sys
    from controller.store import RunStore, RuleRecord, SampleRecord
    from nos_symbolic.result import EvalResult

    BATCH = {batch}
    with RunStore.open(sys.argv[1]) as store:
        n = store.next_sample_index()
        ready_at = n + 10 * BATCH
        while True:
            key = f"k{{n}}"
            samples = [SampleRecord(n + i, "random", (1, 2, 3) * 20, key, 0.5, False)
                       for i in range(BATCH)]
            store.record_evaluation(
                RuleRecord(key, "fp", None, "g" * 200, "g", "g", 0),
                EvalResult(status="ok", reward=0.5, loss_curve=(1.0,) * 200), samples)
            n += BATCH
            if n == ready_at:
                print("ready", flush=True)
""")


def test_kill_9_mid_write_leaves_a_consistent_store(tmp_path: Path):
    batch = 20
    code = WRITER.format(batch=batch)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for delay in (0.0, 0.1):  # two kill points; the second run resumes where the first stopped
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO,
                                stdout=subprocess.PIPE, env=env)
        watchdog = threading.Timer(60, proc.kill)  # a writer that never says ready fails, not hangs
        watchdog.start()
        try:
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(delay)
        finally:
            watchdog.cancel()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        db = sqlite3.connect(tmp_path / "store.sqlite")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            db.close()
        with RunStore.open(tmp_path) as s:
            idx = [r.idx for r in s.samples()]
            assert idx == list(range(len(idx))), "samples are not a gap-free prefix"
            assert len(idx) % batch == 0 and len(idx) == batch * s.n_evaluations()
            assert all(len(r.result.loss_curve) == 200 for r in s.rules())
