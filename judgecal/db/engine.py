"""Engine factory for the run store: SQLite by default, PostgreSQL for teams."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from judgecal.errors import InputError, Problem
from judgecal.io.paths import make_parent

UNDECODABLE = "undecodable"
"""The key of what :func:`lenient_json` returns for a stored value that is not JSON."""


def lenient_json(text: str | bytes) -> Any:
    """The engine's JSON decoder: ``json.loads``, except that a stored value that is not JSON
    (only SQLite can hold one: a record edited by hand) reads as ``{"undecodable": text}``
    instead of failing every command that reads that table. Such a record no longer matches
    its audit-log entry, so ``judgecal audit verify`` names it."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return {UNDECODABLE: raw[:10_000]}


def is_undecodable(value: Any) -> bool:
    """Whether ``value`` is what :func:`lenient_json` read from a stored value that is not
    JSON."""
    return isinstance(value, dict) and len(value) == 1 and UNDECODABLE in value


__all__ = [
    "DEFAULT_STORE",
    "UNDECODABLE",
    "is_undecodable",
    "lenient_json",
    "make_engine",
    "normalize_url",
    "safe_url",
    "shown_url",
]

DEFAULT_STORE = "sqlite:///.judgecal/judgecal.db"
_EXAMPLES = "sqlite:///path/to/judgecal.db or postgresql://user@host/dbname"
_BUSY_TIMEOUT_S = 30
_PASSWORD = re.compile(r"(?<=://)([^/@:]*):[^/@]*@")
_QUERY_PASSWORD = re.compile(r"(?i)((?:password|passwd|pwd)=)[^&]*")


def shown_url(url: str) -> str:
    """``url`` as a message may show it: any password replaced by ``***`` (also when the
    URL cannot be parsed)."""
    try:
        text = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        text = _PASSWORD.sub(r"\1:***@", url)
    return _QUERY_PASSWORD.sub(r"\1***", text)


def _parse(url: str, given: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        reason = "its port is not a number" if "int()" in str(exc) else "it is not a database URL"
        raise InputError(
            f"cannot use the store '{shown_url(given)}': {reason} (expected e.g. {_EXAMPLES})"
        ) from None


def normalize_url(url: str) -> str:
    """Accept plain paths and driverless PostgreSQL URLs.

    ``foo.db`` → ``sqlite:///foo.db``; ``postgresql://…`` → ``postgresql+psycopg://…``
    (psycopg 3 is the driver the ``postgres`` extra installs).
    """
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str | None) -> Engine:
    """Create an engine; for SQLite files also create the parent directory."""
    given = url or DEFAULT_STORE
    url = normalize_url(given)
    parsed = _parse(url, given)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not (
            parsed.database.startswith("file:")
        ):
            _sqlite_file(Path(parsed.database))
        kwargs["connect_args"] = {"timeout": _BUSY_TIMEOUT_S}
    kwargs["json_deserializer"] = lenient_json
    try:
        engine = create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise InputError(
            f"cannot use the store '{shown_url(given)}': judgecal does not know the database "
            f"type '{parsed.drivername}' (it keeps runs in SQLite or PostgreSQL: {_EXAMPLES})"
        ) from None
    except ModuleNotFoundError as exc:
        advice = (
            "pip install 'judgecal-drift[postgres]'"
            if parsed.get_backend_name() == "postgresql"
            else f"judgecal is tested on SQLite and PostgreSQL ({_EXAMPLES})"
        )
        raise InputError(
            f"cannot use the store '{shown_url(given)}': it needs the Python package "
            f"'{exc.name}', which is not installed; {advice}"
        ) from None
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}")
            # WAL + NORMAL: every committed reply survives a killed process.
            _enter_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def _enter_wal(cur: Any) -> None:
    """Put the SQLite file in WAL mode, waiting for other processes doing the same.

    Turning a fresh file to WAL needs an exclusive lock, and when two processes open the
    same new store at once SQLite answers one of them "database is locked" at once, without
    waiting out the busy timeout (it would be a deadlock). So wait here, up to that timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _sqlite_file(path: Path) -> None:
    """Refuse a SQLite store path that cannot be a database file; create its folder."""
    if path.is_dir():
        raise InputError(Problem(file=str(path), message="the store is a directory; give the "
                                 "path of a SQLite file, e.g. sqlite:///path/to/judgecal.db"))
    make_parent(path, "the store")


def safe_url(engine: Engine) -> str:
    """The engine URL with any password hidden (for messages and logs)."""
    return engine.url.render_as_string(hide_password=True)
