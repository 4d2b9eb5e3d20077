"""The raw window mean, PPI++ on a calibration set, and PPI++ on a stratified window sample.

Notation: n labelled items with human target value ``Y_i`` and judge value ``f_i``; N window
scores ``f̃_j``; ``z = Φ⁻¹(1 − (1 − confidence)/2)``; ``var₀`` is the variance with divisor
n (or N), as in the reference implementation ppi-python.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from judgecal.scales import Scale
from judgecal.stats.correction._cluster import cluster_codes, cluster_variance
from judgecal.stats.correction._result import (
    FLAG_INTERVAL_BEYOND_SCALE,
    FLAG_JUDGE_UNINFORMATIVE,
    CorrectionEstimate,
)
from judgecal.stats.correction._target import Target, check_scores, target_for

LambdaRule = Literal["power_tuning", "min_variance"]

LAMBDA_LOW = 0.1
"""Below this tuned λ the judge "carries little information" (flag ``judge_uninformative``):
the PPI++ estimate is within 10 % of the human-only one in its use of the judge."""

MIN_LABELLED = 10
"""Default least number of labelled pairs for PPI++ (the stats package's ``min_items``)."""


def z_value(confidence: float) -> float:
    """Two-sided normal quantile ``Φ⁻¹(1 − (1 − confidence)/2)``."""
    check_confidence(confidence)
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def check_confidence(confidence: float) -> None:
    """Raise ValueError unless 0 < confidence < 1."""
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def _beyond(target: Target, low: float, high: float) -> bool:
    if target.bounds is None:
        return False
    lo, hi = target.bounds
    return low < lo - 1e-12 or high > hi + 1e-12


# --- raw ---------------------------------------------------------------------------------


def raw_estimate(
    scale: Scale,
    window_judge: object,
    *,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
    confidence: float = 0.95,
    positive: float | None = None,
    min_items: int = 2,
) -> CorrectionEstimate:
    """The window's judge scores as they are: their mean (or rate) with a CLT interval.

    Parameters
    ----------
    scale : Scale
        The dimension's scale (decides mean or rate, see :mod:`._target`).
    window_judge : array-like of shape (N,)
        The judge's scores in the window (codes; NaN = unscored, left out).
    clusters : sequence of hashable, optional
        Cluster id per score (e.g. conversation or trace id). When given, the interval is
        cluster-robust: residuals are summed within clusters.
    confidence : float, default 0.95
        Nominal coverage of the interval.
    positive : float, optional
        The category whose rate is estimated (binary: default 1; nominal: required).
    min_items : int, default 2
        Fewer scores (or fewer clusters) give the ``too_few_items`` sentinel.

    Returns
    -------
    CorrectionEstimate
        ``method="raw"``, ``interval="clt"`` or ``"cluster_clt"``.

    Notes
    -----
    With target values ``x_j`` and mean ``x̄``, the interval is ``x̄ ± z·√V`` with

    * i.i.d.: ``V = s²/N``, ``s²`` the sample variance (divisor N − 1);
    * clustered (G clusters, residual totals ``e_g = Σ_{j∈g} (x_j − x̄)``):
      ``V = G/(G − 1) · Σ_g e_g² / N²`` (the CR1 sandwich; Cameron & Miller 2015,
      "A Practitioner's Guide to Cluster-Robust Inference", J. Human Resources 50(2)).
      With one score per cluster it equals the i.i.d. formula.

    ``diagnostics["design_effect"]`` is the clustered V over the i.i.d. V. The interval is
    not clipped to the scale (flag ``interval_beyond_scale`` when it reaches beyond).
    A window whose scores are all equal gets a zero-width interval and a note.
    """
    target = target_for(scale, positive)
    z = z_value(confidence)
    scores = check_scores(target, window_judge, "window judge scores")
    keep = ~np.isnan(scores)
    x = target.values(scores[keep])
    n = int(x.size)
    diag: dict[str, Any] = {"target": target.description, "dropped_window": int((~keep).sum())}
    if n < min_items:
        return CorrectionEstimate.undefined_because(
            "raw", "too_few_items", f"too few window scores ({n} < {min_items})",
            confidence=confidence, n_window=n, diagnostics=diag)
    mean = float(x.mean())
    var_iid = float(x.var(ddof=1)) / n
    interval = "clt"
    var = var_iid
    if clusters is not None:
        codes = cluster_codes(clusters, scores.size, keep)
        var, g = cluster_variance(x, codes)
        diag["n_clusters"] = g
        if g < min_items:
            return CorrectionEstimate.undefined_because(
                "raw", "too_few_items", f"too few clusters ({g} < {min_items})",
                confidence=confidence, n_window=n, diagnostics=diag)
        interval = "cluster_clt"
        diag["design_effect"] = var / var_iid if var_iid > 0 else None
    half = z * math.sqrt(max(var, 0.0))
    low, high = mean - half, mean + half
    flags = (FLAG_INTERVAL_BEYOND_SCALE,) if _beyond(target, low, high) else ()
    note = "every window score has the same value: the interval has zero width" \
        if var == 0 else None
    return CorrectionEstimate("raw", mean, low, high, confidence, interval=interval,
                              n_window=n, note=note, flags=flags, diagnostics=diag)


# --- PPI++ core --------------------------------------------------------------------------


@dataclass(frozen=True)
class PPIFit:
    """The numbers of one PPI++ fit (λ, estimate, standard error, and the λ = 0 ones)."""

    theta: float
    se: float
    lam: float
    theta_human: float
    se_human: float


def _norm_weights(w: np.ndarray | None, size: int) -> np.ndarray:
    if w is None:
        return np.ones(size)
    return w / w.sum() * size


def ppi_fit(
    y: np.ndarray,
    f: np.ndarray,
    f_window: np.ndarray,
    *,
    lam: float | None = None,
    lambda_rule: LambdaRule = "power_tuning",
    w: np.ndarray | None = None,
    w_window: np.ndarray | None = None,
) -> PPIFit | None:
    """PPI++ mean on clean arrays; None when the tuned λ is undefined (0/0).

    Weights are rescaled to mean 1 within each set (as ppi-python does). See
    :func:`ppi_mean` for the formulas.
    """
    n, big_n = y.size, f_window.size
    wl = _norm_weights(w, n)
    wu = _norm_weights(w_window, big_n)
    tuned = lam is None
    if lam is None:
        if lambda_rule == "power_tuning":
            theta1 = float((wu * f_window).mean() + (wl * (y - f)).mean())
            g = wl * (y - theta1)
            gh = wl * (f - theta1)
            ghu = wu * (f_window - theta1)
            num = 2.0 / n * float(((g - g.mean()) * (gh - gh.mean())).sum())
            pooled = np.concatenate([gh, ghu])
            den = 2.0 * (1.0 + n / big_n) * float(pooled.var(ddof=1))
        elif lambda_rule == "min_variance":
            a, b, c = wl * y, wl * f, wu * f_window
            num = float(((a - a.mean()) * (b - b.mean())).mean())
            den = float(b.var()) + n / big_n * float(c.var())
        else:
            raise ValueError(f"lambda_rule must be 'power_tuning' or 'min_variance', "
                             f"got {lambda_rule!r}")
        if not den > 0.0:
            return None
        lam = float(np.clip(num / den, 0.0, 1.0))
    lam = float(lam)
    theta = float((wu * lam * f_window).mean() + (wl * (y - lam * f)).mean())
    var = float((wu * lam * f_window).var()) / big_n + float((wl * (y - lam * f)).var()) / n
    theta0 = float((wl * y).mean())
    var0 = float((wl * y).var()) / n
    if tuned and lambda_rule == "min_variance" and var > var0:
        # rounding guard: the clipped minimiser has var <= var0 exactly in real arithmetic
        lam, theta, var = 0.0, theta0, var0
    return PPIFit(theta, math.sqrt(max(var, 0.0)), lam, theta0, math.sqrt(max(var0, 0.0)))


def _pairs(target: Target, human: object, judge: object) -> tuple[np.ndarray, np.ndarray, int]:
    h = check_scores(target, human, "human labels", human=True)
    j = check_scores(target, judge, "calibration judge scores")
    if h.shape != j.shape:
        raise ValueError(f"human labels cover {h.size} items, the judge scores {j.size}")
    keep = ~np.isnan(h) & ~np.isnan(j)
    return target.values(h[keep]), target.values(j[keep]), int((~keep).sum())


def _ppi_estimate(
    method: str,
    target: Target,
    y: np.ndarray,
    f: np.ndarray,
    fu: np.ndarray,
    *,
    confidence: float,
    lam: float | None,
    lambda_rule: LambdaRule,
    min_labelled: int,
    w: np.ndarray | None,
    wu: np.ndarray | None,
    diag: dict[str, Any],
    window_clusters: np.ndarray | None = None,
) -> CorrectionEstimate:
    z = z_value(confidence)
    n, big_n = int(y.size), int(fu.size)
    if n < min_labelled:
        return CorrectionEstimate.undefined_because(
            method, "too_few_items", f"too few labelled items ({n} < {min_labelled})",
            confidence=confidence, n_labelled=n, n_window=big_n, diagnostics=diag)
    if big_n < 2:
        return CorrectionEstimate.undefined_because(
            method, "too_few_items", f"too few window scores ({big_n} < 2)",
            confidence=confidence, n_labelled=n, n_window=big_n, diagnostics=diag)
    fit = ppi_fit(y, f, fu, lam=lam, lambda_rule=lambda_rule, w=w, w_window=wu)
    diag["lambda_rule"] = lambda_rule if lam is None else "fixed"
    if fit is None:
        return CorrectionEstimate.undefined_because(
            method, "lambda_undefined",
            "lambda is undefined: the judge's scores have no variance (labelled and window "
            "together)", confidence=confidence, n_labelled=n, n_window=big_n, diagnostics=diag)
    interval = "clt"
    if window_clusters is not None:
        # The window term's variance over clusters (λ is tuned as for independent scores).
        var_window, g = cluster_variance(fit.lam * fu, window_clusters)
        if g < 2:
            return CorrectionEstimate.undefined_because(
                method, "too_few_items", f"too few clusters in the window ({g} < 2)",
                confidence=confidence, n_labelled=n, n_window=big_n, diagnostics=diag)
        iid_window = float((fit.lam * fu).var()) / big_n
        var_labelled = float((_norm_weights(w, n) * (y - fit.lam * f)).var()) / n
        fit = PPIFit(fit.theta, math.sqrt(var_labelled + var_window), fit.lam,
                     fit.theta_human, fit.se_human)
        diag["n_clusters"] = g
        diag["design_effect_window"] = var_window / iid_window if iid_window > 0 else None
        interval = "cluster_clt"
    low, high = fit.theta - z * fit.se, fit.theta + z * fit.se
    h_low, h_high = fit.theta_human - z * fit.se_human, fit.theta_human + z * fit.se_human
    corr = None
    if y.std() > 0 and f.std() > 0:
        corr = float(np.corrcoef(y, f)[0, 1])
    diag.update({
        "lambda": fit.lam,
        "se": fit.se,
        "human_only": {"value": fit.theta_human, "ci_low": h_low, "ci_high": h_high,
                       "se": fit.se_human},
        "width_ratio": fit.se / fit.se_human if fit.se_human > 0 else None,
        "effective_labelled": n * fit.se_human ** 2 / fit.se ** 2 if fit.se > 0 else None,
        "correlation": corr,
        "mean_human_labelled": float(y.mean()),
        "mean_judge_labelled": float(f.mean()),
        "mean_judge_window": float(fu.mean()),
    })
    flags: list[str] = []
    if lam is None and fit.lam < LAMBDA_LOW:
        flags.append(FLAG_JUDGE_UNINFORMATIVE)
    if _beyond(target, low, high):
        flags.append(FLAG_INTERVAL_BEYOND_SCALE)
    note = "the interval has zero width: no variation in the labelled or window values" \
        if fit.se == 0 else None
    return CorrectionEstimate(method, fit.theta, low, high, confidence, interval=interval,
                              n_labelled=n, n_window=big_n, note=note, flags=tuple(flags),
                              diagnostics=diag)


# --- PPI++ on a calibration set -------------------------------------------------------------


def ppi_mean(
    scale: Scale,
    human: object,
    judge: object,
    window_judge: object,
    *,
    confidence: float = 0.95,
    lam: float | None = None,
    lambda_rule: LambdaRule = "power_tuning",
    positive: float | None = None,
    min_labelled: int = MIN_LABELLED,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
) -> CorrectionEstimate:
    r"""PPI++ estimate of the window's mean (or rate) from a calibration set and the window.

    Parameters
    ----------
    scale : Scale
        The dimension's scale.
    human : array-like of shape (n,)
        Human consensus per calibration item (NaN = none; the pair is left out).
    judge : array-like of shape (n,)
        The (drifted) judge's score on the same calibration items (NaN = unscored).
    window_judge : array-like of shape (N,)
        The judge's scores in the production window (NaN left out).
    confidence : float, default 0.95
        Nominal coverage. ppi-python's ``alpha`` is ``1 - confidence`` (its default 0.1 is
        a 90 % interval).
    lam : float, optional
        A fixed λ (0 = human labels only, 1 = plain PPI). None tunes it.
    lambda_rule : {"power_tuning", "min_variance"}, default "power_tuning"
        How λ is tuned (see Notes).
    positive : float, optional
        The category whose rate is estimated (binary: default 1; nominal: required).
    min_labelled : int, default 10
        Fewer usable labelled pairs give the ``too_few_items`` sentinel.
    clusters : sequence of hashable, optional
        Cluster id per window score (conversation or trace). When given, the window term of
        the variance is cluster-robust (:mod:`._cluster`; ``interval="cluster_clt"``,
        ``diagnostics["design_effect_window"]``); λ is tuned as for independent scores.

    Returns
    -------
    CorrectionEstimate
        ``method="ppi++"``, ``interval="clt"``. ``diagnostics`` has ``lambda``, the
        human-only estimate and interval (``human_only``), ``width_ratio`` (PPI++ width over
        human-only width), ``effective_labelled`` (how many human labels alone would give the
        same standard error) and the Pearson correlation of human and judge values.
        Sentinels: ``too_few_items``; ``lambda_undefined`` when λ is tuned and the judge's
        scores do not vary at all. Flag ``judge_uninformative`` when the tuned λ < 0.1.

    Notes
    -----
    PPI++ (Angelopoulos, Duchi & Zrnic 2023, "PPI++: Efficient Prediction-Powered
    Inference", arXiv:2311.01453) estimates the mean of Y as

    .. math:: \hat\theta_\lambda = \lambda\,\bar{\tilde f} + \overline{(Y - \lambda f)}

    with the CLT interval

    .. math:: \hat\theta_\lambda \pm z\sqrt{\lambda^2\,\mathrm{var}_0(\tilde f)/N
              + \mathrm{var}_0(Y - \lambda f)/n}.

    ``power_tuning`` (default, the paper's and ppi-python's rule, 2023 Example 6.1):

    .. math:: \hat\lambda = \mathrm{clip}_{[0,1]}\,
              \frac{\mathrm{cov}_0(Y, f)}{(1 + n/N)\,\widehat{\mathrm{var}}(f \cup \tilde f)}

    where the denominator's variance pools the labelled and window judge values (divisor
    n + N − 1). Equal to ``ppi_py.ppi_mean_ci`` / ``ppi_mean_pointestimate`` to 1e-9.

    ``min_variance``: the λ in [0, 1] that minimises the reported variance itself,

    .. math:: \hat\lambda = \mathrm{clip}_{[0,1]}\,
              \frac{\mathrm{cov}_0(Y, f)}{\mathrm{var}_0(f) + (n/N)\,\mathrm{var}_0(\tilde f)}

    which differs from power tuning by O(1/n) and guarantees an interval no wider than the
    human-only one (λ = 0) on every data set, not only asymptotically.

    The estimate assumes the calibration items are a random sample of the window's
    population (the same joint law of human label and judge score). Under label shift it is
    biased; compare it with :func:`shift_robust` (see :func:`agreement_check`). The
    interval is not clipped to the scale (flag ``interval_beyond_scale``).
    """
    target = target_for(scale, positive)
    check_confidence(confidence)
    y, f, dropped = _pairs(target, human, judge)
    win = check_scores(target, window_judge, "window judge scores")
    keep = ~np.isnan(win)
    fu = target.values(win[keep])
    diag: dict[str, Any] = {"target": target.description, "dropped_labelled": dropped,
                            "dropped_window": int((~keep).sum())}
    codes = None if clusters is None else cluster_codes(clusters, win.size, keep)
    return _ppi_estimate("ppi++", target, y, f, fu, confidence=confidence, lam=lam,
                         lambda_rule=lambda_rule, min_labelled=min_labelled, w=None, wu=None,
                         diag=diag, window_clusters=codes)


def human_only_mean(
    scale: Scale,
    human: object,
    *,
    confidence: float = 0.95,
    positive: float | None = None,
    min_labelled: int = MIN_LABELLED,
) -> CorrectionEstimate:
    """The human labels alone: their mean (or rate) with the CLT interval ``ȳ ± z·sd₀/√n``.

    This is PPI++ with λ = 0 (the comparator of every PPI++ interval; ``sd₀`` uses divisor n,
    as ppi-python's classical interval does). ``method="human_only"``.
    """
    target = target_for(scale, positive)
    z = z_value(confidence)
    h = check_scores(target, human, "human labels", human=True)
    y = target.values(h[~np.isnan(h)])
    n = int(y.size)
    if n < min_labelled:
        return CorrectionEstimate.undefined_because(
            "human_only", "too_few_items", f"too few labelled items ({n} < {min_labelled})",
            confidence=confidence, n_labelled=n)
    mean, se = float(y.mean()), float(y.std()) / math.sqrt(n)
    return CorrectionEstimate("human_only", mean, mean - z * se, mean + z * se, confidence,
                              interval="clt", n_labelled=n,
                              diagnostics={"target": target.description, "se": se})


# --- PPI++ on a stratified sample of the window ----------------------------------------------


def _keys(strata: Sequence[Hashable] | np.ndarray, index: dict[Hashable, int],
          what: str, *, grow: bool) -> np.ndarray:
    out = np.empty(len(strata), dtype=np.int64)
    for i, key in enumerate(strata):
        key = key.item() if isinstance(key, np.generic) else key
        if key not in index:
            if not grow:
                raise ValueError(f"{what}: stratum {key!r} does not occur in the window")
            index[key] = len(index)
        out[i] = index[key]
    return out


def window_sample_ppi(
    scale: Scale,
    human: object,
    judge: object,
    sample_strata: Sequence[Hashable] | np.ndarray,
    window_judge: object,
    window_strata: Sequence[Hashable] | np.ndarray,
    *,
    stratum_weights: Mapping[Hashable, float] | None = None,
    confidence: float = 0.95,
    lam: float | None = None,
    lambda_rule: LambdaRule = "min_variance",
    positive: float | None = None,
    min_labelled: int = MIN_LABELLED,
) -> CorrectionEstimate:
    r"""PPI++ where the labelled items are a stratified random sample of the window itself.

    Parameters
    ----------
    scale : Scale
        The dimension's scale.
    human : array-like of shape (n,)
        Human labels imported for the sampled scores (NaN = not labelled, left out).
    judge : array-like of shape (n,)
        The judge's score of each sampled item (as stored in the window).
    sample_strata : sequence of hashable, length n
        The stratum of each sampled item (e.g. ``(customer, segment, dimension)``).
    window_judge : array-like of shape (N,)
        Every judge score of the window (the sampled ones included).
    window_strata : sequence of hashable, length N
        The stratum of each window score.
    stratum_weights : mapping, optional
        Weight ``W_h`` per stratum (rescaled to sum to 1 over the window's strata). Default:
        each stratum's share of the window, ``N_h / N``, i.e. the window mean. Every window
        stratum needs a weight.
    confidence, lam, positive, min_labelled
        As in :func:`ppi_mean`.
    lambda_rule : {"min_variance", "power_tuning"}, default "min_variance"
        ``min_variance`` guarantees the interval is never wider than the human-only one
        (``diagnostics["human_only"]``, the stratified mean of the labels alone).

    Returns
    -------
    CorrectionEstimate
        ``method="window_sample_ppi++"``; sentinels as :func:`ppi_mean`, plus
        ``stratum_without_labels`` when a window stratum of positive weight has no label.

    Notes
    -----
    With ``n_h`` labelled and ``N_h`` window scores in stratum h, item weights are
    ``w_i = W_h / (n_h / n)`` (labelled) and ``w̃_j = W_h / (N_h / N)`` (window), and the
    estimate is the weighted PPI++ mean (ppi-python's ``w`` / ``w_unlabeled``):

    .. math:: \hat\theta = \sum_h W_h \left[\lambda \bar{\tilde f}_h + \bar Y_h
              - \lambda \bar f_h\right]

    with standard error ``√(var₀(w̃ λ f̃)/N + var₀(w (Y − λ f))/n)``: the weighted
    observations are treated as independent, which ignores the (variance-reducing)
    stratification and the finite-population correction, so the interval is conservative
    for the window's own mean. Because the sample is drawn from the window, the estimate is
    unbiased for the window under any label shift between the window and the calibration
    set; it is the remedy when :func:`agreement_check` flags the calibration set.
    Equal to ``ppi_py.ppi_mean_ci(..., lam=λ, w=w, w_unlabeled=w̃)`` to 1e-9.
    """
    target = target_for(scale, positive)
    check_confidence(confidence)
    h = check_scores(target, human, "human labels", human=True)
    j = check_scores(target, judge, "sampled judge scores")
    if h.shape != j.shape or len(sample_strata) != h.size:
        raise ValueError("human, judge and sample_strata must have the same length")
    win = check_scores(target, window_judge, "window judge scores")
    if len(window_strata) != win.size:
        raise ValueError(f"window_strata has {len(window_strata)} keys for {win.size} scores")
    index: dict[Hashable, int] = {}
    w_codes = _keys(window_strata, index, "window_strata", grow=True)
    s_codes = _keys(sample_strata, index, "sample_strata", grow=False)
    names = list(index)
    n_strata = len(names)
    keep_w = ~np.isnan(win)
    keep_s = ~np.isnan(h) & ~np.isnan(j)
    fu, wc = target.values(win[keep_w]), w_codes[keep_w]
    y, f, sc = target.values(h[keep_s]), target.values(j[keep_s]), s_codes[keep_s]
    big_n_h = np.bincount(wc, minlength=n_strata).astype(np.float64)
    n_h = np.bincount(sc, minlength=n_strata).astype(np.float64)
    if stratum_weights is None:
        weights = big_n_h.copy()
    else:
        missing = [k for k in names if k not in stratum_weights]
        if missing:
            raise ValueError(f"stratum_weights has no weight for stratum {missing[0]!r}")
        extra = [k for k in stratum_weights if k not in index]
        if extra:
            raise ValueError(f"stratum_weights names stratum {extra[0]!r}, which is not in "
                             "the window")
        weights = np.array([float(stratum_weights[k]) for k in names])
        if (weights < 0).any() or not np.isfinite(weights).all():
            raise ValueError("stratum weights must be finite and non-negative")
    weights = np.where(big_n_h > 0, weights, 0.0)
    if weights.sum() <= 0:
        raise ValueError("the stratum weights of the window's strata sum to zero")
    weights = weights / weights.sum()
    diag: dict[str, Any] = {
        "target": target.description,
        "n_strata": n_strata,
        "dropped_labelled": int((~keep_s).sum()),
        "dropped_window": int((~keep_w).sum()),
        "strata": [{"stratum": str(k), "weight": float(weights[i]),
                    "n_window": int(big_n_h[i]), "n_labelled": int(n_h[i])}
                   for i, k in enumerate(names)],
    }
    empty = [names[i] for i in range(n_strata) if weights[i] > 0 and n_h[i] == 0]
    if empty:
        return CorrectionEstimate.undefined_because(
            "window_sample_ppi++", "stratum_without_labels",
            f"{len(empty)} stratum(s) of the window have no labelled item, e.g. {empty[0]!r}",
            confidence=confidence, n_labelled=int(y.size), n_window=int(fu.size),
            diagnostics=diag)
    n, big_n = y.size, fu.size
    w = weights[sc] / (n_h[sc] / max(n, 1)) if n else np.ones(0)
    wu = weights[wc] / (big_n_h[wc] / max(big_n, 1)) if big_n else np.ones(0)
    return _ppi_estimate("window_sample_ppi++", target, y, f, fu, confidence=confidence,
                         lam=lam, lambda_rule=lambda_rule, min_labelled=min_labelled, w=w,
                         wu=wu, diag=diag)
