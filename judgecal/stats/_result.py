"""Result types of the statistics engine: :class:`MetricValue` and :class:`PairedComparison`.

Both are plain frozen dataclasses (internal values, not file formats); ``to_json`` turns them into
JSON-safe dicts. No NaN or infinity is ever stored: an undefined metric has ``value=None`` and a
reason in ``undefined``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _check_finite(name: str, number: float | None) -> None:
    if number is not None and not math.isfinite(number):
        raise ValueError(f"MetricValue.{name} must be finite or None, got {number!r}")


@dataclass(frozen=True)
class MetricValue:
    """One metric: its point estimate, its bootstrap interval, or the reason it is undefined.

    Invariants (checked on construction): numbers are finite or None; ``value is None`` exactly
    when ``undefined`` gives a reason; an undefined metric has no interval.
    """

    value: float | None
    """Point estimate on the items the metric used; None when the metric is undefined."""
    ci_low: float | None
    """Lower end of the bootstrap percentile interval (None without an interval)."""
    ci_high: float | None
    """Upper end of the bootstrap percentile interval (None without an interval)."""
    undefined: str | None = None
    """Why the metric is undefined (e.g. ``"only one category in the human consensus"``)."""
    n: int | None = None
    """Number of items the metric used (for ``tpr``: items with a positive consensus)."""
    note: str | None = None
    """Why a defined value has no interval, when that happens (e.g. too many degenerate
    resamples); None otherwise."""

    def __post_init__(self) -> None:
        for name in ("value", "ci_low", "ci_high"):
            _check_finite(name, getattr(self, name))
        if (self.value is None) != (self.undefined is not None):
            raise ValueError("a MetricValue has either a value or an 'undefined' reason")
        if self.value is None and (self.ci_low is not None or self.ci_high is not None):
            raise ValueError("an undefined MetricValue has no interval")

    @classmethod
    def undefined_because(cls, reason: str, n: int | None = None) -> MetricValue:
        """The sentinel for an undefined metric: no value, no interval, a reason."""
        return cls(value=None, ci_low=None, ci_high=None, undefined=reason, n=n)

    @property
    def is_defined(self) -> bool:
        """True when the metric has a value."""
        return self.value is not None

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies strictly above or strictly below 0."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 0 or self.ci_high < 0

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict: ``value``, ``ci_low``, ``ci_high``, ``n``; plus ``undefined`` (the
        reason) when the value is None and ``note`` when present. Never NaN or infinity."""
        out: dict[str, Any] = {
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
        }
        if self.undefined is not None:
            out["undefined"] = self.undefined
        if self.note is not None:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class PairedComparison:
    """Two judge runs compared on the same calibration items (see ``paired_difference``).

    ``metrics[name].value`` is ``metric(b) - metric(a)`` on the common items, with a *paired*
    bootstrap interval (the same resampled items for both runs in every replicate).
    ``a`` and ``b`` hold each run's own metric on the common items, with its interval.
    """

    metrics: dict[str, MetricValue]
    """Difference b − a per metric."""
    a: dict[str, MetricValue]
    """Run a (the baseline) on the common items."""
    b: dict[str, MetricValue]
    """Run b (the candidate) on the common items."""
    n_common: int
    """Items with a human consensus that both runs scored: the items compared."""
    left_out_a: int
    """Items with a consensus that run a scored but run b did not (left out of the comparison)."""
    left_out_b: int
    """Items with a consensus that run b scored but run a did not (left out of the comparison)."""
    n_changed: int
    """Common items on which the two runs gave different scores."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form additions (kept JSON-safe)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict of everything above."""
        return {
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
            "a": {k: v.to_json() for k, v in self.a.items()},
            "b": {k: v.to_json() for k, v in self.b.items()},
            "n_common": self.n_common,
            "left_out_a": self.left_out_a,
            "left_out_b": self.left_out_b,
            "n_changed": self.n_changed,
            **({"extra": self.extra} if self.extra else {}),
        }
