"""Undefined cases return a documented sentinel with a reason: no crash, no silent number,
no NaN in JSON. Invalid input raises ValueError with one message per precondition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from judgecal.scales import Scale
from judgecal.stats import (
    MetricValue,
    by_segment,
    confusion,
    human_ceiling,
    judge_agreement,
    metrics_for,
    minimum_detectable_change,
    paired_difference,
    position_consistency,
)

BINARY = Scale(kind="binary")
ORDINAL = Scale(kind="ordinal", min=1, max=5)
PAIRWISE = Scale(kind="pairwise")
INTERVAL = Scale(kind="interval")


def _json_roundtrip(results: dict[str, MetricValue]) -> dict:
    text = json.dumps({k: v.to_json() for k, v in results.items()}, allow_nan=False)
    return json.loads(text)


def test_one_category_in_consensus_makes_kappa_undefined() -> None:
    human = np.ones(40)
    judge = np.array([1.0, 0.0] * 20)
    res = judge_agreement(BINARY, human, judge, n_boot=50)
    assert res["kappa"].value is None
    assert res["kappa"].undefined == "only one category in the human consensus"
    assert res["kappa"].ci_low is None and res["kappa"].ci_high is None
    assert res["tnr"].undefined == "too few negative items (0 < 10)"
    assert res["tpr"].value == 0.5
    out = _json_roundtrip(res)
    assert out["kappa"] == {"value": None, "ci_low": None, "ci_high": None, "n": 40,
                            "undefined": "only one category in the human consensus"}


def test_constant_judge_gets_kappa_zero_but_no_correlation() -> None:
    rng = np.random.default_rng(0)
    human = rng.integers(1, 6, size=(50, 3)).astype(float)
    judge = np.full(50, 3.0)
    res = judge_agreement(ORDINAL, human, judge, n_boot=50)
    assert res["kappa"].value == pytest.approx(0.0, abs=1e-12)  # informative: chance level
    assert res["spearman"].undefined == "no variance in the judge scores"
    assert res["kendall"].undefined == "no variance in the judge scores"
    _json_roundtrip(res)


def test_everything_identical_makes_alpha_undefined() -> None:
    res = judge_agreement(ORDINAL, np.full((30, 2), 4.0), np.full(30, 4.0), n_boot=20)
    assert res["alpha"].undefined is not None and "no variation" in res["alpha"].undefined
    assert res["exact_agreement"].value == 1.0
    assert res["spearman"].undefined == "no variance in the human consensus"
    ceiling = human_ceiling(ORDINAL, np.full((30, 3), 2.0), n_boot=20)
    assert ceiling["alpha_humans"].undefined == "no variation: every rating is the same value"
    _json_roundtrip(ceiling)


@pytest.mark.parametrize("scale", [BINARY, ORDINAL, PAIRWISE, INTERVAL,
                                   Scale(kind="nominal", categories=["x", "y", "z"])])
def test_too_few_items(scale: Scale) -> None:
    human = np.array([[1.0], [1.0], [0.0] if scale.kind != "ordinal" else [2.0]] * 2)
    if scale.kind == "pairwise":
        human = np.array([[1.0], [2.0], [0.0]] * 2)
    res = judge_agreement(scale, human, human[:, 0], n_boot=30)
    assert set(res) == set(metrics_for(scale))
    for mv in res.values():
        assert mv.value is None
        assert mv.undefined is not None and mv.undefined.startswith("too few")
    _json_roundtrip(res)


def test_no_items_at_all() -> None:
    res = judge_agreement(BINARY, np.empty((0, 3)), np.empty(0), n_boot=10)
    assert all(mv.undefined == "too few items (0 < 10)" for k, mv in res.items()
               if k not in ("tpr", "tnr"))
    ceiling = human_ceiling(BINARY, np.empty((0, 3)), n_boot=10)
    assert ceiling["alpha_humans"].undefined == "no item has ratings from two or more raters"


def test_split_votes_are_left_out_not_counted() -> None:
    # Two raters who always disagree: no item has a majority, nothing is scored.
    human = np.array([[0.0, 1.0]] * 30)
    res = judge_agreement(BINARY, human, np.ones(30), n_boot=10)
    assert res["kappa"].undefined == "too few items (0 < 10)"
    assert res["kappa"].n == 0


def test_pairwise_all_ties_has_no_no_ties_metrics() -> None:
    human = np.array([[0.0, 0.0, 1.0]] * 20 + [[1.0, 1.0, 2.0]] * 20)
    judge = np.zeros(40)
    res = judge_agreement(PAIRWISE, human, judge, n_boot=20)
    assert res["accuracy_no_ties"].undefined == "too few items without ties (0 < 10)"
    assert res["kappa_no_ties"].undefined == "too few items without ties (0 < 10)"
    assert res["accuracy"].value == 0.5


def test_ceiling_with_one_rater_is_undefined() -> None:
    res = human_ceiling(BINARY, np.array([[1.0], [0.0]] * 20), n_boot=10)
    assert res["alpha_humans"].undefined == "no item has ratings from two or more raters"
    assert res["kappa"].undefined == "no rater has a consensus of the other raters on any item"


def test_interval_withheld_when_resamples_degenerate() -> None:
    # Two items of category 1 among 100: about 13 % of resamples have none of them, where
    # kappa is undefined; the interval is withheld with a note instead of being biased.
    human = np.array([0.0] * 98 + [1.0] * 2)
    judge = np.array([0.0] * 97 + [1.0] * 3)
    mv = judge_agreement(BINARY, human, judge, n_boot=400, seed=0)["kappa"]
    assert mv.value is not None
    assert mv.ci_low is None and mv.ci_high is None
    assert mv.note is not None and "undefined in" in mv.note
    assert json.loads(json.dumps(mv.to_json(), allow_nan=False))["note"] == mv.note


def test_metric_value_rejects_nan_and_inconsistent_states() -> None:
    with pytest.raises(ValueError, match="finite"):
        MetricValue(value=float("nan"), ci_low=None, ci_high=None)
    with pytest.raises(ValueError, match="finite"):
        MetricValue(value=0.5, ci_low=float("-inf"), ci_high=1.0)
    with pytest.raises(ValueError, match="either a value"):
        MetricValue(value=None, ci_low=None, ci_high=None)
    with pytest.raises(ValueError, match="no interval"):
        MetricValue(value=None, ci_low=0.1, ci_high=0.2, undefined="x")
    assert MetricValue(0.5, 0.4, 0.6).excludes_zero
    assert not MetricValue(0.5, -0.1, 0.6).excludes_zero


def test_invalid_input_raises_value_error() -> None:
    human = np.array([[1.0, 0.0]] * 12)
    with pytest.raises(ValueError, match="not a code"):
        judge_agreement(BINARY, human, np.full(12, 2.0))
    with pytest.raises(ValueError, match="not a code"):
        judge_agreement(ORDINAL, np.full((12, 2), 7.0), np.full(12, 3.0))
    with pytest.raises(ValueError, match="cover 11 items"):
        judge_agreement(BINARY, human, np.ones(11))
    with pytest.raises(ValueError, match="infinite"):
        judge_agreement(INTERVAL, np.ones((12, 2)), np.full(12, np.inf))
    with pytest.raises(ValueError, match="n_boot"):
        judge_agreement(BINARY, human, np.ones(12), n_boot=-1)
    with pytest.raises(ValueError, match="confidence"):
        judge_agreement(BINARY, human, np.ones(12), confidence=95)
    with pytest.raises(ValueError, match="min_items"):
        judge_agreement(BINARY, human, np.ones(12), min_items=0)
    with pytest.raises(ValueError, match="does not apply"):
        judge_agreement(BINARY, human, np.ones(12), rule="median")
    with pytest.raises(ValueError, match="no confusion matrix"):
        confusion(INTERVAL, np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="not reported"):
        paired_difference(BINARY, human, np.ones(12), np.ones(12), metrics=["spearman"])
    with pytest.raises(ValueError, match="equal length"):
        position_consistency(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="segments cover"):
        by_segment(BINARY, human, np.ones(12), np.array(["a"] * 5))
    with pytest.raises(ValueError, match="judge_b"):
        minimum_detectable_change(BINARY, human, np.ones(12), method="paired")


def test_paired_difference_undefined_for_one_run() -> None:
    rng = np.random.default_rng(1)
    human = rng.integers(0, 2, size=(40, 3)).astype(float)
    a = rng.integers(0, 2, size=40).astype(float)
    b = np.full(40, np.nan)
    b[:5] = 1.0
    comp = paired_difference(BINARY, human, a, b, n_boot=20)
    assert comp.n_common == 5 and comp.left_out_a == 35 and comp.left_out_b == 0
    assert comp.metrics["kappa"].undefined == "undefined for run a: too few items (5 < 10)"
    json.dumps(comp.to_json(), allow_nan=False)
