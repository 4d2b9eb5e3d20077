"""Export every affected score of a window — for re-scoring queues and for customers.

Rows are streamed from the database in batches (``yield_per``) and written batch by batch
with pyarrow, so memory does not grow with the number of affected scores. The file is
written next to its destination and renamed into place at the end: a failed export never
leaves a half-written file behind. CSV or Parquet, by the extension of ``out``.

Columns: ``score_id, scored_at`` (ISO-8601 UTC) ``, judge, fingerprint, dimension, score,
customer, segment``, ordered by time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from judgecal.errors import InputError, Problem
from judgecal.io.paths import cannot_write, make_parent
from judgecal.scores.link import Window, affected_condition
from judgecal.scores.source import CANONICAL, ScoreSource

__all__ = ["EXPORT_FORMATS", "export_affected"]

EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

_SCHEMA = pa.schema(
    [
        ("score_id", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("judge", pa.string()),
        ("fingerprint", pa.string()),
        ("dimension", pa.string()),
        ("score", pa.float64()),
        ("customer", pa.string()),
        ("segment", pa.string()),
        ("trace_id", pa.string()),
    ]
)


_CSV_SCHEMA = _SCHEMA.set(1, pa.field("scored_at", pa.string()))


class _CsvWriter:
    """CSV with ISO-8601 ``...T...Z`` timestamps (pyarrow would write a space)."""

    def __init__(self, inner: Any):
        self.inner = inner

    def write_table(self, table: pa.Table) -> None:
        iso = pc.strftime(table.column("scored_at"), format="%Y-%m-%dT%H:%M:%SZ", locale="C")
        self.inner.write_table(table.set_column(1, "scored_at", iso))

    def close(self) -> None:
        self.inner.close()


def _times(src: ScoreSource, values: list[Any]) -> pa.Array:
    if src.codec.kind == "epoch":
        micros = [None if v is None else int(v) * (1_000_000 // src.codec.scale) for v in values]
        return pa.array(micros, pa.int64()).cast(_SCHEMA.field("scored_at").type)
    return pa.array([src.when(v) for v in values], _SCHEMA.field("scored_at").type)


def _batch(src: ScoreSource, rows: list[Any]) -> pa.Table:
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in CANONICAL]
    arrays = []
    for name, values in zip(CANONICAL, cols, strict=True):
        field = _SCHEMA.field(name)
        if name == "scored_at":
            arrays.append(_times(src, list(values)))
        elif name == "score":
            arrays.append(pa.array([None if v is None else float(v) for v in values], field.type))
        else:
            arrays.append(pa.array([None if v is None else str(v) for v in values], field.type))
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


def export_affected(
    src: ScoreSource, window: Window, out: str | Path, *, batch_rows: int = 50_000
) -> int:
    """Write every affected score of ``window`` to ``out`` (CSV or Parquet). Returns the count."""
    path = Path(out)
    kind = EXPORT_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            Problem(file=str(path), message="export writes .csv or .parquet files; "
                    f"got {path.suffix or 'no extension'!r}")
        )
    c = src.c
    query = (
        sa.select(*[c(name) for name in CANONICAL])
        .select_from(src.selectable)
        .where(affected_condition(src, window))
        .order_by(c("judge"), c("scored_at"), c("score_id"))
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    make_parent(path, "the export")
    writer: Any = None
    count = 0
    try:
        try:
            if kind == "parquet":
                import pyarrow.parquet as pq

                writer = pq.ParquetWriter(tmp, _SCHEMA, compression="snappy")
            else:
                import pyarrow.csv as pacsv

                writer = _CsvWriter(pacsv.CSVWriter(tmp, _CSV_SCHEMA))
        except OSError as exc:
            raise cannot_write(path, exc, "the export") from None
        with src.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(
                query
            )
            for part in result.partitions(batch_rows):
                table = _batch(src, list(part))
                writer.write_table(table)
                count += table.num_rows
        if count == 0:
            writer.write_table(_batch(src, []))
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        if tmp.exists():
            tmp.unlink()
    return count

