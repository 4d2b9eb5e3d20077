"""Property-based checks: on arbitrary small data (missing values, single categories, ties)
the engine either equals the reference libraries or returns a sentinel where they are NaN."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judgecal.scales import Scale
from judgecal.stats import consensus, human_ceiling, judge_agreement
from tests.support.reference import reference_alpha, reference_judge_metrics

SCALES = [
    Scale(kind="binary"),
    Scale(kind="nominal", categories=["a", "b", "c"]),
    Scale(kind="pairwise"),
    Scale(kind="ordinal", min=1, max=4),
]


@st.composite
def datasets(draw: st.DrawFn) -> tuple[Scale, np.ndarray, np.ndarray]:
    scale = draw(st.sampled_from(SCALES))
    codes = [float(c) for c in scale.domain() or []]
    n = draw(st.integers(min_value=0, max_value=25))
    raters = draw(st.integers(min_value=1, max_value=4))
    cell = st.one_of(st.sampled_from(codes), st.just(np.nan))
    human = np.array(draw(st.lists(st.lists(cell, min_size=raters, max_size=raters),
                                   min_size=n, max_size=n)), dtype=float).reshape(n, raters)
    judge_cell = cell
    if scale.kind == "ordinal":
        judge_cell = st.one_of(st.floats(min_value=0.0, max_value=5.0), st.just(np.nan))
    judge = np.array(draw(st.lists(judge_cell, min_size=n, max_size=n)), dtype=float)
    return scale, human, judge


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_judge_agreement_equals_reference_or_is_a_sentinel(
    data: tuple[Scale, np.ndarray, np.ndarray],
) -> None:
    scale, human, judge = data
    res = judge_agreement(scale, human, judge, n_boot=20, seed=1, min_items=1)
    json.dumps({k: v.to_json() for k, v in res.items()}, allow_nan=False)
    cons = consensus(scale, human)
    keep = ~np.isnan(cons) & ~np.isnan(judge)
    if keep.sum() == 0:
        assert all(mv.value is None for mv in res.values())
        return
    ref = reference_judge_metrics(scale, cons[keep], judge[keep])
    for key, mv in res.items():
        if mv.value is None:
            assert mv.undefined
            if mv.undefined != "only one category in the human consensus":
                assert not np.isfinite(ref[key]) or mv.undefined.startswith("too few"), key
        else:
            assert abs(mv.value - ref[key]) <= 1e-9, (key, mv.value, ref[key])
            if mv.ci_low is not None and mv.ci_high is not None:
                assert mv.ci_low <= mv.ci_high


@settings(max_examples=100, deadline=None)
@given(datasets())
def test_alpha_among_raters_equals_krippendorff(data: tuple[Scale, np.ndarray, np.ndarray]) -> None:
    scale, human, _ = data
    res = human_ceiling(scale, human, n_boot=10, seed=0, min_items=1)
    json.dumps({k: v.to_json() for k, v in res.items()}, allow_nan=False)
    pairable = (~np.isnan(human)).sum(axis=1) >= 2
    mv = res["alpha_humans"]
    if not pairable.any():
        assert mv.undefined == "no item has ratings from two or more raters"
        return
    expected = reference_alpha(scale, human)
    if np.isfinite(expected):
        assert mv.value is not None and abs(mv.value - expected) <= 1e-9
    else:
        assert mv.value is None
