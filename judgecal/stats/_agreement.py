"""The judge against the human consensus: agreement metrics, confusion matrix, paired
differences between two runs, minimum detectable change, and position consistency.

How each scale is compared
==========================
The consensus comes from :func:`judgecal.stats.consensus` (majority / median / mean, see there).
A metric uses the items where both the consensus and the judge's score are defined (unscored
replies and items without a human consensus are left out, never counted as wrong).

* **binary / nominal** — alpha (nominal), unweighted Cohen's kappa, exact agreement; binary
  also true-positive and true-negative rates (code 1 is the positive class).
* **pairwise** — alpha (nominal over {tie, 1, 2}), ``accuracy`` and unweighted ``kappa``
  against the human majority with the tie label as a third category; ``accuracy_no_ties``
  and ``kappa_no_ties`` on the items where neither the majority nor the judge is a tie.
  Items without a majority (a split vote) are left out of all of them.
* **ordinal** — the *code metrics* alpha (ordinal), kappa (quadratic weights), kappa_linear,
  exact agreement, within-one agreement and the confusion matrix compare codes: a judge
  score that is not a code (e.g. the mean of several sampled answers, as in HANNA) is rounded
  to the nearest code (halves round up) and clipped to the scale. The *numeric metrics*
  Spearman, Kendall tau-b, mean bias and MAE use the judge's score as it is (treated as
  interval data). A median consensus that falls between two codes (e.g. 3.5 from ratings 3
  and 4) is kept as an ordered value between them: it counts as a miss for exact agreement,
  takes part in alpha by its order, and in the weighted kappas by its value (weights
  ``|a-b|`` and ``(a-b)^2``, which equal scikit-learn's index-based weights on an evenly
  spaced label grid). Without half steps every code metric equals the reference library.
* **interval** — alpha (interval), Spearman, Kendall tau-b, Pearson, mean bias, MAE. No kappa
  or exact agreement: continuous scores are almost never exactly equal.

Undefined metrics
=================
A metric that cannot be computed returns ``MetricValue(value=None, undefined=<reason>)``:
``"too few items (n < min_items)"`` for any metric on fewer than ``min_items`` items (for
``tpr``/``tnr`` the positives/negatives; for ``*_no_ties`` the items without ties);
``"only one category in the human consensus"`` for every kappa (the value would be 0 or
undefined whatever the judge does, so it carries no information); ``"no variance in the human
consensus"`` / ``"no variance in the judge scores"`` for correlations; ``"no variation ..."``
for alpha when every pooled value is the same. A judge that always gives the same answer gets
kappa 0, which is informative (it is no better than chance). Nothing is NaN in the output.

Intervals
=========
Percentile bootstrap over items (``n_boot`` resamples, ``seed``). Replicates in which a
metric is undefined are dropped; if more than 10 % are, the interval is withheld with a note.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from judgecal.scales import Scale
from judgecal.stats._bootstrap import (
    check_options,
    metric_value,
    percentile_interval,
    replicates,
    weight_batches,
)
from judgecal.stats._consensus import (
    ConsensusRule,
    as_ratings,
    as_scores,
    consensus,
    label_domain,
)
from judgecal.stats._kernels import PairData
from judgecal.stats._registry import PRIMARY_METRIC, metrics_for
from judgecal.stats._result import MetricValue, PairedComparison


def round_to_codes(scale: Scale, scores: np.ndarray) -> np.ndarray:
    """Ordinal judge scores as codes: nearest code, halves up, clipped to the scale."""
    dom = label_domain(scale)
    assert dom is not None
    return np.clip(np.floor(scores + 0.5), dom[0], dom[-1])


def build_pair(scale: Scale, cons: np.ndarray, scores: np.ndarray) -> PairData:
    """PairData for finite consensus ``cons`` and judge ``scores`` (same items)."""
    if scale.kind == "interval":
        return PairData(scale.kind, scale.level, cons, scores, None, None)
    if scale.kind == "ordinal":
        dom = label_domain(scale)
        assert dom is not None
        codes = round_to_codes(scale, scores)
        labels = np.union1d(dom, np.unique(cons))
        return PairData(scale.kind, scale.level, cons, scores, labels, codes)
    cat_labels = label_domain(scale, judge=True)
    assert cat_labels is not None
    return PairData(scale.kind, scale.level, cons, scores, cat_labels, scores)


def assemble(
    keys: list[str],
    pair_values: dict[str, np.ndarray],
    pair_counts: dict[str, np.ndarray],
    boot: dict[str, np.ndarray],
    confidence: float,
    min_items: int,
    reason: Callable[[str], str],
) -> dict[str, MetricValue]:
    """MetricValues from point estimates (arrays of length 1), counts and replicates."""
    out: dict[str, MetricValue] = {}
    for key in keys:
        what = {"tpr": "positive items", "tnr": "negative items"}.get(key, "items")
        if key.endswith("_no_ties"):
            what = "items without ties"
        out[key] = metric_value(
            float(pair_values[key][0]), round(float(pair_counts[key][0])),
            boot.get(key), confidence, min_items, partial(reason, key), what)
    return out


def _consensus_and_scores(
    scale: Scale, human: np.ndarray, judge: np.ndarray, rule: ConsensusRule | None
) -> tuple[np.ndarray, np.ndarray]:
    ratings = as_ratings(scale, human)
    scores = as_scores(scale, judge, ratings.shape[0])
    return consensus(scale, ratings, rule=rule), scores


def judge_agreement(
    scale: Scale,
    human: np.ndarray,
    judge: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    min_items: int = 10,
    rule: ConsensusRule | None = None,
) -> dict[str, MetricValue]:
    """Agreement of a judge with the human consensus, every metric with a bootstrap interval.

    Parameters
    ----------
    scale : Scale
        The dimension's scale; it selects the metrics (see ``metrics_for``).
    human : array-like of shape (n_items, n_raters)
        Human labels as float codes, NaN for a missing rating.
    judge : array-like of shape (n_items,)
        The judge's scores, NaN for an unscored item.
    n_boot : int, default 1000
        Bootstrap resamples of the items (0: point estimates only).
    seed : int, default 0
        Seed of the resampling; the same seed gives the same intervals.
    confidence : float, default 0.95
        Coverage of the percentile interval.
    min_items : int, default 10
        Below this many items a metric is reported as undefined ("too few items").
    rule : {"majority", "median", "mean"}, optional
        Consensus rule; None uses the scale's default.

    Returns
    -------
    dict of str to MetricValue
        Keys in report order: binary ``alpha, kappa, exact_agreement, tpr, tnr``; nominal
        ``alpha, kappa, exact_agreement``; pairwise ``alpha, kappa, accuracy, kappa_no_ties,
        accuracy_no_ties``; ordinal ``alpha, kappa, kappa_linear, exact_agreement,
        within_one, spearman, kendall, mean_bias, mae``; interval ``alpha, spearman, kendall,
        pearson, mean_bias, mae``. See the module docstring for definitions and sentinels.

    Notes
    -----
    Point estimates equal ``krippendorff.alpha`` (reliability data of shape (2, n) with the
    consensus and the judge, explicit level and value domain), ``sklearn.metrics.
    cohen_kappa_score`` (``weights=None`` / ``"quadratic"`` / ``"linear"``, ``labels`` = the
    scale's codes) and ``scipy.stats.spearmanr`` / ``kendalltau`` (tau-b) / ``pearsonr``.
    Kappa and alpha are symmetric in judge and consensus; ``mean_bias`` is judge − human.

    References
    ----------
    Cohen (1960), doi:10.1177/001316446002000104; Krippendorff (2011), "Computing
    Krippendorff's alpha-reliability"; Artstein & Poesio (2008), doi:10.1162/coli.07-034-R2.

    Examples
    --------
    >>> import numpy as np
    >>> from judgecal.scales import Scale
    >>> human = np.array([[1, 1], [0, 0], [1, 1], [0, 1], [1, 1], [0, 0]] * 5, dtype=float)
    >>> judge = np.array([1, 0, 1, 0, 0, 0] * 5, dtype=float)
    >>> res = judge_agreement(Scale(kind="binary"), human, judge, n_boot=0)
    >>> round(res["kappa"].value, 4), res["kappa"].n
    (0.6154, 25)
    """
    check_options(n_boot, confidence, min_items)
    cons, scores = _consensus_and_scores(scale, human, judge, rule)
    keep = ~np.isnan(cons) & ~np.isnan(scores)
    pair = build_pair(scale, cons[keep], scores[keep])
    values, counts = pair.compute(np.ones((1, pair.n)))
    boot = replicates(pair.compute, pair.n, n_boot, seed)
    return assemble(metrics_for(scale), values, counts, boot, confidence, min_items, pair.reason)


def confusion(scale: Scale, human_consensus: np.ndarray, judge: np.ndarray) -> dict[str, Any]:
    """Confusion matrix of the judge against the human consensus (JSON-able).

    Rows are the human consensus, columns the judge, over the items where both are defined.
    ``labels`` are the codes in order (all codes of the scale, plus any half-step median of an
    ordinal consensus; a pairwise judge may answer tie even where humans cannot), ``names``
    their display names. On an ordinal scale judge scores are rounded to codes as in
    :func:`judge_agreement`. Interval scales have no confusion matrix (``ValueError``).

    Returns
    -------
    dict
        ``{"labels": [float], "names": [str], "matrix": [[int]], "n": int}``; ``matrix[i][j]``
        counts items whose consensus is ``labels[i]`` and judge score ``labels[j]``.

    Examples
    --------
    >>> import numpy as np
    >>> from judgecal.scales import Scale
    >>> confusion(Scale(kind="binary"), np.array([0, 1, 1, np.nan]), np.array([0, 1, 0, 1]))
    {'labels': [0.0, 1.0], 'names': ['0', '1'], 'matrix': [[1, 0], [1, 1]], 'n': 3}
    """
    if scale.kind == "interval":
        raise ValueError("an interval scale has no confusion matrix")
    cons = np.asarray(human_consensus, dtype=np.float64)
    scores = as_scores(scale, judge, cons.shape[0])
    keep = ~np.isnan(cons) & ~np.isnan(scores)
    pair = build_pair(scale, cons[keep], scores[keep])
    assert pair.labels is not None and pair.y_code is not None
    labels = pair.labels
    if scale.kind != "ordinal":
        bad = pair.x[~np.isin(pair.x, labels)]
        if bad.size:
            raise ValueError(f"consensus value {bad[0]:g} is not a code of the scale")
    size = labels.size
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (np.searchsorted(labels, pair.x), np.searchsorted(labels, pair.y_code)), 1)
    return {
        "labels": [float(v) for v in labels],
        "names": [scale.name(float(v)) for v in labels],
        "matrix": matrix.tolist(),
        "n": int(pair.n),
    }


def _check_metrics(scale: Scale, metrics: list[str] | None) -> list[str]:
    available = metrics_for(scale)
    if metrics is None:
        return available
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise ValueError(
            f"metric {unknown[0]!r} is not reported for a {scale.kind} scale "
            f"(available: {', '.join(available)})")
    return list(metrics)


def paired_difference(
    scale: Scale,
    human: np.ndarray,
    judge_a: np.ndarray,
    judge_b: np.ndarray,
    *,
    metrics: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    min_items: int = 10,
    rule: ConsensusRule | None = None,
) -> PairedComparison:
    """Difference ``metric(b) - metric(a)`` between two judge runs on the same items.

    Only items with a human consensus that *both* runs scored are compared; the counts of
    items left out because only one run scored them are returned. Each bootstrap replicate
    resamples these common items once and evaluates both runs on the same resample, so the
    interval of the difference is *paired* (it accounts for the runs sharing their items).

    Parameters
    ----------
    scale, human, n_boot, seed, confidence, min_items, rule
        As in :func:`judge_agreement`.
    judge_a, judge_b : array-like of shape (n_items,)
        Scores of the baseline run (a) and the candidate run (b), NaN = unscored.
    metrics : list of str, optional
        Metric keys to compare (default: all of the scale's keys).

    Returns
    -------
    PairedComparison
        ``.metrics[key]`` the difference b − a with its paired interval (undefined, with a
        reason, when the metric is undefined for either run), ``.a`` / ``.b`` each run on the
        common items, and ``n_common``, ``left_out_a``, ``left_out_b``, ``n_changed``.
    """
    check_options(n_boot, confidence, min_items)
    keys = _check_metrics(scale, metrics)
    ratings = as_ratings(scale, human)
    a = as_scores(scale, judge_a, ratings.shape[0], what="judge_a")
    b = as_scores(scale, judge_b, ratings.shape[0], what="judge_b")
    cons = consensus(scale, ratings, rule=rule)
    has = ~np.isnan(cons)
    a_ok = has & ~np.isnan(a)
    b_ok = has & ~np.isnan(b)
    common = a_ok & b_ok
    pair_a = build_pair(scale, cons[common], a[common])
    pair_b = build_pair(scale, cons[common], b[common])
    n = pair_a.n
    ones = np.ones((1, n))
    va, ca = pair_a.compute(ones)
    vb, cb = pair_b.compute(ones)
    boot_a: dict[str, list[np.ndarray]] = {}
    boot_b: dict[str, list[np.ndarray]] = {}
    if n and n_boot:
        for weights in weight_batches(n, n_boot, seed):
            for store, pair in ((boot_a, pair_a), (boot_b, pair_b)):
                vals, _ = pair.compute(weights)
                for key in keys:
                    store.setdefault(key, []).append(vals[key])
    ra = {k: np.concatenate(v) for k, v in boot_a.items()}
    rb = {k: np.concatenate(v) for k, v in boot_b.items()}
    res_a = assemble(keys, va, ca, ra, confidence, min_items, pair_a.reason)
    res_b = assemble(keys, vb, cb, rb, confidence, min_items, pair_b.reason)
    diffs: dict[str, MetricValue] = {}
    for key in keys:
        ma, mb = res_a[key], res_b[key]
        if ma.value is None:
            diffs[key] = MetricValue.undefined_because(f"undefined for run a: {ma.undefined}", n)
            continue
        if mb.value is None:
            diffs[key] = MetricValue.undefined_because(f"undefined for run b: {mb.undefined}", n)
            continue
        d = rb[key] - ra[key] if key in ra else None
        low, high, note = percentile_interval(d, confidence)
        diffs[key] = MetricValue(
            value=mb.value - ma.value, ci_low=low, ci_high=high, n=n, note=note)
    return PairedComparison(
        metrics=diffs, a=res_a, b=res_b, n_common=n,
        left_out_a=int((a_ok & ~b_ok).sum()), left_out_b=int((b_ok & ~a_ok).sum()),
        n_changed=int((a[common] != b[common]).sum()))


MdcMethod = Literal["scramble", "independent", "paired"]

_MDC_DEGENERATE = "the metric is undefined in too many bootstrap resamples to estimate its SE"


def minimum_detectable_change(
    scale: Scale,
    human: np.ndarray,
    judge: np.ndarray,
    *,
    metric: str | None = None,
    judge_b: np.ndarray | None = None,
    method: MdcMethod | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    n_boot: int = 500,
    seed: int = 0,
    min_items: int = 10,
    rule: ConsensusRule | None = None,
) -> MetricValue:
    """Smallest change of ``metric`` a paired drift check on this set would detect.

    "Detect" means: a two-sided paired test at level ``alpha`` rejects "no change" with
    probability ``power``, i.e. the change is at least ``(z_{1-alpha/2} + z_power) * SE_diff``
    where ``SE_diff`` is the standard error of the paired difference b − a.

    Methods
    -------
    ``"scramble"`` (default without ``judge_b``)
        Derived from the data. A drifted judge is modelled as the same judge that stops
        tracking the humans on a share of the items: on ``k`` randomly chosen items its score
        is replaced by its own score on another random item (keeping its label distribution).
        For growing ``k`` the change of the metric and the paired bootstrap ``SE_diff`` of
        (original, scrambled) are computed; the MDC is the change at the smallest ``k`` where
        the change reaches ``(z_{1-alpha/2} + z_power) * SE_diff``. It depends on the set's
        size and on the observed agreement. ``note`` gives ``k``.
    ``"independent"``
        The conservative bound ``(z_{1-alpha/2} + z_power) * sqrt(2) * SE``, with ``SE`` the
        bootstrap standard error of the metric: two runs whose estimation errors are
        independent. Real paired runs that share most verdicts detect smaller changes.
    ``"paired"`` (default with ``judge_b``)
        ``SE_diff`` from the paired bootstrap of the two given runs: the change this pair of
        runs, with their actual discordance, could have detected.

    Returns
    -------
    MetricValue
        ``value`` is the MDC in the metric's units (e.g. 0.05 kappa = 5 points), without an
        interval; ``note`` names the method. Undefined (with a reason) when the metric is
        undefined on the set or no change is detectable at this size.
    """
    check_options(n_boot, 0.95, min_items)
    if n_boot < 20:
        raise ValueError("minimum_detectable_change needs n_boot >= 20")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError("alpha and power must lie strictly between 0 and 1")
    key = metric or PRIMARY_METRIC[scale.kind]
    _check_metrics(scale, [key])
    chosen: MdcMethod = method or ("paired" if judge_b is not None else "scramble")
    if chosen == "paired" and judge_b is None:
        raise ValueError("method 'paired' needs judge_b")
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    label = f"alpha={alpha:g}, power={power:g}"

    if chosen == "paired":
        assert judge_b is not None
        comp = paired_difference(scale, human, judge, judge_b, metrics=[key], n_boot=0,
                                 min_items=min_items, rule=rule)
        if comp.metrics[key].value is None:
            return MetricValue.undefined_because(
                comp.metrics[key].undefined or "undefined", comp.n_common)
        se = _paired_se(scale, human, judge, judge_b, key, n_boot, seed, rule)
        if not math.isfinite(se):
            return MetricValue.undefined_because(_MDC_DEGENERATE, comp.n_common)
        return MetricValue(value=z * se, ci_low=None, ci_high=None, n=comp.n_common,
                           note=f"paired method ({label}): SE of the observed paired difference")

    cons, scores = _consensus_and_scores(scale, human, judge, rule)
    keep = ~np.isnan(cons) & ~np.isnan(scores)
    cons, scores = cons[keep], scores[keep]
    n = int(cons.size)
    base_pair = build_pair(scale, cons, scores)
    point_vals, point_counts = base_pair.compute(np.ones((1, n)))
    base_mv = assemble([key], point_vals, point_counts, {}, 0.95, min_items, base_pair.reason)[key]
    if base_mv.value is None:
        return MetricValue.undefined_because(base_mv.undefined or "undefined", n)

    if chosen == "independent":
        boot = replicates(base_pair.compute, n, n_boot, seed)[key]
        finite = boot[np.isfinite(boot)]
        if finite.size < 0.9 * boot.size or finite.size < 2:
            return MetricValue.undefined_because(_MDC_DEGENERATE, n)
        se = float(np.std(finite, ddof=1))
        return MetricValue(value=z * math.sqrt(2.0) * se, ci_low=None, ci_high=None, n=n,
                           note=f"independent method ({label}): sqrt(2) x bootstrap SE")

    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    donor = scores[rng.integers(0, n, size=n)]

    base_boot = replicates(base_pair.compute, n, n_boot, seed + 1)[key]

    def probe(k: int) -> tuple[float, float]:
        changed = scores.copy()
        changed[order[:k]] = donor[order[:k]]
        pair_b = build_pair(scale, cons, changed)
        vb, _ = pair_b.compute(np.ones((1, n)))
        delta = float(vb[key][0] - point_vals[key][0])
        # Same seed as base_boot: the same resamples, so the difference is paired.
        d = replicates(pair_b.compute, n, n_boot, seed + 1)[key] - base_boot
        d = d[np.isfinite(d)]
        se = float(np.std(d, ddof=1)) if d.size > 1 else math.inf
        return delta, se

    def detected(k: int) -> tuple[bool, float]:
        delta, se = probe(k)
        return bool(np.isfinite(delta) and abs(delta) >= z * se and abs(delta) > 0), delta

    ok_hi, delta_hi = detected(n)
    if not ok_hi:
        return MetricValue.undefined_because(
            f"no change is detectable with {n} items: even a judge that stops tracking the "
            f"humans on every item would not be detected ({label})", n)
    lo, hi = 0, n
    k = 1
    while k < n:  # doubling, then bisection on the smallest detected k
        ok, delta = detected(k)
        if ok:
            hi, delta_hi = k, delta
            break
        lo = k
        k *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok, delta = detected(mid)
        if ok:
            hi, delta_hi = mid, delta
        else:
            lo = mid
    return MetricValue(
        value=abs(delta_hi), ci_low=None, ci_high=None, n=n,
        note=f"scramble method ({label}): detected once the judge stops tracking the humans "
             f"on {hi} of {n} items")


def _paired_se(
    scale: Scale,
    human: np.ndarray,
    judge_a: np.ndarray,
    judge_b: np.ndarray,
    key: str,
    n_boot: int,
    seed: int,
    rule: ConsensusRule | None,
) -> float:
    ratings = as_ratings(scale, human)
    a = as_scores(scale, judge_a, ratings.shape[0])
    b = as_scores(scale, judge_b, ratings.shape[0])
    cons = consensus(scale, ratings, rule=rule)
    common = ~np.isnan(cons) & ~np.isnan(a) & ~np.isnan(b)
    pa = build_pair(scale, cons[common], a[common])
    pb = build_pair(scale, cons[common], b[common])
    diffs = [pb.compute(w)[0][key] - pa.compute(w)[0][key]
             for w in weight_batches(pa.n, n_boot, seed)]
    d = np.concatenate(diffs)
    finite = d[np.isfinite(d)]
    if finite.size < 0.9 * d.size or finite.size < 2:
        return math.inf
    return float(np.std(finite, ddof=1))


def position_consistency(
    first_order: np.ndarray,
    swapped_mapped_back: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    min_items: int = 10,
) -> MetricValue:
    """Share of items on which a pairwise judge gives the same verdict in both orders.

    Parameters
    ----------
    first_order : array-like of shape (n_items,)
        Verdicts with the responses in their original order (1, 2, 0 = tie; NaN = unscored).
    swapped_mapped_back : array-like of shape (n_items,)
        Verdicts of the run with the two responses swapped, already mapped back to the
        original numbering (so a position-blind judge gives the same code in both).

    Returns
    -------
    MetricValue
        Over items with a verdict in both runs; bootstrap interval over those items.

    Examples
    --------
    >>> import numpy as np
    >>> mv = position_consistency(np.array([1, 2, 1, 0] * 5), np.array([1, 2, 2, 0] * 5),
    ...                           n_boot=0)
    >>> mv.value, mv.n
    (0.75, 20)
    """
    check_options(n_boot, confidence, min_items)
    first = np.asarray(first_order, dtype=np.float64)
    second = np.asarray(swapped_mapped_back, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError("first_order and swapped_mapped_back must be 1-D arrays of equal length")
    keep = ~np.isnan(first) & ~np.isnan(second)
    same = (first[keep] == second[keep]).astype(np.float64)
    n = int(same.size)

    def compute(weights: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        total = weights.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = (weights @ same) / total
        return {"position_consistency": share}, {"position_consistency": total}

    values, _ = compute(np.ones((1, n)))
    boot = replicates(compute, n, n_boot, seed)
    return metric_value(float(values["position_consistency"][0]), n,
                        boot.get("position_consistency"), confidence, min_items,
                        lambda: "no item with a verdict in both orders")
