"""The run store's SQLite plumbing: connections, transactions, and the checks that a file is a run
store this release reads, made before anything can change it (controller/store.py builds the RunStore
API on these; nothing else imports sqlite3).

A writer's connection is in WAL mode with `synchronous=FULL` and migrated to the latest schema; a
reader's never writes, never changes the journal mode and, with no writer about, opens the file as
immutable so not even SQLite's side files appear.
"""
from __future__ import annotations

import functools
import inspect
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller import schema
from nos_symbolic.errors import NosError

STORE_FILENAME = "store.sqlite"
_SQLITE_HEADER = b"SQLite format 3\x00"
_WAL_VERSION_BYTE = 18  # the header's "file format write version": 2 in WAL mode, 1 otherwise
# Long enough to outwait an analysis reader's checkpoint, short enough to surface a stuck lock.
_BUSY_TIMEOUT_S = 30.0
# What a damaged or foreign store's rows raise when read: SQLite's errors, a missing column (IndexError),
# a value of the wrong type or unparsable JSON (TypeError, ValueError, KeyError).
_READ_ERRORS = (sqlite3.Error, IndexError, KeyError, TypeError, ValueError)

Connection = sqlite3.Connection  # for the type hints of modules that need no more of sqlite3


class StoreError(NosError):
    """The store cannot be opened or written; the message names the file and what to do."""


def store_path(path: Path | str) -> Path:
    """The store file of `path`: the file itself, or `store.sqlite` in a directory."""
    path = Path(path)
    return path / STORE_FILENAME if path.is_dir() else path


def connect_writer(path: Path) -> sqlite3.Connection:
    """A connection that writes the store at `path`, creating a missing file and migrating an older
    schema of this release's line; a file that is not a run store, or one of a version this release
    does not read, raises StoreError untouched."""
    _check_header(path)

    def setup(db: sqlite3.Connection) -> None:
        _check_version(_read_version(db, path), path)  # refused before anything below changes it
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"cannot put run store {path} in WAL mode (got {mode!r})")
        # FULL syncs the WAL on every commit: one fsync per evaluation is cheap beside training a
        # network, and it makes "a commit survived" hold through power loss, not just kill -9.
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        _migrate(db, path)

    return _connect(path, str(path), setup)


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the existing store at `path`, even while a search writes it.

    With no writer about (no `-wal` file) the file is opened immutable; a writer that starts during
    the read leaves the main file alone until its first checkpoint, a thousand pages later.
    """
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
        _check_version(version, path)

    return _connect(path, uri, setup, uri=True)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction, rolled back when anything in it raises."""
    # IMMEDIATE takes the write lock up front, so a second writer fails here, not half-way through.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@contextmanager
def writing(db: sqlite3.Connection, path: Path) -> Iterator[None]:
    """One write transaction on the store at `path`; SQLite's complaints become a StoreError naming it."""
    try:
        with transaction(db):
            yield
    except sqlite3.Error as e:
        raise StoreError(f"cannot write to run store {path}: {e}") from None


def reads(method: Callable) -> Callable:
    """Make a RunStore reading method (a plain one or a generator) turn a damaged store's errors into a
    StoreError that names the file (`self.path`) and the way out."""
    def refuse(self: Any, err: Exception) -> StoreError:
        return StoreError(f"cannot read run store {self.path} ({type(err).__name__}: {' '.join(str(err).split())}); "
                          f"it is damaged or not a run store this release reads: restore it from a backup, "
                          f"or pass another run directory")

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generate(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except StoreError:
                raise
            except _READ_ERRORS as err:
                raise refuse(self, err) from None
        return generate

    @functools.wraps(method)
    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except _READ_ERRORS as err:
            raise refuse(self, err) from None
    return read


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


def _check_header(path: Path) -> None:
    """Refuse a non-SQLite file before SQLite sees it, so the file is never touched."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if head and head != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a run store (not a SQLite database); pass a run directory "
                         f"or a {STORE_FILENAME} file")


def _check_version(version: int, path: Path) -> None:
    """Refuse a store this release does not read: one of a newer release, or of an earlier one
    from before FIRST_VERSION (which is not converted: a new run is the way on)."""
    latest = schema.latest_version()
    if version > latest:
        raise StoreError(f"{path} has store schema version {version}, but this nos-symbolic reads versions up "
                         f"to {latest}; open it with a newer nos-symbolic")
    if version != 0 and version < schema.FIRST_VERSION:
        readable = (f"version {latest}" if latest == schema.FIRST_VERSION
                    else f"versions {schema.FIRST_VERSION} to {latest}")
        raise StoreError(f"{path} was written by store schema version {version} (an earlier nos-symbolic); this "
                         f"version reads {readable}: start a new run (nos search) or use the nos-symbolic that "
                         f"wrote it")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the store to the latest schema version (a new file: create it)."""
    # Read the version inside the write transaction so two processes opening a store cannot both
    # migrate it.
    with transaction(db):
        version = _read_version(db, path)
        _check_version(version, path)
        steps = schema.migrations_from(version)
        for statements in steps:
            for statement in statements:
                db.execute(statement)
        if steps:
            db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (json.dumps(schema.latest_version()),))


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
