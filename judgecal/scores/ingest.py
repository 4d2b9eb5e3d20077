"""Ingest production scores from CSV, JSONL or Parquet into the store's ``score_history``.

* **Streamed**: the file is read and written in chunks of ``chunk_rows`` rows, so memory
  does not grow with the file (Parquet through ``pyarrow`` batches; CSV/JSONL through
  :func:`judgecal.tabular.read_rows`, which knows the line of every row).
* **Idempotent by score_id**: ingesting the same file twice changes nothing; the first
  row stored under a ``score_id`` wins. SQLite: ``INSERT … ON CONFLICT DO NOTHING`` from
  a temporary stage filled with the driver's ``executemany``, in a ``BEGIN IMMEDIATE``
  transaction. PostgreSQL: ``COPY`` straight into the table; a chunk holding an already
  stored id is copied into a temporary stage instead and inserted with ``ON CONFLICT DO
  NOTHING … RETURNING``.
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
from sqlalchemy import Connection

from judgecal.errors import InputError, Problem, StoreError
from judgecal.scores import rollup
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
    columns = list(resolved.values())
    start = 1
    pending: list[pa.RecordBatch] = []
    held = 0

    def chunk(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
        out = pa.table({name: table.column(col) for name, col in resolved.items()})
        return out, np.arange(start, start + out.num_rows, dtype=np.int64)

    try:
        for group in range(pf.num_row_groups):
            # One reader per row group: a reader over the whole file keeps growing its
            # buffers (≈ 100 MB at 10 million rows); these are freed as each group ends.
            # Batches are regrouped so that chunks hold chunk_rows rows across groups.
            for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=[group],
                                         columns=columns):
                pending.append(batch)
                held += batch.num_rows
                while held >= chunk_rows:
                    table = pa.Table.from_batches(pending)
                    rest = table.slice(chunk_rows)
                    yield chunk(table.slice(0, chunk_rows))
                    start += chunk_rows
                    pending, held = rest.to_batches(), rest.num_rows
        if held:
            yield chunk(pa.Table.from_batches(pending))
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


def _dict_text(arr: Any) -> tuple[pa.DictionaryArray, np.ndarray]:
    """A text column as a dictionary array (trimmed, one entry per distinct value) and the
    mask of its missing rows (null or empty).

    The repeated names (judge, fingerprint, dimension, customer, segment) are validated and
    converted once per distinct value instead of once per row.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else pa.concat_arrays(
            [pc.cast(c, c.type.value_type) if pa.types.is_dictionary(c.type) else c
             for c in arr.chunks])
    if pa.types.is_dictionary(arr.type):
        values = _as_text(arr.dictionary)
        indices = arr.indices
    else:
        encoded = pc.dictionary_encode(_as_text(arr))
        values, indices = encoded.dictionary, encoded.indices
    if not isinstance(values, pa.Array):
        values = values.combine_chunks()
    unified = pc.dictionary_encode(values)  # trimming may have made two entries equal
    codes = pc.take(pc.cast(unified.indices, pa.int32()), indices)
    dictionary = unified.dictionary
    empty = np.asarray(
        pc.fill_null(pc.equal(dictionary, ""), True).to_numpy(zero_copy_only=False), dtype=bool
    )
    lookup = np.append(empty, True)
    idx = np.asarray(pc.fill_null(codes, len(dictionary)).to_numpy(zero_copy_only=False))
    missing = lookup[idx]
    if missing.any():
        codes = pa.array(np.where(missing, 0, idx).astype(np.int32), mask=missing)
    return pa.DictionaryArray.from_arrays(codes, dictionary), missing


def _validate(
    table: pa.Table, lines: np.ndarray, path: str
) -> tuple[pa.Table, list[Problem], int]:
    """Normalise one chunk; return (good rows, problems, number of bad rows).

    The good rows keep ``judge, fingerprint, dimension, customer, segment`` as dictionary
    arrays; a missing or empty optional value is null.
    """
    n = table.num_rows
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, list[tuple[str, str]]] = {}

    def note(mask: np.ndarray, name: str, why: list[str | None] | str) -> None:
        for i in np.flatnonzero(mask):
            text = why if isinstance(why, str) else (why[i] or f"bad {name}")
            reasons.setdefault(int(i), []).append((name, text))

    out: dict[str, Any] = {}
    score_id = _as_text(table.column("score_id"))
    missing = np.asarray(
        pc.or_kleene(pc.is_null(score_id), pc.equal(score_id, "")).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    note(missing, "score_id", "score_id is missing")
    bad |= missing
    out["score_id"] = score_id
    for name in ("judge", "dimension"):
        out[name], missing = _dict_text(table.column(name))
        note(missing, name, f"{name} is missing")
        bad |= missing
    for name in ("fingerprint", "customer", "segment"):
        if name in table.column_names:
            out[name], _ = _dict_text(table.column(name))
        else:
            out[name] = pa.DictionaryArray.from_arrays(pa.nulls(n, pa.int32()),
                                                       pa.array([], pa.string()))
    ts, ts_bad, ts_reasons = _instants(table.column("scored_at"))
    note(ts_bad, "scored_at", ts_reasons)
    bad |= ts_bad
    out["scored_at"] = ts
    score, score_bad, score_reasons = _scores(table.column("score"))
    note(score_bad, "score", score_reasons)
    bad |= score_bad
    out["score"] = score
    # Text keys must fit the store's columns (String(200)); PostgreSQL would refuse the
    # whole batch otherwise.
    for name in ("score_id", "judge", "dimension", "fingerprint", "customer", "segment"):
        if name not in table.column_names:
            continue
        too_long = _too_long(table.column(name))
        note(too_long, name, f"{name} is longer than {MAX_TEXT} characters")
        bad |= too_long
    clean = pa.table({name: out[name] for name in CANONICAL})
    problems = [
        Problem(file=path, line=int(lines[i]), field=reasons[int(i)][0][0],
                message="; ".join(r for _, r in reasons[int(i)]))
        for i in np.flatnonzero(bad)[:MAX_REPORTED]
    ]
    if bad.any():
        clean = clean.filter(pa.array(~bad))
    return clean, problems, int(bad.sum())


# -- writing -----------------------------------------------------------------------------------
def _pylist(arr: Any) -> list[Any]:
    """A column as a Python list, cheaply: dictionary values are converted once and shared,
    timestamps become integer microseconds."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        values = np.array([*arr.dictionary.to_pylist(), None], dtype=object)
        codes = pc.fill_null(pc.cast(arr.indices, pa.int32()), len(values) - 1)
        return list(values[np.asarray(codes.to_numpy(zero_copy_only=False))].tolist())
    if pa.types.is_timestamp(arr.type):
        return list(pc.cast(arr, pa.int64()).to_numpy().tolist())
    if pa.types.is_floating(arr.type) and arr.null_count == 0:
        return list(arr.to_numpy().tolist())
    return list(arr.to_pylist())


_KEY_COLUMNS = ("judge", "fingerprint", "dimension", "customer", "segment")


def _combinations(clean: pa.Table) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """Per row, the number of its (judge, fingerprint, dimension, customer, segment)
    combination; and the combinations as ``(number, judge, …, segment)`` (None for null)."""
    tables: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    for name in _KEY_COLUMNS:
        arr = clean.column(name)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        values = np.array([*arr.dictionary.to_pylist(), None], dtype=object)
        filled = pc.fill_null(pc.cast(arr.indices, pa.int64()), len(values) - 1)
        tables.append(values)
        codes.append(np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64))
    if math.prod(len(t) for t in tables) < 2**62:  # one mixed-radix number per row
        combined = np.zeros(clean.num_rows, dtype=np.int64)
        for values, code in zip(tables, codes, strict=True):
            combined = combined * len(values) + code
        unique, inverse = np.unique(combined, return_inverse=True)
        parts: list[np.ndarray] = []
        for values in reversed(tables):
            parts.append(unique % len(values))
            unique = unique // len(values)
        parts.reverse()
    else:
        unique_rows, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
        parts = [unique_rows[:, k] for k in range(len(tables))]
    decoded = [values[part].tolist() for values, part in zip(tables, parts, strict=True)]
    keys = list(zip(range(len(parts[0])), *decoded, strict=True))
    return np.asarray(inverse).reshape(-1), keys


def _first_of_each_id(clean: pa.Table) -> pa.Table:
    """The rows of a chunk with the first occurrence of each score_id (the file's order)."""
    ids = clean.column("score_id")
    if pc.count_distinct(ids).as_py() == clean.num_rows:
        return clean
    firsts = pa.table({"id": ids, "i": np.arange(clean.num_rows)}).group_by(
        "id", use_threads=False).aggregate([("i", "min")]).column("i_min").to_numpy()
    keep = np.zeros(clean.num_rows, dtype=bool)
    keep[firsts] = True
    return clean.filter(pa.array(keep))


_PG_INGEST_LOCK = 0x6A63696E67657374
"""PostgreSQL advisory-lock key: one ingest transaction at a time adds to the rollups
(concurrent upserts of the same rollup rows could otherwise deadlock)."""

_PG_STAGES = (("score_history_stage", "score_history"), ("score_rollup_stage", "score_rollup"),
              ("score_customer_rollup_stage", "score_customer_rollup"))


def _csv(table: pa.Table) -> bytes:
    """CSV for PostgreSQL's COPY: nulls unquoted (NULL), strings quoted (so "" stays an empty
    string), timestamps as UTC text (formatted without a time zone: much faster in pyarrow)."""
    import pyarrow.csv as pacsv

    for k, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            naive = pc.cast(pc.cast(table.column(k), pa.int64()), pa.timestamp("us"))
            text = pc.binary_join_element_wise(pc.cast(naive, pa.string()), "+00", "")
            table = table.set_column(k, column.name, text)
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, write_options=pacsv.WriteOptions(include_header=False))
    return buffer.getvalue()


MAX_TEXT = 200
"""Width of the text columns of ``score_history``."""


def _too_long(column: Any) -> np.ndarray:
    """Rows whose text is longer than :data:`MAX_TEXT` (a dictionary column is measured
    once per distinct value)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    masks = []
    for arr in chunks:
        if pa.types.is_dictionary(arr.type):
            values = _too_long(arr.dictionary)
            codes = pc.fill_null(pc.cast(arr.indices, pa.int64()), len(values))
            lookup = np.append(values, False)
            masks.append(lookup[np.asarray(codes.to_numpy(zero_copy_only=False))])
            continue
        lengths = pc.utf8_length(_as_text(arr))
        masks.append(np.asarray(
            pc.fill_null(pc.greater(lengths, MAX_TEXT), False).to_numpy(zero_copy_only=False),
            dtype=bool,
        ))
    return np.concatenate(masks) if masks else np.zeros(0, dtype=bool)

_INSERT_COLUMNS = ("score_id", "scored_at", "judge", "fingerprint", "dimension", "score",
                   "customer", "segment")


class _Writer:
    """Inserts a clean chunk, skipping stored score ids, and adds exactly the inserted rows
    to the rollups, in the caller's transaction; returns the rows inserted.

    SQLite: ``BEGIN IMMEDIATE`` (the write lock is held from the start of the transaction,
    so nothing else can insert in between); the chunk goes into a temporary stage through
    the driver's ``executemany`` (4 values per row: id, time, score and the number of its
    judge/fingerprint/dimension/customer/segment combination, whose names are bound once
    each), then one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` joins the names back. The
    rollup rows of what was inserted are computed with pyarrow; when some ids were already
    stored, the rows this chunk appended are read back by rowid. PostgreSQL: ``COPY``
    straight into the table, falling back to a staged ``INSERT … ON CONFLICT DO NOTHING
    RETURNING score_id`` when an id is already stored; rollup rows are copied into a stage
    and added with one ``INSERT … ON CONFLICT DO UPDATE`` per rollup table, under an
    advisory lock.
    """

    def __init__(self, conn: Connection):
        self.conn = conn
        self.dialect = conn.dialect.name
        cols = ", ".join(_INSERT_COLUMNS)
        if self.dialect == "sqlite":
            # Each row binds 4 values into a temporary stage; its repeated names are bound
            # once per distinct combination (score_keys) and joined back in SQLite.
            conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS score_stage "
                                 "(score_id TEXT, scored_at INTEGER, score REAL, k INTEGER)")
            conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS score_keys "
                                 f"(k INTEGER PRIMARY KEY, {', '.join(_KEY_COLUMNS)})")
            self.sql = (
                f"INSERT INTO score_history ({cols}) "
                "SELECT s.score_id, s.scored_at, k.judge, k.fingerprint, k.dimension, s.score, "
                "k.customer, k.segment "
                # CROSS JOIN keeps the stage as the outer loop: rows go in in file order,
                # so the first row of a repeated score_id wins. WHERE true: see SQLite's
                # UPSERT parsing note.
                "FROM temp.score_stage AS s CROSS JOIN temp.score_keys AS k ON k.k = s.k "
                "WHERE true ON CONFLICT DO NOTHING"
            )
        elif self.dialect == "postgresql":
            for stage, like in _PG_STAGES:
                conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                                     f"(LIKE {like} INCLUDING DEFAULTS)")
            self.insert_from_stage = (
                f"INSERT INTO score_history ({cols}) SELECT {cols} FROM score_history_stage "
                "ON CONFLICT DO NOTHING RETURNING score_id"
            )
            self.upserts = rollup.postgres_upsert_sql("score_rollup_stage",
                                                      "score_customer_rollup_stage")
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
        judge_codes, judges = rollup._codes(clean.column("judge"))
        fp_codes, fps = rollup._codes(clean.column("fingerprint"))
        keys = pa.table({"j": judge_codes, "f": fp_codes, "t": clean.column("scored_at")})
        seen = keys.group_by(["j", "f"], use_threads=False).aggregate(
            [("t", "min"), ("t", "max")]
        )
        table = schema.score_fingerprints
        rows = [
            {"judge": j, "fingerprint": f, "first_seen": lo, "last_seen": hi}
            for j, f, lo, hi in zip(
                judges[seen.column("j").to_numpy()].tolist(),
                fps[seen.column("f").to_numpy()].tolist(),
                self._times(seen.column("t_min")),
                self._times(seen.column("t_max")),
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
        raw: Any = self.conn.connection.driver_connection
        cursor = raw.cursor()
        try:
            if not raw.in_transaction:
                cursor.execute("BEGIN IMMEDIATE")
            last = cursor.execute("SELECT max(rowid) FROM score_history").fetchone()[0] or 0
            row_keys, keys = _combinations(clean)
            cursor.execute("DELETE FROM temp.score_stage")
            cursor.execute("DELETE FROM temp.score_keys")
            cursor.executemany("INSERT INTO temp.score_keys VALUES (?, ?, ?, ?, ?, ?)", keys)
            cursor.executemany(
                "INSERT INTO temp.score_stage VALUES (?, ?, ?, ?)",
                zip(_pylist(clean.column("score_id")), _pylist(clean.column("scored_at")),
                    _pylist(clean.column("score")), row_keys.tolist(), strict=True),
            )
            del row_keys, keys
            cursor.execute(self.sql)
            inserted = int(cursor.rowcount)
            if inserted == clean.num_rows:
                new: pa.Table | None = clean
            elif inserted == 0:
                new = None
            else:  # some ids were stored already: exactly the rows this chunk appended
                new = self._read_back(cursor, last)
            if new is not None:
                moments, customers = rollup.aggregate(new)
                cursor.executemany(rollup.SQLITE_UPSERT_MOMENTS, rollup.as_rows(moments))
                cursor.executemany(rollup.SQLITE_UPSERT_CUSTOMERS, rollup.as_rows(customers))
            return inserted
        finally:
            cursor.close()

    @staticmethod
    def _read_back(cursor: Any, after_rowid: int) -> pa.Table:
        names = ("judge", "fingerprint", "dimension", "segment", "customer", "scored_at",
                 "score")
        rows = cursor.execute(
            f"SELECT {', '.join(names)} FROM score_history WHERE rowid > ?", (after_rowid,)
        ).fetchall()
        cols = list(zip(*rows, strict=True))
        arrays = {name: pa.array(cols[k], pa.string()) for k, name in enumerate(names[:5])}
        arrays["scored_at"] = pa.array(cols[5], pa.int64()).cast(_TS)
        arrays["score"] = pa.array(cols[6], pa.float64())
        return pa.table(arrays)

    def _write_postgres(self, clean: pa.Table) -> int:
        import psycopg

        clean = _first_of_each_id(clean)
        data = _csv(clean.select(list(_INSERT_COLUMNS)))
        raw = self.conn.connection.driver_connection
        cols = ", ".join(_INSERT_COLUMNS)
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_INGEST_LOCK,))
            new = clean
            # The common case, new scores: COPY straight into the table (no stage, no
            # conflict handling). A stored score id aborts it: then stage the chunk and
            # insert what is new, learning exactly which rows that was.
            cur.execute("SAVEPOINT judgecal_ingest")
            try:
                with cur.copy(f"COPY score_history ({cols}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(data)
            except psycopg.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT judgecal_ingest")
                cur.execute("TRUNCATE score_history_stage")
                with cur.copy(f"COPY score_history_stage ({cols}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(data)
                cur.execute(self.insert_from_stage)
                inserted = pa.array([r[0] for r in cur.fetchall()], pa.string())
                new = clean.filter(pc.is_in(clean.column("score_id"), value_set=inserted))
            else:
                cur.execute("RELEASE SAVEPOINT judgecal_ingest")
            del data
            if new.num_rows:
                stages = ("score_rollup_stage", "score_customer_rollup_stage")
                for table, stage in zip(rollup.aggregate(new), stages, strict=True):
                    names = ", ".join(table.column_names)
                    cur.execute(f"TRUNCATE {stage}")
                    with cur.copy(f"COPY {stage} ({names}) FROM STDIN (FORMAT csv)") as copy:
                        copy.write(_csv(table))
                for statement in self.upserts:
                    cur.execute(statement)
            return int(new.num_rows)

    def close(self) -> None:
        if self.dialect == "postgresql":
            for stage, _ in _PG_STAGES:
                self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")


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
        for n_read, clean, problems, n_bad, read_problems in _prepared(
            chunks, str(p), file_problems
        ):
            result.rows_read += n_read
            result.rows_valid += clean.num_rows
            _record(result, read_problems, len(read_problems))
            _record(result, problems, n_bad)
            if n_read == 0 or (atomic and result.bad_rows):
                continue  # atomic: keep reading to report every bad row; nothing is kept
            result.inserted += writer.write(clean)
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
    result.elapsed_s = time.perf_counter() - started
    return result


_Prepared = tuple[int, pa.Table, list[Problem], int, list[Problem]]
"""(rows read, good rows, their problems, bad rows, problems the reader reported)."""


def _prepared(chunks: Iterator[tuple[pa.Table, np.ndarray]], path: str,
              file_problems: list[Problem]) -> Iterator[_Prepared]:
    """Validated chunks; a last item with no rows carries the reader's late problems."""
    seen = 0
    for table, lines in chunks:
        clean, problems, n_bad = _validate(table, lines, path)
        new, seen = file_problems[seen:], len(file_problems)
        yield table.num_rows, clean, problems, n_bad, new
    yield 0, pa.table({}), [], 0, file_problems[seen:]


def _record(result: IngestResult, problems: list[Problem], n_bad: int) -> None:
    result.bad_rows += n_bad
    room = MAX_REPORTED - len(result.problems)
    if room > 0:
        result.problems.extend(problems[:room])
