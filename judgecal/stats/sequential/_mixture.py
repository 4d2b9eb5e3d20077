"""The mathematics of the sequential test: the change-point mixture e-process, its boundary,
and the smallest drop it can detect (see :mod:`judgecal.stats.sequential`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

STATE_VERSION = 1
DEFAULT_ALPHA = 0.03
"""The sequential test's share of a 5 % false-alarm budget (the nightly rule keeps 2 %)."""
DEFAULT_PRIOR_SCALE_POINTS = 4.0
"""Scale of the half-normal prior on the drop, in points (the SEV2 size)."""
DEFAULT_MIN_DROP_POINTS = 1.0
"""An alarm needs an estimated drop of at least this many points (the warning size)."""
MDC_POWER = 0.8



def change_prior(tau: np.ndarray) -> np.ndarray:
    """Prior weight of a drop beginning on night ``τ`` (1-based): ``π_τ = 1 / (τ(τ + 1))``.

    The weights sum to 1 over ``τ = 1, 2, …``: no horizon is needed, half of the weight is
    on the first night after the baseline, and a later start costs ``log(τ(τ + 1))`` nats.
    """
    t = np.asarray(tau, dtype=np.float64)
    return 1.0 / (t * (t + 1.0))


def log_normal_mixture(u: Any, v: Any, prior_scale: float) -> np.ndarray:
    """Log of the one-sided normal-mixture martingale of Howard et al. (2021).

    .. math::

        m(u, v) = \\int_0^\\infty e^{\\delta u - \\delta^2 v / 2}\\, 2\\sqrt{\\rho / 2\\pi}\\,
        e^{-\\rho \\delta^2 / 2}\\, d\\delta
        = 2\\sqrt{\\frac{\\rho}{v + \\rho}}\\,
          \\exp\\Big(\\frac{u^2}{2(v + \\rho)}\\Big)\\,
          \\Phi\\Big(\\frac{u}{\\sqrt{v + \\rho}}\\Big),
        \\qquad \\rho = 1 / \\text{prior\\_scale}^2

    Parameters
    ----------
    u : array-like
        Score (evidence for a drop), in 1/points.
    v : array-like
        Information (intrinsic time), in 1/points², ``v ≥ 0``.
    prior_scale : float
        Scale of the half-normal prior on the drop, in points.

    Returns
    -------
    numpy.ndarray
        ``log m(u, v)``; ``m(0, 0) = 1``.

    Examples
    --------
    >>> float(log_normal_mixture(0.0, 0.0, 4.0))
    0.0
    >>> round(float(log_normal_mixture(3.0, 1.0, 4.0)), 4)
    3.51
    """
    from scipy.special import log_ndtr

    rho = 1.0 / (prior_scale * prior_scale)
    uu = np.asarray(u, dtype=np.float64)
    c = np.asarray(v, dtype=np.float64) + rho
    return np.asarray(math.log(2.0) + 0.5 * np.log(rho / c) + uu * uu / (2.0 * c)
                      + log_ndtr(uu / np.sqrt(c)))


@dataclass(frozen=True)
class Trajectory:
    """The e-process after every night of one or many sequences (arrays of shape (..., T))."""

    log_e: np.ndarray
    """``log M_T`` after night T."""
    change_point: np.ndarray
    """Likelihood-ratio change point after night T (1-based night; 0 when no night points to
    a drop)."""
    drop_points: np.ndarray
    """Estimated drop ``U_τ / V_τ`` at that change point, in points (0 when none)."""
    score: np.ndarray
    """``U_τ`` after night T for the first monitored night ``τ`` (night 1, or the first after
    the reference runs): the score of a drop present since then."""
    information: np.ndarray
    """Its information (1/points²)."""


def e_process(
    delta_points: Any,
    se_points: Any,
    fraction: Any = 1.0,
    *,
    prior_scale_points: float = DEFAULT_PRIOR_SCALE_POINTS,
    shared_baseline: bool = True,
    correlation: Any = None,
    reference: Any = 0,
) -> Trajectory:
    """The e-process ``M_T`` after every night, vectorised over leading axes.

    With ``Z_t = Δ_t / s_t``, ``a_t = 1 / s_t``, ``g_t = √(f_t / 2)``, ``x_t = 1 / (1 − g_t²)``
    and the covariance ``Σ = diag(1 − g²) + g gᵀ`` (inverted by Sherman–Morrison), the score
    and information of a drop beginning on night ``τ`` after ``T`` nights are

    .. math::

        U_\\tau = -\\Big(P_\\tau - \\frac{Q_\\tau G}{1 + H}\\Big), \\quad
        V_\\tau = R_\\tau - \\frac{Q_\\tau^2}{1 + H}

    with ``P_τ = Σ_{τ≤t≤T} a_t x_t Z_t``, ``Q_τ = Σ_{τ≤t≤T} a_t x_t g_t``,
    ``R_τ = Σ_{τ≤t≤T} a_t² x_t``, ``G = Σ_{t≤T} g_t x_t Z_t`` and ``H = Σ_{t≤T} g_t² x_t``;
    then ``M_T = Σ_{τ≤T} π_τ m(U_τ, V_τ) + 1/(T + 1)`` (see the module docstring).

    Parameters
    ----------
    delta_points : array-like of shape (..., T)
        Tonight minus baseline, in points. A night with ``se_points`` 0, NaN or not finite
        (e.g. identical verdicts: ``Δ = 0``, ``s = 0``) carries no evidence: it keeps its
        place in the night count but adds nothing.
    se_points : array-like of shape (..., T)
        Paired bootstrap standard error of ``Δ``, in points.
    fraction : array-like, broadcastable to (..., T)
        ``n_t / N``: items compared tonight over items the baseline scored (1 = full replay).
    prior_scale_points : float
        Scale of the half-normal prior on the drop, in points.
    shared_baseline : bool
        False drops the shared-baseline term (``g = 0``): the *naive* e-process that treats
        the nights as independent. Not valid; for the benchmark's comparison only.
    correlation : array-like of shape (..., T, T), optional
        The null correlation of ``Z`` when it is not the one-factor model of ``fraction``:
        e.g. nights that replay rotating blocks of the set (:func:`judgecal.stats.sequential.
        night_correlation`). Then ``fraction`` and ``shared_baseline`` are not used, and the
        score and information come from the Cholesky factor ``C = L Lᵀ``: with the whitened
        nights ``w = L⁻¹ Z`` and drifted means ``L⁻¹ (a ⊙ 1[t ≥ τ])``, the sums over the
        first ``T`` whitened nights are the exact Gaussian likelihood ratio of the first
        ``T`` nights (the leading block of a Cholesky factor is the factor of the leading
        block), so ``M`` stays a martingale under that null. Nights without evidence are
        made independent of the others (they add nothing).
    reference : int or array-like of ints, broadcastable to the leading axes
        How many leading comparisons are *reference runs* (a replicated baseline: further
        healthy runs taken when the baseline was accepted, each compared with it). No drop
        may begin on them: the change-point prior is ``π`` over the nights after them
        (``τ = reference + 1`` gets ``π_1 = 1/2``) and ``M`` is 1 until the first of those.
        They enter the likelihood like any night, so the drifted nights are compared with
        the mean of all ``reference + 1`` baseline runs (GLS under the null correlation).

    Returns
    -------
    Trajectory
        ``log_e``, ``change_point``, ``drop_points``, ``score``, ``information`` per night.
    """
    delta = np.asarray(delta_points, dtype=np.float64)
    se = np.asarray(se_points, dtype=np.float64)
    if delta.shape != se.shape or delta.ndim < 1:
        raise ValueError("delta_points and se_points must be arrays of the same shape (..., T)")
    if correlation is not None:
        u, v = _score_information_correlated(delta, se, np.asarray(correlation, np.float64))
        return _trajectory(u, v, prior_scale_points, reference)
    f = np.clip(np.broadcast_to(np.asarray(fraction, dtype=np.float64), delta.shape), 0.0, 1.0)
    ok = np.isfinite(delta) & np.isfinite(se) & (se > 0) & np.isfinite(f)
    safe_se = np.where(ok, se, 1.0)
    a = np.where(ok, 1.0 / safe_se, 0.0)
    z = np.where(ok, delta / safe_se, 0.0)
    g = np.where(ok & shared_baseline, np.sqrt(np.where(ok, f, 0.0) / 2.0), 0.0)
    x = 1.0 / (1.0 - g * g)

    def cum(values: np.ndarray) -> np.ndarray:  # (..., T+1) with a leading 0
        c = np.cumsum(values, axis=-1)
        return np.concatenate([np.zeros((*c.shape[:-1], 1)), c], axis=-1)

    cp, cq, cr = cum(a * x * z), cum(a * x * g), cum(a * a * x)
    big_g, big_h = cum(g * x * z)[..., 1:], cum(g * g * x)[..., 1:]  # per prefix T
    # [τ, T] = sum over τ ≤ t ≤ T (τ, T 0-based): c[T + 1] − c[τ]; only τ ≤ T is used.
    p = cp[..., None, 1:] - cp[..., :-1, None]
    q = cq[..., None, 1:] - cq[..., :-1, None]
    r = cr[..., None, 1:] - cr[..., :-1, None]
    denominator = 1.0 + big_h[..., None, :]
    u = -(p - q * big_g[..., None, :] / denominator)
    v = np.maximum(r - q * q / denominator, 0.0)
    return _trajectory(u, v, prior_scale_points, reference)


NULL_SE_LEVEL = 0.2
"""One minus the confidence of the upper bound on the reference runs' noise that
:func:`null_standard_errors` puts in place of the monitored nights' own standard errors."""
OWN_SE_SHARE = 0.9
"""A night is never weighed as surer than this share of its own standard error says."""
NOISIER_RATIO = 1.0 / OWN_SE_SHARE
"""Nights whose own SE has averaged more than this many times the references' (scaled to
their share of the set) are taken to be noisier than the references: see
:func:`null_standard_errors`."""
MIN_CHANGED_PER_REFERENCE = 10
"""Below this many changed items per reference run (on average) the references' noise is
not estimated well enough to stand in for the nights' own standard errors."""


def null_standard_errors(se_points: Any, fraction: Any, changed: Any, reference: int, *,
                         level: float = NULL_SE_LEVEL,
                         own_share: float = OWN_SE_SHARE,
                         min_changed: float = MIN_CHANGED_PER_REFERENCE,
                         noisier_ratio: float = NOISIER_RATIO) -> np.ndarray:
    """The nights' standard errors *under the null*, read from the reference runs.

    A night's own paired-bootstrap SE measures how much tonight and the baseline disagree.
    When the judge has drifted they disagree on more items, so the night's own SE grows with
    the drop it should reveal, and the evidence shrinks (a 2-point drop makes the noisier
    benchmark judge's SE 13 % larger). The reference runs of a replicated baseline are
    healthy by construction: they measure what a night *without* a change looks like. Each
    monitored night with evidence (own SE finite and positive) gets instead

    .. math:: s_t = \\max\\Big(\\sqrt{\\bar v \\, c(D) / f_t},\\;
                                  0.9\\, s_t^{\\text{own}}\\Big), \\quad
              \\bar v = \\operatorname{mean}_r(s_r^2 f_r), \\quad
              c(D) = \\frac{\\chi^2_{1-\\text{level}}(2D + 2)}{2D}

    — the references' variance per whole set (``f = n_items / N``), scaled to tonight's
    share, and inflated by ``c(D)``: the ratio of the upper ``1 − level`` Poisson bound on
    the number of items whose verdict changed in the references (``D`` in all) to ``D``
    itself, since the variance of a paired change rests on the items that changed and a
    reference that happened to change few would make every later night look surer than it
    is. The reference runs are chosen before any monitored night, so the pooled term is
    fixed in advance. The e-process stays valid as long as a healthy night is no noisier
    than the references; when healthy nights are systematically noisier (references that
    repeat part of the baseline's luck, or calmer hours), the second term below limits the
    overstatement but does not remove it (``docs/drift.md`` gives the false alarms).

    The second term (``own_share`` = 0.9 of the night's own SE) bounds how much surer a
    night can be made than its own spread says: its SE by 1/0.9, its information by
    1/0.81 ≈ 1.23. A 2-point drop makes the noisier
    benchmark judge's own SE about 13 % larger, so it keeps (nearly) the pooled value; a
    night that disagrees with the baseline far more than the references did — a large
    drop, or a night noisier for reasons of its own — is weighed by its own spread, barely
    discounted. This also bounds the harm of references that repeat part of the baseline's
    noise (a cached or seeded endpoint, replies right after the baseline more alike than a
    night's): they understate the noise, and the bound caps the overstatement of the
    evidence (``benchmarks/bench_reference_correlation.py`` measures the false alarms).

    Nights that are noisier than the references all along — once the monitored nights
    before tonight have had, on average, an own SE more than ``noisier_ratio`` (1/0.9)
    times the pooled one — keep their own from then on: the references are then no
    yardstick for them. The rule reads earlier nights only; a drop of a few points makes a
    night's own SE grow by less than that ratio.

    References without evidence (identical to the baseline) are left out. Rows without a
    reference with evidence, with one that has no count of changed items, or whose
    references changed fewer than ``min_changed`` items each on average (a near-
    deterministic judge: a standard error resting on a handful of items is no yardstick,
    and each night's own keeps the test self-normalising), keep their own standard errors.

    Parameters
    ----------
    se_points, fraction, changed : array-like of shape (..., T)
        Each comparison's standard error, share of the baseline's items, and number of items
        whose score differs between the run and the baseline (NaN: unknown).
    reference : int
        Leading comparisons that are reference runs.

    Examples
    --------
    >>> [round(float(x), 3) for x in null_standard_errors([1.0, 1.1, 1.15], 1.0,
    ...                                                   [40, 38, 60], 1)]
    [1.0, 1.076, 1.076]
    """
    from scipy.stats import chi2

    se = np.array(se_points, dtype=np.float64)
    if reference < 1 or se.shape[-1] <= reference:
        return se
    f = np.broadcast_to(np.asarray(fraction, dtype=np.float64), se.shape)
    ch = np.broadcast_to(np.asarray(changed, dtype=np.float64), se.shape)
    s_r, f_r, d_r = se[..., :reference], f[..., :reference], ch[..., :reference]
    # References without evidence (identical to the baseline) are left out, as update()
    # leaves them out of the state; those with evidence must all say how many items changed.
    evidence = np.isfinite(s_r) & (s_r > 0) & np.isfinite(f_r) & (f_r > 0)
    counted = np.isfinite(d_r) & (d_r >= 0)
    usable = np.all(~evidence | counted, axis=-1) & np.any(evidence, axis=-1)
    total = np.sum(np.where(evidence & counted, d_r, 0.0), axis=-1)
    usable &= total > 0
    safe = np.where(usable, total, 1.0)
    inflation = chi2.ppf(1.0 - level, 2.0 * safe + 2.0) / (2.0 * safe)
    variance = np.where(evidence, s_r * s_r * f_r, 0.0)
    used = np.maximum(np.sum(evidence, axis=-1), 1)
    usable &= total >= min_changed * used
    per_set = np.sum(variance, axis=-1) / used * inflation
    nights = se[..., reference:]
    f_n = f[..., reference:]
    own = np.isfinite(nights) & (nights > 0) & np.isfinite(f_n) & (f_n > 0)
    pooled = np.sqrt(np.where(usable, per_set, 0.0)[..., None] / np.where(own, f_n, 1.0))
    # Nights noisier than the references: once the monitored nights before tonight have
    # had, on average, an own SE beyond noisier_ratio × pooled, the references are no yardstick
    # for them (calmer hours, or references that repeat the baseline's luck) and tonight
    # keeps its own. Decided from earlier nights only; a drop of a few points stays below.
    # (pooled is 0 on rows whose references are unusable: those keep their own SE anyway)
    sized = own & np.isfinite(pooled) & (pooled > 0)
    ratio = np.where(sized, nights / np.where(sized, pooled, 1.0), 0.0)
    before = np.cumsum(ratio, axis=-1) - ratio
    counted_before: np.ndarray = np.cumsum(own, axis=-1) - own
    noisier = (counted_before > 0) & (before > counted_before * noisier_ratio)
    pooled = np.maximum(pooled, own_share * np.where(own, nights, 0.0))
    keep = usable[..., None] & own & ~noisier
    se[..., reference:] = np.where(keep, pooled, nights)
    return se


def _score_information_correlated(delta: np.ndarray, se: np.ndarray, corr: np.ndarray
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """``U[τ, T]`` and ``V[τ, T]`` (τ, T 0-based; only τ ≤ T used) under the null correlation
    ``corr`` of ``Z``, through its Cholesky factor (see :func:`e_process`)."""
    n_nights = delta.shape[-1]
    if corr.shape[-2:] != (n_nights, n_nights):
        raise ValueError("correlation must have shape (..., T, T) for T nights")
    ok = np.isfinite(delta) & np.isfinite(se) & (se > 0)
    safe_se = np.where(ok, se, 1.0)
    a = np.where(ok, 1.0 / safe_se, 0.0)
    z = np.where(ok, delta / safe_se, 0.0)
    both = ok[..., :, None] & ok[..., None, :]
    eye = np.eye(n_nights, dtype=bool)
    c = np.where(eye, 1.0, np.where(both, np.broadcast_to(corr, both.shape), 0.0))
    lower = np.linalg.cholesky(c)
    t_idx = np.arange(n_nights)
    drifted = a[..., :, None] * (t_idx[:, None] >= t_idx[None, :])  # [t, τ] = a_t·1[t ≥ τ]
    rhs = np.concatenate([z[..., :, None], drifted], axis=-1)
    white = np.linalg.solve(lower, rhs)  # L⁻¹ [Z | mean columns]
    w, m = white[..., :, :1], white[..., :, 1:]
    u = -np.cumsum(m * w, axis=-2)  # [T, τ]: sums over the first T whitened nights
    v = np.cumsum(m * m, axis=-2)
    return np.swapaxes(u, -1, -2), np.maximum(np.swapaxes(v, -1, -2), 0.0)


def _trajectory(u: np.ndarray, v: np.ndarray, prior_scale_points: float,
                reference: Any = 0) -> Trajectory:
    """The e-process and its change point from the score and information ``[..., τ, T]``;
    no drop begins on the first ``reference`` comparisons (see :func:`e_process`)."""
    n_nights = u.shape[-1]
    ref = np.asarray(reference, dtype=np.float64)
    if np.any(ref < 0) or np.any(ref != np.round(ref)):
        raise ValueError("reference must be a count of leading comparisons (>= 0)")
    ref = np.broadcast_to(ref, u.shape[:-2])[..., None, None]  # (..., 1, 1)
    taus = np.arange(1, n_nights + 1, dtype=np.float64)
    valid = (taus[:, None] <= taus[None, :]) & (taus[:, None] > ref)  # ref < τ ≤ T
    rank = np.maximum(taus[:, None] - ref, 1.0)  # τ among the monitored nights
    log_terms = np.log(change_prior(rank)) + log_normal_mixture(u, v, prior_scale_points)
    log_terms = np.where(valid, log_terms, -np.inf)
    monitored = np.maximum(taus - ref[..., 0], 0.0)  # (..., T): monitored nights so far
    tail = -np.log(monitored + 1.0)  # Σ_{τ>T} π_τ = 1/(T+1), T counting monitored nights
    log_e = np.logaddexp(_logsumexp(log_terms, axis=-2), tail)
    with np.errstate(divide="ignore", invalid="ignore"):
        profile = np.where(valid & (u > 0) & (v > 0), u * u / np.where(v > 0, v, 1.0), -1.0)
    best = np.argmax(profile, axis=-2)  # first maximum: the earliest night on ties
    found = np.take_along_axis(profile, best[..., None, :], axis=-2)[..., 0, :] > 0
    u_best = np.take_along_axis(u, best[..., None, :], axis=-2)[..., 0, :]
    v_best = np.take_along_axis(v, best[..., None, :], axis=-2)[..., 0, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = np.where(found, u_best / np.where(v_best > 0, v_best, 1.0), 0.0)
    first = np.broadcast_to(np.minimum(ref[..., 0, :], n_nights - 1).astype(np.intp),
                            (*u.shape[:-2], 1))[..., None, :]  # row τ = reference + 1
    first = np.broadcast_to(first, (*u.shape[:-2], 1, n_nights))
    return Trajectory(
        log_e=log_e,
        change_point=np.where(found, best + 1, 0),
        drop_points=drop,
        score=np.take_along_axis(u, first, axis=-2)[..., 0, :],
        information=np.take_along_axis(v, first, axis=-2)[..., 0, :],
    )


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(values - top), axis=axis))


def alarms(trajectory: Trajectory, alpha: float,
           min_drop_points: float = DEFAULT_MIN_DROP_POINTS) -> np.ndarray:
    """Nights on which the test alarms: ``M_T ≥ 1/α`` and an estimated drop of at least
    ``min_drop_points`` (boolean array of the trajectory's shape)."""
    return np.asarray((trajectory.log_e >= math.log(1.0 / alpha))
                      & (trajectory.drop_points >= min_drop_points))


def normal_mixture_boundary(
    information: float,
    alpha: float,
    *,
    prior_scale_points: float = DEFAULT_PRIOR_SCALE_POINTS,
    prior_weight: float = 1.0,
) -> float:
    """The score ``u*`` at which ``prior_weight · m(u*, V)`` reaches ``1/α``.

    The root of ``log(prior_weight) + log m(u, V) = log(1/α)`` (``m`` increases with ``u``);
    with ``prior_weight = 1`` the one-sided normal-mixture boundary of Howard et al. (2021),
    ``confseq.boundaries.normal_mixture_bound``.
    """
    if not information >= 0 or not 0.0 < alpha < 1.0 or not 0.0 < prior_weight <= 1.0:
        raise ValueError("need information >= 0, 0 < alpha < 1 and 0 < prior_weight <= 1")
    target = math.log(1.0 / alpha) - math.log(prior_weight)

    def excess(u: float) -> float:
        return float(log_normal_mixture(u, information, prior_scale_points)) - target

    lo, hi = 0.0, 1.0
    while excess(hi) < 0:
        lo, hi = hi, 2.0 * hi
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if excess(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi


def minimum_detectable_drop(
    information: float,
    alpha: float,
    *,
    prior_scale_points: float = DEFAULT_PRIOR_SCALE_POINTS,
    power: float = MDC_POWER,
    prior_weight: float = 0.5,
) -> float | None:
    """Smallest drop (points) whose evidence crosses ``1/α`` with probability ``power``.

    With information ``V`` about a drop present since the first night, its score is
    ``U ~ N(δV, V)``. The term ``π_1 · m(U, V)`` alone crosses ``1/α`` once ``U ≥ u*``
    (:func:`normal_mixture_boundary` with ``prior_weight = π_1 = 1/2``), so the drop is
    caught with probability at least ``power`` when

    .. math:: \\delta \\ge \\big(u^* + z_{\\text{power}}\\sqrt{V}\\big) / V.

    (The other change points only add evidence: this bounds the true MDC from above.)

    Returns None when ``information`` is 0 (no night yet).
    """
    if not information > 0 or not math.isfinite(information):
        return None
    u_star = normal_mixture_boundary(information, alpha, prior_scale_points=prior_scale_points,
                                     prior_weight=prior_weight)
    z = NormalDist().inv_cdf(power)
    return (u_star + z * math.sqrt(information)) / information
