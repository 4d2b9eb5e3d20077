"""Reading and checking production score files, chunk by chunk (used by :mod:`.ingest`).

:func:`read_chunks` streams a CSV, JSONL or Parquet file as pyarrow tables of the
canonical columns with the line (Parquet: row number) of every row; :func:`validate`
normalises one chunk (trimmed text as dictionary arrays, UTC microsecond timestamps,
float scores) and returns its good rows and a problem, by line, for every bad one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from judgecal.errors import InputError, Problem
from judgecal.messages import excerpt, field_text
from judgecal.scores.source import CANONICAL, OPTIONAL, parse_instant

__all__ = ["MAX_REPORTED", "MAX_TEXT", "TS", "Prepared", "prepared", "read_chunks", "validate"]

MAX_REPORTED = 200
"""Bad rows kept in detail (all are counted)."""

_REQUIRED = tuple(c for c in CANONICAL if c not in OPTIONAL)
TS = pa.timestamp("us", tz="UTC")
"""How instants are held: microseconds, UTC (what the store keeps)."""


def read_chunks(
    path: Path, kind: str, mapping: Mapping[str, str], chunk_rows: int,
    problems: list[Problem],
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """``(table of the canonical columns, line of each row)``, ``chunk_rows`` rows at a
    time. Rows the reader cannot read are reported in ``problems`` (CSV/JSONL)."""
    if kind == "parquet":
        return _parquet_chunks(path, mapping, chunk_rows)
    if kind in ("csv", "tsv", "jsonl"):
        return _text_chunks(path, mapping, chunk_rows, problems)
    raise InputError(Problem(file=str(path), message=f"cannot ingest {kind} files"))


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
        shown = ", ".join(field_text(str(c), 40) for c in available[:20]) or "no columns"
        if len(available) > 20:
            shown += f", … ({len(available)} columns)"
        raise InputError(
            Problem(
                file=str(path),
                line=1,
                message=f"missing column(s): {', '.join(missing)}; the file has "
                f"{shown} (map other names with --map score_id=COLUMN)",
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
    from judgecal.io.tabular import read_rows

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
            bad[k], reasons[k] = True, f"score is not a number ({excerpt(value, 40)})"
            continue
        if not math.isfinite(number):
            bad[k], reasons[k] = True, f"score is not a finite number ({excerpt(value, 40)})"
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
        return _timestamps(arr)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        try:
            ts = pc.cast(pc.utf8_trim_whitespace(arr), TS)
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
                f"scored_at {excerpt(value, 40)} is not an ISO-8601 timestamp "
                "(e.g. 2026-03-01T12:00:00Z)"
            )
            continue
        micros[k] = (when - _EPOCH) // _MICROSECOND
    return pa.array(micros, type=pa.int64()).cast(TS), bad, reasons


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _timestamps(arr: pa.Array) -> tuple[pa.Array, np.ndarray, list[str | None]]:
    """A timestamp column (naive = UTC) in microseconds: nanoseconds (pandas' default) are
    floored to the microsecond the store keeps; seconds and milliseconds are scaled; a
    value outside the years 1-9999 is a bad row."""
    unit = arr.type.unit
    raw = pc.cast(arr, pa.int64())  # an aware timestamp's integer is UTC already
    null = np.asarray(pc.is_null(raw).to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(pc.fill_null(raw, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if unit == "ns":
        micros, over = values // 1_000, np.zeros(len(values), dtype=bool)
    else:
        per, limit = _PER_UNIT[unit], _MAX_US // _PER_UNIT[unit]
        over = (values > limit) | (values < -limit)
        micros = np.where(over, 0, values) * per
    out = over | (micros < _MIN_US) | (micros > _MAX_US)
    reasons: list[str | None] = [None] * len(values)
    for i in np.flatnonzero(out):
        reasons[i] = "scored_at is outside the years 1 to 9999"
    for i in np.flatnonzero(null):
        reasons[i] = "scored_at is missing"
    bad = null | out
    return pa.array(np.where(bad, 0, micros), pa.int64()).cast(TS), bad, reasons


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


def validate(
    table: pa.Table, lines: np.ndarray, path: str
) -> tuple[pa.Table, np.ndarray, list[Problem], int]:
    """Normalise one chunk; return (good rows, their lines, problems, number of bad rows).

    The good rows keep ``judge, fingerprint, dimension, customer, segment`` as dictionary
    arrays (``trace_id``, nearly one value per row, as plain text); a missing or empty
    optional value is null.
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
    if "trace_id" in table.column_names:
        trace = _as_text(table.column("trace_id"))
        out["trace_id"] = pc.if_else(pc.equal(trace, ""), pa.scalar(None, pa.string()), trace)
    else:
        out["trace_id"] = pa.nulls(n, pa.string())
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
    for name in ("score_id", "judge", "dimension", "fingerprint", "customer", "segment",
                 "trace_id"):
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
    return clean, lines[~bad], problems, int(bad.sum())


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


Prepared = tuple[int, pa.Table, np.ndarray, list[Problem], int, list[Problem]]
"""(rows read, good rows, their lines, their problems, bad rows, problems the reader
reported)."""


def prepared(chunks: Iterator[tuple[pa.Table, np.ndarray]], path: str,
              file_problems: list[Problem]) -> Iterator[Prepared]:
    """Validated chunks; a last item with no rows carries the reader's late problems."""
    seen = 0
    for table, lines in chunks:
        clean, clean_lines, problems, n_bad = validate(table, lines, path)
        new, seen = file_problems[seen:], len(file_problems)
        yield table.num_rows, clean, clean_lines, problems, n_bad, new
    yield 0, pa.table({}), np.zeros(0, dtype=np.int64), [], 0, file_problems[seen:]
