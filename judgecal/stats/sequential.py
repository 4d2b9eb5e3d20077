"""Anytime-valid sequential drift test: evidence against the baseline, accumulated over nights.

The nightly rule (``docs/drift.md``) tests each night on its own at ``alpha / 30``, so a drop
of a few points that nothing in the fingerprint announces is caught late or never. This
module adds up the nightly paired comparisons with the *same* accepted baseline into one
e-process per (judge, set version, baseline, dimension) that may be read every night, for
ever, at level ``alpha`` (Ville's inequality), and says when the drop began.

Observation of night t
    ``Δ_t`` (points: tonight's primary metric minus the baseline's, on the items both
    scored), its paired-bootstrap standard error ``s_t`` (points), the number of items
    compared ``n_t`` and the number the baseline scored ``N``; ``Z_t = Δ_t / s_t``.

Null model (no drift)
    The baseline is a healthy night like any other: baseline and nights are independent
    draws of the same judge's verdicts on the same items. Then every ``Δ_t`` shares one
    term, the baseline's own noise, and the nights are correlated. With ``f_t = n_t / N``
    (1 for a full replay, 0.25 when tonight replays a random quarter of the items)::

        Z = g·ξ + diag(√(1 − g_t²))·ε,   g_t = √(f_t / 2),   ξ, ε_t iid N(0, 1)

    i.e. ``Var Z_t = 1`` and ``Cov(Z_s, Z_t) = √(f_s f_t) / 2``: on the items compared
    the baseline contributes half of the paired variance, and nights replaying independent
    random subsets share only the baseline's noise on the whole set. Measured on LLMBar
    replays (``benchmarks/bench_sequential.py``, 240 × 30 nights): ``Var Z`` 1.02–1.11,
    covariance 0.51–0.53 for full nights and 0.11–0.12 for 25 % nights (model: 0.5, 0.125).
    The baseline's share is read from each night's own SE, so a drop that also makes the
    verdicts noisier (the drifted judge disagrees with the baseline on more items) inflates
    it: conservative, and it costs power.

Alternatives
    A drop of ``δ ≥ 0`` points from night ``τ`` on: ``E Z_t = −δ / s_t`` for ``t ≥ τ``.

E-process
    For each ``τ`` the Gaussian likelihood ratio of ``Z_1..Z_T`` is ``exp(δU_τ − δ²V_τ/2)``
    (``U``, ``V``: the score and information of :func:`e_process`); mixing ``δ`` over a
    half-normal prior of scale ``prior_scale_points`` gives the one-sided normal mixture of
    Howard et al. (2021), and mixing ``τ`` with weights ``π_τ = 1 / (τ(τ + 1))``::

        M_T = Σ_{τ≤T} π_τ · m(U_τ, V_τ) + 1 / (T + 1)

    Each term is a likelihood ratio of the observed nights, so under the null model ``M`` is
    a non-negative martingale with ``M_0 = 1`` *however the nights are correlated through
    the baseline*, and ``P(M_T ≥ 1/α for some T) ≤ α`` (Ville 1939; Ramdas et al. 2023).
    The night the drop began is the likelihood-ratio change point ``argmax_τ U_τ⁺² / V_τ``
    (the CUSUM argmax of Page 1954 for this model) and its size ``U_τ / V_τ`` at that night.

Alarm
    ``M_T ≥ 1/α`` *and* an estimated drop of at least ``min_drop_points`` (default 1 point,
    the drift rule's warning size): as on the nightly rule, a move that is statistically
    real but smaller than that is no alarm. This only removes alarms, so it keeps the
    guarantee; it matters for near-deterministic judges, whose nightly differences rest on
    one or two items and are far from Gaussian (benchmark: a 5 % re-scoring of the
    recordings crossed ``1/α`` in 3 of 120 sequences, with estimated drops of 0.4–0.5
    points; none alarms).

What is *not* claimed: validity given the baseline. Given the baseline, healthy nights differ
from it by its own luck, and a baseline that was δ points lucky cannot be told from a δ-point
drop. A test that adds up nightly Z's as if they were independent (the "naive" e-process,
``shared_baseline=False``) is fooled by lucky baselines: 7–15 % of 30-night healthy
sequences alarm at 0.03 (benchmark), against 0–2 % here. Here the baseline's luck is
integrated out, and the price is a floor: evidence about a drop present since the first
night is capped at ``1/σ_b²`` (``σ_b²``: the baseline's own variance), so drops below
``mdc_floor_points`` (3.4 points at 1,000 items with 3.6 % of verdicts changing night to
night, 2.3 with 1.6 %) can never be told from a lucky baseline, whatever the number of
nights — only a fresh or replicated baseline lowers it. Drops that begin after some healthy
nights are not capped: those nights serve as the reference.

Measured (benchmark, n = 1,000, nothing visible in the fingerprint, α split below): false
alarms over 30 healthy nights with every test combined 0–3 %; a 4-point drop from the first
night caught within 3 nights 57 % / 90 % (noisier / steadier judge; the nightly rule alone at
today's 0.05/30: 57 % / 87 %), from night 11 92 % / 98 %; a persistent 2-point drop within 7
nights 20 % / 34 % from night 1 — below what any test on the nightly Δκ can reach at 5 % for
the noisier judge (70 %) — and 56 % / 94 % from night 11.

Libraries (evaluated, not used at run time): ``confseq`` 0.0.11 (Howard et al.; last release
January 2023, alpha) ships only a source archive that compiles C++ against Boost headers and
pins pybind11 ~= 2.6 in its build requirements; it gives uniform boundaries and confidence
sequences for *independent* observations (normal, gamma, beta-binomial mixtures, betting).
Built by hand in a scratch environment, it is the oracle of the one-sided normal mixture here
(``tests/test_stats_sequential.py`` holds its values). ``expectation`` 0.6.x needs Python ≥
3.12 (no release installs on 3.11), is GPL-3.0 with an extra no-AI-training clause, and pulls
plotly and matplotlib; its e-processes also assume independent observations. Neither models a
shared baseline, so the e-process is implemented here (a few lines of numpy).

Several dimensions: give each its own state at ``alpha / m`` (Bonferroni). Together with the
nightly rule: split the 5 % false-alarm budget, ``alpha = 0.03`` here (the default) and
``0.02 / 30`` per routine night for the nightly rule and its watches (chosen before
measuring: only this test can find small persistent drops; the nightly rule's job, a large
sudden drop, hardly needs the extra 3 %).

References
----------
Howard, S. R., Ramdas, A., McAuliffe, J. and Sekhon, J. (2021). Time-uniform, nonparametric,
nonasymptotic confidence sequences. *Annals of Statistics* 49(2), 1055–1080.
Page, E. S. (1954). Continuous inspection schemes. *Biometrika* 41(1/2), 100–115.
Ramdas, A., Grünwald, P., Vovk, V. and Shafer, G. (2023). Game-theoretic statistics and safe
anytime-valid inference. *Statistical Science* 38(4), 576–601.
Shin, J., Ramdas, A. and Rinaldo, A. (2024). E-detectors: a nonparametric framework for
sequential change detection. *New England Journal of Statistics in Data Science* 2(2).
Ville, J. (1939). *Étude critique de la notion de collectif*. Gauthier-Villars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_DROP_POINTS",
    "DEFAULT_PRIOR_SCALE_POINTS",
    "Night",
    "NightObservation",
    "SequentialDecision",
    "SequentialState",
    "Trajectory",
    "alarms",
    "e_process",
    "log_normal_mixture",
    "minimum_detectable_drop",
    "new_state",
    "normal_mixture_boundary",
    "reset",
    "update",
]

STATE_VERSION = 1
DEFAULT_ALPHA = 0.03
"""The sequential test's share of a 5 % false-alarm budget (the nightly rule keeps 2 %)."""
DEFAULT_PRIOR_SCALE_POINTS = 4.0
"""Scale of the half-normal prior on the drop, in points (the SEV2 size)."""
DEFAULT_MIN_DROP_POINTS = 1.0
"""An alarm needs an estimated drop of at least this many points (the warning size)."""
MDC_POWER = 0.8


# --------------------------------------------------------------------------- the mathematics


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
    """``U_1`` after night T: the score of a drop present since the first night."""
    information: np.ndarray
    """``V_1`` after night T: its information (1/points²)."""


def e_process(
    delta_points: Any,
    se_points: Any,
    fraction: Any = 1.0,
    *,
    prior_scale_points: float = DEFAULT_PRIOR_SCALE_POINTS,
    shared_baseline: bool = True,
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

    Returns
    -------
    Trajectory
        ``log_e``, ``change_point``, ``drop_points``, ``score``, ``information`` per night.
    """
    delta = np.asarray(delta_points, dtype=np.float64)
    se = np.asarray(se_points, dtype=np.float64)
    if delta.shape != se.shape or delta.ndim < 1:
        raise ValueError("delta_points and se_points must be arrays of the same shape (..., T)")
    f = np.clip(np.broadcast_to(np.asarray(fraction, dtype=np.float64), delta.shape), 0.0, 1.0)
    ok = np.isfinite(delta) & np.isfinite(se) & (se > 0) & np.isfinite(f)
    safe_se = np.where(ok, se, 1.0)
    a = np.where(ok, 1.0 / safe_se, 0.0)
    z = np.where(ok, delta / safe_se, 0.0)
    g = np.where(ok & shared_baseline, np.sqrt(np.where(ok, f, 0.0) / 2.0), 0.0)
    x = 1.0 / (1.0 - g * g)
    n_nights = delta.shape[-1]

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
    taus = np.arange(1, n_nights + 1, dtype=np.float64)
    valid = taus[:, None] <= taus[None, :]  # τ ≤ T
    log_terms = np.log(change_prior(taus))[:, None] + log_normal_mixture(
        u, v, prior_scale_points)
    log_terms = np.where(valid, log_terms, -np.inf)
    tail = -np.log(taus + 1.0)  # Σ_{τ>T} π_τ = 1/(T+1)
    log_e = np.logaddexp(_logsumexp(log_terms, axis=-2), tail)
    with np.errstate(divide="ignore", invalid="ignore"):
        profile = np.where(valid & (u > 0) & (v > 0), u * u / np.where(v > 0, v, 1.0), -1.0)
    best = np.argmax(profile, axis=-2)  # first maximum: the earliest night on ties
    found = np.take_along_axis(profile, best[..., None, :], axis=-2)[..., 0, :] > 0
    u_best = np.take_along_axis(u, best[..., None, :], axis=-2)[..., 0, :]
    v_best = np.take_along_axis(v, best[..., None, :], axis=-2)[..., 0, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = np.where(found, u_best / np.where(v_best > 0, v_best, 1.0), 0.0)
    return Trajectory(
        log_e=log_e,
        change_point=np.where(found, best + 1, 0),
        drop_points=drop,
        score=u[..., 0, :],
        information=v[..., 0, :],
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


# --------------------------------------------------------------------------- state and update


@dataclass(frozen=True)
class NightObservation:
    """One night's paired comparison of a dimension with the accepted baseline."""

    baseline_run_id: str
    """The baseline tonight was compared with (another one resets the state)."""
    delta_points: float | None
    """Tonight minus baseline on the primary metric, in points (None: undefined)."""
    se_points: float | None
    """Paired bootstrap standard error of ``delta_points`` (e.g. the half-width of the central
    68.3 % percentile interval, as the drift rule reads it)."""
    n_items: int
    """Items both runs scored (compared tonight)."""
    n_baseline_items: int
    """Items the baseline scored: ``n_items / n_baseline_items`` is 1 on a full replay."""
    run_id: str | None = None


@dataclass(frozen=True)
class Night:
    """A night kept in the state (JSON: ``[delta, se, n_items, n_baseline_items, run_id]``)."""

    delta_points: float
    se_points: float
    n_items: int
    n_baseline_items: int
    run_id: str | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.n_items / self.n_baseline_items) if self.n_baseline_items else 1.0

    def to_json(self) -> list[Any]:
        return [self.delta_points, self.se_points, self.n_items, self.n_baseline_items,
                self.run_id]

    @classmethod
    def from_json(cls, row: list[Any]) -> Night:
        return cls(float(row[0]), float(row[1]), int(row[2]), int(row[3]),
                   None if row[4] is None else str(row[4]))


@dataclass(frozen=True)
class SequentialState:
    """The sequential test of one (judge, set version, baseline, dimension), JSON via
    :meth:`to_json` / :meth:`from_json`. Immutable: :func:`update` returns a new one."""

    judge_name: str
    set_version: str
    baseline_run_id: str
    dimension: str
    alpha: float = DEFAULT_ALPHA
    prior_scale_points: float = DEFAULT_PRIOR_SCALE_POINTS
    min_drop_points: float = DEFAULT_MIN_DROP_POINTS
    nights: tuple[Night, ...] = ()
    """The nights with evidence since the baseline was accepted, oldest first."""
    skipped: int = 0
    """Nights that carried no evidence (identical verdicts, undefined metric)."""
    crossed_at: int | None = None
    """The night (1-based, among ``nights``) of the first alarm: the e-process reached
    ``1/alpha`` with an estimated drop of at least ``min_drop_points``."""
    log_e_value: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {self.alpha!r}")
        if not self.prior_scale_points > 0:
            raise ValueError("prior_scale_points must be positive")
        if not self.min_drop_points >= 0:
            raise ValueError("min_drop_points must not be negative")

    def to_json(self) -> dict[str, Any]:
        """A small JSON-safe dict (no NaN, no infinity)."""
        return {
            "version": STATE_VERSION,
            "judge_name": self.judge_name,
            "set_version": self.set_version,
            "baseline_run_id": self.baseline_run_id,
            "dimension": self.dimension,
            "alpha": self.alpha,
            "prior_scale_points": self.prior_scale_points,
            "min_drop_points": self.min_drop_points,
            "nights": [n.to_json() for n in self.nights],
            "skipped": self.skipped,
            "crossed_at": self.crossed_at,
            "log_e_value": self.log_e_value,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SequentialState:
        """The state back from :meth:`to_json` (raises ValueError on another version)."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"sequential state version {data.get('version')!r} is not "
                             f"{STATE_VERSION}")
        return cls(
            judge_name=str(data["judge_name"]),
            set_version=str(data["set_version"]),
            baseline_run_id=str(data["baseline_run_id"]),
            dimension=str(data["dimension"]),
            alpha=float(data["alpha"]),
            prior_scale_points=float(data["prior_scale_points"]),
            min_drop_points=float(data["min_drop_points"]),
            nights=tuple(Night.from_json(row) for row in data["nights"]),
            skipped=int(data["skipped"]),
            crossed_at=None if data["crossed_at"] is None else int(data["crossed_at"]),
            log_e_value=float(data["log_e_value"]),
        )


@dataclass(frozen=True)
class SequentialDecision:
    """What the sequential test says after tonight (JSON via :meth:`to_json`)."""

    crossed: bool
    """Alarm: the e-process has reached ``1/alpha`` with an estimated drop of at least
    ``min_drop_points`` (tonight or on an earlier night against this baseline)."""
    newly_crossed: bool
    """The alarm is new tonight."""
    nights: int
    """Nights with evidence since the baseline was accepted."""
    e_value: float
    """``M_T`` tonight (capped at 1e300 for JSON)."""
    threshold: float
    """``1/alpha``."""
    alpha: float
    crossed_at: int | None
    """The night (1-based among the nights with evidence) of the first alarm."""
    change_point: int | None
    """Likelihood-ratio estimate of the first drifted night (1-based), None when no night
    points to a drop."""
    change_point_run_id: str | None
    drop_points: float | None
    """Estimated drop since ``change_point``, in points (positive = worse)."""
    mdc_points: float | None
    """Smallest drop present since the first night that would have crossed by tonight with
    80 % power (None before the first night with evidence)."""
    mdc_floor_points: float | None
    """The same after unlimited further nights like these: smaller drops since the first
    night can never be told from a lucky baseline (a fresh baseline lowers it)."""
    reset: bool = False
    """The observation came with another baseline: the state started afresh."""
    skipped: str | None = None
    """Why tonight carried no evidence, or None."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "crossed": self.crossed,
            "newly_crossed": self.newly_crossed,
            "nights": self.nights,
            "e_value": self.e_value,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "crossed_at": self.crossed_at,
            "change_point": self.change_point,
            "change_point_run_id": self.change_point_run_id,
            "drop_points": self.drop_points,
            "mdc_points": self.mdc_points,
            "mdc_floor_points": self.mdc_floor_points,
            "reset": self.reset,
            "skipped": self.skipped,
            "notes": list(self.notes),
        }


def new_state(
    judge_name: str,
    set_version: str,
    baseline_run_id: str,
    dimension: str,
    *,
    alpha: float = DEFAULT_ALPHA,
    prior_scale_points: float = DEFAULT_PRIOR_SCALE_POINTS,
    min_drop_points: float = DEFAULT_MIN_DROP_POINTS,
) -> SequentialState:
    """A fresh state for a newly accepted baseline (``M_0 = 1``)."""
    return SequentialState(judge_name, set_version, baseline_run_id, dimension, alpha=alpha,
                           prior_scale_points=prior_scale_points,
                           min_drop_points=min_drop_points)


def reset(state: SequentialState, baseline_run_id: str) -> SequentialState:
    """The state restarted for a newly accepted baseline: same key and settings, no nights.

    Evidence against one baseline says nothing about the next, so nothing carries over.
    """
    return new_state(state.judge_name, state.set_version, baseline_run_id, state.dimension,
                     alpha=state.alpha, prior_scale_points=state.prior_scale_points,
                     min_drop_points=state.min_drop_points)


def _skip_reason(obs: NightObservation) -> str | None:
    d, s = obs.delta_points, obs.se_points
    if d is None or s is None or not math.isfinite(d) or not math.isfinite(s):
        return "the change or its standard error is undefined tonight"
    if obs.n_items <= 0 or obs.n_baseline_items <= 0:
        return "no item was compared tonight"
    if s < 0:
        raise ValueError(f"se_points must not be negative, got {s!r}")
    if s == 0:
        if d == 0:
            return "identical verdicts on every item compared: no evidence either way"
        return "no standard error (too few items differ): no evidence tonight"
    return None


def update(state: SequentialState, observation: NightObservation
           ) -> tuple[SequentialState, SequentialDecision]:
    """Add tonight's paired comparison with the baseline; return the new state and decision.

    Pure: the input state is not changed. An observation against another baseline than the
    state's restarts the state first (``decision.reset``). A night without evidence
    (undefined change, zero standard error) is counted in ``skipped`` and changes nothing
    else. Once crossed, the state stays crossed (``crossed_at``) until the next baseline;
    later nights keep updating the estimates.

    Examples
    --------
    Three healthy nights, then a drop of about 4 points (SE 1 point on 1,000 items):

    >>> s = new_state("judge", "v1", "run-0", "preference")
    >>> for night, delta in enumerate([0.5, -0.8, 0.3, -3.5, -4.2], start=1):
    ...     s, d = update(s, NightObservation("run-0", delta, 1.0, 1000, 1000, f"run-{night}"))
    >>> d.crossed, d.crossed_at, d.change_point, d.change_point_run_id, round(d.drop_points, 2)
    (True, 4, 4, 'run-4', 3.85)
    """
    was_reset = observation.baseline_run_id != state.baseline_run_id
    if was_reset:
        state = reset(state, observation.baseline_run_id)
    why = _skip_reason(observation)
    if why is not None:
        state = replace(state, skipped=state.skipped + 1)
        return state, _decision(state, newly=False, was_reset=was_reset, skipped=why)
    assert observation.delta_points is not None and observation.se_points is not None
    night = Night(float(observation.delta_points), float(observation.se_points),
                  int(observation.n_items), int(observation.n_baseline_items),
                  observation.run_id)
    nights = (*state.nights, night)
    traj = e_process(
        [n.delta_points for n in nights], [n.se_points for n in nights],
        [n.fraction for n in nights], prior_scale_points=state.prior_scale_points)
    log_e = float(traj.log_e[-1])
    crossed_at = state.crossed_at
    newly = crossed_at is None and bool(
        alarms(traj, state.alpha, state.min_drop_points)[-1])
    if newly:
        crossed_at = len(nights)
    state = replace(state, nights=nights, crossed_at=crossed_at, log_e_value=log_e)
    return state, _decision(state, newly=newly, was_reset=was_reset, skipped=None,
                            trajectory=traj)


def _decision(state: SequentialState, *, newly: bool, was_reset: bool, skipped: str | None,
              trajectory: Trajectory | None = None) -> SequentialDecision:
    nights = state.nights
    if trajectory is None and nights:
        trajectory = e_process(
            [n.delta_points for n in nights], [n.se_points for n in nights],
            [n.fraction for n in nights], prior_scale_points=state.prior_scale_points)
    change_point = drop = mdc = floor = None
    notes: list[str] = []
    if trajectory is not None:
        cp = int(trajectory.change_point[-1])
        if cp > 0:
            change_point, drop = cp, float(trajectory.drop_points[-1])
        mdc = minimum_detectable_drop(float(trajectory.information[-1]), state.alpha,
                                      prior_scale_points=state.prior_scale_points)
        # Information of a drop since night 1 after unlimited nights like these: 1/σ_b²,
        # σ_b² = the shared (baseline) variance = mean of s_t² f_t / 2.
        shared = float(np.mean([n.se_points ** 2 * n.fraction / 2.0 for n in nights]))
        floor = minimum_detectable_drop(1.0 / shared, state.alpha,
                                        prior_scale_points=state.prior_scale_points)
        if (state.crossed_at is None and state.log_e_value >= math.log(1.0 / state.alpha)
                and drop is not None):
            notes.append(f"the evidence reached 1/alpha but the estimated drop ({drop:.2f} "
                         f"points) is below {state.min_drop_points:g} point(s): no alarm")
        if mdc is not None and floor is not None and mdc < floor * 1.1:
            notes.append("close to the floor: further nights against this baseline add "
                         "little; only a fresh baseline detects smaller drops since the "
                         "first night")
    return SequentialDecision(
        crossed=state.crossed_at is not None,
        newly_crossed=newly,
        nights=len(nights),
        e_value=min(math.exp(min(state.log_e_value, 690.0)), 1e300),
        threshold=1.0 / state.alpha,
        alpha=state.alpha,
        crossed_at=state.crossed_at,
        change_point=change_point,
        change_point_run_id=nights[change_point - 1].run_id if change_point else None,
        drop_points=drop,
        mdc_points=mdc,
        mdc_floor_points=floor,
        reset=was_reset,
        skipped=skipped,
        notes=notes,
    )
