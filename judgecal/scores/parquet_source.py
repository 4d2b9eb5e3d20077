"""Parquet files read in place through an in-memory DuckDB database (nothing ingested).

A ``score_source:`` block with ``parquet:`` instead of ``url``/``table`` names a folder
(every ``*.parquet`` below it, Hive-style ``key=value/`` folders included), one file or a
glob; relative paths are relative to the YAML file's folder::

    score_source:
      parquet: exports/scores/          # or exports/scores/2026-*.parquet
      columns: {score_id: id}           # as for a table, when the names differ

:func:`parquet_engine` opens DuckDB in memory (the ``duckdb`` and ``duckdb-engine``
packages: ``pip install 'judgecal-drift[duckdb]'``) and, on every connection, creates a
view over ``read_parquet(…)`` (``union_by_name``: files written with more or fewer
columns line up by name); the queries of :mod:`judgecal.scores` then run inside DuckDB
against that view like against any table. DuckDB is imported only here, when such a
source is opened.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from judgecal.errors import ConfigError, Problem, StoreError

__all__ = ["DEFAULT_VIEW", "parquet_engine", "parquet_pattern"]

DEFAULT_VIEW = "score_files"
"""The view's name when the block names no ``table``."""

_GLOB = set("*?[")


def parquet_pattern(path: str, base: Path | None = None) -> str:
    """The ``read_parquet`` pattern for ``path`` (a folder, a file or a glob), relative to
    ``base``; raises :class:`ConfigError` when it matches no Parquet file."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    text = str(p)
    pattern = str(p / "**" / "*.parquet") if p.is_dir() else text
    if not _GLOB & set(text) and not p.exists():
        raise ConfigError(Problem(file="score_source", field="parquet",
                                  message=f"{text} does not exist"))
    if not any(Path(m).is_file() for m in glob.iglob(pattern, recursive=True)):
        raise ConfigError(Problem(file="score_source", field="parquet",
                                  message=f"no Parquet file matches {pattern}"))
    return pattern


def parquet_engine(pattern: str, view: str = DEFAULT_VIEW) -> sa.Engine:
    """An in-memory DuckDB engine whose every connection has the view ``view`` over the
    Parquet files of ``pattern``."""
    try:
        engine = sa.create_engine("duckdb:///:memory:")
    except (ModuleNotFoundError, sa.exc.NoSuchModuleError) as exc:
        raise StoreError(
            f"reading Parquet files in place needs DuckDB ({exc}): "
            "pip install 'judgecal-drift[duckdb]'"
        ) from None
    literal = pattern.replace("'", "''")
    name = '"' + view.replace('"', '""') + '"'

    def create_view(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM "
                           f"read_parquet('{literal}', union_by_name = true)")
        finally:
            cursor.close()

    sa.event.listen(engine, "connect", create_view)
    return engine
