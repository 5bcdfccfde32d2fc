"""One writer per run directory: an exclusive `flock` on `D/.nos.lock`, held for a command's life.

The kernel releases a flock when its process dies, `kill -9` included, so a crashed search never
leaves a stale lock behind. The lock file holds the holder's PID and command, which a refused second
writer names:

    with run_lock(run_dir, "nos search"):
        ...  # the only process writing run_dir
"""
from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nos_symbolic.errors import NosError

LOCK_FILE = ".nos.lock"


class RunLockedError(NosError):
    """Another process holds the run directory's lock, or the lock file cannot be made there."""


@contextmanager
def run_lock(run_dir: Path | str, command: str) -> Iterator[None]:
    """Hold the run directory's exclusive lock, or raise `RunLockedError` naming its holder."""
    path = Path(run_dir) / LOCK_FILE
    fd = _open_lock_file(path, command)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunLockedError(f"{run_dir} is in use by {holder}; wait for it to finish or stop it, "
                                 f"then run the command again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({command})".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open_lock_file(path: Path, command: str) -> int:
    """The lock file's descriptor, made if missing; a directory nos cannot write is a NosError saying so."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise RunLockedError(f"{path.parent} is read-only ({reason}): {command} writes into the run "
                                 f"directory; make it writable, or copy the run somewhere writable and use "
                                 f"the copy") from None
        raise RunLockedError(f"cannot create the lock file {path} ({reason}); {command} needs it to write "
                             f"the run directory") from None


def holder(run_dir: Path | str) -> str | None:
    """Who holds the run directory's lock now (e.g. "process 123 (nos search)"), or None."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (or one this user cannot read): nobody nos can name holds it
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
