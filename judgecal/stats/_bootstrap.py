"""Item bootstrap: integer weight matrices, percentile intervals, and MetricValue assembly.

Resampling n items with replacement is drawn as ``rng.integers(0, n, size=(b, n))`` and turned
into per-item counts (a weight matrix). Replicates are generated in batches so memory stays
bounded (about ``WORK_ELEMENTS`` numbers per batch); the random stream does not depend on the
batch size, so a given ``seed`` always gives the same replicates and the same intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from judgecal.stats._kernels import WORK_ELEMENTS
from judgecal.stats._result import MetricValue

ComputeFn = Callable[[np.ndarray], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]
"""weights (b, n) -> (values per metric key, items used per metric key), arrays of shape (b,)."""

MIN_DEFINED_SHARE = 0.9
"""An interval is reported only when the metric is defined in at least this share of
replicates; otherwise the value is reported without an interval and with a note."""


def check_options(n_boot: int, confidence: float, min_items: int) -> None:
    """Validate the shared keyword options (one message per precondition)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if isinstance(min_items, bool) or not isinstance(min_items, (int, np.integer)) or min_items < 1:
        raise ValueError(f"min_items must be a positive integer, got {min_items!r}")


def weight_batches(n_items: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap weight matrices (b, n_items) whose rows sum to ``n_items``, in batches."""
    rng = np.random.default_rng(seed)
    step = max(1, WORK_ELEMENTS // max(n_items, 1))
    done = 0
    while done < n_boot:
        b = min(step, n_boot - done)
        idx = rng.integers(0, n_items, size=(b, n_items), dtype=np.int32)
        idx += (np.arange(b, dtype=np.int32) * n_items)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n_items)
        yield counts.reshape(b, n_items).astype(np.float64)
        done += b


def replicates(compute: ComputeFn, n_items: int, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Metric values of every bootstrap replicate, as arrays of shape (n_boot,)."""
    parts: dict[str, list[np.ndarray]] = {}
    if n_items == 0 or n_boot == 0:
        return {}
    for weights in weight_batches(n_items, n_boot, seed):
        values, _ = compute(weights)
        for key, arr in values.items():
            parts.setdefault(key, []).append(arr)
    return {k: np.concatenate(v) for k, v in parts.items()}


def percentile_interval(
    values: np.ndarray | None, confidence: float
) -> tuple[float | None, float | None, str | None]:
    """Percentile interval of replicate values: ``(low, high, note)``.

    Undefined replicates (NaN) are dropped; when fewer than ``MIN_DEFINED_SHARE`` of them are
    defined the interval is withheld and ``note`` says why.
    """
    if values is None or values.size == 0:
        return None, None, None
    finite = values[np.isfinite(values)]
    if finite.size < MIN_DEFINED_SHARE * values.size:
        return None, None, (
            f"no interval: the metric is undefined in {values.size - finite.size} of "
            f"{values.size} bootstrap resamples")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high), None


def too_few(n: int, min_items: int, what: str = "items") -> str:
    """The reason text for a metric computed on too few items."""
    return f"too few {what} ({n} < {min_items})"


def metric_value(
    value: float,
    n: int,
    boot: np.ndarray | None,
    confidence: float,
    min_items: int,
    reason: Callable[[], str],
    what: str = "items",
) -> MetricValue:
    """Assemble one MetricValue from a point estimate, its item count and its replicates."""
    if n < min_items:
        return MetricValue.undefined_because(too_few(n, min_items, what), n=n)
    if not np.isfinite(value):
        return MetricValue.undefined_because(reason(), n=n)
    low, high, note = percentile_interval(boot, confidence)
    return MetricValue(value=float(value), ci_low=low, ci_high=high, n=n, note=note)
