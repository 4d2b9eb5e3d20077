"""The human ceiling: how well the humans agree with each other on the same items.

Two views, both bootstrapped over the same resampled items:

* ``alpha_humans`` — Krippendorff's alpha among all raters at the scale's level (items with
  fewer than two ratings are not pairable and do not count, as in Krippendorff's definition).
* leave-one-out — each rater is compared with the consensus of the *other* raters exactly as a
  judge is compared with the consensus (same rule, same metrics, same sentinels), and each
  metric is averaged over raters, weighted by the number of items the rater's comparison used.
  Raters for whom a metric is undefined (e.g. the others' consensus has one category on their
  items) are left out of that metric's average.

The leave-one-out consensus has one rater fewer than the consensus a judge is compared with,
which makes the comparison slightly harder for the humans (with three raters, two remain, and
their split votes leave items out on majority scales or give half-step medians on ordinal ones).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from judgecal.scales import Scale
from judgecal.stats._agreement import build_pair
from judgecal.stats._bootstrap import check_options, metric_value, replicates, too_few
from judgecal.stats._consensus import (
    ConsensusRule,
    as_ratings,
    label_domain,
    leave_one_out_consensus,
)
from judgecal.stats._kernels import AlphaData, PairData
from judgecal.stats._registry import metrics_for
from judgecal.stats._result import MetricValue


def human_ceiling(
    scale: Scale,
    human: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    min_items: int = 10,
    rule: ConsensusRule | None = None,
) -> dict[str, MetricValue]:
    """Agreement among the human raters: the ceiling a judge is read against.

    Parameters
    ----------
    scale : Scale
        The dimension's scale.
    human : array-like of shape (n_items, n_raters)
        Float codes, NaN for a missing rating. Columns are rater identities (or rater slots
        when identities are unknown); any number of raters (2 to 100+) works.
    n_boot, seed, confidence, min_items, rule
        As in :func:`judgecal.stats.judge_agreement`. Items are resampled (the items with at
        least two ratings), and the same resample serves every rater.

    Returns
    -------
    dict of str to MetricValue
        ``"alpha_humans"`` (alpha among all raters, equal to ``krippendorff.alpha`` on the
        transposed matrix with the scale's level and value domain), followed by the keys of
        ``judge_agreement`` for the scale, each the item-weighted average over raters of
        "this rater against the consensus of the others". ``n`` is the number of items used.

    Examples
    --------
    >>> import numpy as np
    >>> from judgecal.scales import Scale
    >>> human = np.array([[1, 1, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]] * 5, dtype=float)
    >>> res = human_ceiling(Scale(kind="binary"), human, n_boot=0)
    >>> round(res["alpha_humans"].value, 4), res["exact_agreement"].n
    (0.3444, 20)
    """
    check_options(n_boot, confidence, min_items)
    kernel = CeilingKernel(scale, as_ratings(scale, human), rule)
    point, _ = kernel.compute(np.ones((1, kernel.n)))
    boot = replicates(kernel.compute, kernel.n, n_boot, seed)
    out: dict[str, MetricValue] = {}
    if kernel.alpha.n_pairable == 0:
        out["alpha_humans"] = MetricValue.undefined_because(
            "no item has ratings from two or more raters", n=0)
    else:
        out["alpha_humans"] = metric_value(
            float(point["alpha_humans"][0]), kernel.alpha.n_pairable, boot.get("alpha_humans"),
            confidence, min_items,
            lambda: "no variation: every rating is the same value")
    for k in kernel.keys:
        if not kernel.raters:
            out[k] = MetricValue.undefined_because(
                "no rater has a consensus of the other raters on any item", n=0)
            continue
        if kernel.n_used < min_items:
            out[k] = MetricValue.undefined_because(
                too_few(kernel.n_used, min_items), n=kernel.n_used)
            continue
        out[k] = metric_value(float(point[k][0]), kernel.n_used, boot.get(k), confidence,
                              min_items, partial(_first_reason, kernel.raters, k))
    return out


class CeilingKernel:
    """Human-ceiling metrics as a function of weights over the pairable items.

    ``n`` is the number of pairable items (two or more ratings): the items that are resampled.
    ``compute`` returns alpha among all raters and, per metric key, the item-weighted average
    over raters of "rater vs consensus of the others" (raters with the metric undefined in a
    replicate are left out of that replicate's average).
    """

    def __init__(self, scale: Scale, ratings: np.ndarray, rule: ConsensusRule | None) -> None:
        pairable = (~np.isnan(ratings)).sum(axis=1) >= 2
        sub = ratings[pairable]
        self.n = int(sub.shape[0])
        self.keys = metrics_for(scale)
        self.alpha = AlphaData(sub, scale.level, label_domain(scale))
        loo = leave_one_out_consensus(scale, sub, rule=rule)
        self.raters: list[tuple[np.ndarray, PairData]] = []
        used = np.zeros(self.n, dtype=bool)
        for r in range(sub.shape[1]):
            items = np.flatnonzero(~np.isnan(loo[:, r]))
            if items.size == 0:
                continue
            used[items] = True
            self.raters.append((items, build_pair(scale, loo[items, r], sub[items, r])))
        self.n_used = int(used.sum())

    def compute(self, weights: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Values and item counts per key for each row of ``weights`` (b, n)."""
        b = weights.shape[0]
        values = {"alpha_humans": self.alpha.compute(weights)}
        counts = {"alpha_humans": np.full(b, float(self.alpha.n_pairable))}
        num = {k: np.zeros(b) for k in self.keys}
        den = {k: np.zeros(b) for k in self.keys}
        for items, pair in self.raters:
            # A rater compared on every item needs no column copy.
            vals, ns = pair.compute(weights if items.size == self.n else weights[:, items])
            for k in self.keys:
                ok = np.isfinite(vals[k]) & (ns[k] > 0)
                num[k] += np.where(ok, vals[k] * ns[k], 0.0)
                den[k] += np.where(ok, ns[k], 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in self.keys:
                values[k] = np.where(den[k] > 0, num[k] / den[k], np.nan)
                counts[k] = np.full(b, float(self.n_used))
        return values, counts


def _first_reason(raters: list[tuple[np.ndarray, PairData]], key: str) -> str:
    for _, pair in raters:
        vals, _ = pair.compute(np.ones((1, pair.n)))
        if not np.isfinite(vals[key][0]):
            return f"undefined for every rater (e.g. {pair.reason(key)})"
    return "undefined for every rater"
