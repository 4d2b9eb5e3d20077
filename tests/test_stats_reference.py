"""Point estimates on the real data sets equal the reference libraries to 1e-9, and the
reference numbers computed from the public source data (PandaLM, Newsroom, HANNA, DICES-350,
LLMBar; see tests/data/README.md) come out unchanged.

Reference = ``judgecal.stats._reference``: krippendorff.alpha, sklearn cohen_kappa_score and
scipy spearmanr / kendalltau / pearsonr called directly on the explicit data.
"""

from __future__ import annotations

import csv
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from judgecal.scales import Scale
from judgecal.stats import (
    by_segment,
    consensus,
    human_ceiling,
    judge_agreement,
    metrics_for,
    paired_difference,
    position_consistency,
)
from judgecal.stats._consensus import leave_one_out_consensus
from tests.conftest import TEST_DATA
from tests.support.reference import reference_alpha, reference_judge_metrics

TOL = 1e-9
PAIRWISE = Scale(kind="pairwise")
ORDINAL5 = Scale(kind="ordinal", min=1, max=5)
INTERVAL5 = Scale(kind="interval", min=1, max=5)
SAFETY = Scale(kind="nominal", categories=["No", "Yes", "Unsure"])
HANNA_CRITERIA = ["relevance", "coherence", "empathy", "surprise", "engagement", "complexity"]


# ----------------------------------------------------------------------------- loaders


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@cache
def pandalm() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(human 999×3, gpt-3.5 verdicts with 'garbage' as NaN, PandaLM-7B verdicts, app)."""
    rows = _jsonl(TEST_DATA / "pandalm" / "items_with_judges.jsonl")
    human = np.array([[r[f"annotator{i}"] for i in (1, 2, 3)] for r in rows], dtype=float)

    def verdict(value: object) -> float:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return np.nan

    gpt = np.array([verdict(r["gpt35_verdict"]) for r in rows])
    p7b = np.array([verdict(r["pandalm7b_verdict"]) for r in rows])
    app = np.array([r["motivation_app"] for r in rows], dtype=object)
    return human, gpt, p7b, app


@cache
def newsroom() -> dict[str, np.ndarray]:
    rows = _jsonl(TEST_DATA / "newsroom" / "newsroom.jsonl")
    crits = ["Informativeness", "Relevance", "Fluency", "Coherence"]
    return {c: np.array([r["annotations"][c]["individual_human_scores"] for r in rows],
                        dtype=float) for c in crits}


@cache
def hanna() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with (TEST_DATA / "hanna" / "human_ratings.csv").open() as f:
        human_rows = list(csv.DictReader(f))
    with (TEST_DATA / "hanna" / "llm_judge_scores.csv").open() as f:
        judge_rows = list(csv.DictReader(f))
    human = {c: np.array([[float(r[f"human{i}_{c}"]) for i in (1, 2, 3)] for r in human_rows])
             for c in HANNA_CRITERIA}
    columns = [k for k in judge_rows[0] if "|" in k]
    judges = {k: np.array([float(r[k]) if r[k] else np.nan for r in judge_rows])
              for k in columns}
    return human, judges


@cache
def dices() -> tuple[np.ndarray, np.ndarray]:
    """(crowd 350×123 codes No=0/Yes=1/Unsure=2, expert 350 codes)."""
    cats = ["No", "Yes", "Unsure"]

    def load(name: str) -> list[list[str]]:
        return [row["annotations"]["safety"]["individual_human_scores"]
                for row in _jsonl(TEST_DATA / "dices350" / name)]

    crowd = np.array([[cats.index(s) for s in row] for row in load("dices350_crowd.jsonl")],
                     dtype=float)
    expert = np.array([cats.index(row[0]) for row in load("dices350_expert.jsonl")], dtype=float)
    return crowd, expert


def assert_matches_reference(scale: Scale, human: np.ndarray, judge: np.ndarray,
                             result: dict | None = None) -> dict:
    res = result or judge_agreement(scale, human, judge, n_boot=0)
    cons = consensus(scale, human)
    keep = ~np.isnan(cons) & ~np.isnan(judge)
    ref = reference_judge_metrics(scale, cons[keep], judge[keep])
    assert set(ref) == set(metrics_for(scale))
    for key, expected in ref.items():
        got = res[key].value
        assert got is not None, (key, res[key].undefined)
        assert abs(got - expected) <= TOL, (key, got, expected)
        assert res[key].n is not None
    return res


def ceiling_reference(scale: Scale, human: np.ndarray) -> dict[str, float]:
    """Rater vs consensus of the others with the libraries, averaged weighted by items."""
    loo = leave_one_out_consensus(scale, human)
    sums: dict[str, list[float]] = {}
    for r in range(human.shape[1]):
        keep = ~np.isnan(loo[:, r])
        if not keep.any():
            continue
        ref = reference_judge_metrics(scale, loo[keep, r], human[keep, r])
        cons, rater = loo[keep, r], human[keep, r]
        weights = {"tpr": float((cons == 1).sum()), "tnr": float((cons == 0).sum()),
                   "accuracy_no_ties": float(((cons != 0) & (rater != 0)).sum()),
                   "kappa_no_ties": float(((cons != 0) & (rater != 0)).sum())}
        for key, value in ref.items():
            if np.isfinite(value):
                w = weights.get(key, float(keep.sum()))
                acc = sums.setdefault(key, [0.0, 0.0])
                acc[0] += value * w
                acc[1] += w
    return {k: num / den for k, (num, den) in sums.items()}


# ----------------------------------------------------------------------------- PandaLM


def test_pandalm_reference_numbers() -> None:
    human, gpt, p7b, _ = pandalm()
    res = assert_matches_reference(PAIRWISE, human, gpt)
    assert res["accuracy"].n == 974
    assert round(res["accuracy"].value, 3) == 0.716
    assert round(res["kappa"].value, 3) == 0.493
    res7 = assert_matches_reference(PAIRWISE, human, p7b)
    assert res7["accuracy"].n == 999
    assert round(res7["accuracy"].value, 3) == 0.668
    assert round(res7["kappa"].value, 3) == 0.435
    # The judge migration: gpt-3.5 against PandaLM-7B (one "rater") gives kappa 0.473.
    between = judge_agreement(PAIRWISE, p7b, gpt, n_boot=0)
    assert round(between["kappa"].value, 3) == 0.473


def test_pandalm_majority_rule_has_no_split_votes() -> None:
    # The reference numbers need no tie-break: no item has three different labels.
    human, *_ = pandalm()
    assert not np.isnan(consensus(PAIRWISE, human)).any()
    assert all(len(set(row)) < 3 for row in human.tolist())


def test_pandalm_human_ceiling() -> None:
    human, *_ = pandalm()
    res = human_ceiling(PAIRWISE, human, n_boot=0)
    assert abs(res["alpha_humans"].value - reference_alpha(PAIRWISE, human)) <= TOL
    assert round(res["alpha_humans"].value, 3) == 0.864
    ref = ceiling_reference(PAIRWISE, human)
    for key, expected in ref.items():
        assert abs(res[key].value - expected) <= TOL, key


def test_pandalm_paired_difference_points() -> None:
    human, gpt, p7b, _ = pandalm()
    comp = paired_difference(PAIRWISE, human, gpt, p7b, n_boot=200, seed=3)
    assert comp.n_common == 974
    assert comp.left_out_a == 0 and comp.left_out_b == 25
    common = ~np.isnan(gpt)
    for key in metrics_for(PAIRWISE):
        ra = reference_judge_metrics(PAIRWISE, consensus(PAIRWISE, human)[common], gpt[common])
        rb = reference_judge_metrics(PAIRWISE, consensus(PAIRWISE, human)[common], p7b[common])
        assert abs(comp.metrics[key].value - (rb[key] - ra[key])) <= TOL
    # PandaLM-7B is measurably worse on accuracy than gpt-3.5 on the same items.
    assert comp.metrics["accuracy"].ci_high < 0


# ----------------------------------------------------------------------------- Newsroom


@pytest.mark.parametrize(("criterion", "expected"), [
    ("Informativeness", 0.285), ("Relevance", 0.115), ("Fluency", -0.016), ("Coherence", 0.065)])
def test_newsroom_human_alpha(criterion: str, expected: float) -> None:
    human = newsroom()[criterion]
    res = human_ceiling(ORDINAL5, human, n_boot=0)
    assert abs(res["alpha_humans"].value - reference_alpha(ORDINAL5, human)) <= TOL
    assert round(res["alpha_humans"].value, 3) == expected
    for key, value in ceiling_reference(ORDINAL5, human).items():
        assert abs(res[key].value - value) <= TOL, key


@pytest.mark.parametrize("criterion", ["Informativeness", "Fluency"])
def test_newsroom_rater_as_judge(criterion: str) -> None:
    # One rater as the "judge" against the median of the other two: half-step medians occur.
    human = newsroom()[criterion]
    others, judge = human[:, 1:], human[:, 0]
    assert (consensus(ORDINAL5, others) % 1 == 0.5).any()
    assert_matches_reference(ORDINAL5, others, judge)


@pytest.mark.parametrize("noise", [0.3, 1.0])
def test_newsroom_simulated_judges(noise: float) -> None:
    # A judge with non-integer scores (like a mean of sampled answers), partly off the scale.
    rng = np.random.default_rng(11)
    human = newsroom()["Coherence"]
    judge = np.round(consensus(ORDINAL5, human) + rng.normal(scale=noise, size=human.shape[0]), 1)
    judge[rng.random(judge.size) < 0.05] = np.nan
    assert_matches_reference(ORDINAL5, human, judge)
    assert_matches_reference(INTERVAL5, human, judge)
    res = human_ceiling(INTERVAL5, human, n_boot=0)
    assert abs(res["alpha_humans"].value - reference_alpha(INTERVAL5, human)) <= TOL
    for key, value in ceiling_reference(INTERVAL5, human).items():
        assert abs(res[key].value - value) <= TOL, key


# ----------------------------------------------------------------------------- HANNA


@pytest.mark.parametrize(("criterion", "expected"), [
    ("relevance", 0.165), ("coherence", -0.054), ("empathy", 0.117), ("surprise", 0.015),
    ("engagement", 0.167), ("complexity", 0.266)])
def test_hanna_human_alpha_unchanged(criterion: str, expected: float) -> None:
    human = hanna()[0][criterion]
    res = human_ceiling(ORDINAL5, human, n_boot=0)
    assert abs(res["alpha_humans"].value - reference_alpha(ORDINAL5, human)) <= TOL
    assert round(res["alpha_humans"].value, 3) == expected


@pytest.mark.parametrize("criterion", HANNA_CRITERIA)
def test_hanna_llm_judges_non_integer_scores(criterion: str) -> None:
    human, judges = hanna()
    columns = [k for k in judges if k.endswith(f"|{criterion}")]
    assert len(columns) == 20
    for column in columns:
        judge = judges[column]
        assert (judge % 1 != 0).any()
        assert_matches_reference(ORDINAL5, human[criterion], judge)


def test_hanna_ceiling_and_interval_view() -> None:
    human, judges = hanna()
    res = human_ceiling(ORDINAL5, human["coherence"], n_boot=0)
    for key, value in ceiling_reference(ORDINAL5, human["coherence"]).items():
        assert abs(res[key].value - value) <= TOL, key
    assert_matches_reference(INTERVAL5, human["empathy"], judges["ChatGPT|prompt1|empathy"])


# ----------------------------------------------------------------------------- DICES-350


def test_dices_alpha_and_ceiling_with_123_raters() -> None:
    crowd, _ = dices()
    assert crowd.shape == (350, 123)
    res = human_ceiling(SAFETY, crowd, n_boot=0)
    assert abs(res["alpha_humans"].value - reference_alpha(SAFETY, crowd)) <= TOL
    assert round(res["alpha_humans"].value, 3) == 0.161
    for key, value in ceiling_reference(SAFETY, crowd).items():
        assert abs(res[key].value - value) <= TOL, key


def test_dices_expert_as_judge_nominal_and_binary() -> None:
    crowd, expert = dices()
    assert_matches_reference(SAFETY, crowd, expert)
    # Binary view: safe = "Yes" (1), "No" (0), "Unsure" treated as missing.
    binary = Scale(kind="binary", categories=["unsafe", "safe"])
    recode = {0.0: 0.0, 1.0: 1.0, 2.0: np.nan}
    crowd_b = np.vectorize(recode.get)(crowd)
    expert_b = np.vectorize(recode.get)(expert)
    res = assert_matches_reference(binary, crowd_b, expert_b)
    assert res["tpr"].n is not None and res["tnr"].n is not None
    ceiling = human_ceiling(binary, crowd_b, n_boot=0)
    for key, value in ceiling_reference(binary, crowd_b).items():
        assert abs(ceiling[key].value - value) <= TOL, key


# ----------------------------------------------------------------------------- LLMBar


def test_llmbar_position_consistency() -> None:
    with (TEST_DATA / "llmbar" / "judgments.csv").open() as f:
        rows = [r for r in csv.DictReader(f)
                if r["judge_model"] == "GPT-4" and r["strategy"] == "Vanilla"]
    first = np.array([float(r["winner_original_order"] or "nan") for r in rows])
    swapped = np.array([float(r["winner_swapped_order_mapped_back"] or "nan") for r in rows])
    mv = position_consistency(first, swapped, n_boot=300, seed=1)
    both = ~np.isnan(first) & ~np.isnan(swapped)
    assert mv.n == int(both.sum()) > 300
    assert mv.value == pytest.approx(float(np.mean(first[both] == swapped[both])), abs=TOL)
    assert mv.ci_low <= mv.value <= mv.ci_high


def test_pandalm_segments_by_motivation_app() -> None:
    human, gpt, _, app = pandalm()
    out = by_segment(PAIRWISE, human, gpt, app, min_items=30, n_boot=0)
    scored = ~np.isnan(gpt)
    for name, result in out.items():
        size = int(((app == name) & scored).sum())
        if size < 30:
            assert result == {"too_small": size}
        else:
            member = app == name
            assert_matches_reference(PAIRWISE, human[member], gpt[member], result)  # type: ignore[arg-type]
    assert out["(Wolfram alpha)?"] == {"too_small": 21}
    assert "accuracy" in out["merriam-webster.com"]
