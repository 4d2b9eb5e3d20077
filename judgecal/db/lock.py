"""One run at a time: a lock per (judge, calibration set).

SQLite stores use an OS file lock next to the database file (``filelock``: released by
the kernel when the process dies, so a killed run never leaves a stale lock). PostgreSQL stores
use a session advisory lock, which also holds across machines sharing the store.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from judgecal.errors import LockedError

__all__ = [
    "run_lock",
]


def _key_int(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


@contextmanager
def run_lock(engine: Engine, key: str) -> Iterator[None]:
    """Hold the lock named ``key`` for the duration of the block or raise LockedError."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
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
    from filelock import FileLock, Timeout

    db = engine.url.database if backend == "sqlite" else None
    if db and db != ":memory:":
        base = Path(db)
    else:
        digest = hashlib.sha256(str(engine.url).encode()).hexdigest()[:16]
        base = Path(tempfile.gettempdir()) / f"judgecal-{digest}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:100]
    path = base.with_name(f"{base.name}.{safe}.lock")
    # filelock: flock on POSIX, msvcrt on Windows; the kernel releases it when the process
    # dies, so a killed run never leaves the lock held. thread_local=False: the lock is the
    # process's, whichever thread releases it.
    lock = FileLock(path, timeout=0, mode=0o644, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(
            f"another judgecal run holds the lock '{key}' ({path}); try again later"
        ) from None
    try:
        yield
    finally:
        lock.release()
