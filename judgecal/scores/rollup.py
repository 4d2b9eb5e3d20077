"""Rollups of the store's score history: kept at ingest, read by the link.

Two tables (:data:`judgecal.db.schema.score_rollup` and ``score_customer_rollup``, made
by migration m005) hold, per time bucket of one hour and of one UTC day:

* per (judge, fingerprint, dimension, segment): count, sum, sum of squares, min, max of
  the scores — every total, breakdown and mean of the link;
* per (judge, fingerprint, named customer): count — distinct customers, top customers,
  each customer's traffic.

``scores ingest`` adds to them exactly the rows it inserts (rows already stored under their
``score_id`` are not counted again), in the transaction that inserts the rows: the rollups
always agree with ``score_history``. They are append-only sums, so ingest order and
chunking do not matter (up to floating-point rounding of the sums).

**Reading.** A time range [lo, hi) is split by :func:`plan` into whole UTC days, whole
hours at the edges of those days, and the partial hours at the two ends. The whole buckets
are read from the rollups, the partial hours from ``score_history`` itself (through its
``scored_at`` index), and the parts are added up in the database: the answers are exactly
those of the same query on the raw rows (counts, distinct customers, min and max exactly;
sums up to floating-point rounding), at a cost that depends on the length of the range in
days and hours, not on the number of scores.

Tables read in place (a warehouse table judgecal does not own) have no rollups; the link
queries them raw, in the engine that holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from judgecal.db import schema

if TYPE_CHECKING:
    from judgecal.scores.source import ScoreSource

__all__ = [
    "GRAINS",
    "HOUR_US",
    "Moments",
    "Plan",
    "aggregate",
    "as_rows",
    "customer_counts",
    "from_us",
    "moments",
    "plan",
    "to_us",
]

HOUR_US = 3_600_000_000
"""Microseconds per hour."""
GRAINS: tuple[int, ...] = (24, 1)
"""Bucket lengths in hours, coarsest first."""

Moments = tuple[int, float, float, float, float]
"""(count, sum, sum of squares, min, max)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GROUP_COLUMNS = ("judge", "fingerprint", "dimension", "segment", "customer")


def to_us(value: datetime) -> int:
    """An instant as integer microseconds since the epoch (exact)."""
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class Plan:
    """How a time range is read: rollup buckets and raw intervals that tile it exactly."""

    ranges: tuple[tuple[int, int, int], ...]
    """(grain, first bucket, end bucket): buckets of ``grain`` hours starting in
    [first, end), in hours since the epoch."""
    raw: tuple[tuple[int, int], ...]
    """[lo, hi) in microseconds, read from ``score_history``."""


def plan(lo_us: int, hi_us: int, grains: Sequence[int] = GRAINS) -> Plan:
    """Tile [lo_us, hi_us) with the coarsest whole buckets, then finer ones, then raw rows."""
    ranges: list[tuple[int, int, int]] = []
    raw: list[tuple[int, int]] = []

    def split(lo: int, hi: int, level: int) -> None:
        if lo >= hi:
            return
        if level == len(grains):
            raw.append((lo, hi))
            return
        size = grains[level] * HOUR_US
        first = -(-lo // size) * size
        last = hi // size * size
        if first < last:
            split(lo, first, level + 1)
            ranges.append((grains[level], first // HOUR_US, last // HOUR_US))
            split(last, hi, level + 1)
        else:
            split(lo, hi, level + 1)

    split(lo_us, hi_us, 0)
    return Plan(tuple(ranges), tuple(raw))


# -- ingest: the rollup rows of the rows just inserted -----------------------------------------
def _codes(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(codes, values): values[codes] is the column with None and "" as ""."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    values = arr.dictionary.to_pylist()
    table = np.array([v if v is not None else "" for v in values] + [""], dtype=object)
    filled = pc.fill_null(pc.cast(arr.indices, pa.int32()), len(values))
    codes = np.array(filled.to_numpy(zero_copy_only=False), dtype=np.int32)
    empty = [k for k, v in enumerate(values) if v is None or v == ""]
    if empty:  # one code for "no value", so that it makes one group
        codes[np.isin(codes, empty)] = len(values)
    return codes, table


MOMENT_COLUMNS = ("grain", "judge", "bucket", "fingerprint", "dimension", "segment", "n",
                  "total", "total_sq", "lo", "hi")
CUSTOMER_COLUMNS = ("grain", "judge", "bucket", "fingerprint", "customer", "n")


def aggregate(rows: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The rollup rows of ``rows`` (columns judge, fingerprint, dimension, segment,
    customer, scored_at as a UTC timestamp, score), both grains: (``score_rollup`` rows
    with :data:`MOMENT_COLUMNS`, ``score_customer_rollup`` rows with
    :data:`CUSTOMER_COLUMNS`), sorted by (grain, judge, bucket)."""
    micros = pc.cast(rows.column("scored_at"), pa.int64()).to_numpy()
    hours = micros // HOUR_US
    codes: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for name in _GROUP_COLUMNS:
        codes[name], values[name] = _codes(rows.column(name))
    score = rows.column("score")
    if isinstance(score, pa.ChunkedArray):
        score = score.combine_chunks()
    named = values["customer"][codes["customer"]] != ""

    def text(name: str, column: pa.ChunkedArray) -> pa.Array:
        return pa.array(values[name][column.to_numpy()], pa.string())

    # Hourly groups from the rows, daily groups from the (far fewer) hourly groups.
    hourly = pa.table({
        "j": codes["judge"], "b": hours, "f": codes["fingerprint"], "d": codes["dimension"],
        "s": codes["segment"], "x": score, "xx": pc.multiply(score, score),
    }).group_by(["j", "b", "f", "d", "s"], use_threads=False).aggregate(
        [("x", "count"), ("x", "sum"), ("xx", "sum"), ("x", "min"), ("x", "max")]
    ).rename_columns(["j", "b", "f", "d", "s", "n", "t", "tt", "lo", "hi"])
    daily = _by_day(hourly).group_by(
        ["j", "b", "f", "d", "s"], use_threads=False
    ).aggregate([("n", "sum"), ("t", "sum"), ("tt", "sum"), ("lo", "min"), ("hi", "max")]
    ).rename_columns(["j", "b", "f", "d", "s", "n", "t", "tt", "lo", "hi"])
    people_hourly = pa.table({
        "j": codes["judge"][named], "b": hours[named], "f": codes["fingerprint"][named],
        "c": codes["customer"][named],
    }).group_by(["j", "b", "f", "c"], use_threads=False).aggregate(
        [([], "count_all")]).rename_columns(["j", "b", "f", "c", "n"])
    people_daily = _by_day(people_hourly).group_by(
        ["j", "b", "f", "c"], use_threads=False).aggregate([("n", "sum")]
    ).rename_columns(["j", "b", "f", "c", "n"])

    moment_parts: list[pa.Table] = []
    customer_parts: list[pa.Table] = []
    for grain, agg in ((24, daily), (1, hourly)):
        moment_parts.append(pa.table({
            "grain": pa.array(np.full(agg.num_rows, grain, dtype=np.int32)),
            "judge": text("judge", agg.column("j")),
            "bucket": agg.column("b"),
            "fingerprint": text("fingerprint", agg.column("f")),
            "dimension": text("dimension", agg.column("d")),
            "segment": text("segment", agg.column("s")),
            "n": pc.cast(agg.column("n"), pa.int64()),
            "total": agg.column("t"),
            "total_sq": agg.column("tt"),
            "lo": agg.column("lo"),
            "hi": agg.column("hi"),
        }))
    for grain, agg in ((24, people_daily), (1, people_hourly)):
        customer_parts.append(pa.table({
            "grain": pa.array(np.full(agg.num_rows, grain, dtype=np.int32)),
            "judge": text("judge", agg.column("j")),
            "bucket": agg.column("b"),
            "fingerprint": text("fingerprint", agg.column("f")),
            "customer": text("customer", agg.column("c")),
            "n": pc.cast(agg.column("n"), pa.int64()),
        }))
    order = [("grain", "ascending"), ("judge", "ascending"), ("bucket", "ascending")]
    return (pa.concat_tables(moment_parts).sort_by(order),
            pa.concat_tables(customer_parts).sort_by(order))


def _by_day(hourly: pa.Table) -> pa.Table:
    """Hourly groups with their bucket moved to the start of their UTC day."""
    hours = hourly.column("b").to_numpy()
    return hourly.set_column(hourly.schema.get_field_index("b"), "b",
                             pa.array(hours - hours % 24))


def as_rows(table: pa.Table) -> Any:
    """The rows of a rollup table as tuples (for ``executemany``)."""
    return zip(*[table.column(k).to_pylist() for k in table.column_names], strict=True)


SQLITE_UPSERT_MOMENTS = (
    "INSERT INTO score_rollup (grain, judge, bucket, fingerprint, dimension, segment, "
    "n, total, total_sq, lo, hi) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (grain, judge, bucket, fingerprint, dimension, segment) DO UPDATE SET "
    "n = n + excluded.n, total = total + excluded.total, "
    "total_sq = total_sq + excluded.total_sq, lo = min(lo, excluded.lo), "
    "hi = max(hi, excluded.hi)"
)
SQLITE_UPSERT_CUSTOMERS = (
    "INSERT INTO score_customer_rollup (grain, judge, bucket, fingerprint, customer, n) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (grain, judge, bucket, fingerprint, customer) DO UPDATE SET "
    "n = n + excluded.n"
)


def postgres_upsert_sql(stage_moments: str, stage_customers: str) -> tuple[str, str]:
    """Two statements adding staged rollup rows (one per key) to the rollups."""
    moments = ", ".join(MOMENT_COLUMNS)
    customers = ", ".join(CUSTOMER_COLUMNS)
    return (
        f"INSERT INTO score_rollup AS r ({moments}) SELECT {moments} FROM {stage_moments} "
        "ON CONFLICT (grain, judge, bucket, fingerprint, dimension, segment) DO UPDATE SET "
        "n = r.n + excluded.n, total = r.total + excluded.total, "
        "total_sq = r.total_sq + excluded.total_sq, "
        "lo = LEAST(r.lo, excluded.lo), hi = GREATEST(r.hi, excluded.hi)",
        f"INSERT INTO score_customer_rollup AS r ({customers}) "
        f"SELECT {customers} FROM {stage_customers} "
        "ON CONFLICT (grain, judge, bucket, fingerprint, customer) DO UPDATE SET "
        "n = r.n + excluded.n",
    )


# -- reading ------------------------------------------------------------------------------------
def _raw_range(src: ScoreSource, lo: int, hi: int) -> list[sa.ColumnElement[bool]]:
    c = src.c
    return [c("scored_at") >= src.t(from_us(lo)), c("scored_at") < src.t(from_us(hi))]


def moments(
    conn: sa.Connection,
    src: ScoreSource,
    *,
    start: datetime,
    end: datetime,
    judges: Sequence[str],
    fingerprints: Sequence[str] = (),
    by: Sequence[str] = ("dimension", "segment"),
) -> dict[tuple[Any, ...], Moments]:
    """Count, sum, sum of squares, min and max of the scores of ``judges`` (and
    ``fingerprints``, when given) in [start, end), grouped by ``by`` (``dimension`` and/or
    ``segment``; a missing segment is ``None``). One query."""
    if not judges or end <= start:
        return {}
    r = schema.score_rollup
    c = src.c
    p = plan(to_us(start), to_us(end))
    parts: list[sa.Select[Any]] = []
    for grain, first, last in p.ranges:
        where = [r.c.grain == grain, r.c.judge.in_(list(judges)), r.c.bucket >= first,
                 r.c.bucket < last]
        if fingerprints:
            where.append(r.c.fingerprint.in_(list(fingerprints)))
        parts.append(
            sa.select(*[r.c[k].label(k) for k in by],
                      sa.func.sum(r.c.n).label("n"), sa.func.sum(r.c.total).label("s"),
                      sa.func.sum(r.c.total_sq).label("ss"), sa.func.min(r.c.lo).label("lo"),
                      sa.func.max(r.c.hi).label("hi"))
            .where(*where).group_by(*[r.c[k] for k in by])
        )
    score = src.score_expr()
    for lo, hi in p.raw:
        where = [c("judge").in_(list(judges)), *_raw_range(src, lo, hi)]
        if fingerprints:
            where.append(c("fingerprint").in_(list(fingerprints)))
        raw_keys = [sa.func.coalesce(c(k), "").label(k) for k in by]
        parts.append(
            sa.select(*raw_keys, sa.func.count().label("n"), sa.func.sum(score).label("s"),
                      sa.func.sum(score * score).label("ss"), sa.func.min(score).label("lo"),
                      sa.func.max(score).label("hi"))
            .select_from(src.selectable).where(*where).group_by(*raw_keys)
        )
    u = sa.union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    rows = conn.execute(
        sa.select(*[u.c[k] for k in by], sa.func.sum(u.c.n), sa.func.sum(u.c.s),
                  sa.func.sum(u.c.ss), sa.func.min(u.c.lo), sa.func.max(u.c.hi))
        .group_by(*[u.c[k] for k in by])
    ).all()
    out: dict[tuple[Any, ...], Moments] = {}
    for row in rows:
        keys = tuple(None if (k == "segment" and v == "") else v
                     for k, v in zip(by, row[: len(by)], strict=True))
        n, s, ss, lo, hi = row[len(by):]
        if n:
            out[keys] = (int(n), float(s or 0), float(ss or 0), float(lo), float(hi))
    return out


def customer_counts(
    src: ScoreSource,
    *,
    start: datetime,
    end: datetime,
    judges: Sequence[str],
    fingerprints: Sequence[str] = (),
    customers: Sequence[str] | None = None,
) -> sa.Subquery | None:
    """A subquery of (customer, n) parts whose sums per customer are the named customers'
    score counts in [start, end) (a customer may appear in several parts); ``None`` when
    the range is empty."""
    if not judges or end <= start:
        return None
    r = schema.score_customer_rollup
    c = src.c
    p = plan(to_us(start), to_us(end))
    parts: list[sa.Select[Any]] = []
    for grain, first, last in p.ranges:
        where = [r.c.grain == grain, r.c.judge.in_(list(judges)), r.c.bucket >= first,
                 r.c.bucket < last]
        if fingerprints:
            where.append(r.c.fingerprint.in_(list(fingerprints)))
        if customers is not None:
            where.append(r.c.customer.in_(list(customers)))
        parts.append(sa.select(r.c.customer.label("customer"), r.c.n.label("n")).where(*where))
    for lo, hi in p.raw:
        cust = c("customer")
        where = [c("judge").in_(list(judges)), *_raw_range(src, lo, hi), cust.is_not(None),
                 cust != ""]
        if fingerprints:
            where.append(c("fingerprint").in_(list(fingerprints)))
        if customers is not None:
            where.append(cust.in_(list(customers)))
        parts.append(
            sa.select(cust.label("customer"), sa.func.count().label("n"))
            .select_from(src.selectable).where(*where).group_by(cust)
        )
    return sa.union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
