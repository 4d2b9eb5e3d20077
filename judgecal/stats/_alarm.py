"""The alarm rule's statistics: paired intervals at any level, and Holm across dimensions.

A drift check asks, per dimension, whether the change of the primary metric between two runs
on the same items is real at the *alarm level* (``alpha``, far below 0.05 on routine nights;
see ``docs/drift.md``). :func:`alarm_interval` gives the paired interval at that level and
:func:`holm` runs Holm's step-down procedure across the dimensions of one check. Pure: codes
in, intervals out; no store, no prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from judgecal.stats._agreement import paired_difference
from judgecal.stats._result import MetricValue

if TYPE_CHECKING:
    import numpy as np

    from judgecal.scales import Scale

__all__ = ["MIN_TAIL_RESAMPLES", "DimensionData", "alarm_interval", "decide", "holm"]


@dataclass
class DimensionData:
    """One dimension of a comparison: codes aligned by item (NaN = unscored)."""

    dimension: str
    scale: Scale
    metric: str
    human: np.ndarray
    a: np.ndarray
    b: np.ndarray
    present_a: np.ndarray
    present_b: np.ndarray
    intervals: dict[tuple[float, int], Any] = field(default_factory=dict)


MIN_TAIL_RESAMPLES = 10
"""A percentile interval needs at least this many bootstrap resamples beyond each end."""

_ONE_SE = 2 * NormalDist().cdf(1.0) - 1.0  # central share within ±1 standard deviation


def alarm_interval(d: DimensionData, alpha: float, n_boot: int, seed: int) -> Any:
    """Paired interval of the primary metric's change at level ``1 - alpha``.

    A percentile interval when the bootstrap resolves it (at least ``MIN_TAIL_RESAMPLES``
    resamples beyond each end); beyond that (e.g. 0.05 / 30 with 1000 resamples) the normal
    interval ``Δ ± z · SE``, with the bootstrap standard error read robustly from the central
    68.3 % percentile interval.
    """
    key = (alpha, n_boot)
    if key in d.intervals:
        return d.intervals[key]
    if n_boot == 0 or alpha / 2 * n_boot >= MIN_TAIL_RESAMPLES:
        mv = paired_difference(
            d.scale, d.human, d.a, d.b, metrics=[d.metric], n_boot=n_boot, seed=seed,
            confidence=1.0 - alpha,
        ).metrics[d.metric]
    else:
        one = paired_difference(
            d.scale, d.human, d.a, d.b, metrics=[d.metric], n_boot=n_boot, seed=seed,
            confidence=_ONE_SE,
        ).metrics[d.metric]
        if one.value is None or one.ci_low is None or one.ci_high is None:
            mv = one
        else:
            se = (one.ci_high - one.ci_low) / 2.0
            z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
            mv = MetricValue(
                value=one.value, ci_low=one.value - z * se, ci_high=one.value + z * se,
                n=one.n, note="normal interval with the bootstrap standard error",
            )
    d.intervals[key] = mv
    return mv


def holm(dims: list[DimensionData], alpha: float, n_boot: int, seed: int
         ) -> dict[str, tuple[bool, float]]:
    """Holm's step-down over dimensions: ``{dim: (real, level used)}`` (see module doc)."""
    out: dict[str, tuple[bool, float]] = {}
    remaining = [d for d in dims if alarm_interval(d, alpha, 0, seed).value is not None]
    for d in dims:
        if d not in remaining:
            out[d.dimension] = (False, alpha)
    while remaining:
        level = alpha / len(remaining)
        found = [d for d in remaining if alarm_interval(d, level, n_boot, seed).excludes_zero]
        for d in remaining:
            out[d.dimension] = (d in found, level)
        if not found:
            break
        remaining = [d for d in remaining if d not in found]
    return out


def decide(dims: list[DimensionData], alpha: float, *, n_boot: int, seed: int
           ) -> dict[str, dict[str, Any]]:
    """The drift rule's decision per dimension, without a store (benchmarks use it).

    Returns ``{dim: {"real", "level", "delta_points", "interval_points"}}``: whether the move
    is real under Holm at family level ``alpha``, the level it was tested at, and its
    interval at that level.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, (real, used) in holm(dims, alpha, n_boot, seed).items():
        d = next(x for x in dims if x.dimension == name)
        iv = alarm_interval(d, used, n_boot, seed)
        out[name] = {
            "real": real,
            "level": used,
            "delta_points": _pts(iv.value),
            "interval_points": [_pts(iv.ci_low), _pts(iv.ci_high)],
        }
    return out


def _pts(x: float | None) -> float | None:
    return None if x is None else 100.0 * x
