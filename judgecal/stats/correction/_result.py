"""Result types of the correction estimators (plain frozen dataclasses, JSON-safe on demand).

Like :class:`judgecal.stats.MetricValue`, nothing stores NaN or infinity: an estimate that
cannot be made has ``value=None``, no interval, a sentence in ``undefined`` and a short key in
``undefined_code`` (one of :data:`UNDEFINED_CODES`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from judgecal.stats._result import MetricValue

# --- flags: short machine keys, with the plain sentence each stands for ---------------------

FLAG_JUDGE_UNINFORMATIVE = "judge_uninformative"
FLAG_CALIBRATION_NOT_REPRESENTATIVE = "calibration_not_representative"
FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION = "calibration_differs_from_production"
FLAG_INTERVAL_BEYOND_SCALE = "interval_beyond_scale"
FLAG_PLACEBO_MISSED = "placebo_missed"

FLAG_TEXT: dict[str, str] = {
    FLAG_JUDGE_UNINFORMATIVE: "the judge carries little information (lambda near 0): the "
    "estimate rests on the human labels alone",
    FLAG_CALIBRATION_NOT_REPRESENTATIVE: "the calibration set does not represent the window; "
    "label a window sample",
    FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION: "the healthy judge scored the calibration items "
    "differently from production traffic before the onset",
    FLAG_INTERVAL_BEYOND_SCALE: "the normal-approximation interval reaches beyond the scale's "
    "range (it is reported unclipped)",
    FLAG_PLACEBO_MISSED: "a placebo window's known value fell outside the interval",
}
"""The sentence behind each flag key (for the command that prints them)."""

# --- reasons an estimate is undefined ------------------------------------------------------

UNDEFINED_CODES = (
    "too_few_items",
    "near_singular",
    "lambda_undefined",
    "not_categorical",
    "stratum_without_labels",
    "one_category",
)
"""Keys of ``CorrectionEstimate.undefined_code``:

``too_few_items``
    fewer usable items than the estimator's minimum (or an empty window);
``near_singular``
    *refused*: the misclassification matrix is too close to singular to invert
    (Se + Sp − 1 or the condition number beyond the documented bound);
``lambda_undefined``
    PPI++ power tuning divides by the judge's score variance, which is zero;
``not_categorical``
    confusion-matrix inversion needs a categorical scale;
``stratum_without_labels``
    a stratum of the window with positive weight has no labelled item;
``one_category``
    the calibration set's human labels use fewer than two categories.
"""


def _finite_or_none(name: str, number: float | None) -> None:
    if number is not None and not math.isfinite(number):
        raise ValueError(f"{name} must be finite or None, got {number!r}")


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python values and NaN/inf into None."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


@dataclass(frozen=True)
class CorrectionEstimate:
    """One estimate of the window's mean (or rate), its interval, or why there is none.

    Invariants (checked on construction): numbers are finite or None; ``value is None``
    exactly when ``undefined`` gives a reason (then ``undefined_code`` is one of
    :data:`UNDEFINED_CODES`); an undefined estimate has no interval.
    """

    method: str
    """``raw``, ``ppi++``, ``human_only``, ``shift_robust`` or ``window_sample_ppi++``."""
    value: float | None
    """The estimate of the window's mean (ordinal/interval) or rate (binary, nominal,
    pairwise); None when undefined."""
    ci_low: float | None
    """Lower end of the interval (None without an interval)."""
    ci_high: float | None
    """Upper end of the interval (None without an interval)."""
    confidence: float
    """Nominal coverage of the interval, e.g. 0.95."""
    interval: str | None = None
    """How the interval was made: ``clt``, ``cluster_clt``, ``delta`` or
    ``bootstrap_percentile``."""
    n_labelled: int | None = None
    """Items with both a human label and a judge score that the estimate used."""
    n_window: int | None = None
    """Window scores the estimate used."""
    undefined: str | None = None
    """Why there is no estimate (a sentence)."""
    undefined_code: str | None = None
    """The same reason as a key of :data:`UNDEFINED_CODES`."""
    note: str | None = None
    """Why a defined value has no interval, or a caveat about the interval."""
    flags: tuple[str, ...] = ()
    """Keys of :data:`FLAG_TEXT` that apply to this estimate."""
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    """Method-specific figures (λ, Se/Sp, condition number, the human-only interval...)."""

    def __post_init__(self) -> None:
        for name in ("value", "ci_low", "ci_high"):
            _finite_or_none(f"CorrectionEstimate.{name}", getattr(self, name))
        if (self.value is None) != (self.undefined is not None):
            raise ValueError("a CorrectionEstimate has either a value or an 'undefined' reason")
        if self.value is None and (self.ci_low is not None or self.ci_high is not None):
            raise ValueError("an undefined CorrectionEstimate has no interval")
        if (self.undefined is None) != (self.undefined_code is None):
            raise ValueError("'undefined' and 'undefined_code' come together")
        if self.undefined_code is not None and self.undefined_code not in UNDEFINED_CODES:
            raise ValueError(f"unknown undefined_code {self.undefined_code!r}")
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError("an interval has two ends")
        if self.ci_low is not None and self.ci_high is not None and self.ci_low > self.ci_high:
            raise ValueError("ci_low must not exceed ci_high")

    @classmethod
    def undefined_because(cls, method: str, code: str, reason: str, *, confidence: float,
                          n_labelled: int | None = None, n_window: int | None = None,
                          diagnostics: Mapping[str, Any] | None = None) -> CorrectionEstimate:
        """The sentinel: no value, no interval, a reason (sentence and key)."""
        return cls(method=method, value=None, ci_low=None, ci_high=None,
                   confidence=confidence, n_labelled=n_labelled, n_window=n_window,
                   undefined=reason, undefined_code=code,
                   diagnostics=dict(diagnostics or {}))

    @property
    def is_defined(self) -> bool:
        """True when the estimate has a value."""
        return self.value is not None

    @property
    def refused(self) -> bool:
        """True when the estimator declined on purpose (a near-singular matrix)."""
        return self.undefined_code == "near_singular"

    @property
    def width(self) -> float | None:
        """``ci_high - ci_low``, or None without an interval."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_high - self.ci_low

    def covers(self, value: float) -> bool:
        """True when ``ci_low <= value <= ci_high`` (False without an interval)."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low <= value <= self.ci_high

    def as_metric_value(self) -> MetricValue:
        """The estimate as the stats package's :class:`MetricValue` (for the reports)."""
        if self.value is None:
            return MetricValue.undefined_because(self.undefined or "undefined",
                                                 n=self.n_labelled)
        return MetricValue(value=self.value, ci_low=self.ci_low, ci_high=self.ci_high,
                           n=self.n_labelled, note=self.note)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict of every field (no NaN or infinity); ``undefined``,
        ``undefined_code``, ``note`` only when set."""
        out: dict[str, Any] = {
            "method": self.method,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "interval": self.interval,
            "n_labelled": self.n_labelled,
            "n_window": self.n_window,
            "flags": list(self.flags),
            "diagnostics": json_safe(self.diagnostics),
        }
        if self.undefined is not None:
            out["undefined"] = self.undefined
            out["undefined_code"] = self.undefined_code
        if self.note is not None:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class AgreementCheck:
    """Whether corrected estimates of the same window disagree beyond their intervals."""

    disagree: bool
    """True when at least one pair of intervals does not overlap."""
    pairs: tuple[tuple[str, str], ...]
    """The method names of each pair whose intervals do not overlap."""
    compared: tuple[str, ...]
    """Methods that took part (defined, with an interval)."""
    skipped: tuple[str, ...]
    """Methods left out: excluded, undefined, or without an interval."""
    flags: tuple[str, ...] = ()
    """``(FLAG_CALIBRATION_NOT_REPRESENTATIVE,)`` when ``disagree``."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        return {"disagree": self.disagree, "pairs": [list(p) for p in self.pairs],
                "compared": list(self.compared), "skipped": list(self.skipped),
                "flags": list(self.flags)}


@dataclass(frozen=True)
class RepresentativenessCheck:
    """The healthy judge's scores on the calibration items against pre-onset production."""

    test: str | None
    """``chi2_homogeneity`` (categorical scales) or ``ks_two_sample`` (interval)."""
    statistic: float | None
    """The test statistic (chi-square, or the Kolmogorov–Smirnov D)."""
    p_value: float | None
    """Its p-value."""
    representative: bool | None
    """``p_value >= alpha``; None when the test is undefined."""
    alpha: float
    """Significance level of the flag."""
    n_calibration: int
    """Calibration scores compared."""
    n_production: int
    """Production scores compared."""
    effect_size: float | None = None
    """Total-variation distance between the two score distributions (categorical), or the
    KS D (interval): how different, whatever the sample sizes."""
    undefined: str | None = None
    """Why there is no test."""
    note: str | None = None
    """A caveat (e.g. small expected counts)."""
    flags: tuple[str, ...] = ()
    """``(FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION,)`` when not representative."""
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    """Degrees of freedom, both distributions, both means."""

    def __post_init__(self) -> None:
        for name in ("statistic", "p_value", "effect_size"):
            _finite_or_none(f"RepresentativenessCheck.{name}", getattr(self, name))
        if (self.representative is None) != (self.undefined is not None):
            raise ValueError("a RepresentativenessCheck has a verdict or an 'undefined' reason")

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        out = {"test": self.test, "statistic": self.statistic, "p_value": self.p_value,
               "representative": self.representative, "alpha": self.alpha,
               "n_calibration": self.n_calibration, "n_production": self.n_production,
               "effect_size": self.effect_size, "flags": list(self.flags),
               "diagnostics": json_safe(self.diagnostics)}
        if self.undefined is not None:
            out["undefined"] = self.undefined
        if self.note is not None:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class StratifiedSample:
    """A stratified random sample of score ids (see :func:`stratified_sample`)."""

    ids: tuple[Any, ...]
    """The sampled score ids, grouped by stratum (strata in sorted order)."""
    strata: tuple[Any, ...]
    """The stratum of each sampled id."""
    allocation: Mapping[Any, tuple[int, int]]
    """Per stratum: (scores in the window, scores sampled)."""
    n_requested: int
    """The sample size asked for (the drawn size differs when there are more strata than
    requested items, since every stratum gets one)."""
    seed: int
    """The seed that reproduces this sample."""

    @property
    def n(self) -> int:
        """Sampled ids."""
        return len(self.ids)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict; strata keys become their ``str``."""
        return {"ids": json_safe(list(self.ids)), "strata": [str(s) for s in self.strata],
                "allocation": {str(k): list(v) for k, v in self.allocation.items()},
                "n_requested": self.n_requested, "seed": self.seed}


@dataclass(frozen=True)
class PlaceboMethod:
    """Coverage of the known values by one method over the placebo windows."""

    method: str
    """Estimator name."""
    n_windows: int
    """Windows tried."""
    n_defined: int
    """Windows where the method gave an interval."""
    n_covered: int
    """Windows whose interval covered the known value."""
    coverage: float | None
    """``n_covered / n_defined`` (None when no window had an interval)."""
    mc_error: float | None
    """Binomial standard error of ``coverage``: sqrt(c(1−c)/n_defined)."""
    mean_width: float | None
    """Mean interval width over the defined windows."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        return json_safe({"method": self.method, "n_windows": self.n_windows,
                          "n_defined": self.n_defined, "n_covered": self.n_covered,
                          "coverage": self.coverage, "mc_error": self.mc_error,
                          "mean_width": self.mean_width})


@dataclass(frozen=True)
class PlaceboResult:
    """The correction run on windows whose true value is known (see :func:`placebo`)."""

    methods: Mapping[str, PlaceboMethod]
    """Coverage per method."""
    windows: tuple[Mapping[str, CorrectionEstimate], ...]
    """Every window's estimates, in the order given."""
    known_values: tuple[float, ...]
    """The known value of each window."""
    flags: tuple[str, ...] = ()
    """``(FLAG_PLACEBO_MISSED,)`` when some defined interval missed its known value."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        return {"methods": {k: v.to_json() for k, v in self.methods.items()},
                "windows": [{k: e.to_json() for k, e in w.items()} for w in self.windows],
                "known_values": list(self.known_values), "flags": list(self.flags)}
