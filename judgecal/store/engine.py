"""Engine factory for the run store: SQLite by default, PostgreSQL for teams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from judgecal.errors import StoreError

DEFAULT_STORE = "sqlite:///.judgecal/judgecal.db"


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
    url = normalize_url(url or DEFAULT_STORE)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the store {parsed.render_as_string(hide_password=True)} needs the package "
            f"'{exc.name}': pip install 'judgecal-drift[postgres]'"
        ) from None
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL + NORMAL: every committed reply survives a killed process.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def safe_url(engine: Engine) -> str:
    """The engine URL with any password hidden (for messages and logs)."""
    return engine.url.render_as_string(hide_password=True)
