"""The remedy's statistics (judgecal.stats.correction): reference values, properties,
sentinels, sampling, and a small coverage check.

Reference values
----------------
* PPI++ against the reference implementation ppi-python (``ppi_py.ppi_mean_ci`` and
  ``ppi_py.ppi_mean_pointestimate``, Angelopoulos et al.) to 1e-9, at 90 % and 95 %, with
  tuned, fixed and weighted λ. ppi-python is a dev dependency (``pip install -e '.[dev]'``);
  without it those tests are skipped with a reason.
* Rogan–Gladen against a published worked example (see ``test_rogan_gladen_published_*``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from judgecal.scales import Scale
from judgecal.stats.correction import (
    FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION,
    FLAG_CALIBRATION_NOT_REPRESENTATIVE,
    FLAG_JUDGE_UNINFORMATIVE,
    FLAG_PLACEBO_MISSED,
    FLAG_TEXT,
    CorrectionEstimate,
    agreement_check,
    correct_window,
    human_only_mean,
    placebo,
    ppi_mean,
    project_to_simplex,
    proportional_allocation,
    raw_estimate,
    representativeness_check,
    rogan_gladen,
    rogan_gladen_variance,
    shift_robust,
    stratified_sample,
    window_sample_ppi,
)
from judgecal.stats.correction._ppi import ppi_fit

BINARY = Scale(kind="binary")
ORDINAL = Scale(kind="ordinal", min=1, max=5)
INTERVAL = Scale(kind="interval")
PAIRWISE = Scale(kind="pairwise")
NOMINAL = Scale(kind="nominal", categories=["a", "b", "c"])
Z95 = 1.959963984540054


def _binary_pairs(rng: np.random.Generator, n: int, prevalence: float, se: float,
                  sp: float) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(n) < prevalence).astype(float)
    u = rng.random(n)
    f = np.where(y == 1, u < se, u >= sp).astype(float)
    return y, f


def _json(est: CorrectionEstimate) -> dict:
    return json.loads(json.dumps(est.to_json(), allow_nan=False))


# --- reference: ppi-python ----------------------------------------------------------------


def _ppi_py() -> Any:
    return pytest.importorskip(
        "ppi_py", reason="ppi-python (the PPI++ reference) is not installed: "
        "pip install -e '.[dev]'")


def _first(x: object) -> float:
    return float(np.ravel(np.asarray(x))[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("confidence", [0.90, 0.95])
def test_ppi_matches_ppi_python_tuned(seed: int, confidence: float) -> None:
    ppi_py = _ppi_py()
    rng = np.random.default_rng(seed)
    n, big_n = 150 + 50 * seed, 1000 + 500 * seed
    y = rng.normal(2.0, 1.0, n)
    f = 0.7 * y + rng.normal(0.3, 0.8, n)
    fu = 0.7 * rng.normal(2.3, 1.0, big_n) + rng.normal(0.3, 0.8, big_n)
    est = ppi_mean(INTERVAL, y, f, fu, confidence=confidence)
    alpha = 1.0 - confidence  # ppi-python's default alpha=0.1 is a 90 % interval
    lo, hi = ppi_py.ppi_mean_ci(y, f, fu, alpha=alpha)
    point = ppi_py.ppi_mean_pointestimate(y, f, fu)
    assert est.value == pytest.approx(_first(point), abs=1e-9)
    assert est.ci_low == pytest.approx(_first(lo), abs=1e-9)
    assert est.ci_high == pytest.approx(_first(hi), abs=1e-9)
    assert 0.0 < est.diagnostics["lambda"] < 1.0


@pytest.mark.parametrize("lam", [0.0, 0.35, 1.0])
def test_ppi_matches_ppi_python_fixed_lambda_binary(lam: float) -> None:
    ppi_py = _ppi_py()
    rng = np.random.default_rng(11)
    y, f = _binary_pairs(rng, 300, 0.5, 0.85, 0.8)
    _, fu = _binary_pairs(rng, 3000, 0.7, 0.85, 0.8)
    est = ppi_mean(BINARY, y, f, fu, lam=lam, confidence=0.95)
    lo, hi = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05, lam=lam)
    point = ppi_py.ppi_mean_pointestimate(y, f, fu, lam=lam)
    assert est.value == pytest.approx(_first(point), abs=1e-9)
    assert est.ci_low == pytest.approx(_first(lo), abs=1e-9)
    assert est.ci_high == pytest.approx(_first(hi), abs=1e-9)
    assert est.diagnostics["lambda_rule"] == "fixed"


def test_ppi_matches_ppi_python_with_weights() -> None:
    ppi_py = _ppi_py()
    rng = np.random.default_rng(5)
    y = rng.normal(size=200)
    f = y + rng.normal(scale=0.7, size=200)
    fu = rng.normal(size=1500) + rng.normal(scale=0.7, size=1500)
    w, wu = rng.uniform(0.5, 2.0, 200), rng.uniform(0.5, 2.0, 1500)
    fit = ppi_fit(y, f, fu, w=w, w_window=wu)  # power tuning, as ppi-python
    assert fit is not None
    lo, _ = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05, w=w, w_unlabeled=wu)
    point = ppi_py.ppi_mean_pointestimate(y, f, fu, w=w, w_unlabeled=wu)
    assert fit.theta == pytest.approx(_first(point), abs=1e-9)
    assert fit.theta - Z95 * fit.se == pytest.approx(_first(lo), abs=1e-9)


def test_window_sample_matches_ppi_python_weighted() -> None:
    ppi_py = _ppi_py()
    rng = np.random.default_rng(8)
    big_n = 2000
    strata = rng.choice(3, size=big_n, p=[0.6, 0.3, 0.1])
    truth = rng.normal(np.array([1.0, 2.0, 4.0])[strata], 1.0)
    judge = truth + rng.normal(0.5, 0.6, big_n)
    sample = stratified_sample(list(range(big_n)), strata.tolist(), 200, seed=3)
    pick = np.asarray(sample.ids)
    weights = {0: 0.2, 1: 0.3, 2: 0.5}
    est = window_sample_ppi(INTERVAL, truth[pick], judge[pick], strata[pick], judge, strata,
                            stratum_weights=weights)
    assert est.value is not None
    w_h = np.array([0.2, 0.3, 0.5])
    n_h = np.bincount(strata[pick], minlength=3)
    big_n_h = np.bincount(strata, minlength=3)
    w = w_h[strata[pick]] / (n_h[strata[pick]] / pick.size)
    wu = w_h[strata] / (big_n_h[strata] / big_n)
    lam = est.diagnostics["lambda"]
    lo, hi = ppi_py.ppi_mean_ci(truth[pick], judge[pick], judge, alpha=0.05, lam=lam, w=w,
                                w_unlabeled=wu)
    point = ppi_py.ppi_mean_pointestimate(truth[pick], judge[pick], judge, lam=lam, w=w,
                                          w_unlabeled=wu)
    assert est.value == pytest.approx(_first(point), abs=1e-9)
    assert est.ci_low == pytest.approx(_first(lo), abs=1e-9)
    assert est.ci_high == pytest.approx(_first(hi), abs=1e-9)
    # the stratified estimate is sum_h W_h [lam * mean f_window_h + mean (Y - lam f)_sample_h]
    by_hand = sum(
        w_h[h] * (lam * judge[strata == h].mean()
                  + (truth[pick] - lam * judge[pick])[strata[pick] == h].mean())
        for h in range(3))
    assert est.value == pytest.approx(by_hand, abs=1e-12)


# --- reference: Rogan–Gladen ----------------------------------------------------------------


def test_rogan_gladen_published_example_known_se_sp() -> None:
    # Published worked example: R package RSurveillance (E. Sergeant, AusVet), help page of
    # tp(), "examples for tp": x = 20 positives of n = 120 tested, Se = 0.9, Sp = 0.99. Its
    # printed output, row "normal" of $tp (Rogan & Gladen 1978 estimator and Wald interval
    # with Se and Sp known): est 0.17603, lower 0.1011094, upper 0.2509506.
    # By hand: AP = 20/120 = 0.1666667; (0.1666667 + 0.99 - 1) / (0.9 + 0.99 - 1)
    # = 0.1566667 / 0.89 = 0.1760300; SE = sqrt(AP (1 - AP) / n) / J
    # = sqrt(0.1666667 * 0.8333333 / 120) / 0.89 = 0.0340207 / 0.89 = 0.0382255;
    # 0.1760300 -/+ 1.959964 * 0.0382255 = 0.1011094 .. 0.2509506.
    p_obs = 20 / 120
    p = rogan_gladen(p_obs, 0.9, 0.99)
    assert p == pytest.approx(0.17603, abs=5e-6)
    se = math.sqrt(rogan_gladen_variance(p_obs, 120, 0.9, None, 0.99, None))
    assert p - Z95 * se == pytest.approx(0.1011094, abs=5e-8)
    assert p + Z95 * se == pytest.approx(0.2509506, abs=5e-8)


def test_rogan_gladen_formula_and_clipping() -> None:
    # Rogan & Gladen (1978): p = (AP + Sp - 1) / (Se + Sp - 1); an AP below 1 - Sp gives a
    # negative estimate, clipped to 0 (and above Se, clipped to 1).
    assert rogan_gladen(0.30, 0.8, 0.9) == pytest.approx((0.30 + 0.9 - 1) / 0.7)
    assert rogan_gladen(0.05, 0.8, 0.9) == 0.0
    assert rogan_gladen(0.05, 0.8, 0.9, clip=False) == pytest.approx(-0.05 / 0.7)
    assert rogan_gladen(0.95, 0.8, 0.9) == 1.0
    assert math.isnan(rogan_gladen(0.5, 0.5, 0.5))


def test_shift_robust_binary_includes_calibration_uncertainty() -> None:
    # The same published numbers, now with Se and Sp estimated on a calibration set:
    # 100 true positives, 90 judged positive (Se = 0.90); 100 true negatives, 99 judged
    # negative (Sp = 0.99); the window has 20 positive judge scores of 120.
    # Delta method (Lang & Reiczigel 2014, eq. 4), by hand with p = 0.1760300:
    # [AP(1-AP)/120 + p^2 Se(1-Se)/100 + (1-p)^2 Sp(1-Sp)/100] / J^2
    # = [0.00115741 + 0.03098656 * 0.0009 + 0.67892655 * 0.000099] / 0.7921
    # = (0.00115741 + 0.00002789 + 0.00006721) / 0.7921 = 0.00158125; SE = 0.0397650,
    # interval 0.1760300 -/+ 0.0779380 = 0.0980920 .. 0.2539680 — wider than the
    # known-Se/Sp interval above.
    human = np.r_[np.ones(100), np.zeros(100)]
    judge = np.r_[np.ones(90), np.zeros(10), np.ones(1), np.zeros(99)]
    window = np.r_[np.ones(20), np.zeros(100)]
    est = shift_robust(BINARY, human, judge, window)
    assert est.interval == "delta"
    assert est.diagnostics["se"] == pytest.approx(0.90)
    assert est.diagnostics["sp"] == pytest.approx(0.99)
    assert est.value == pytest.approx(0.1760300, abs=1e-6)
    assert est.ci_low == pytest.approx(0.0980920, abs=1e-5)
    assert est.ci_high == pytest.approx(0.2539680, abs=1e-5)
    # the rate of code 0 is the mirror image
    neg = shift_robust(BINARY, human, judge, window, positive=0.0)
    assert neg.value == pytest.approx(1 - 0.1760300, abs=1e-6)
    assert neg.ci_low == pytest.approx(1 - 0.2539680, abs=1e-5)


def test_inversion_with_two_codes_is_rogan_gladen() -> None:
    rng = np.random.default_rng(3)
    y, f = _binary_pairs(rng, 400, 0.5, 0.85, 0.8)
    _, fw = _binary_pairs(rng, 2000, 0.8, 0.85, 0.8)
    delta = shift_robust(BINARY, y, f, fw)
    boot = shift_robust(BINARY, y, f, fw, interval="bootstrap", n_boot=400, seed=1)
    d = delta.diagnostics
    assert delta.value == pytest.approx(rogan_gladen(d["p_obs"], d["se"], d["sp"]), abs=1e-12)
    assert boot.value == pytest.approx(delta.value, abs=1e-12)
    assert boot.interval == "bootstrap_percentile"
    assert boot.ci_low is not None and delta.ci_low is not None
    assert boot.ci_low == pytest.approx(delta.ci_low, abs=0.02)


# --- properties ----------------------------------------------------------------------------


def test_perfect_judge_ppi_equals_raw_with_lambda_near_one() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(1, 6, 300).astype(float)
    window = rng.integers(1, 6, 100_000).astype(float)
    est = ppi_mean(ORDINAL, y, y, window)
    raw = raw_estimate(ORDINAL, window)
    assert est.diagnostics["lambda"] > 0.99
    assert est.value == pytest.approx(raw.value, abs=0.01)
    assert est.width == pytest.approx(raw.width, rel=0.05)
    # with lambda fixed at 1 a perfect judge gives exactly the raw mean
    exact = ppi_mean(ORDINAL, y, y, window, lam=1.0)
    assert exact.value == pytest.approx(raw.value, abs=1e-12)
    assert FLAG_JUDGE_UNINFORMATIVE not in est.flags


def test_useless_judge_lambda_near_zero_and_interval_as_human_only() -> None:
    rng = np.random.default_rng(6)
    y = (rng.random(400) < 0.6).astype(float)
    f = (rng.random(400) < 0.5).astype(float)  # independent of the truth
    window = (rng.random(5000) < 0.5).astype(float)
    est = ppi_mean(BINARY, y, f, window)
    human = human_only_mean(BINARY, y)
    assert est.diagnostics["lambda"] < 0.1
    assert FLAG_JUDGE_UNINFORMATIVE in est.flags
    assert "little information" in FLAG_TEXT[FLAG_JUDGE_UNINFORMATIVE]
    assert est.width == pytest.approx(human.width, rel=0.05)
    assert est.value == pytest.approx(human.value, abs=0.01)
    assert est.diagnostics["human_only"]["value"] == pytest.approx(human.value)


def test_ppi_reports_diagnostics_and_json_safe() -> None:
    rng = np.random.default_rng(7)
    y, f = _binary_pairs(rng, 300, 0.6, 0.9, 0.85)
    _, fw = _binary_pairs(rng, 2000, 0.6, 0.9, 0.85)
    est = ppi_mean(BINARY, y, f, fw)
    out = _json(est)
    assert out["method"] == "ppi++" and out["interval"] == "clt"
    for key in ("lambda", "human_only", "width_ratio", "effective_labelled", "correlation"):
        assert key in out["diagnostics"]
    assert out["diagnostics"]["width_ratio"] < 1
    assert out["diagnostics"]["effective_labelled"] > 300


def test_pairwise_target_counts_ties_half() -> None:
    window = np.array([1.0, 1.0, 2.0, 0.0])  # first, first, second, tie
    assert raw_estimate(PAIRWISE, window).value == pytest.approx((1 + 1 + 0 + 0.5) / 4)


def test_pairwise_without_ties_judge_may_say_tie() -> None:
    # Humans choose 1 or 2 only; the judge may also answer 0 (tie): M is 3 x 2 and the
    # window's shares are found by least squares, then projected onto the simplex.
    no_ties = Scale(kind="pairwise", ties=False)
    rng = np.random.default_rng(19)
    m = np.array([[0.2, 0.2], [0.7, 0.1], [0.1, 0.7]])  # rows: judge 0, 1, 2; cols: true 1, 2

    def draw(p_first: float, size: int) -> tuple[np.ndarray, np.ndarray]:
        true = (rng.random(size) >= p_first).astype(int)  # 0 -> code 1, 1 -> code 2
        cdf = np.cumsum(m[:, true].T, axis=1)
        judge = np.minimum((rng.random(size)[:, None] > cdf).sum(axis=1), 2)
        return true + 1.0, judge.astype(float)

    y, f = draw(0.5, 4000)
    _, fw = draw(0.8, 20000)
    est = shift_robust(no_ties, y, f, fw, n_boot=200)
    assert est.value == pytest.approx(0.8, abs=0.03)
    assert len(est.diagnostics["matrix"]) == 3 and len(est.diagnostics["matrix"][0]) == 2
    with pytest.raises(ValueError, match="not a code"):
        ppi_mean(no_ties, [0.0] * 20, [1.0] * 20, [1.0])  # a human tie on a no-ties scale


def test_fixed_lambda_is_kept_with_min_variance_rule() -> None:
    rng = np.random.default_rng(20)
    y = rng.normal(size=50)
    f = -y + rng.normal(size=50)  # anti-correlated: a fixed lambda = 1 widens the interval
    est = ppi_mean(INTERVAL, y, f, rng.normal(size=500), lam=1.0, lambda_rule="min_variance")
    assert est.diagnostics["lambda"] == 1.0
    assert est.diagnostics["width_ratio"] > 1


def test_shift_robust_recovers_ordinal_label_shift_where_ppi_is_biased() -> None:
    rng = np.random.default_rng(9)
    codes = np.arange(1.0, 6.0)
    m = np.array([[.7, .2, .05, .0, .0], [.2, .6, .15, .05, .0], [.1, .15, .6, .15, .1],
                  [.0, .05, .15, .6, .2], [.0, .0, .05, .2, .7]])  # columns: true code
    m = m / m.sum(axis=0)

    def draw(pi: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        true = rng.choice(5, size=size, p=pi)
        cdf = np.cumsum(m[:, true].T, axis=1)
        judge = np.minimum((rng.random(size)[:, None] > cdf).sum(axis=1), 4)
        return codes[true], codes[judge]

    y, f = draw(np.array([.2, .2, .2, .2, .2]), 3000)
    pi_win = np.array([.05, .05, .1, .3, .5])
    _, fw = draw(pi_win, 20000)
    truth = float(pi_win @ codes)
    sr = shift_robust(ORDINAL, y, f, fw, n_boot=300, seed=2)
    ppi = ppi_mean(ORDINAL, y, f, fw)
    assert sr.value == pytest.approx(truth, abs=0.06)
    assert sr.covers(truth)
    assert not ppi.covers(truth)
    dist = sr.diagnostics["distribution"]
    assert sum(dist.values()) == pytest.approx(1.0)
    assert dist["5"] == pytest.approx(0.5, abs=0.05)
    assert agreement_check([ppi, sr]).disagree


def test_ordinal_half_step_consensus_splits_between_codes() -> None:
    # 20 items whose raters split between 3 and 4 (consensus 3.5) count half in each code:
    # true 3 has 20 + 10 items (judge 3: 20 + 5, judge 4: 5), true 4 likewise mirrored.
    human = np.r_[np.full(20, 3.5), np.full(20, 3.0), np.full(20, 4.0), np.full(20, 1.0)]
    judge = np.r_[np.full(10, 3.0), np.full(10, 4.0), np.full(20, 3.0), np.full(20, 4.0),
                  np.full(20, 1.0)]
    window = np.r_[np.full(50, 3.0), np.full(50, 4.0), np.full(100, 1.0)]
    est = shift_robust(ORDINAL, human, judge, window, n_boot=50)
    assert est.diagnostics["calibration_true_counts"] == [20.0, 30.0, 30.0]
    np.testing.assert_allclose(est.diagnostics["matrix"][2], [0.0, 25 / 30, 5 / 30])
    assert est.value == pytest.approx(0.5 * 1 + 0.25 * 3 + 0.25 * 4, abs=1e-9)
    assert est.diagnostics["categories_without_calibration_items"] == [2.0, 5.0]


def test_project_to_simplex() -> None:
    v = np.array([[0.2, 0.3, 0.5], [-0.2, 1.2, 0.0], [2.0, 2.0, 2.0], [np.nan, 0.5, 0.5]])
    p = project_to_simplex(v)
    np.testing.assert_allclose(p[0], [0.2, 0.3, 0.5])
    np.testing.assert_allclose(p[1], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(p[2], [1 / 3, 1 / 3, 1 / 3])
    assert np.isnan(p[3]).all()
    rng = np.random.default_rng(0)
    q = project_to_simplex(rng.normal(size=(200, 5)))
    assert (q >= 0).all()
    np.testing.assert_allclose(q.sum(axis=1), 1.0)


def test_raw_cluster_robust_equals_cluster_means_for_duplicated_clusters() -> None:
    rng = np.random.default_rng(10)
    means = rng.integers(1, 6, 50).astype(float)
    window = np.repeat(means, 4)
    clusters = np.repeat(np.arange(50), 4)
    clustered = raw_estimate(ORDINAL, window, clusters=clusters)
    on_means = raw_estimate(ORDINAL, means)
    naive = raw_estimate(ORDINAL, window)
    assert clustered.interval == "cluster_clt"
    assert clustered.value == pytest.approx(on_means.value)
    assert clustered.ci_low == pytest.approx(on_means.ci_low, abs=1e-12)
    assert clustered.ci_high == pytest.approx(on_means.ci_high, abs=1e-12)
    assert clustered.width is not None and naive.width is not None
    assert clustered.width > 1.9 * naive.width  # ~sqrt(4) wider
    assert clustered.diagnostics["design_effect"] > 3.5
    singletons = raw_estimate(ORDINAL, means, clusters=list(range(50)))
    assert singletons.ci_low == pytest.approx(on_means.ci_low, abs=1e-12)


def test_window_sample_interval_never_wider_than_human_only() -> None:
    rng = np.random.default_rng(12)
    for trial in range(300):
        big_n = int(rng.integers(30, 400))
        n_strata = int(rng.integers(1, 6))
        strata = rng.integers(0, n_strata, big_n)
        y = rng.normal(strata * rng.normal(), 1.0, big_n)
        slope = rng.normal()  # sometimes a judge anti-correlated with the truth
        f = slope * y + rng.normal(0.0, rng.uniform(0.1, 3.0), big_n)
        n = int(rng.integers(n_strata + 10, max(big_n // 2, n_strata + 11)))
        sample = stratified_sample(list(range(big_n)), strata.tolist(), n, seed=trial)
        pick = np.asarray(sample.ids)
        weights = None
        if trial % 2:
            weights = {int(h): float(rng.uniform(0.1, 1.0)) for h in np.unique(strata)}
        est = window_sample_ppi(INTERVAL, y[pick], f[pick], strata[pick], f, strata,
                                stratum_weights=weights)
        assert est.width is not None, est.undefined
        human = est.diagnostics["human_only"]
        assert est.width <= (human["ci_high"] - human["ci_low"]) * (1 + 1e-12), trial


def test_window_sample_reweights_by_stratum() -> None:
    # Stratum 1 is oversampled (all 5 of its items labelled vs 5 of 95): with the window's
    # own shares the estimate is the window mean, not the sample mean.
    strata = np.r_[np.zeros(95, dtype=int), np.ones(5, dtype=int)]
    y = np.r_[np.zeros(95), np.ones(5)]
    f = y.copy()
    pick = np.r_[np.arange(0, 95, 19), np.arange(95, 100)]
    est = window_sample_ppi(BINARY, y[pick], f[pick], strata[pick], f, strata, lam=0.0,
                            min_labelled=5)
    assert est.value == pytest.approx(0.05)
    assert est.diagnostics["human_only"]["value"] == pytest.approx(0.05)


# --- sentinels -----------------------------------------------------------------------------


def test_binary_judge_without_separation_is_refused() -> None:
    rng = np.random.default_rng(13)
    y = (rng.random(500) < 0.5).astype(float)
    f = (rng.random(500) < 0.5).astype(float)  # Se + Sp - 1 near 0
    est = shift_robust(BINARY, y, f, f[:200])
    assert est.value is None and est.ci_low is None
    assert est.undefined_code == "near_singular" and est.refused
    assert "Se + Sp - 1" in (est.undefined or "")
    assert est.diagnostics["youden"] < 0.2
    _json(est)


def test_singular_ordinal_matrix_is_refused() -> None:
    # The judge answers 3 whether the truth is 2 or 3: two identical columns.
    human = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 20)
    judge = np.repeat([1.0, 3.0, 3.0, 4.0, 5.0], 20)
    est = shift_robust(ORDINAL, human, judge, judge)
    assert est.undefined_code == "near_singular"
    assert "condition number" in (est.undefined or "")
    assert est.diagnostics["condition_number"] is None  # infinite


def test_ill_conditioned_matrix_is_refused_by_the_bound() -> None:
    human = np.repeat([1.0, 2.0, 3.0], 100)
    # the judge barely tells 2 from 3: singular values 1, 1, 0.06 (condition number 16.7)
    judge = np.r_[np.repeat([1.0], 100), np.repeat([2.0, 3.0], [53, 47]),
                  np.repeat([2.0, 3.0], [47, 53])]
    est = shift_robust(ORDINAL, human, judge, judge)
    assert est.undefined_code == "near_singular"
    assert est.diagnostics["condition_number"] > 10
    ok = shift_robust(ORDINAL, human, judge, judge, max_condition=100, n_boot=50)
    assert ok.value is not None


def test_sentinels_for_degenerate_inputs() -> None:
    few = ppi_mean(BINARY, [1.0, 0.0], [1.0, 0.0], [1.0, 0.0, 1.0])
    assert few.undefined_code == "too_few_items" and few.value is None
    const = ppi_mean(BINARY, [1.0, 0.0] * 10, [1.0] * 20, [1.0] * 50)
    assert const.undefined_code == "lambda_undefined"
    assert ppi_mean(BINARY, [1.0, 0.0] * 10, [1.0] * 20, [1.0] * 50, lam=0.5).value is not None
    assert shift_robust(INTERVAL, [1.0] * 20, [1.0] * 20, [1.0]).undefined_code == \
        "not_categorical"
    one = shift_robust(BINARY, [1.0] * 20, [1.0, 0.0] * 10, [1.0, 0.0])
    assert one.undefined_code == "one_category"
    assert shift_robust(BINARY, [1.0, 0.0] * 10, [1.0, 0.0] * 10, [np.nan]).undefined_code \
        == "too_few_items"
    assert raw_estimate(BINARY, [1.0]).undefined_code == "too_few_items"
    assert raw_estimate(BINARY, [1.0, 0.0, 1.0], clusters=["a", "a", "a"]).undefined_code \
        == "too_few_items"
    strata = [0] * 10 + [1] * 10
    empty = window_sample_ppi(BINARY, [1.0, 0.0] * 6, [1.0, 0.0] * 6, [0] * 12,
                              [1.0, 0.0] * 10, strata)
    assert empty.undefined_code == "stratum_without_labels"
    for est in (few, const, one, empty):
        out = _json(est)
        assert out["value"] is None and "undefined" in out and "undefined_code" in out


def test_invalid_input_raises() -> None:
    with pytest.raises(ValueError, match="not a code"):
        ppi_mean(BINARY, [2.0] * 20, [1.0] * 20, [1.0])
    with pytest.raises(ValueError, match=r"same length|cover"):
        ppi_mean(BINARY, [1.0] * 20, [1.0] * 19, [1.0])
    with pytest.raises(ValueError, match="confidence"):
        raw_estimate(BINARY, [1.0, 0.0], confidence=1.0)
    with pytest.raises(ValueError, match="positive"):
        raw_estimate(NOMINAL, [1.0, 0.0])
    with pytest.raises(ValueError, match="delta"):
        shift_robust(ORDINAL, [1.0, 2.0] * 10, [1.0, 2.0] * 10, [1.0], interval="delta")
    with pytest.raises(ValueError, match="does not occur"):
        window_sample_ppi(BINARY, [1.0], [1.0], ["x"], [1.0, 0.0], ["a", "b"])
    with pytest.raises(ValueError):
        CorrectionEstimate("raw", math.nan, None, None, 0.95)


def test_nominal_rate_of_a_category() -> None:
    rng = np.random.default_rng(14)
    human = rng.integers(0, 3, 600).astype(float)
    judge = np.where(rng.random(600) < 0.8, human, rng.integers(0, 3, 600)).astype(float)
    window = rng.integers(0, 3, 3000).astype(float)
    est = shift_robust(NOMINAL, human, judge, window, positive=2.0, n_boot=200)
    raw = raw_estimate(NOMINAL, window, positive=2.0)
    assert est.value is not None and raw.value is not None
    assert est.value == pytest.approx(est.diagnostics["distribution"]["2"])
    assert raw.value == pytest.approx(float((window == 2).mean()))


# --- sampling ------------------------------------------------------------------------------


def _window_ids(n: int = 500) -> tuple[list[str], list[tuple[str, str, str]]]:
    rng = np.random.default_rng(15)
    customers = rng.choice(["acme", "globex", "initech"], size=n, p=[0.6, 0.3, 0.1])
    segments = rng.choice(["web", "app"], size=n, p=[0.8, 0.2])
    dims = rng.choice(["helpful", "safe"], size=n)
    ids = [f"s{i:04d}" for i in range(n)]
    return ids, [(str(c), str(s), str(d)) for c, s, d in zip(customers, segments, dims,
                                                              strict=True)]


def test_stratified_sample_covers_every_stratum_proportionally() -> None:
    ids, strata = _window_ids()
    sample = stratified_sample(ids, strata, 60, seed=1)
    assert sample.n == 60
    assert set(sample.strata) == set(strata)  # every stratum, even the small ones
    assert len(set(sample.ids)) == sample.n and set(sample.ids) <= set(ids)
    lookup = dict(zip(ids, strata, strict=True))
    assert all(lookup[i] == s for i, s in zip(sample.ids, sample.strata, strict=True))
    for key, (size, taken) in sample.allocation.items():
        assert taken >= 1
        assert abs(taken - 60 * size / len(ids)) < 1.0 + 1e-9 or taken == 1, key
    json.dumps(sample.to_json(), allow_nan=False)


def test_stratified_sample_reproducible_and_order_free() -> None:
    ids, strata = _window_ids()
    a = stratified_sample(ids, strata, 50, seed=7)
    b = stratified_sample(ids, strata, 50, seed=7)
    c = stratified_sample(ids[::-1], strata[::-1], 50, seed=7)
    d = stratified_sample(ids, strata, 50, seed=8)
    assert a.ids == b.ids == c.ids
    assert a.ids != d.ids
    assert a.allocation == d.allocation


def test_allocation_edge_cases() -> None:
    sizes = np.array([1, 1, 1, 97])
    alloc = proportional_allocation(sizes, 10)
    assert alloc.tolist() == [1, 1, 1, 7]
    assert proportional_allocation(np.array([5, 5, 5]), 2).tolist() == [1, 1, 1]
    assert proportional_allocation(np.array([3, 4]), 50).tolist() == [3, 4]
    rng = np.random.default_rng(16)
    for _ in range(200):
        sizes = rng.integers(1, 50, int(rng.integers(1, 20)))
        n = int(rng.integers(sizes.size, sizes.sum() + 1))
        alloc = proportional_allocation(sizes, n)
        assert alloc.sum() == n and (alloc >= 1).all() and (alloc <= sizes).all()
    ids, strata = _window_ids(40)
    many = stratified_sample(ids, strata, 2, seed=0)  # 12 strata, 2 asked: one each
    assert many.n == len(set(strata)) and many.n_requested == 2
    with pytest.raises(ValueError, match="distinct"):
        stratified_sample(["a", "a"], [1, 2], 1, seed=0)


# --- checks --------------------------------------------------------------------------------


def _est(name: str, value: float, low: float, high: float) -> CorrectionEstimate:
    return CorrectionEstimate(name, value, low, high, 0.95)


def test_agreement_check_rules() -> None:
    a = _est("ppi++", 0.60, 0.56, 0.64)
    b = _est("shift_robust", 0.68, 0.62, 0.74)  # overlap, but gap 0.08 > hypot(.04, .06)
    c = _est("shift_robust", 0.62, 0.57, 0.67)
    raw = _est("raw", 0.9, 0.89, 0.91)
    strong = agreement_check([a, b, raw])
    assert strong.disagree and strong.pairs == (("ppi++", "shift_robust"),)
    assert strong.flags == (FLAG_CALIBRATION_NOT_REPRESENTATIVE,)
    assert "label a window sample" in FLAG_TEXT[FLAG_CALIBRATION_NOT_REPRESENTATIVE]
    assert "raw" in strong.skipped
    assert not agreement_check([a, b], rule="overlap").disagree
    assert not agreement_check([a, c]).disagree
    undefined = CorrectionEstimate.undefined_because("shift_robust", "near_singular", "no",
                                                     confidence=0.95)
    check = agreement_check({"ppi++": a, "shift_robust": undefined})
    assert not check.disagree and check.skipped == ("shift_robust",)
    json.dumps(check.to_json())


def test_representativeness_check() -> None:
    rng = np.random.default_rng(17)
    cal = rng.choice(5, size=400, p=[.1, .2, .3, .2, .2]) + 1.0
    same = rng.choice(5, size=5000, p=[.1, .2, .3, .2, .2]) + 1.0
    other = rng.choice(5, size=5000, p=[.05, .1, .2, .3, .35]) + 1.0
    ok = representativeness_check(ORDINAL, cal, same)
    bad = representativeness_check(ORDINAL, cal, other)
    assert ok.test == "chi2_homogeneity" and ok.representative and ok.flags == ()
    assert ok.p_value is not None and ok.p_value > 0.05
    assert bad.representative is False and bad.p_value is not None and bad.p_value < 1e-6
    assert bad.flags == (FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION,)
    assert bad.effect_size is not None and bad.effect_size > 0.15
    from scipy import stats
    table = np.array([np.bincount(cal.astype(int), minlength=6)[1:],
                      np.bincount(other.astype(int), minlength=6)[1:]])
    chi2, _p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert bad.statistic == pytest.approx(chi2) and bad.diagnostics["dof"] == dof == 4
    interval = representativeness_check(INTERVAL, rng.normal(size=300),
                                        rng.normal(0.5, 1, 3000))
    assert interval.test == "ks_two_sample" and interval.representative is False
    few = representativeness_check(BINARY, [1.0, 0.0], [1.0] * 50)
    assert few.representative is None and few.undefined
    json.dumps(bad.to_json(), allow_nan=False)


def test_placebo_and_correct_window() -> None:
    rng = np.random.default_rng(18)
    y, f = _binary_pairs(rng, 400, 0.7, 0.92, 0.9)
    windows = [_binary_pairs(rng, 1500, 0.7, 0.92, 0.9)[1] for _ in range(5)]
    res = placebo(BINARY, y, f, windows, 0.7)
    assert set(res.methods) == {"ppi++", "shift_robust"}
    for summary in res.methods.values():
        assert summary.n_windows == summary.n_defined == 5
        assert summary.coverage == summary.n_covered / 5
    wrong = placebo(BINARY, y, f, windows, [0.2] * 5)
    assert wrong.methods["ppi++"].coverage == 0.0
    assert wrong.flags == (FLAG_PLACEBO_MISSED,)
    json.dumps(res.to_json(), allow_nan=False)
    out = correct_window(BINARY, y, f, windows[0])
    assert list(out) == ["raw", "ppi++", "shift_robust"]
    with pytest.raises(ValueError, match="known values"):
        placebo(BINARY, y, f, windows, [0.7])


# --- a small coverage check (could fail) ----------------------------------------------------


def test_coverage_small_simulation() -> None:
    """200 simulated binary windows: PPI++ on a representative calibration set, and
    Rogan–Gladen under label shift (calibration pass rate 0.5, window 0.8, judge error
    rates fixed), each within a loose band around 95 %; under that shift PPI++ misses
    and the agreement check fires. (The full figures: benchmarks/bench_correction.py.)"""
    rng = np.random.default_rng(2024)
    se, sp, sims = 0.85, 0.8, 200
    ppi_hits = sr_hits = ppi_shift_hits = warned = 0
    for _ in range(sims):
        y, f = _binary_pairs(rng, 400, 0.7, se, sp)
        _, fw = _binary_pairs(rng, 2000, 0.7, se, sp)
        ppi_hits += ppi_mean(BINARY, y, f, fw).covers(0.7)
        y, f = _binary_pairs(rng, 400, 0.5, se, sp)
        _, fw = _binary_pairs(rng, 2000, 0.8, se, sp)
        sr = shift_robust(BINARY, y, f, fw)
        ppi = ppi_mean(BINARY, y, f, fw)
        sr_hits += sr.covers(0.8)
        ppi_shift_hits += ppi.covers(0.8)
        warned += agreement_check([ppi, sr]).disagree
    assert 0.90 <= ppi_hits / sims <= 0.99
    assert 0.90 <= sr_hits / sims <= 0.99
    assert ppi_shift_hits / sims < 0.2
    assert warned / sims > 0.9
