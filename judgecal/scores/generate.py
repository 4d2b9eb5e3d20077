"""A realistic, deterministic production score history with a known judge switch.

Used by the tests (known answers), the benchmark (10 million rows) and the demo.

The model of the traffic:

* ``customers`` customers with Zipf-like traffic (customer *k* gets a share ∝ 1/k^1.1);
  most are active for the whole period, some join late and some churn early;
  a small share of the traffic is anonymous (no customer).
* Every response is scored on six dimensions. The ``quality-judge`` scores
  factual consistency, fluency, tone and formatting; the ``safety-judge`` scores safety
  and refusal. Some customers (``safety_only_share``) buy safety scoring only, so not
  every active customer is touched when the quality judge drifts.
* Each response belongs to a segment (``chat``, ``rag``, ``summarization``, ``code``),
  drawn from a per-customer mix; optionally the mix moves at ``mix_shift_at``
  (an input distribution shift, with no judge change).
* At ``switch_at`` the quality judge's fingerprint changes (a provider model update);
  the new fingerprint rolls out linearly over ``rollout_hours`` and the scores it
  produces move by ``score_shift`` (per dimension).

Everything is vectorised (numpy → pyarrow) and deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DIMENSIONS",
    "JUDGES",
    "SEGMENTS",
    "GeneratedHistory",
    "generate",
    "write_history",
]

DIMENSIONS: tuple[str, ...] = (
    "factual_consistency",
    "fluency",
    "safety",
    "tone",
    "formatting",
    "refusal",
)
JUDGES: dict[str, tuple[str, ...]] = {
    "quality-judge": ("factual_consistency", "fluency", "tone", "formatting"),
    "safety-judge": ("safety", "refusal"),
}
SEGMENTS: tuple[str, ...] = ("chat", "rag", "summarization", "code")

OLD_FINGERPRINT = "cfg:7a41c0e93b2d/served:gpt-4o-2024-08-06"
NEW_FINGERPRINT = "cfg:7a41c0e93b2d/served:gpt-4o-2024-11-20"
SAFETY_FINGERPRINT = "cfg:2c9e51aa04f7/served:llama-guard-3-8b"

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_SHIFT: dict[str, float] = {
    "factual_consistency": -0.05,
    "fluency": 0.0,
    "tone": 0.02,
    "formatting": -0.01,
}
# Mean score per dimension (rows) and segment (columns, in SEGMENTS order).
_BASE_MEAN = np.array(
    [
        [0.82, 0.78, 0.74, 0.80],  # factual_consistency
        [0.90, 0.88, 0.86, 0.84],  # fluency
        [0.95, 0.97, 0.97, 0.93],  # safety
        [0.80, 0.82, 0.84, 0.76],  # tone
        [0.75, 0.77, 0.79, 0.70],  # formatting
        [0.92, 0.94, 0.95, 0.90],  # refusal
    ]
)
# Hour-of-day traffic profile (UTC): quiet nights, busy working hours.
_HOURLY = np.array(
    [2, 1.5, 1, 1, 1, 1.5, 3, 5, 7, 8, 8, 8, 7, 8, 8, 8, 7, 6, 5, 4, 4, 3.5, 3, 2.5]
)


@dataclass
class GeneratedHistory:
    """A generated history and the facts it was generated from (the known answer)."""

    table: pa.Table
    start: datetime
    end: datetime
    switch_at: datetime
    rollout_hours: float
    drifted_judge: str
    old_fingerprint: str
    new_fingerprint: str
    first_new_score_at: datetime | None
    customers: list[str]
    safety_only_customers: list[str]
    score_shift: dict[str, float]
    mix_shift_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


def _customer_names(n: int) -> np.ndarray:
    width = max(4, len(str(n)))
    return np.array([f"cust-{i + 1:0{width}d}" for i in range(n)], dtype=object)


def generate(
    rows: int = 100_000,
    *,
    days: int = 90,
    customers: int = 500,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    switch_day: float = 60.4,
    rollout_hours: float = 2.0,
    score_shift: dict[str, float] | None = None,
    anonymous_share: float = 0.02,
    safety_only_share: float = 0.1,
    mix_shift_day: float | None = None,
    mix_shift_to: dict[str, float] | None = None,
    switch: bool = True,
) -> GeneratedHistory:
    """Generate ``rows`` production scores (exactly), sorted by time.

    Parameters
    ----------
    rows:
        Number of score rows (each response yields 2 or 6 rows; the last response may
        be cut to make the count exact).
    days, customers, seed, start:
        Length of the history, number of named customers, RNG seed, first instant (UTC).
    switch_day:
        When the quality judge's fingerprint changes, in days after ``start``.
    rollout_hours:
        The new fingerprint's share grows linearly from 0 to 1 over this many hours.
    score_shift:
        Added to the quality judge's scores on each dimension when the new fingerprint
        served them (default :data:`DEFAULT_SHIFT`).
    anonymous_share, safety_only_share:
        Share of responses without a customer; share of customers scored for safety only.
    mix_shift_day, mix_shift_to:
        From this day on, every customer's segment mix is blended 50/50 with
        ``mix_shift_to`` (segment → weight): an input distribution shift.
    switch:
        ``False`` generates a history in which the judge never changes.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    rng = np.random.default_rng(seed)
    shift = dict(DEFAULT_SHIFT if score_shift is None else score_shift)
    day_us = 86_400_000_000
    start_us = int(start.timestamp() * 1_000_000)

    # -- customers ------------------------------------------------------------------
    names = _customer_names(customers)
    ranks = rng.permutation(customers) + 1
    weight = 1.0 / ranks.astype(float) ** 1.1
    weight /= weight.sum()
    kind = rng.random(customers)
    first_day = np.zeros(customers, dtype=np.int64)
    last_day = np.full(customers, days, dtype=np.int64)  # exclusive
    late = kind < 0.15
    churn = (kind >= 0.15) & (kind < 0.30)
    first_day[late] = rng.integers(1, max(2, days - 5), late.sum())
    last_day[churn] = rng.integers(5, max(6, days), churn.sum())
    safety_only = rng.random(customers) < safety_only_share
    mix = rng.dirichlet(np.full(len(SEGMENTS), 1.5), customers)
    if mix_shift_to:
        target = np.array([mix_shift_to.get(s, 0.0) for s in SEGMENTS], dtype=float)
        target = target / target.sum()
        shifted_mix = 0.5 * mix + 0.5 * target
    else:
        shifted_mix = mix

    # -- responses ------------------------------------------------------------------
    rows_per_resp = np.where(safety_only, len(JUDGES["safety-judge"]), len(DIMENSIONS))
    mean_rows = float((weight * rows_per_resp).sum()) * (1 - anonymous_share) + len(
        DIMENSIONS
    ) * anonymous_share
    n_resp = int(rows / mean_rows * 1.02) + 16 if rows else 0
    anon = rng.random(n_resp) < anonymous_share
    cust = rng.choice(customers, size=n_resp, p=weight)
    span = np.maximum(last_day[cust] - first_day[cust], 1)
    day = first_day[cust] + (rng.random(n_resp) * span).astype(np.int64)
    day[anon] = rng.integers(0, days, anon.sum())
    hour = rng.choice(24, size=n_resp, p=_HOURLY / _HOURLY.sum())
    t_us = (
        start_us
        + day * day_us
        + hour * 3_600_000_000
        + rng.integers(0, 3_600_000_000, n_resp)
    )
    order = np.argsort(t_us, kind="stable")
    t_us, cust, anon = t_us[order], cust[order], anon[order]

    switch_us = start_us + int(switch_day * day_us)
    mix_us = None if mix_shift_day is None else start_us + int(mix_shift_day * day_us)
    probs = mix[cust]
    if mix_us is not None:
        late_mix = t_us >= mix_us
        probs = np.where(late_mix[:, None], shifted_mix[cust], probs)
    seg = (rng.random(n_resp)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    seg = np.minimum(seg, len(SEGMENTS) - 1)
    cust_safety_only = safety_only[cust] & ~anon
    if switch:
        rollout_us = max(rollout_hours, 0.0) * 3_600_000_000
        share_new = np.clip((t_us - switch_us) / rollout_us, 0.0, 1.0) if rollout_us else (
            (t_us >= switch_us).astype(float)
        )
        new_fp = (t_us >= switch_us) & (rng.random(n_resp) < share_new)
    else:
        new_fp = np.zeros(n_resp, dtype=bool)

    # -- expand to score rows ---------------------------------------------------------
    dim_index = np.arange(len(DIMENSIONS))
    safety_dims = np.array([DIMENSIONS.index(d) for d in JUDGES["safety-judge"]])
    is_safety_dim = np.isin(dim_index, safety_dims)
    keep = np.where(cust_safety_only[:, None], is_safety_dim[None, :], True)
    resp_idx, dim = np.nonzero(keep)
    resp_idx = resp_idx[:rows]
    dim = dim[:rows]
    if len(resp_idx) < rows:  # pragma: no cover - the 2% margin always suffices
        raise RuntimeError("generator undershot the row count")

    quality = ~is_safety_dim[dim]
    seg_r = seg[resp_idx]
    score = rng.normal(_BASE_MEAN[dim, seg_r], 0.12)
    drifted = quality & new_fp[resp_idx]
    shift_vec = np.array([shift.get(d, 0.0) for d in DIMENSIONS])
    score = score + np.where(drifted, shift_vec[dim], 0.0)
    score = np.round(np.clip(score, 0.0, 1.0), 3)

    fingerprint_codes = np.where(quality, np.where(drifted, 1, 0), 2).astype(np.int8)
    fingerprints = pa.array([OLD_FINGERPRINT, NEW_FINGERPRINT, SAFETY_FINGERPRINT])
    judge_names = pa.array(["quality-judge", "safety-judge"])
    judge_codes = np.where(quality, 0, 1).astype(np.int8)

    resp_ids = pc.cast(pa.array(resp_idx, type=pa.int64()), pa.string())
    width = len(str(max(n_resp, 1)))
    resp_ids = pc.utf8_lpad(resp_ids, width=width, padding="0")
    dim_codes = pa.array(["fc", "fl", "sa", "to", "fo", "re"]).take(pa.array(dim))
    score_id = pc.binary_join_element_wise(
        "r", pc.binary_join_element_wise(resp_ids, dim_codes, "-"), ""
    )

    cust_codes = pa.array(cust[resp_idx].astype(np.int32), mask=anon[resp_idx])
    cust_names = pa.DictionaryArray.from_arrays(cust_codes, pa.array(list(names)))
    table = pa.table(
        {
            "score_id": score_id,
            "scored_at": pa.array(t_us[resp_idx], type=pa.timestamp("us", tz="UTC")),
            "judge": pa.DictionaryArray.from_arrays(pa.array(judge_codes), judge_names),
            "fingerprint": pa.DictionaryArray.from_arrays(
                pa.array(fingerprint_codes), fingerprints
            ),
            "dimension": pa.DictionaryArray.from_arrays(
                pa.array(dim.astype(np.int8)), pa.array(list(DIMENSIONS))
            ),
            "score": pa.array(score, type=pa.float64()),
            "customer": cust_names,
            "segment": pa.DictionaryArray.from_arrays(
                pa.array(seg_r.astype(np.int8)), pa.array(list(SEGMENTS))
            ),
        }
    )
    first_new = None
    if drifted.any():
        first_us = int(t_us[resp_idx][drifted].min())
        first_new = datetime.fromtimestamp(first_us / 1_000_000, tz=UTC)
    return GeneratedHistory(
        table=table,
        start=start,
        end=start + timedelta(days=days),
        switch_at=datetime.fromtimestamp(switch_us / 1_000_000, tz=UTC),
        rollout_hours=rollout_hours,
        drifted_judge="quality-judge",
        old_fingerprint=OLD_FINGERPRINT,
        new_fingerprint=NEW_FINGERPRINT,
        first_new_score_at=first_new,
        customers=[str(n) for n in names],
        safety_only_customers=[str(n) for n in names[safety_only]],
        score_shift=shift,
        mix_shift_at=None if mix_us is None else datetime.fromtimestamp(mix_us / 1e6, tz=UTC),
    )


def _batches(table: pa.Table, size: int) -> Iterator[pa.Table]:
    for offset in range(0, table.num_rows, size):
        yield table.slice(offset, size)


def write_history(
    history: GeneratedHistory | pa.Table,
    path: str | Path,
    *,
    row_group_size: int = 500_000,
) -> Path:
    """Write a generated history as CSV, JSONL or Parquet (by extension).

    Timestamps are written as ISO-8601 UTC with a ``Z``; missing customers are empty.
    Parquet is written in row groups of ``row_group_size`` rows.
    """
    table = history.table if isinstance(history, GeneratedHistory) else history
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        # Dictionary columns stay dictionary-encoded (as Parquet stores them anyway).
        pq.write_table(table, path, row_group_size=row_group_size, compression="snappy")
        return path
    text = _as_text(table)
    if suffix == ".csv":
        import pyarrow.csv as pacsv

        with pacsv.CSVWriter(path, text.schema,
                             write_options=pacsv.WriteOptions(quoting_style="needed")) as w:
            for part in _batches(text, row_group_size):
                w.write_table(part)
        return path
    if suffix in (".jsonl", ".ndjson"):
        import json

        with path.open("w", encoding="utf-8") as f:
            for part in _batches(text, row_group_size):
                cols = part.to_pydict()
                for values in zip(*cols.values(), strict=True):
                    record = dict(zip(cols.keys(), values, strict=True))
                    record["score"] = float(record["score"])
                    f.write(json.dumps(record) + "\n")
        return path
    raise ValueError(f"unknown extension {suffix!r}: use .csv, .jsonl or .parquet")


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    fields = []
    for f in schema:
        typ = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        fields.append(pa.field(f.name, typ))
    return pa.schema(fields)


def _as_text(table: pa.Table) -> pa.Table:
    """The table with ISO-8601 ``Z`` timestamps and plain strings (for CSV/JSONL)."""
    plain = table.cast(_plain_schema(table.schema))
    iso = pc.strftime(plain.column("scored_at"), format="%Y-%m-%dT%H:%M:%SZ", locale="C")
    plain = plain.set_column(plain.schema.get_field_index("scored_at"), "scored_at", iso)
    return plain
