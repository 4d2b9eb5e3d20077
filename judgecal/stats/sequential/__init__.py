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
    it: conservative, and it costs power. With reference runs (a replicated baseline, see
    :func:`e_process`) the nights are weighed instead by the noise the references showed,
    which no drop touched (:func:`null_standard_errors`: their variance per whole set,
    inflated by an 80 % Poisson bound on the items they changed, never below 0.9 of a
    night's own SE; nights that have been noisier than the references all along, and a
    judge whose references changed fewer than 10 items each, keep their own).

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

from judgecal.stats.sequential._mixture import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_DROP_POINTS,
    DEFAULT_PRIOR_SCALE_POINTS,
    OWN_SE_SHARE,
    Trajectory,
    alarms,
    change_prior,
    e_process,
    log_normal_mixture,
    minimum_detectable_drop,
    normal_mixture_boundary,
    null_standard_errors,
)
from judgecal.stats.sequential._state import (
    Night,
    NightObservation,
    SequentialDecision,
    SequentialState,
    effective_se,
    new_state,
    night_correlation,
    reset,
    update,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_DROP_POINTS",
    "DEFAULT_PRIOR_SCALE_POINTS",
    "OWN_SE_SHARE",
    "Night",
    "NightObservation",
    "SequentialDecision",
    "SequentialState",
    "Trajectory",
    "alarms",
    "change_prior",
    "e_process",
    "effective_se",
    "log_normal_mixture",
    "minimum_detectable_drop",
    "new_state",
    "night_correlation",
    "normal_mixture_boundary",
    "null_standard_errors",
    "reset",
    "update",
]
