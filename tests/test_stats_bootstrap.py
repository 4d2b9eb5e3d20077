"""The bootstrap fast path: each weighted replicate equals the reference libraries on the
explicitly resampled data; seeds reproduce; batching does not change results; pairing."""

from __future__ import annotations

import numpy as np
import pytest

from judgecal.scales import Scale
from judgecal.stats import (
    _bootstrap,
    _kernels,
    consensus,
    human_ceiling,
    judge_agreement,
    metrics_for,
    paired_difference,
)
from judgecal.stats._agreement import build_pair
from judgecal.stats._bootstrap import weight_batches
from judgecal.stats._ceiling import CeilingKernel
from judgecal.stats._kernels import AlphaData
from tests.support.reference import reference_alpha, reference_judge_metrics

TOL = 1e-9
SCALES = {
    "binary": Scale(kind="binary"),
    "nominal": Scale(kind="nominal", categories=["a", "b", "c", "d"]),
    "pairwise": Scale(kind="pairwise"),
    "ordinal": Scale(kind="ordinal", min=1, max=5),
    "interval": Scale(kind="interval", min=0, max=10),
}


def simulate(kind: str, n: int = 80, raters: int = 4, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Correlated human ratings (with missing values) and a judge, on the scale's codes."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    latent = truth[:, None] + rng.normal(scale=0.7, size=(n, raters))
    judge_latent = truth + rng.normal(scale=0.6, size=n)
    if kind == "binary":
        human, judge = (latent > 0).astype(float), (judge_latent > 0).astype(float)
    elif kind == "nominal":
        cuts = [-0.7, 0.0, 0.7]
        human = np.digitize(latent, cuts).astype(float)
        judge = np.digitize(judge_latent, cuts).astype(float)
    elif kind == "pairwise":
        to_pref = np.array([2.0, 0.0, 1.0])
        human = to_pref[np.digitize(latent, [-0.3, 0.3])]
        judge = to_pref[np.digitize(judge_latent, [-0.3, 0.3])]
    elif kind == "ordinal":
        cuts = [-1.2, -0.4, 0.4, 1.2]
        human = np.digitize(latent, cuts) + 1.0
        # A judge reporting means of sampled answers: non-integer, sometimes off-scale.
        judge = np.round(3 + 1.2 * judge_latent, 2)
    else:
        human = np.clip(np.round(5 + 2 * latent), 0, 10)
        judge = np.clip(np.round(5 + 2 * judge_latent, 1), 0, 10)
    human[rng.random(human.shape) < 0.15] = np.nan
    judge[rng.random(n) < 0.05] = np.nan
    return human, judge


def _used(scale: Scale, human: np.ndarray, judge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cons = consensus(scale, human)
    keep = ~np.isnan(cons) & ~np.isnan(judge)
    return cons[keep], judge[keep]


@pytest.mark.parametrize("kind", list(SCALES))
def test_replicates_equal_library_on_resampled_data(kind: str) -> None:
    scale = SCALES[kind]
    human, judge = simulate(kind, raters=2 if kind == "ordinal" else 4)
    cons, scores = _used(scale, human, judge)
    if kind == "ordinal":
        assert (cons % 1 == 0.5).any()  # half-step medians from two raters
    pair = build_pair(scale, cons, scores)
    weights = next(weight_batches(pair.n, 6, seed=5))
    values, _ = pair.compute(weights)
    for row in range(weights.shape[0]):
        take = np.repeat(np.arange(pair.n), weights[row].astype(int))
        ref = reference_judge_metrics(scale, cons[take], scores[take])
        for key in metrics_for(scale):
            got, want = values[key][row], ref[key]
            if np.isnan(want):
                assert np.isnan(got), key
            else:
                assert abs(got - want) <= TOL, (key, row, got, want)


@pytest.mark.parametrize("kind", ["nominal", "ordinal", "interval"])
def test_human_alpha_replicates_equal_krippendorff(kind: str) -> None:
    scale = SCALES[kind]
    human, _ = simulate(kind, n=60, raters=5, seed=2)
    data = AlphaData(human, scale.level, None if kind == "interval" else
                     np.asarray(scale.domain(), dtype=float))
    weights = next(weight_batches(human.shape[0], 5, seed=9))
    values = data.compute(weights)
    for row in range(weights.shape[0]):
        take = np.repeat(np.arange(human.shape[0]), weights[row].astype(int))
        assert abs(values[row] - reference_alpha(scale, human[take])) <= TOL


@pytest.mark.parametrize("kind", ["pairwise", "ordinal"])
def test_ceiling_replicates_equal_explicit_resamples(kind: str) -> None:
    scale = SCALES[kind]
    human, _ = simulate(kind, n=70, raters=3, seed=4)
    kernel = CeilingKernel(scale, human, None)
    weights = next(weight_batches(kernel.n, 4, seed=1))
    values, _ = kernel.compute(weights)
    pairable = human[(~np.isnan(human)).sum(axis=1) >= 2]
    for row in range(weights.shape[0]):
        take = np.repeat(np.arange(kernel.n), weights[row].astype(int))
        explicit = human_ceiling(scale, pairable[take], n_boot=0, min_items=1)
        for key, mv in explicit.items():
            assert mv.value is not None
            assert abs(values[key][row] - mv.value) <= TOL, key


@pytest.mark.parametrize("kind", ["ordinal", "interval"])
def test_slow_paths_agree(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Force the sparse one-hot path and the no-table rank-correlation fallbacks.
    scale = SCALES[kind]
    human, judge = simulate(kind, n=90, seed=3)
    fast = judge_agreement(scale, human, judge, n_boot=40, seed=2)
    monkeypatch.setattr(_kernels, "TABLE_CELLS_MAX", 1)
    monkeypatch.setattr(_kernels, "_DENSE_ONEHOT_MAX", 0)
    slow = judge_agreement(scale, human, judge, n_boot=40, seed=2)
    for key in metrics_for(scale):
        assert fast[key].value == pytest.approx(slow[key].value, abs=TOL)
        assert fast[key].ci_low == pytest.approx(slow[key].ci_low, abs=TOL)
        assert fast[key].ci_high == pytest.approx(slow[key].ci_high, abs=TOL)


def test_seed_reproduces_and_batching_does_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    scale = SCALES["ordinal"]
    human, judge = simulate("ordinal", n=120)
    one = judge_agreement(scale, human, judge, n_boot=300, seed=7)
    assert one == judge_agreement(scale, human, judge, n_boot=300, seed=7)
    other = judge_agreement(scale, human, judge, n_boot=300, seed=8)
    assert one["kappa"].ci_low != other["kappa"].ci_low
    # Tiny batches: same random stream, same intervals (up to floating-point summation order
    # inside the matrix products).
    monkeypatch.setattr(_bootstrap, "WORK_ELEMENTS", 250)
    monkeypatch.setattr(_kernels, "WORK_ELEMENTS", 250)
    small = judge_agreement(scale, human, judge, n_boot=300, seed=7)
    for key, mv in one.items():
        assert small[key].value == pytest.approx(mv.value, abs=1e-12)
        assert small[key].ci_low == pytest.approx(mv.ci_low, abs=1e-12)
        assert small[key].ci_high == pytest.approx(mv.ci_high, abs=1e-12)


def test_weight_batches_rows_sum_to_n() -> None:
    batches = list(weight_batches(37, 1000, seed=0))
    weights = np.vstack(batches)
    assert weights.shape == (1000, 37)
    assert (weights.sum(axis=1) == 37).all()
    # Every item is drawn about once per replicate on average.
    assert abs(weights.mean() - 1.0) < 0.02


def test_interval_contains_point_and_narrows_with_confidence() -> None:
    scale = SCALES["nominal"]
    human, judge = simulate("nominal", n=200)
    wide = judge_agreement(scale, human, judge, n_boot=400, seed=1, confidence=0.95)
    narrow = judge_agreement(scale, human, judge, n_boot=400, seed=1, confidence=0.5)
    for key in metrics_for(scale):
        w, s = wide[key], narrow[key]
        assert w.ci_low <= s.ci_low <= s.value <= s.ci_high <= w.ci_high or (
            w.ci_low <= s.ci_low <= s.ci_high <= w.ci_high)


def test_paired_difference_of_a_run_with_itself_is_zero() -> None:
    scale = SCALES["pairwise"]
    human, judge = simulate("pairwise", n=150)
    comp = paired_difference(scale, human, judge, judge, n_boot=200, seed=1)
    assert comp.n_changed == 0
    for key, mv in comp.metrics.items():
        assert mv.value == 0.0, key
        assert mv.ci_low == mv.ci_high == 0.0, key


def test_paired_interval_is_tighter_than_independent() -> None:
    # b differs from a on a few items: the paired interval of b - a must be much narrower
    # than the one implied by two independent intervals.
    scale = SCALES["binary"]
    human, judge = simulate("binary", n=400, seed=6)
    rng = np.random.default_rng(0)
    judge_b = judge.copy()
    flip = rng.random(judge.size) < 0.04
    judge_b[flip] = 1 - judge_b[flip]
    comp = paired_difference(scale, human, judge, judge_b, n_boot=500, seed=2)
    for key in ("kappa", "exact_agreement"):
        d, a, b = comp.metrics[key], comp.a[key], comp.b[key]
        paired_width = d.ci_high - d.ci_low
        independent = np.hypot(a.ci_high - a.ci_low, b.ci_high - b.ci_low)
        assert paired_width < 0.6 * independent
        assert d.value == pytest.approx(b.value - a.value)
