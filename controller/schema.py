"""The run store's schema: the SQL that builds it, version by version (controller/store_db.py runs it).

MIGRATIONS[0] creates the whole schema of version FIRST_VERSION in a new file; MIGRATIONS[i] takes a
store at version FIRST_VERSION + i - 1 to the next. Add a version by appending a tuple of statements
(and the matching field to a row type of controller/rows.py); never edit one that has shipped, since
the run directories written with it replay the ones after it. A store of a version before
FIRST_VERSION was written by an earlier, unreleased nos-symbolic and is refused, not converted.

Each migration is plain SQL, run in one transaction, so this module never touches SQLite itself.
"""
from __future__ import annotations

FIRST_VERSION = 4

# rules: one row per distinct rule evaluated, the result's fields as columns (controller/rows.py's
# StoredRule); samples: one per draw of the search, in order; updates: the controller's statistics of
# each learning step; trainings: the studies' (confirm, transfer) runs, unique so a resumed study skips
# what it trained; lengths: promoted rules trained past the search's length; variants: the decayed
# variants of promoted rules.
_CREATE = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
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
        val_curve TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX rules_fingerprint ON rules (fingerprint)",
    """CREATE TABLE samples (
        idx INTEGER PRIMARY KEY,
        strategy TEXT NOT NULL,
        tokens TEXT NOT NULL,
        rule_key TEXT REFERENCES rules (key),
        reward REAL NOT NULL,
        cache_hit INTEGER NOT NULL,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE updates (
        round INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        stats TEXT NOT NULL,
        PRIMARY KEY (round, idx))""",
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
        UNIQUE (study, key, task, seed))""",
    """CREATE TABLE lengths (
        key TEXT NOT NULL REFERENCES rules (key),
        epochs REAL NOT NULL,
        round INTEGER NOT NULL,
        result TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (key, epochs))""",
    """CREATE TABLE variants (
        key TEXT PRIMARY KEY REFERENCES rules (key),
        parent TEXT NOT NULL,
        round INTEGER NOT NULL)""",
)

MIGRATIONS: list[tuple[str, ...]] = [_CREATE]
SCHEMA_VERSION = FIRST_VERSION + len(MIGRATIONS) - 1  # the version this release writes


def latest_version() -> int:
    """The version the migrations reach (read at call time, so an appended migration counts)."""
    return FIRST_VERSION + len(MIGRATIONS) - 1


def migrations_from(version: int) -> list[tuple[str, ...]]:
    """The migrations that take a store at `version` (0: a new, empty file) to the latest version."""
    return list(MIGRATIONS) if version == 0 else MIGRATIONS[version - FIRST_VERSION + 1:]
