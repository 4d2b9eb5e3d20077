"""Public surface of judgecal.stats: exports, metric registry, consensus rules, confusion,
segments, position consistency, minimum detectable change, and the docstring examples."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import numpy as np
import pytest

import judgecal.stats as stats
from judgecal.scales import Scale
from judgecal.stats import (
    METRICS,
    PRIMARY_METRIC,
    by_segment,
    confusion,
    consensus,
    human_ceiling,
    judge_agreement,
    metrics_for,
    minimum_detectable_change,
    position_consistency,
)
from judgecal.stats._consensus import leave_one_out_consensus

KINDS = ["binary", "nominal", "pairwise", "ordinal", "interval"]
SCALES = {
    "binary": Scale(kind="binary"),
    "nominal": Scale(kind="nominal", categories=["a", "b", "c"]),
    "pairwise": Scale(kind="pairwise"),
    "ordinal": Scale(kind="ordinal", min=1, max=5),
    "interval": Scale(kind="interval"),
}


def _data(kind: str, n: int = 120, raters: int = 3, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    latent = truth[:, None] + rng.normal(scale=0.6, size=(n, raters))
    judge = truth + rng.normal(scale=0.5, size=n)
    if kind in ("binary", "nominal", "pairwise"):
        cuts = [0.0] if kind == "binary" else [-0.4, 0.4]
        human = np.digitize(latent, cuts).astype(float)
        scores = np.digitize(judge, cuts).astype(float)
    elif kind == "ordinal":
        human = np.digitize(latent, [-1.2, -0.4, 0.4, 1.2]) + 1.0
        scores = np.digitize(judge, [-1.2, -0.4, 0.4, 1.2]) + 1.0
    else:
        human, scores = 10 + 2 * latent, 10 + 2 * judge
    return human, scores


def test_all_matches_public_names() -> None:
    import types

    # Subpackages (stats.correction, stats.sequential) are attributes once imported anywhere.
    public = {name for name in dir(stats) if not name.startswith("_")
              and not isinstance(getattr(stats, name), types.ModuleType)}
    assert set(stats.__all__) == public - {"annotations"}


def test_import_stays_light() -> None:
    code = ("import sys, judgecal; assert 'judgecal.stats' not in sys.modules; "
            "import judgecal.stats; heavy = {'sklearn', 'krippendorff', 'scipy', 'pandas'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", KINDS)
def test_registry_describes_every_reported_metric(kind: str) -> None:
    scale = SCALES[kind]
    human, judge = _data(kind)
    res = judge_agreement(scale, human, judge, n_boot=0)
    assert list(res) == metrics_for(scale)
    for key in res:
        assert kind in METRICS[key].scales, key
        assert METRICS[key].description
    # We shouldn't forget any metric: every registered key of the scale is reported.
    expected = {k for k, m in METRICS.items() if kind in m.scales and m.ceiling}
    assert expected == set(res)
    assert PRIMARY_METRIC[kind] in res
    ceiling = human_ceiling(scale, human, n_boot=0)
    assert list(ceiling) == ["alpha_humans", *metrics_for(scale)]


def test_consensus_rules() -> None:
    pairwise = Scale(kind="pairwise")
    votes = np.array([[1, 1, 0], [0, 0, 2], [1, 2, 0], [1, 2, np.nan], [2, np.nan, np.nan],
                      [np.nan] * 3])
    np.testing.assert_array_equal(consensus(pairwise, votes), [1, 0, np.nan, np.nan, 2, np.nan])
    ordinal = Scale(kind="ordinal", min=1, max=5)
    np.testing.assert_array_equal(
        consensus(ordinal, np.array([[1, 4, 5], [3, 4, np.nan], [2, 2, 5], [1, 5, 5]])),
        [4, 3.5, 2, 5])
    np.testing.assert_allclose(
        consensus(ordinal, np.array([[1, 4, 5], [3, 4, np.nan]]), rule="mean"), [10 / 3, 3.5])
    np.testing.assert_array_equal(consensus(Scale(kind="binary"), np.array([1.0, 0.0])), [1, 0])


@pytest.mark.parametrize("kind", ["pairwise", "ordinal", "interval"])
def test_leave_one_out_consensus_equals_brute_force(kind: str) -> None:
    scale = SCALES[kind]
    rng = np.random.default_rng(3)
    human, _ = _data(kind, n=60, raters=5)
    human[rng.random(human.shape) < 0.3] = np.nan
    rules = ["majority"] if kind == "pairwise" else ["median", "mean"]
    for rule in rules:
        loo = leave_one_out_consensus(scale, human, rule=rule)  # type: ignore[arg-type]
        for r in range(human.shape[1]):
            others = np.delete(human, r, axis=1)
            expected = consensus(scale, others, rule=rule)  # type: ignore[arg-type]
            expected[np.isnan(human[:, r])] = np.nan
            np.testing.assert_allclose(loo[:, r], expected, equal_nan=True)


def test_confusion_matrix() -> None:
    scale = SCALES["ordinal"]
    cons = np.array([1, 2, 3.5, 5, np.nan])
    judge = np.array([1, 2.4, 3.6, 4.5, 3])
    out = confusion(scale, cons, judge)
    assert out["labels"] == [1, 2, 3, 3.5, 4, 5]
    assert out["n"] == 4
    matrix = np.array(out["matrix"])
    assert matrix.sum() == 4
    assert matrix[3, 4] == 1  # consensus 3.5, judge 3.6 rounded to 4
    assert matrix[5, 5] == 1  # 4.5 rounds up to 5
    json.dumps(out, allow_nan=False)
    pair = confusion(SCALES["pairwise"], np.array([1.0, 2.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    assert pair["names"] == ["tie", "1", "2"]
    assert pair["matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]


def test_by_segment_reports_small_segments_as_too_small() -> None:
    scale = SCALES["binary"]
    human, judge = _data("binary", n=100)
    segments = np.array(["big"] * 70 + ["small"] * 20 + [None] * 5 + [""] * 5, dtype=object)
    out = by_segment(scale, human, judge, segments, min_items=30, n_boot=50)
    assert list(out) == ["big", "small"]
    assert out["small"] == {"too_small": 20}
    big = out["big"]
    direct = judge_agreement(scale, human[:70], judge[:70], n_boot=50)
    assert big == direct
    ceiling = by_segment(scale, human, None, segments, min_items=30, n_boot=20)
    assert "alpha_humans" in ceiling["big"]
    assert ceiling["small"] == {"too_small": 20}


def test_position_consistency() -> None:
    first = np.array([1, 2, 1, 0, np.nan] * 10)
    swapped = np.array([1, 2, 2, 0, 1] * 10)
    mv = position_consistency(first, swapped, n_boot=200, seed=0)
    assert mv.value == 0.75 and mv.n == 40
    assert mv.ci_low < 0.75 < mv.ci_high
    assert position_consistency(first[:5], swapped[:5]).undefined == "too few items (4 < 10)"


def test_minimum_detectable_change_shrinks_with_set_size() -> None:
    scale = SCALES["binary"]
    small_h, small_j = _data("binary", n=150, seed=1)
    big_h, big_j = _data("binary", n=1200, seed=1)
    small = minimum_detectable_change(scale, small_h, small_j, n_boot=100)
    big = minimum_detectable_change(scale, big_h, big_j, n_boot=100)
    assert small.value is not None and big.value is not None
    assert 0 < big.value < small.value < 1
    assert small.note is not None and "scramble" in small.note
    # The independent-errors bound is larger: pairing shares most verdicts.
    bound = minimum_detectable_change(scale, big_h, big_j, n_boot=100, method="independent")
    assert bound.value is not None and bound.value > big.value
    # With a real second run, the paired method uses the observed discordance.
    flipped = big_j.copy()
    flipped[:30] = 1 - flipped[:30]
    paired = minimum_detectable_change(scale, big_h, big_j, judge_b=flipped, n_boot=100)
    assert paired.value is not None and paired.note is not None and "paired" in paired.note


def test_minimum_detectable_change_undefined_on_tiny_sets() -> None:
    scale = SCALES["binary"]
    human, judge = _data("binary", n=12, seed=2)
    mv = minimum_detectable_change(scale, human, judge, n_boot=50)
    assert mv.value is None and mv.undefined is not None


@pytest.mark.parametrize("module", ["_consensus", "_agreement", "_ceiling"])
def test_docstring_examples(module: str) -> None:
    mod = getattr(stats, module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
