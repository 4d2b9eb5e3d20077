"""Metrics per segment (e.g. PandaLM's ``motivation_app``)."""

from __future__ import annotations

import numpy as np

from judgecal.scales import Scale
from judgecal.stats._agreement import judge_agreement
from judgecal.stats._bootstrap import check_options
from judgecal.stats._ceiling import human_ceiling
from judgecal.stats._consensus import ConsensusRule, as_ratings, as_scores, consensus
from judgecal.stats._result import MetricValue

SegmentResult = dict[str, MetricValue] | dict[str, int]
"""Either the metrics of a segment, or ``{"too_small": n_items}``."""


def by_segment(
    scale: Scale,
    human: np.ndarray,
    judge: np.ndarray | None,
    segments: np.ndarray,
    *,
    min_items: int = 30,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    metric_min_items: int = 10,
    rule: ConsensusRule | None = None,
) -> dict[str, SegmentResult]:
    """Every metric per segment value, or ``{"too_small": n}`` for a segment below the minimum.

    Parameters
    ----------
    scale, human, n_boot, seed, confidence, rule
        As in :func:`judgecal.stats.judge_agreement`.
    judge : array-like of shape (n_items,) or None
        The judge's scores; None reports the human ceiling per segment instead.
    segments : array-like of str, shape (n_items,)
        Segment value of each item; None, NaN and "" mean "no segment" and such items are
        left out of every segment.
    min_items : int, default 30
        A segment with fewer usable items (judge: a consensus and a score; ceiling: two or
        more ratings) is reported as ``{"too_small": n}``, never as a number.
    metric_min_items : int, default 10
        ``min_items`` passed to the metrics of a large-enough segment.

    Returns
    -------
    dict
        Segment value → metrics (as ``judge_agreement`` / ``human_ceiling``) or
        ``{"too_small": n}``; segment values in sorted order. Each segment is bootstrapped
        with the same ``seed``.
    """
    check_options(n_boot, confidence, min_items)
    ratings = as_ratings(scale, human)
    n = ratings.shape[0]
    seg = np.asarray(segments, dtype=object)
    if seg.shape != (n,):
        raise ValueError(f"segments cover {seg.shape[0] if seg.ndim else 0} items, "
                         f"the human ratings {n}")
    names = np.array(["" if _missing(v) else str(v) for v in seg], dtype=object)
    if judge is not None:
        scores = as_scores(scale, judge, n)
        usable = ~np.isnan(consensus(scale, ratings, rule=rule)) & ~np.isnan(scores)
    else:
        scores = None
        usable = (~np.isnan(ratings)).sum(axis=1) >= 2
    out: dict[str, SegmentResult] = {}
    for name in sorted(set(names.tolist()) - {""}):
        member = names == name
        size = int((member & usable).sum())
        if size < min_items:
            out[name] = {"too_small": size}
        elif scores is None:
            out[name] = human_ceiling(
                scale, ratings[member], n_boot=n_boot, seed=seed, confidence=confidence,
                min_items=metric_min_items, rule=rule)
        else:
            out[name] = judge_agreement(
                scale, ratings[member], scores[member], n_boot=n_boot, seed=seed,
                confidence=confidence, min_items=metric_min_items, rule=rule)
    return out


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""
