"""Checks around the correction: do the estimates agree, is the calibration set like
production, and does the correction cover a known truth (placebo)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from judgecal.scales import Scale
from judgecal.stats.correction._ppi import MIN_LABELLED, check_confidence, ppi_mean, raw_estimate
from judgecal.stats.correction._result import (
    FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION,
    FLAG_CALIBRATION_NOT_REPRESENTATIVE,
    FLAG_PLACEBO_MISSED,
    AgreementCheck,
    CorrectionEstimate,
    PlaceboMethod,
    PlaceboResult,
    RepresentativenessCheck,
)
from judgecal.stats.correction._shift import shift_robust
from judgecal.stats.correction._target import check_scores, target_for

METHODS = ("raw", "ppi++", "shift_robust")
"""The estimators :func:`correct_window` runs, by name."""


AgreementRule = Literal["difference", "overlap"]


def _facing_half_widths(a: CorrectionEstimate, b: CorrectionEstimate) -> tuple[float, float]:
    """Half-widths of a and b on the sides that face each other."""
    assert a.value is not None and b.value is not None
    assert a.ci_low is not None and a.ci_high is not None
    assert b.ci_low is not None and b.ci_high is not None
    if a.value <= b.value:
        return max(a.ci_high - a.value, 0.0), max(b.value - b.ci_low, 0.0)
    return max(a.value - a.ci_low, 0.0), max(b.ci_high - b.value, 0.0)


def agreement_check(
    estimates: Sequence[CorrectionEstimate] | Mapping[str, CorrectionEstimate],
    *,
    rule: AgreementRule = "difference",
    exclude: Sequence[str] = ("raw",),
) -> AgreementCheck:
    r"""Say whether corrected estimates of one window disagree beyond their intervals.

    Parameters
    ----------
    estimates : sequence or mapping of CorrectionEstimate
        E.g. the PPI++ and shift-robust estimates of the same window (a mapping's keys name
        them; otherwise each estimate's ``method``).
    rule : {"difference", "overlap"}, default "difference"
        When a pair disagrees (see Notes).
    exclude : sequence of str, default ("raw",)
        Names left out of the comparison. The raw judge mean is left out by default: under
        drift it *should* differ from the corrected estimates.

    Returns
    -------
    AgreementCheck
        ``disagree`` is True when at least one pair disagrees; then the flag
        ``calibration_not_representative`` ("the calibration set does not represent the
        window; label a window sample") is set.

    Notes
    -----
    With estimates :math:`a \le b` and the half-widths of their intervals on the sides that
    face each other, :math:`h_a = a_{high} - a` and :math:`h_b = b - b_{low}`:

    * ``difference`` — disagree when :math:`b - a > \sqrt{h_a^2 + h_b^2}`: the interval of
      the difference excludes 0, as for two independent normal estimates at the intervals'
      level (Schenker & Gentleman 2001, "On judging the significance of differences by
      examining the overlap between confidence intervals", Am. Stat. 55(3):182–186). The
      PPI++ and shift-robust estimates share the calibration set and are positively
      correlated, so the true variance of their difference is smaller and the rule's
      false-alarm rate stays below 1 − confidence.
    * ``overlap`` — disagree only when the intervals do not overlap,
      :math:`b - a > h_a + h_b`: far more conservative (false alarms well below 1 %, but
      it misses moderate disagreements).

    PPI++ is unbiased when the calibration set is a random sample of the window's
    population; the shift-robust estimate stays unbiased when the label distribution
    differs but the judge's error rates given the true label do not. When they disagree
    the two assumptions cannot both hold, and the calibration set is the suspect. The
    power and false-alarm rate are measured in ``benchmarks/bench_correction.py``.
    Undefined estimates and estimates without an interval are skipped (listed).
    """
    if rule not in ("difference", "overlap"):
        raise ValueError(f"rule must be 'difference' or 'overlap', got {rule!r}")
    items = list(estimates.items()) if isinstance(estimates, Mapping) \
        else [(e.method, e) for e in estimates]
    compared: list[tuple[str, CorrectionEstimate]] = []
    skipped: list[str] = []
    for name, est in items:
        if name in exclude or est.value is None or est.ci_low is None:
            skipped.append(name)
        else:
            compared.append((name, est))
    pairs: list[tuple[str, str]] = []
    for i, (name_a, a) in enumerate(compared):
        for name_b, b in compared[i + 1:]:
            assert a.value is not None and b.value is not None
            h_a, h_b = _facing_half_widths(a, b)
            gap = abs(b.value - a.value)
            limit = h_a + h_b if rule == "overlap" else math.hypot(h_a, h_b)
            if gap > limit:
                pairs.append((name_a, name_b))
    disagree = bool(pairs)
    return AgreementCheck(disagree, tuple(pairs), tuple(n for n, _ in compared),
                          tuple(skipped),
                          (FLAG_CALIBRATION_NOT_REPRESENTATIVE,) if disagree else ())


def representativeness_check(
    scale: Scale,
    calibration_judge: object,
    production_judge: object,
    *,
    alpha: float = 0.05,
    min_items: int = MIN_LABELLED,
) -> RepresentativenessCheck:
    r"""Compare the healthy judge's scores on the calibration items with production traffic.

    Parameters
    ----------
    scale : Scale
        The dimension's scale.
    calibration_judge : array-like
        The healthy (pre-onset) judge's scores of the calibration items (NaN left out).
    production_judge : array-like
        The same judge's scores of production traffic before the onset (NaN left out).
    alpha : float, default 0.05
        The calibration set is flagged when ``p_value < alpha``.
    min_items : int, default 10
        Fewer scores on either side give an undefined check.

    Returns
    -------
    RepresentativenessCheck
        Test name, statistic, p-value, ``representative`` (``p_value >= alpha``), the
        effect size, and the flag ``calibration_differs_from_production`` when not
        representative.

    Notes
    -----
    * **binary, nominal, pairwise, ordinal** — Pearson's chi-square test of homogeneity on
      the 2 × K table of score counts (categories neither side used are dropped; no Yates
      correction): :math:`X^2 = \sum (O - E)^2 / E`, K − 1 degrees of freedom
      (``scipy.stats.chi2_contingency``). Ordinal scores between codes are rounded to the
      nearest code. The test ignores the order of ordinal codes: it detects any change of
      distribution, which is what confusion-matrix inversion and PPI++ both rely on. When an
      expected count is below 5 the p-value is approximate (said in ``note``).
      Effect size: the total-variation distance :math:`\tfrac12\sum_k |p_k - q_k|`.
    * **interval** — the two-sample Kolmogorov–Smirnov test (``scipy.stats.ks_2samp``);
      effect size: the KS distance D.

    The test asks whether production scores could come from the calibration set's
    distribution; a very large production sample makes small differences significant, so
    read ``effect_size`` with the flag. Scores are treated as independent (clustered
    traffic makes the p-value too small).
    """
    from scipy import stats

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    target = target_for(scale, 1.0 if scale.kind == "binary" else
                        (0.0 if scale.kind == "nominal" else None))
    cal = check_scores(target, calibration_judge, "calibration judge scores")
    prod = check_scores(target, production_judge, "production judge scores")
    cal, prod = cal[~np.isnan(cal)], prod[~np.isnan(prod)]
    n_cal, n_prod = int(cal.size), int(prod.size)
    diag: dict[str, Any] = {"mean_calibration": float(cal.mean()) if n_cal else None,
                            "mean_production": float(prod.mean()) if n_prod else None}
    if n_cal < min_items or n_prod < min_items:
        return RepresentativenessCheck(
            None, None, None, None, alpha, n_cal, n_prod,
            undefined=f"too few scores (calibration {n_cal}, production {n_prod}; "
            f"need {min_items} each)", diagnostics=diag)
    codes = target.judge_codes
    if codes is None:
        res = stats.ks_2samp(cal, prod)
        stat, p = float(res.statistic), float(res.pvalue)
        ok = p >= alpha
        return RepresentativenessCheck(
            "ks_two_sample", stat, p, ok, alpha, n_cal, n_prod, effect_size=stat,
            flags=() if ok else (FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION,),
            diagnostics=diag)
    if scale.kind == "ordinal":
        cal = np.clip(np.floor(cal + 0.5), codes[0], codes[-1])
        prod = np.clip(np.floor(prod + 0.5), codes[0], codes[-1])
    table = np.vstack([
        np.bincount(np.searchsorted(codes, cal), minlength=codes.size),
        np.bincount(np.searchsorted(codes, prod), minlength=codes.size),
    ]).astype(np.float64)
    used = table.sum(axis=0) > 0
    dist = table / table.sum(axis=1, keepdims=True)
    diag["codes"] = codes.tolist()
    diag["distribution_calibration"] = dist[0].tolist()
    diag["distribution_production"] = dist[1].tolist()
    tvd = float(0.5 * np.abs(dist[0] - dist[1]).sum())
    if used.sum() < 2:
        diag["dof"] = 0
        return RepresentativenessCheck(
            "chi2_homogeneity", 0.0, 1.0, True, alpha, n_cal, n_prod, effect_size=tvd,
            note="the judge gave one and the same category on both sides", diagnostics=diag)
    chi2, p, dof, expected = stats.chi2_contingency(table[:, used], correction=False)
    diag["dof"] = int(dof)
    note = None
    if float(np.min(expected)) < 5:
        note = "an expected count is below 5: the chi-square p-value is approximate"
    ok = float(p) >= alpha
    return RepresentativenessCheck(
        "chi2_homogeneity", float(chi2), float(p), ok, alpha, n_cal, n_prod,
        effect_size=tvd, note=note,
        flags=() if ok else (FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION,), diagnostics=diag)


def correct_window(
    scale: Scale,
    human: object,
    judge: object,
    window_judge: object,
    *,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
    methods: Sequence[str] = METHODS,
    confidence: float = 0.95,
    positive: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    min_labelled: int = MIN_LABELLED,
) -> dict[str, CorrectionEstimate]:
    """Run the estimators on one window: ``{"raw": …, "ppi++": …, "shift_robust": …}``.

    ``clusters`` (one id per window score, e.g. the conversation or trace) makes every
    window term cluster-robust (raw, PPI++ and shift-robust). The other
    parameters are those of :func:`raw_estimate`, :func:`ppi_mean` and
    :func:`shift_robust`; pass the result to :func:`agreement_check`.
    """
    check_confidence(confidence)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r} (known: {', '.join(METHODS)})")
    out: dict[str, CorrectionEstimate] = {}
    for name in methods:
        if name == "raw":
            out[name] = raw_estimate(scale, window_judge, clusters=clusters,
                                     confidence=confidence, positive=positive)
        elif name == "ppi++":
            out[name] = ppi_mean(scale, human, judge, window_judge, confidence=confidence,
                                 positive=positive, min_labelled=min_labelled,
                                 clusters=clusters)
        else:
            out[name] = shift_robust(scale, human, judge, window_judge,
                                     confidence=confidence, positive=positive, n_boot=n_boot,
                                     seed=seed, min_labelled=min_labelled,
                                     clusters=clusters)
    return out


def placebo(
    scale: Scale,
    human: object,
    judge: object,
    windows: Sequence[object],
    known_values: float | Sequence[float],
    *,
    methods: Sequence[str] = ("ppi++", "shift_robust"),
    confidence: float = 0.95,
    positive: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    min_labelled: int = MIN_LABELLED,
) -> PlaceboResult:
    """Run the correction on windows whose true value is known and report coverage.

    Parameters
    ----------
    scale, human, judge
        The calibration set (human consensus and the judge's scores of the same items).
    windows : sequence of array-like
        Judge scores of each placebo window — typically pre-drift windows of the healthy
        judge, for which the truth is known (from labelled samples of those windows, or by
        construction in a simulation).
    known_values : float or sequence of float
        The true mean (or rate) of each window (one number for all windows, or one each).
    methods : sequence of str, default ("ppi++", "shift_robust")
        Estimators of :func:`correct_window` to score.
    confidence, positive, n_boot, min_labelled
        As in :func:`correct_window`; window i uses bootstrap seed ``seed + i``.

    Returns
    -------
    PlaceboResult
        Per method: windows tried, windows with an interval, windows covered, coverage and
        its Monte-Carlo error ``√(c(1 − c)/n_defined)``, mean width; every window's
        estimates; the flag ``placebo_missed`` when any interval missed its known value.

    Notes
    -----
    With no drift and a representative calibration set, a 95 % interval should cover the
    known value in about 95 % of windows; markedly fewer means the correction's assumptions
    fail on this judge and set even before the drift (see
    ``benchmarks/bench_correction.py``, scenario c).
    """
    wins = list(windows)
    if isinstance(known_values, (int, float, np.floating, np.integer)):
        known = [float(known_values)] * len(wins)
    else:
        known = [float(v) for v in known_values]
    if len(known) != len(wins):
        raise ValueError(f"{len(known)} known values for {len(wins)} windows")
    if not all(math.isfinite(v) for v in known):
        raise ValueError("known values must be finite")
    results: list[dict[str, CorrectionEstimate]] = []
    for i, win in enumerate(wins):
        results.append(correct_window(scale, human, judge, win, methods=methods,
                                      confidence=confidence, positive=positive, n_boot=n_boot,
                                      seed=seed + i, min_labelled=min_labelled))
    summary: dict[str, PlaceboMethod] = {}
    missed = False
    for name in methods:
        defined = [(r[name], k) for r, k in zip(results, known, strict=True)
                   if r[name].width is not None]
        covered = sum(e.covers(k) for e, k in defined)
        missed = missed or covered < len(defined)
        cov = covered / len(defined) if defined else None
        summary[name] = PlaceboMethod(
            name, len(wins), len(defined), covered, cov,
            math.sqrt(cov * (1 - cov) / len(defined)) if cov is not None else None,
            float(np.mean([e.width or 0.0 for e, _ in defined])) if defined else None)
    return PlaceboResult(summary, tuple(results), tuple(known),
                         (FLAG_PLACEBO_MISSED,) if missed else ())
