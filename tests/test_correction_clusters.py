"""Scores of one conversation or trace are resampled as a cluster.

Three kinds of check: an exact identity (a window where every score is repeated m times in
its own trace carries the information of the unrepeated window: its cluster-robust
variance is the i.i.d. variance of the unrepeated scores), a seeded coverage simulation
(clustered windows: the i.i.d. interval under-covers, the cluster-robust one covers), and the
remedy end to end (``trace_id`` ingested into the score history → cluster-robust intervals
and a sentence that says so).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from judgecal.scales import Scale
from judgecal.stats.correction import correct_window, ppi_mean, raw_estimate, shift_robust

ORDINAL = Scale(kind="ordinal", min=1, max=5)
BINARY = Scale(kind="binary")


def _repeated(values: np.ndarray, m: int) -> tuple[np.ndarray, list[int]]:
    return np.repeat(values, m), list(np.repeat(np.arange(values.size), m))


def test_repeated_scores_carry_the_information_of_one() -> None:
    rng = np.random.default_rng(1)
    window = rng.integers(1, 6, size=300).astype(float)
    big, clusters = _repeated(window, 4)
    alone = raw_estimate(ORDINAL, window)
    naive = raw_estimate(ORDINAL, big)
    robust = raw_estimate(ORDINAL, big, clusters=clusters)
    assert robust.interval == "cluster_clt" and robust.diagnostics["n_clusters"] == 300
    assert robust.value == pytest.approx(alone.value)
    # CR1 with m copies per cluster == var(ddof=1) / G of the unrepeated scores, exactly.
    assert robust.ci_high - robust.ci_low == pytest.approx(alone.ci_high - alone.ci_low,
                                                           rel=1e-9)
    assert naive.ci_high - naive.ci_low == pytest.approx(
        (alone.ci_high - alone.ci_low) / 2, rel=1e-2)  # the naive interval is 2x too narrow
    assert robust.diagnostics["design_effect"] == pytest.approx(4.0, rel=1e-2)


def test_ppi_window_term_is_cluster_robust() -> None:
    rng = np.random.default_rng(2)
    human = rng.integers(1, 6, size=200).astype(float)
    judge = np.clip(human + rng.integers(-1, 2, size=200), 1, 5)
    window = rng.integers(1, 6, size=400).astype(float)
    big, clusters = _repeated(window, 5)
    alone = ppi_mean(ORDINAL, human, judge, window)
    naive = ppi_mean(ORDINAL, human, judge, big)
    robust = ppi_mean(ORDINAL, human, judge, big, clusters=clusters)
    assert robust.interval == "cluster_clt" and naive.interval == "clt"
    lam = robust.diagnostics["lambda"]
    assert lam > 0.5
    labelled_var = float((human - lam * judge).var()) / human.size
    window_var = lam ** 2 * float(window.var(ddof=1)) / window.size
    half = (robust.ci_high - robust.ci_low) / 2
    assert half == pytest.approx(1.959963984540054 * np.sqrt(labelled_var + window_var),
                                 rel=1e-9)
    assert robust.diagnostics["design_effect_window"] == pytest.approx(5.0, rel=1e-2)
    assert naive.ci_high - naive.ci_low < robust.ci_high - robust.ci_low
    # Every score its own cluster: the same interval as without clusters (up to N/(N-1)).
    single = ppi_mean(ORDINAL, human, judge, window, clusters=list(range(window.size)))
    assert single.ci_high - single.ci_low == pytest.approx(alone.ci_high - alone.ci_low,
                                                           rel=2e-3)


def test_shift_robust_resamples_whole_clusters() -> None:
    rng = np.random.default_rng(3)
    human = rng.integers(1, 6, size=300).astype(float)
    judge = np.where(rng.random(300) < 0.8, human, rng.integers(1, 6, size=300)).astype(float)
    window = rng.integers(1, 6, size=250).astype(float)
    big, clusters = _repeated(window, 6)
    kw: dict[str, Any] = {"n_boot": 600, "seed": 4}
    alone = shift_robust(ORDINAL, human, judge, window, **kw)
    naive = shift_robust(ORDINAL, human, judge, big, **kw)
    robust = shift_robust(ORDINAL, human, judge, big, clusters=clusters, **kw)
    width = {name: e.ci_high - e.ci_low for name, e in
             (("alone", alone), ("naive", naive), ("robust", robust))}
    assert robust.value == pytest.approx(alone.value)
    assert robust.diagnostics["n_clusters"] == 250
    assert width["robust"] == pytest.approx(width["alone"], rel=0.15)
    assert width["robust"] > 1.15 * width["naive"]
    # Binary, delta interval: the observed rate's variance over clusters.
    hb = (human >= 4).astype(float)
    jb = (judge >= 4).astype(float)
    wb = (window >= 4).astype(float)
    big_b, clusters_b = _repeated(wb, 6)
    alone_b = shift_robust(BINARY, hb, jb, wb)
    robust_b = shift_robust(BINARY, hb, jb, big_b, clusters=clusters_b)
    assert robust_b.diagnostics["design_effect_window"] == pytest.approx(6 * 250 / 249, rel=1e-6)
    assert robust_b.ci_high - robust_b.ci_low == pytest.approx(
        alone_b.ci_high - alone_b.ci_low, rel=5e-3)


def test_clustered_windows_are_covered() -> None:
    """1,000 windows of 100 conversations x 6 scores with a conversation effect, and a
    calibration set of 300 independent items from the same population: the i.i.d.
    intervals under-cover, the cluster-robust ones cover about 95 %."""
    rng = np.random.default_rng(7)
    between, within = 1.0, 0.4

    def labels(base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        human = np.clip(np.rint(3 + base), 1, 5)
        judge = np.clip(np.rint(3.4 + base + rng.normal(0.0, 0.5, base.size)), 1, 5)
        return human, judge

    pop_human, pop_judge = labels(rng.normal(0.0, np.hypot(between, within), 2_000_000))
    truth = {"raw": float(pop_judge.mean()), "ppi++": float(pop_human.mean())}
    clusters = np.repeat(np.arange(100), 6)
    hits = {(m, c): 0 for m in truth for c in ("iid", "cluster")}
    trials = 1000
    for _ in range(trials):
        human, judge = labels(rng.normal(0.0, np.hypot(between, within), 300))
        base = np.repeat(rng.normal(0.0, between, 100), 6) + rng.normal(0.0, within, 600)
        _, window = labels(base)
        for kind, cl in (("iid", None), ("cluster", clusters)):
            for method, est in (("raw", raw_estimate(ORDINAL, window, clusters=cl)),
                                ("ppi++", ppi_mean(ORDINAL, human, judge, window,
                                                   clusters=cl))):
                assert est.ci_low is not None and est.ci_high is not None
                hits[(method, kind)] += est.ci_low <= truth[method] <= est.ci_high
    rate = {k: v / trials for k, v in hits.items()}
    assert 0.93 <= rate[("raw", "cluster")] <= 0.97, rate
    assert 0.93 <= rate[("ppi++", "cluster")] <= 0.97, rate
    assert rate[("raw", "iid")] < 0.8 and rate[("ppi++", "iid")] < 0.9, rate


def test_correct_window_passes_clusters_to_every_method() -> None:
    rng = np.random.default_rng(9)
    human = rng.integers(0, 2, size=200).astype(float)
    judge = np.where(rng.random(200) < 0.85, human, 1 - human)
    window, clusters = _repeated(rng.integers(0, 2, size=150).astype(float), 4)
    out = correct_window(BINARY, human, judge, window, clusters=clusters)
    assert {name: e.diagnostics.get("n_clusters") for name, e in out.items()} == {
        "raw": 150, "ppi++": 150, "shift_robust": 150}
    with pytest.raises(ValueError, match="clusters has 3 ids"):
        raw_estimate(BINARY, window, clusters=[1, 2, 3])
