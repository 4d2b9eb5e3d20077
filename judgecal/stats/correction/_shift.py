r"""Shift-robust correction: Rogan–Gladen (binary) and confusion-matrix inversion.

Assumption (*label shift*, a.k.a. prior probability shift): the judge's error rates given
the true label, :math:`M_{jk} = P(\text{judge}=j \mid \text{true}=k)`, are the same on the
calibration items and in the window; the distribution of true labels may differ. Then the
window's judge-label distribution is :math:`q = M\pi` with :math:`\pi` its true-label
distribution, and :math:`\pi` is recovered by inverting :math:`M` (estimated on the
calibration set). Saerens, Latinne & Decaestecker (2002), Neural Computation 14(1);
Lipton, Wang & Smola (2018), "Detecting and Correcting for Label Shift with Black Box
Predictors", ICML (confusion-matrix / BBSE estimator).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np

from judgecal.scales import Scale
from judgecal.stats._bootstrap import percentile_interval
from judgecal.stats.correction._cluster import (
    cluster_bootstrap_shares,
    cluster_codes,
    cluster_variance,
)
from judgecal.stats.correction._ppi import MIN_LABELLED, check_confidence, z_value
from judgecal.stats.correction._result import CorrectionEstimate
from judgecal.stats.correction._target import CATEGORICAL_KINDS, check_scores, target_for

MIN_YOUDEN = 0.2
"""Binary: refuse when Se + Sp − 1 (Youden's J) is below this. RG divides by J, so an error
of 0.01 in the observed rate becomes ≥ 0.05 in the corrected one, before the (larger)
error that J's own estimate adds."""

MAX_CONDITION = 10.0
"""Refuse when the 2-norm condition number of the estimated misclassification matrix
(largest over smallest singular value) exceeds this: the relative error of the judge-label
distribution may then be amplified up to tenfold in the solution. (A symmetric binary
judge with Se = Sp has condition number 1/J, so :data:`MIN_YOUDEN` binds there first.)"""

IntervalKind = Literal["auto", "delta", "bootstrap"]


def rogan_gladen(p_obs: float, se: float, sp: float, *, clip: bool = True) -> float:
    r"""Rogan–Gladen true prevalence from an observed rate and the test's Se and Sp.

    .. math:: \hat p = \frac{p_{obs} + Sp - 1}{Se + Sp - 1}

    clipped to [0, 1] unless ``clip=False`` (Rogan & Gladen 1978, "Estimating prevalence
    from the results of a screening test", Am. J. Epidemiol. 107(1):71–76). Returns NaN when
    Se + Sp = 1.
    """
    j = se + sp - 1.0
    if j == 0:
        return math.nan
    p = (p_obs + sp - 1.0) / j
    return min(max(p, 0.0), 1.0) if clip else p


def rogan_gladen_variance(p_obs: float, n_window: float, se: float, n_pos: int | None,
                          sp: float, n_neg: int | None, *, p_true: float | None = None) -> float:
    r"""Delta-method variance of the Rogan–Gladen estimate.

    .. math:: \mathrm{Var}(\hat p) \approx \frac{1}{J^2}\left[\frac{p_{obs}(1-p_{obs})}{N}
              + \hat p^2\,\frac{Se(1-Se)}{n_+} + (1-\hat p)^2\,\frac{Sp(1-Sp)}{n_-}\right]

    with J = Se + Sp − 1, ``n_+``/``n_-`` the calibration items whose true label is
    positive/negative (Se and Sp are binomial proportions on them, independent of the
    window). ``n_pos``/``n_neg`` None means Se/Sp known exactly (their terms vanish: the
    Rogan & Gladen 1978 variance with known Se, Sp). Lang & Reiczigel (2014), Prev. Vet.
    Med. 113:13–22, eq. 4. ``p_true`` defaults to the clipped RG estimate.
    """
    j = se + sp - 1.0
    p = rogan_gladen(p_obs, se, sp) if p_true is None else p_true
    var = p_obs * (1.0 - p_obs) / n_window
    if n_pos:
        var += p ** 2 * se * (1.0 - se) / n_pos
    if n_neg:
        var += (1.0 - p) ** 2 * sp * (1.0 - sp) / n_neg
    return var / j ** 2


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the probability simplex.

    Sort-based algorithm (Held, Wolfe & Crowder 1974; Duchi et al. 2008, "Efficient
    projections onto the l1-ball", ICML): ``x = max(v − τ, 0)`` with τ chosen so that
    ``Σ x = 1``. Rows with NaN stay NaN. Vectorised over rows.
    """
    v = np.atleast_2d(np.asarray(v, dtype=np.float64))
    k = v.shape[1]
    u = -np.sort(-v, axis=1)
    css = np.cumsum(u, axis=1) - 1.0
    ind = np.arange(1, k + 1)
    cond = u - css / ind > 0
    rho = k - np.argmax(cond[:, ::-1], axis=1)  # last index where cond holds (1-based)
    tau = css[np.arange(v.shape[0]), rho - 1] / rho
    out = np.maximum(v - tau[:, None], 0.0)
    out[np.isnan(v).any(axis=1)] = np.nan
    return out


def _memberships(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Rows of true-category weights: 1 on the code; a half step between two codes gives
    1/2 to each (an even panel of raters split between them)."""
    pos = np.interp(values, codes, np.arange(codes.size, dtype=np.float64))
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    hi = np.minimum(lo + 1, codes.size - 1)
    out = np.zeros((values.size, codes.size))
    rows = np.arange(values.size)
    np.add.at(out, (rows, lo), 1.0 - frac)
    np.add.at(out, (rows, hi), frac)
    return out


def _solve(conf: np.ndarray, q: np.ndarray, cat_values: np.ndarray) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Batched: conf (B, K, J) counts by true k and judge j, q (B, J) window shares →
    (values (B,), π (B, K)). A true category without items makes its replicate NaN."""
    n_k = conf.sum(axis=2)
    bad = (n_k <= 0).any(axis=1)
    n_k = np.where(n_k > 0, n_k, 1.0)
    m = np.transpose(conf / n_k[:, :, None], (0, 2, 1))  # (B, J, K): P(judge=j | true=k)
    pi = np.einsum("bkj,bj->bk", np.linalg.pinv(m), q)
    pi[bad] = np.nan
    pi = project_to_simplex(pi)
    return pi @ cat_values, pi


def shift_robust(
    scale: Scale,
    human: object,
    judge: object,
    window_judge: object,
    *,
    confidence: float = 0.95,
    positive: float | None = None,
    interval: IntervalKind = "auto",
    n_boot: int = 1000,
    seed: int = 0,
    min_labelled: int = MIN_LABELLED,
    min_youden: float = MIN_YOUDEN,
    max_condition: float = MAX_CONDITION,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
) -> CorrectionEstimate:
    r"""The window's true mean (or rate) under label shift, by inverting the judge's errors.

    Parameters
    ----------
    scale : Scale
        A categorical scale (binary, nominal, pairwise or ordinal).
    human : array-like of shape (n,)
        Human consensus per calibration item (codes; NaN = none). On an ordinal scale a
        half step (e.g. 3.5 from raters split between 3 and 4) counts half in each code.
    judge : array-like of shape (n,)
        The (drifted) judge's scores of the calibration items. Ordinal scores between codes
        are rounded to the nearest code (halves up).
    window_judge : array-like of shape (N,)
        The judge's scores in the window (rounded likewise).
    confidence : float, default 0.95
        Nominal coverage.
    positive : float, optional
        The category whose rate is estimated (binary: default 1; nominal: required).
    interval : {"auto", "delta", "bootstrap"}, default "auto"
        ``delta``: the delta-method interval of Rogan–Gladen (binary only). ``bootstrap``:
        percentile bootstrap over both calibration items and window scores. ``auto``:
        delta on a binary scale, bootstrap otherwise.
    n_boot : int, default 1000
        Bootstrap replicates.
    seed : int, default 0
        Seed of the bootstrap (same seed, same interval).
    min_labelled : int, default 10
        Fewer usable calibration pairs give the ``too_few_items`` sentinel.
    min_youden : float, default 0.2
        Binary: refuse when Se + Sp − 1 is below it (:data:`MIN_YOUDEN`).
    max_condition : float, default 10
        Refuse when cond₂(M) exceeds it (:data:`MAX_CONDITION`).
    clusters : sequence of hashable, optional
        Cluster id per window score (conversation or trace): the window's share of each
        category then varies by cluster — the delta interval uses its cluster-robust
        variance, the bootstrap resamples whole clusters (:mod:`._cluster`).

    Returns
    -------
    CorrectionEstimate
        ``method="shift_robust"``. ``diagnostics``: the estimated true-label distribution
        ``distribution`` (code → share), ``condition_number``, ``matrix`` (rows: judge code,
        columns: true code), the judge's observed window distribution, ``fit_residual_tv``
        (half the L1 distance between ``M π̂`` and the observed distribution: 0 when the
        label-shift model fits exactly, large when the judge's error rates changed), and on
        binary scales ``se``, ``sp``, ``youden``, ``p_obs``.
        Sentinels: ``not_categorical`` (interval scale), ``too_few_items``,
        ``one_category``, ``near_singular`` (refused).

    Notes
    -----
    **Binary** (Rogan & Gladen 1978): with Se = P(judge=1 | true=1) and Sp = P(judge=0 |
    true=0) from the calibration set and the window's judge rate :math:`p_{obs}`,
    :math:`\hat p = \mathrm{clip}_{[0,1]}\,(p_{obs} + Sp - 1)/(Se + Sp - 1)`; the delta
    interval :math:`\hat p \pm z\sqrt{\mathrm{Var}}` (see :func:`rogan_gladen_variance`)
    includes the calibration uncertainty of Se and Sp, and is clipped to [0, 1].

    **K categories**: :math:`\hat M_{jk} = C_{kj}/n_k` from the calibration counts;
    :math:`\hat\pi = \Pi_\Delta(\hat M^{+} q)` — the (least-squares) solution, projected onto
    the probability simplex (for a square invertible M the solution already sums to 1 and
    the projection only clips negative shares; for K = 2 it is exactly the clipped
    Rogan–Gladen estimate). A true category absent from the calibration set is given share
    0 (listed in ``diagnostics["categories_without_calibration_items"]``). The estimate is
    :math:`\sum_k \hat\pi_k v_k` with :math:`v_k` the category's target value.

    **Bootstrap**: each replicate resamples the n calibration items and the N window scores
    with replacement (drawn as multinomial counts over the distinct (label, score) pairs and
    over the window's categories, which is the same distribution), re-estimates M and q, and
    solves again; replicates in which a true category disappears are dropped (more than
    10 % dropped withholds the interval, as in the stats package).
    """
    target = target_for(scale, positive)
    check_confidence(confidence)
    method = "shift_robust"
    if scale.kind not in CATEGORICAL_KINDS:
        return CorrectionEstimate.undefined_because(
            method, "not_categorical",
            f"confusion-matrix inversion needs a categorical scale, not {scale.kind}",
            confidence=confidence)
    if interval not in ("auto", "delta", "bootstrap"):
        raise ValueError(f"interval must be 'auto', 'delta' or 'bootstrap', got {interval!r}")
    if interval == "delta" and scale.kind != "binary":
        raise ValueError("the delta-method interval is for binary scales; use 'bootstrap'")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    use_delta = scale.kind == "binary" and interval in ("auto", "delta")

    assert target.human_codes is not None and target.judge_codes is not None
    h = check_scores(target, human, "human labels", human=True)
    j = check_scores(target, judge, "calibration judge scores")
    if h.shape != j.shape:
        raise ValueError(f"human labels cover {h.size} items, the judge scores {j.size}")
    win = check_scores(target, window_judge, "window judge scores")
    keep = ~np.isnan(h) & ~np.isnan(j)
    h, j = h[keep], j[keep]
    win_keep = ~np.isnan(win)
    codes_c = None if clusters is None else cluster_codes(clusters, win.size, win_keep)
    win = win[win_keep]
    jc = target.judge_codes
    if scale.kind == "ordinal":  # nearest code, halves up
        j = np.clip(np.floor(j + 0.5), jc[0], jc[-1])
        win = np.clip(np.floor(win + 0.5), jc[0], jc[-1])
    n, big_n = int(h.size), int(win.size)
    if n < min_labelled or big_n < 1:
        what = f"labelled items ({n} < {min_labelled})" if n < min_labelled \
            else "window scores (0)"
        return CorrectionEstimate.undefined_because(
            method, "too_few_items", f"too few {what}", confidence=confidence,
            n_labelled=n, n_window=big_n)

    hc = target.human_codes
    member = _memberships(h, hc)  # (n, K_all)
    j_idx = np.searchsorted(jc, j)
    conf_all = member.T @ np.eye(jc.size)[j_idx]  # (K_all, J)
    n_k_all = conf_all.sum(axis=1)
    present = n_k_all > 0
    missing_codes = [float(c) for c in hc[~present]]
    if present.sum() < 2:
        return CorrectionEstimate.undefined_because(
            method, "one_category",
            "the calibration set's human labels use fewer than two categories",
            confidence=confidence, n_labelled=n, n_window=big_n)
    codes = hc[present]
    member = member[:, present]
    conf = conf_all[present]
    cat_values = target.category_values(codes)
    q_counts = np.bincount(np.searchsorted(jc, win), minlength=jc.size).astype(np.float64)
    q = q_counts / big_n
    m = (conf / conf.sum(axis=1, keepdims=True)).T  # (J, K)
    sv = np.linalg.svd(m, compute_uv=False)
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
    diag: dict[str, Any] = {
        "target": target.description,
        "true_codes": codes.tolist(),
        "judge_codes": jc.tolist(),
        "matrix": m.tolist(),
        "calibration_true_counts": conf.sum(axis=1).tolist(),
        "window_judge_distribution": q.tolist(),
        "condition_number": cond if math.isfinite(cond) else None,
        "categories_without_calibration_items": missing_codes,
    }
    binary = scale.kind == "binary"
    if binary:
        k1 = int(np.searchsorted(codes, 1.0))
        se_ = float(m[1, k1])
        sp_ = float(m[0, 1 - k1])
        diag.update({"se": se_, "sp": sp_, "youden": se_ + sp_ - 1.0, "p_obs": float(q[1])})
        if se_ + sp_ - 1.0 < min_youden:
            return CorrectionEstimate.undefined_because(
                method, "near_singular",
                f"refused: Se + Sp - 1 = {se_ + sp_ - 1.0:.3f} is below {min_youden:g}; the "
                "judge separates the two labels too little to invert its errors",
                confidence=confidence, n_labelled=n, n_window=big_n, diagnostics=diag)
    if not cond <= max_condition:
        return CorrectionEstimate.undefined_because(
            method, "near_singular",
            f"refused: the misclassification matrix is near-singular (condition number "
            f"{cond:.3g} > {max_condition:g})", confidence=confidence, n_labelled=n,
            n_window=big_n, diagnostics=diag)

    values, pi = _solve(conf[None], q[None], cat_values)
    value, pi1 = float(values[0]), pi[0]
    diag["distribution"] = {f"{c:g}": float(s) for c, s in zip(codes, pi1, strict=True)}
    diag["fit_residual_tv"] = float(0.5 * np.abs(m @ pi1 - q).sum())

    if use_delta:
        n_pos = float(conf[k1].sum())
        n_neg = float(conf[1 - k1].sum())
        p_true = float(pi1[k1])
        n_eff: float = big_n
        if codes_c is not None:  # the observed rate's variance over clusters
            is_one = (np.searchsorted(jc, win) == 1).astype(np.float64)
            v_obs, g = cluster_variance(is_one, codes_c)
            diag["n_clusters"] = g
            if v_obs > 0:
                n_eff = float(q[1]) * (1.0 - float(q[1])) / v_obs
                diag["design_effect_window"] = big_n / n_eff
        var = rogan_gladen_variance(float(q[1]), n_eff, se_, int(n_pos), sp_, int(n_neg),
                                    p_true=p_true)
        half = z_value(confidence) * math.sqrt(var)
        lo_p, hi_p = max(p_true - half, 0.0), min(p_true + half, 1.0)
        v0, v1 = float(cat_values[1 - k1]), float(cat_values[k1])
        ends = sorted((v0 + (v1 - v0) * lo_p, v0 + (v1 - v0) * hi_p))
        diag["se_rg"] = math.sqrt(var)
        return CorrectionEstimate(method, value, ends[0], ends[1], confidence,
                                  interval="delta", n_labelled=n, n_window=big_n,
                                  diagnostics=diag)

    rng = np.random.default_rng(seed)
    # distinct (membership row, judge index) types of calibration item
    key = np.concatenate([member, j_idx[:, None].astype(np.float64)], axis=1)
    types, type_counts = np.unique(key, axis=0, return_counts=True)
    t_member, t_judge = types[:, :-1], types[:, -1].astype(np.int64)
    t_onehot = np.eye(jc.size)[t_judge]
    cal_draw = rng.multinomial(n, type_counts / n, size=n_boot).astype(np.float64)
    if codes_c is None:
        win_draw = rng.multinomial(big_n, q, size=n_boot).astype(np.float64) / big_n
    else:
        win_draw = cluster_bootstrap_shares(np.searchsorted(jc, win), jc.size, codes_c,
                                            n_boot, rng)
        diag["n_clusters"] = int(codes_c.max()) + 1
    conf_b = np.einsum("bt,tk,tj->bkj", cal_draw, t_member, t_onehot)
    boot, _ = _solve(conf_b, win_draw, cat_values)
    low, high, note = percentile_interval(boot, confidence)
    diag["n_boot"] = n_boot
    diag["seed"] = seed
    return CorrectionEstimate(method, value, low, high, confidence,
                              interval="bootstrap_percentile" if low is not None else None,
                              n_labelled=n, n_window=big_n, note=note, diagnostics=diag)
