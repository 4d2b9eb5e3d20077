"""Ingest production scores from CSV, JSONL or Parquet into the store's ``score_history``.

* **Streamed**: the file is read and written in chunks of ``chunk_rows`` rows, so memory
  does not grow with the file (Parquet through ``pyarrow`` batches; CSV/JSONL through
  :func:`judgecal.tabular.read_rows`, which knows the line of every row).
* **Idempotent by score_id**: ``INSERT … ON CONFLICT DO NOTHING`` (the SQLite and
  PostgreSQL dialect inserts of SQLAlchemy). Ingesting the same file twice changes
  nothing; the first row stored under a ``score_id`` wins.
* **Bad rows** (missing id/judge/dimension, a timestamp that is not ISO-8601, a score that
  is not a finite number) are reported with the file and line (Parquet: row number) and a
  reason. By default the good rows are committed (chunk by chunk, so an interrupted ingest
  is resumed by running it again); with ``atomic=True`` the whole file is one transaction
  and any bad row rolls everything back.
* **Timestamps** are parsed as ISO-8601 (``Z`` or an offset; a value without an offset is
  taken as UTC) or read from a Parquet timestamp column (naive = UTC), and stored as
  timezone-aware UTC.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy import Connection, select

from judgecal.errors import InputError, Problem, StoreError
from judgecal.scores.source import CANONICAL, OPTIONAL, parse_instant
from judgecal.store import schema

__all__ = ["DEFAULT_CHUNK_ROWS", "IngestResult", "ingest_file"]

DEFAULT_CHUNK_ROWS = 100_000
MAX_REPORTED = 200
"""Bad rows kept in detail (all are counted)."""

_REQUIRED = tuple(c for c in CANONICAL if c not in OPTIONAL)
_TS = pa.timestamp("us", tz="UTC")


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
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_s": round(self.rows_per_s),
            "problems": [
                {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                for p in self.problems
            ],
        }


# -- reading -----------------------------------------------------------------------------------
def _resolve_columns(
    path: Path, available: list[str], mapping: Mapping[str, str]
) -> dict[str, str]:
    """canonical -> column of the file; raises InputError naming what is missing."""
    resolved: dict[str, str] = {}
    missing = []
    for name in CANONICAL:
        col = mapping.get(name, name)
        if col in available:
            resolved[name] = col
        elif name in _REQUIRED or name in mapping:
            missing.append(f"{name}" + (f" (mapped to '{col}')" if col != name else ""))
    if missing:
        raise InputError(
            Problem(
                file=str(path),
                line=1,
                message=f"missing column(s): {', '.join(missing)}; the file has "
                f"{', '.join(available) or 'no columns'} (map other names with "
                "--map score_id=COLUMN)",
            )
        )
    return resolved


def _parquet_chunks(
    path: Path, mapping: Mapping[str, str], chunk_rows: int
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            Problem(file=str(path), message=f"not a readable Parquet file: {exc}")
        ) from None
    resolved = _resolve_columns(path, pf.schema_arrow.names, mapping)
    start = 1
    try:
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=list(resolved.values())):
            table = pa.table({name: batch.column(col) for name, col in resolved.items()})
            lines = np.arange(start, start + table.num_rows, dtype=np.int64)
            start += table.num_rows
            yield table, lines
    except pa.ArrowException as exc:
        raise InputError(
            Problem(file=str(path), line=start, message=f"cannot read the Parquet data: {exc}")
        ) from None


def _text_chunks(
    path: Path, mapping: Mapping[str, str], chunk_rows: int, problems: list[Problem]
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """CSV/JSONL rows, ``chunk_rows`` at a time, as string/JSON-typed columns."""
    from judgecal.tabular import read_rows

    resolved: dict[str, str] | None = None
    lines: list[int] = []
    cols: dict[str, list[Any]] = {}
    for line, row in read_rows(path, problems=problems):
        if resolved is None:
            resolved = _resolve_columns(path, list(row), mapping)
            cols = {name: [] for name in resolved}
        lines.append(line)
        for name, col in resolved.items():
            cols[name].append(row.get(col))
        if len(lines) >= chunk_rows:
            yield _to_table(cols), np.array(lines, dtype=np.int64)
            lines = []
            cols = {name: [] for name in resolved}
    if lines:
        yield _to_table(cols), np.array(lines, dtype=np.int64)


def _to_table(cols: dict[str, list[Any]]) -> pa.Table:
    arrays = {}
    for name, values in cols.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            arrays[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(arrays)


# -- validation --------------------------------------------------------------------------------
def _as_text(arr: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    typ = arr.type
    if pa.types.is_dictionary(typ):
        arr = pc.cast(arr, typ.value_type)
        typ = arr.type
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        if pa.types.is_null(typ):
            return pa.nulls(len(arr), pa.string())
        try:
            arr = pc.cast(arr, pa.string())
        except (pa.ArrowException, NotImplementedError):
            arr = pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string())
    return pc.utf8_trim_whitespace(arr)


def _scores(arr: Any) -> tuple[pa.Array, np.ndarray, list[str | None]]:
    """float64 scores, a bad-row mask and a reason per bad row (None where fine)."""
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
        values = pc.cast(arr, pa.float64())
        np_values = values.to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(np_values)
        reasons: list[str | None] = [None] * n
        for i in np.flatnonzero(bad):
            reasons[i] = "score is missing" if arr[i].as_py() is None else (
                f"score is not a finite number ({np_values[i]})"
            )
        return pa.array(np.where(bad, 0.0, np_values)), bad, reasons
    out = np.zeros(n, dtype=np.float64)
    bad = np.zeros(n, dtype=bool)
    reasons = [None] * n
    for k, value in enumerate(arr.to_pylist()):
        if value is None or (isinstance(value, str) and not value.strip()):
            bad[k], reasons[k] = True, "score is missing"
            continue
        if isinstance(value, bool):
            bad[k], reasons[k] = True, f"score is not a number ({value!r})"
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            bad[k], reasons[k] = True, f"score is not a number ({str(value)[:40]!r})"
            continue
        if not math.isfinite(number):
            bad[k], reasons[k] = True, f"score is not a finite number ({str(value)[:40]!r})"
            continue
        out[k] = number
    return pa.array(out), bad, reasons


def _instants(arr: Any) -> tuple[pa.Array, np.ndarray, list[str | None]]:
    """UTC microsecond timestamps, a bad-row mask and reasons."""
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    reasons: list[str | None] = [None] * n
    if pa.types.is_timestamp(arr.type):
        ts = arr if arr.type.tz is not None else pc.assume_timezone(arr, "UTC")
        ts = pc.cast(ts, _TS)
        null = np.asarray(pc.is_null(ts).to_numpy(zero_copy_only=False), dtype=bool)
        for i in np.flatnonzero(null):
            reasons[i] = "scored_at is missing"
        return ts, null, reasons
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        try:
            ts = pc.cast(pc.utf8_trim_whitespace(arr), _TS)
            null = np.asarray(pc.is_null(ts).to_numpy(zero_copy_only=False), dtype=bool)
            if not null.any():
                return ts, null, reasons
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    micros = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    for k, value in enumerate(arr.to_pylist()):
        if value is None or (isinstance(value, str) and not value.strip()):
            bad[k], reasons[k] = True, "scored_at is missing"
            continue
        try:
            if not isinstance(value, str):
                raise ValueError
            when = parse_instant(value)
        except (ValueError, TypeError, OverflowError):
            bad[k], reasons[k] = True, (
                f"scored_at {str(value)[:40]!r} is not an ISO-8601 timestamp "
                "(e.g. 2026-03-01T12:00:00Z)"
            )
            continue
        micros[k] = int(when.timestamp()) * 1_000_000 + when.microsecond
    return pa.array(micros, type=pa.int64()).cast(_TS), bad, reasons


def _validate(
    table: pa.Table, lines: np.ndarray, path: str
) -> tuple[pa.Table, list[Problem], int]:
    """Normalise one chunk; return (good rows, problems, number of bad rows)."""
    n = table.num_rows
    bad = np.zeros(n, dtype=bool)
    reasons: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    out: dict[str, Any] = {}
    for name in ("score_id", "judge", "dimension"):
        text = _as_text(table.column(name))
        missing = np.asarray(
            pc.or_kleene(pc.is_null(text), pc.equal(text, "")).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        for i in np.flatnonzero(missing):
            reasons[i].append((name, f"{name} is missing"))
        bad |= missing
        out[name] = text
    for name in ("fingerprint", "customer", "segment"):
        if name in table.column_names:
            text = _as_text(table.column(name))
            out[name] = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        else:
            out[name] = pa.nulls(n, pa.string())
    ts, ts_bad, ts_reasons = _instants(table.column("scored_at"))
    for i in np.flatnonzero(ts_bad):
        reasons[i].append(("scored_at", ts_reasons[i] or "bad scored_at"))
    bad |= ts_bad
    out["scored_at"] = ts
    score, score_bad, score_reasons = _scores(table.column("score"))
    for i in np.flatnonzero(score_bad):
        reasons[i].append(("score", score_reasons[i] or "bad score"))
    bad |= score_bad
    out["score"] = score
    clean = pa.table({name: out[name] for name in CANONICAL})
    problems = [
        Problem(file=path, line=int(lines[i]), field=reasons[i][0][0],
                message="; ".join(r for _, r in reasons[i]))
        for i in np.flatnonzero(bad)[:MAX_REPORTED]
    ]
    if bad.any():
        clean = clean.filter(pa.array(~bad))
    return clean, problems, int(bad.sum())


# -- writing -----------------------------------------------------------------------------------
class _Writer:
    """Inserts a clean chunk with ON CONFLICT DO NOTHING; returns the rows inserted."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.dialect = conn.dialect.name
        table = schema.score_history
        cols = list(CANONICAL)
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).on_conflict_do_nothing()
            compiled = stmt.compile(dialect=conn.dialect, column_keys=cols)
            self.sql = str(compiled)
            self.order = list(compiled.positiontup or cols)
        elif self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.exec_driver_sql(
                "CREATE TEMP TABLE IF NOT EXISTS score_history_stage "
                "(LIKE score_history INCLUDING DEFAULTS)"
            )
            stage = sa.table("score_history_stage", *[sa.column(c, table.c[c].type) for c in cols])
            statement = pg_insert(table).from_select(cols, select(stage)).on_conflict_do_nothing()
            # Run on the driver cursor: its rowcount is the number of rows inserted.
            self.insert_from_stage = str(statement.compile(dialect=conn.dialect))
        else:
            raise StoreError(
                f"ingest supports SQLite and PostgreSQL stores, not {self.dialect}; "
                "read other databases in place with --source"
            )

    def write(self, clean: pa.Table) -> int:
        if clean.num_rows == 0:
            return 0
        if not self.conn.in_transaction():
            self.conn.begin()  # the raw driver calls below run in this transaction
        if self.dialect == "sqlite":
            inserted = self._write_sqlite(clean)
        else:
            inserted = self._write_postgres(clean)
        self._note_fingerprints(clean)
        return inserted

    def _note_fingerprints(self, clean: pa.Table) -> None:
        """Widen (judge, fingerprint) → [first_seen, last_seen] in score_fingerprints."""
        keys = pa.table({
            "judge": clean.column("judge"),
            "fingerprint": pc.fill_null(clean.column("fingerprint"), ""),
            "scored_at": clean.column("scored_at"),
        })
        seen = keys.group_by(["judge", "fingerprint"]).aggregate(
            [("scored_at", "min"), ("scored_at", "max")]
        )
        table = schema.score_fingerprints
        rows = [
            {"judge": j, "fingerprint": f, "first_seen": lo, "last_seen": hi}
            for j, f, lo, hi in zip(
                seen.column("judge").to_pylist(),
                seen.column("fingerprint").to_pylist(),
                self._times(seen.column("scored_at_min")),
                self._times(seen.column("scored_at_max")),
                strict=True,
            )
        ]
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)
            lower: Any = sa.func.min  # two-argument min/max are scalar functions in SQLite
            upper: Any = sa.func.max
        else:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table)  # type: ignore[assignment]
            lower, upper = sa.func.least, sa.func.greatest
        stmt = stmt.on_conflict_do_update(
            index_elements=["judge", "fingerprint"],
            set_={
                "first_seen": lower(table.c.first_seen, stmt.excluded.first_seen),
                "last_seen": upper(table.c.last_seen, stmt.excluded.last_seen),
            },
        )
        self.conn.execute(stmt, rows)

    def _times(self, arr: Any) -> list[Any]:
        if self.dialect == "sqlite":
            return [int(v) for v in pc.cast(arr, pa.int64()).to_pylist()]
        return list(arr.to_pylist())

    def _write_sqlite(self, clean: pa.Table) -> int:
        # On SQLite scored_at is an integer: microseconds since the epoch, UTC.
        stamps = pc.cast(clean.column("scored_at"), pa.int64())
        columns = {name: clean.column(name) for name in CANONICAL}
        columns["scored_at"] = stamps
        pylists = [columns[name].to_pylist() for name in self.order]
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self.sql, list(zip(*pylists, strict=True)))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _write_postgres(self, clean: pa.Table) -> int:
        import pyarrow.csv as pacsv

        text = clean.set_column(
            clean.schema.get_field_index("scored_at"),
            "scored_at",
            pc.strftime(clean.column("scored_at"), format="%Y-%m-%dT%H:%M:%S+00", locale="C"),
        )
        buffer = io.BytesIO()
        pacsv.write_csv(text, buffer, write_options=pacsv.WriteOptions(include_header=False))
        raw = self.conn.connection.driver_connection
        cols = ", ".join(CANONICAL)
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute("TRUNCATE score_history_stage")
            with cur.copy(f"COPY score_history_stage ({cols}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getvalue())
            cur.execute(self.insert_from_stage)
            return int(cur.rowcount)

    def close(self) -> None:
        if self.dialect == "postgresql":
            self.conn.exec_driver_sql("DROP TABLE IF EXISTS score_history_stage")


def ingest_file(
    engine: Any,
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    atomic: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    fmt: str | None = None,
    progress: Callable[[IngestResult], None] | None = None,
) -> IngestResult:
    """Ingest one file into ``score_history`` of the store at ``engine``.

    Parameters
    ----------
    engine:
        The store's SQLAlchemy engine (SQLite or PostgreSQL), already migrated.
    path:
        A ``.csv``, ``.jsonl``/``.ndjson`` or ``.parquet`` file (or ``fmt``).
    mapping:
        Canonical column → column name in the file, for files that use other names.
    atomic:
        All or nothing: when any row is bad, nothing is committed.
    chunk_rows:
        Rows read, validated and written at a time (bounds memory).
    progress:
        Called after every chunk with the running totals.

    Returns
    -------
    IngestResult
        Counts, the bad rows (first :data:`MAX_REPORTED` in detail) and whether rows were
        committed. Problems that make the whole file unreadable (missing file or columns,
        not Parquet) raise :class:`InputError` before anything is written.
    """
    from judgecal.tabular import detect_format

    p = Path(path)
    kind = fmt or detect_format(p)
    if not p.is_file():
        raise InputError(Problem(file=str(p), message="file not found"))
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    result = IngestResult(path=str(p), format=kind, atomic=atomic)
    mapping = dict(mapping or {})
    file_problems: list[Problem] = []
    if kind == "parquet":
        chunks = _parquet_chunks(p, mapping, chunk_rows)
    elif kind in ("csv", "tsv", "jsonl"):
        chunks = _text_chunks(p, mapping, chunk_rows, file_problems)
    else:  # pragma: no cover - detect_format only returns the kinds above
        raise InputError(Problem(file=str(p), message=f"cannot ingest {kind} files"))

    started = time.perf_counter()
    conn = engine.connect()
    writer: _Writer | None = None
    try:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size=-65536")  # 64 MiB page cache
        writer = _Writer(conn)
        conn.commit()
        seen_file_problems = 0
        for table, lines in chunks:
            clean, problems, n_bad = _validate(table, lines, str(p))
            result.rows_read += table.num_rows
            result.rows_valid += clean.num_rows
            new_file_problems = file_problems[seen_file_problems:]
            seen_file_problems = len(file_problems)
            _record(result, new_file_problems, len(new_file_problems))
            _record(result, problems, n_bad)
            if atomic and result.bad_rows:
                continue  # keep reading to report every bad row; nothing will be kept
            result.inserted += writer.write(clean)
            if not atomic:
                conn.commit()
                result.committed = True
            if progress is not None:
                result.elapsed_s = time.perf_counter() - started
                progress(result)
        tail = file_problems[seen_file_problems:]
        _record(result, tail, len(tail))
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
    result.elapsed_s = time.perf_counter() - started
    return result


def _record(result: IngestResult, problems: list[Problem], n_bad: int) -> None:
    result.bad_rows += n_bad
    room = MAX_REPORTED - len(result.problems)
    if room > 0:
        result.problems.extend(problems[:room])
