"""Ingest production scores from CSV, JSONL or Parquet into the store's ``score_history``.

* **Streamed**: the file is read and written in chunks of ``chunk_rows`` rows, so memory
  does not grow with the file (Parquet through ``pyarrow`` batches; CSV/JSONL through
  :func:`judgecal.io.tabular.read_rows`, which knows the line of every row).
* **Idempotent by score_id**: ingesting the same file twice changes nothing; the first
  row stored under a ``score_id`` wins. A row that repeats a stored (or earlier) score_id
  with *other* values is a bad row, reported by line; an exact repeat is a duplicate.
  SQLite: ``INSERT … ON CONFLICT DO NOTHING`` from a temporary stage filled with the
  driver's ``executemany``, in a ``BEGIN IMMEDIATE`` transaction. PostgreSQL: ``COPY``
  straight into the table; a chunk holding an already stored id is copied into a
  temporary stage instead and inserted with ``ON CONFLICT DO NOTHING … RETURNING``.
* **Rollups**: in the same transaction, exactly the rows inserted are added to the hourly
  and daily rollups that the link reads (:mod:`judgecal.scores.rollup`).
* **Durability** is the store's: nothing is relaxed for a bulk ingest (SQLite stays in WAL
  mode with ``synchronous=NORMAL``: a commit survives a killed process; turning
  ``synchronous`` off was measured to gain nothing here and would risk the whole store on
  a power loss). Each chunk is one transaction unless ``atomic``.
* **Bad rows** (missing id/judge/dimension, a timestamp that is not ISO-8601, a score that
  is not a finite number) are reported with the file and line (Parquet: row number) and a
  reason. By default the good rows are committed (chunk by chunk, so an interrupted ingest
  is resumed by running it again); with ``atomic=True`` the whole file is one transaction
  and any bad row rolls everything back.
* **Timestamps** are parsed as ISO-8601 (``Z`` or an offset; a value without an offset is
  taken as UTC) or read from a Parquet timestamp column (naive = UTC), and stored as
  timezone-aware UTC to the microsecond (the nanoseconds pandas writes are floored).
* **Reading never stops silently**: a line that is not UTF-8, a malformed CSV record or a
  huge field is a bad row of its own (:mod:`judgecal.io.tabular`); the rows after it are read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgecal.errors import InputError, Problem
from judgecal.io.prefetch import prefetched
from judgecal.scores import formats
from judgecal.scores.formats import FormatOptions
from judgecal.scores.rows import MAX_REPORTED, prepared, read_chunks
from judgecal.scores.writer import ScoreWriter, conflict_problems

__all__ = ["DEFAULT_CHUNK_ROWS", "IngestResult", "ingest_file"]

DEFAULT_CHUNK_ROWS = 100_000


@dataclass
class IngestResult:
    """What one ingest did. ``problems`` holds the first :data:`MAX_REPORTED` bad rows."""

    path: str
    format: str
    atomic: bool
    rows_read: int = 0
    rows_valid: int = 0
    inserted: int = 0
    bad_rows: int = 0
    committed: bool = False
    elapsed_s: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0
    """Records of an export that are not judge scores by design (counted in rows_read)."""
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skips: list[Problem] = field(default_factory=list)
    """The first skipped records, where they are and why."""

    @property
    def duplicates(self) -> int:
        """Valid rows whose score_id was already stored (or repeated in the file)."""
        return self.rows_valid - self.inserted if self.committed else 0

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "atomic": self.atomic,
            "committed": self.committed,
            "rows_read": self.rows_read,
            "rows_valid": self.rows_valid,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "bad_rows": self.bad_rows,
            "bad_rows_shown": len(self.problems),
            "skipped": self.skipped,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "skipped_shown": _as_json(self.skips),
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_s": round(self.rows_per_s),
            "problems": _as_json(self.problems),
        }


def _as_json(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"file": p.file, "line": p.line, "field": p.field, "message": p.message}
            for p in problems]


def ingest_file(
    engine: Any,
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    atomic: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    fmt: str | None = None,
    progress: Callable[[IngestResult], None] | None = None,
    options: FormatOptions | None = None,
) -> IngestResult:
    """Ingest one file into ``score_history`` of the store at ``engine``.

    Parameters
    ----------
    engine:
        The store's SQLAlchemy engine (SQLite or PostgreSQL), already migrated.
    path:
        A ``.csv``, ``.jsonl``/``.ndjson`` or ``.parquet`` file (or ``fmt``), or another
        tool's export: ``fmt`` ``langfuse``, ``mlflow`` or ``otel`` (:mod:`.formats`; a
        ``.json`` file whose content shows which needs no ``fmt``).
    mapping:
        Canonical column → column name in the file, for files that use other names.
    atomic:
        All or nothing: when any row is bad, nothing is committed.
    chunk_rows:
        Rows read, validated and written at a time (bounds memory).
    progress:
        Called after every chunk with the running totals.
    options:
        For an adapter format: the judge, the fields to read, the sources kept, the value
        map (:class:`judgecal.scores.formats.FormatOptions`).

    Returns
    -------
    IngestResult
        Counts, the bad rows (first :data:`MAX_REPORTED` in detail) and whether rows were
        committed. Problems that make the whole file unreadable (missing file or columns,
        not Parquet) raise :class:`InputError` before anything is written.
    """
    from judgecal.io.tabular import detect_format

    p = Path(path)
    kind = fmt or formats.detect(p) or detect_format(p)
    if not p.is_file():
        raise InputError(Problem(file=str(p), message="file not found"))
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    result = IngestResult(path=str(p), format=kind, atomic=atomic)
    mapping = dict(mapping or {})
    file_problems: list[Problem] = []
    skips = formats.Skips()
    formats.check_options(p, kind, options)
    if kind in formats.FORMATS:
        if mapping:
            raise InputError(Problem(file="--map", message=f"--map renames the columns of "
                                     f"judgecal's own files; a {kind} export is mapped by "
                                     "its adapter (see docs/score-formats.md)"))
        chunks = formats.read_chunks(p, kind, options or formats.FormatOptions(), chunk_rows,
                                     file_problems, skips)
    else:
        chunks = read_chunks(p, kind, mapping, chunk_rows, file_problems)

    started = time.perf_counter()
    conn = engine.connect()
    writer: ScoreWriter | None = None
    try:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size=-65536")  # 64 MiB page cache
        writer = ScoreWriter(conn)
        conn.commit()
        # the next chunk is read and validated while this one is written
        for n_read, clean, lines, problems, n_bad, read_problems in prefetched(
            prepared(chunks, str(p), file_problems), name="judgecal-ingest-reader"
        ):
            # a row the reader could not read (a line that is not UTF-8 ...) was read too
            result.rows_read += n_read + sum(1 for q in read_problems if q.line is not None)
            result.rows_valid += clean.num_rows
            _record(result, read_problems, len(read_problems))
            _record(result, problems, n_bad)
            if n_read == 0 or (atomic and result.bad_rows):
                continue  # atomic: keep reading to report every bad row; nothing is kept
            inserted, conflicts = writer.write(clean)
            result.inserted += inserted
            if conflicts:
                result.rows_valid -= len(conflicts)
                _record(result, conflict_problems(clean, lines, conflicts, str(p)),
                        len(conflicts))
            if not atomic:
                conn.commit()
                result.committed = True
            if progress is not None:
                result.elapsed_s = time.perf_counter() - started
                progress(result)
        if atomic:
            if result.bad_rows:
                conn.rollback()
                result.inserted = 0
                result.committed = False
            else:
                conn.commit()
                result.committed = True
        writer.close()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    result.skipped, result.skips = skips.count, list(skips.shown)
    result.rows_read += skips.count
    result.skipped_by_reason = dict(skips.by_reason)
    result.problems.sort(key=lambda problem: problem.line or 0)
    result.elapsed_s = time.perf_counter() - started
    return result


def _record(result: IngestResult, problems: list[Problem], n_bad: int) -> None:
    result.bad_rows += n_bad
    room = MAX_REPORTED - len(result.problems)
    if room > 0:
        result.problems.extend(problems[:room])
