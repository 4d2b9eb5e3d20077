"""Our statistics against independent implementations: statsmodels for the Stuart–Maxwell
test of marginal homogeneity, ``scipy.stats.bootstrap`` for the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from judgecal import stats
from judgecal.scales import Scale


@pytest.mark.parametrize("seed", range(8))
def test_stuart_maxwell_equals_statsmodels(seed: int) -> None:
    from statsmodels.stats.contingency_tables import SquareTable

    rng = np.random.default_rng(seed)
    domain = [0.0, 1.0, 2.0]
    a = rng.choice(domain, size=300, p=[0.3, 0.4, 0.3])
    flip = rng.random(300) < 0.25
    b = np.where(flip, rng.choice(domain, size=300, p=[0.2, 0.3, 0.5]), a)
    table = np.zeros((3, 3))
    for x, y in zip(a, b, strict=True):
        table[int(x), int(y)] += 1
    expected = SquareTable(table, shift_zeros=False).homogeneity(method="stuart_maxwell").pvalue
    assert stats.stuart_maxwell_p(a, b, domain) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_mcnemar_equals_statsmodels_exact() -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    for b01, b10 in [(3, 9), (0, 5), (12, 12), (1, 30)]:
        expected = mcnemar([[50, b01], [b10, 40]], exact=True).pvalue
        assert stats.mcnemar_p(b01, b10) == pytest.approx(expected, rel=1e-9)


def test_paired_bootstrap_interval_agrees_with_scipy() -> None:
    """The paired percentile interval of a difference of accuracies equals scipy's paired
    percentile bootstrap up to Monte-Carlo error (different generators, same method)."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(11)
    n = 400
    human = rng.choice([1.0, 2.0], size=(n, 1))
    a = np.where(rng.random(n) < 0.80, human[:, 0], 3.0 - human[:, 0])
    b = np.where(rng.random(n) < 0.72, human[:, 0], 3.0 - human[:, 0])
    scale = Scale(kind="pairwise", ties=False)
    ours = stats.paired_difference(scale, human, a, b, metrics=["accuracy"], n_boot=4000,
                                   seed=3).metrics["accuracy"]

    def diff(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(y == h) - np.mean(x == h))

    ref = bootstrap((human[:, 0], a, b), diff, paired=True, vectorized=False,
                    n_resamples=4000, method="percentile", confidence_level=0.95,
                    random_state=np.random.default_rng(5)).confidence_interval
    assert ours.value == pytest.approx(diff(human[:, 0], a, b), abs=1e-12)
    assert ours.ci_low == pytest.approx(ref.low, abs=0.012)
    assert ours.ci_high == pytest.approx(ref.high, abs=0.012)
