"""The run store's schema: the migrations that build it, version by version (controller/store.py
runs them; SCHEMA_VERSION is the version this release writes)."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable

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


def _create_v2(db: sqlite3.Connection) -> None:
    """Controller update statistics (once a side file), the trainings of confirm / transfer, and each
    rule's per-epoch validation curve (the hurdle protocol's thresholds come from it)."""
    if "val_curve" not in {row[1] for row in db.execute("PRAGMA table_info(rules)")}:
        db.execute("ALTER TABLE rules ADD COLUMN val_curve TEXT NOT NULL DEFAULT '[]'")
    db.execute(
        """CREATE TABLE updates (
            round INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            stats TEXT NOT NULL,
            PRIMARY KEY (round, idx))"""
    )
    # One row per finished training of a study (`confirm`, `transfer`): a rule or baseline, on a task,
    # with one seed. The unique key makes a resumed study skip what it already trained.
    db.execute(
        """CREATE TABLE trainings (
            id INTEGER PRIMARY KEY,
            study TEXT NOT NULL,
            rule TEXT NOT NULL,
            key TEXT NOT NULL,
            source TEXT NOT NULL,
            task TEXT NOT NULL,
            seed INTEGER NOT NULL,
            status TEXT NOT NULL,
            lr REAL,
            val_acc REAL,
            test_acc REAL,
            metrics TEXT NOT NULL,
            seconds REAL NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (study, key, task, seed))"""
    )


def _create_v3(db: sqlite3.Connection) -> None:
    """Multi-fidelity search: a rule's trainings at lengths past the search's own (`lengths`, one row
    per rule and length, with the round that promoted it), and the decayed variants of promoted
    rules (`variants`: the rule, the rule it decays and the round that made it)."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS lengths (
            key TEXT NOT NULL REFERENCES rules (key),
            epochs REAL NOT NULL,
            round INTEGER NOT NULL,
            result TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (key, epochs))"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS variants (
            key TEXT PRIMARY KEY REFERENCES rules (key),
            parent TEXT NOT NULL,
            round INTEGER NOT NULL)"""
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_v1, _create_v2, _create_v3]
SCHEMA_VERSION = len(MIGRATIONS)
