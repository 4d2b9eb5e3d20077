"""One run at a time: a lock per (judge, calibration set).

PostgreSQL stores use a session advisory lock, which also holds across machines sharing the
store. SQLite stores use an OS file lock on a file next to the database file
(``judgecal.db.<judge>_<set>.lock``): next to it, because every process that uses the store
reaches the same path whatever its working directory or ``TMPDIR`` (a lock under the
temporary folder would split cron and a shell into two locks). The kernel releases the lock
when a process dies, so a killed run never leaves a stale lock.

**The file does not outlive the run.** On POSIX, ``flock`` locks an *inode*, not a name, and
deleting a lock file naively breaks mutual exclusion: process B opens the file, A deletes it
and releases, B locks the deleted inode while C creates a new file under the name and locks
that — both B and C believe they hold the lock. The protocol here closes that race:

* **acquire**: open (create) the file, ``flock`` it without waiting, then check that the name
  still refers to the inode just locked (``stat`` of the path against ``fstat`` of the
  descriptor). If it does not — the holder deleted it in between — close and start again
  with the file now under the name;
* **release**: delete the name *while still holding* the lock, then close (which unlocks).

Only the holder ever deletes the name, and only while holding it, so at any moment the name
refers to at most one locked inode, and a process holds the lock exactly when it holds the
``flock`` on the inode the name refers to. A run killed before its release leaves the file
(unlocked); the next run locks it, verifies it and deletes it when it finishes.

Where ``flock`` is not available (Windows, a file system without it), ``filelock`` does the
locking (msvcrt on Windows, which removes the file on release: an open file cannot be
deleted there, so the race above cannot happen).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from judgecal.errors import LockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "lock_path",
    "run_lock",
]

_BUSY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})
_NO_FLOCK = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP})
_MAX_TRIES = 100  # each retry means another holder released in between: progress


def _key_int(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def lock_path(engine: Engine, key: str) -> Path:
    """The lock file of ``key`` for a non-PostgreSQL store: beside a SQLite database file, or
    under the temporary folder for an in-memory or other database."""
    backend = engine.url.get_backend_name()
    db = engine.url.database if backend == "sqlite" else None
    if db and db != ":memory:":
        base = Path(db)
    else:
        digest = hashlib.sha256(str(engine.url).encode()).hexdigest()[:16]
        base = Path(tempfile.gettempdir()) / f"judgecal-{digest}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:100]
    return base.with_name(f"{base.name}.{safe}.lock")


def _busy(key: str, path: Path) -> LockedError:
    return LockedError(f"another judgecal run holds the lock '{key}' ({path}); try again later")


def _flock(path: Path, key: str) -> int | None:
    """A descriptor holding the lock of ``path`` (see the module docstring), or None when the
    file system has no ``flock``. Raises LockedError when another process holds it."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_MAX_TRIES):
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                raise _busy(key, path) from None
            if exc.errno in _NO_FLOCK:
                return None
            raise
        mine = os.fstat(fd)
        try:
            now = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # the holder released and deleted it after we opened it: the next file
    raise _busy(key, path)


@contextmanager
def _file_lock(path: Path, key: str) -> Iterator[None]:
    fd = _flock(path, key) if fcntl is not None else None
    if fd is None:
        with _filelock(path, key):
            yield
        return
    try:
        yield
    finally:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # while holding it: see the module docstring
        finally:
            os.close(fd)


@contextmanager
def _filelock(path: Path, key: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    # thread_local=False: the lock is the process's, whichever thread releases it.
    lock = FileLock(path, timeout=0, mode=0o644, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise _busy(key, path) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def run_lock(engine: Engine, key: str) -> Iterator[None]:
    """Hold the lock named ``key`` for the duration of the block or raise LockedError."""
    if engine.url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": _key_int(key)}
            ).scalar()
            if not got:
                raise LockedError(f"another judgecal run holds the lock '{key}'; try again later")
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key_int(key)})
                conn.commit()
        return
    with _file_lock(lock_path(engine, key), key):
        yield
