"""The human consensus of an item, and the leave-one-out consensus used by the human ceiling.

Consensus rules
===============
``majority`` (default for binary, nominal and pairwise scales)
    The code with strictly more votes than any other code. When two or more codes share the
    top count (e.g. two raters who disagree, or three raters with three different labels) the
    item has **no majority** and its consensus is NaN: the item is left out of judge metrics,
    never resolved by an arbitrary tie-break.

    On a pairwise scale the tie label (code 0, "both equally good") is an ordinary category:
    votes ``1, 1, 0`` give 1, votes ``0, 0, 2`` give 0 (a tie *label* won), while votes
    ``1, 2, 0`` or ``1, 2`` are a *split vote* and give NaN (no majority). A tie in the vote is
    therefore not the same thing as a "tie" label.
``median`` (default for ordinal scales)
    The median of the item's ratings. With an even number of ratings whose two middle values
    differ, the median is their midpoint, a *half step* such as 3.5 ("the humans split between
    3 and 4"). Half steps are kept; see ``judge_agreement`` for how each metric treats them.
``mean`` (default for interval scales; allowed for ordinal)
    The mean of the item's ratings.

Missing ratings are NaN and simply do not vote. An item without any rating has a NaN consensus.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from judgecal.scales import PAIRWISE_FIRST, PAIRWISE_SECOND, PAIRWISE_TIE, Scale

ConsensusRule = Literal["majority", "median", "mean"]

_RULES_FOR: dict[str, tuple[ConsensusRule, ...]] = {
    "binary": ("majority",),
    "nominal": ("majority",),
    "pairwise": ("majority",),
    "ordinal": ("median", "mean"),
    "interval": ("mean", "median"),
}


def default_rule(scale: Scale) -> ConsensusRule:
    """The default consensus rule of a scale kind (see the module docstring)."""
    return _RULES_FOR[scale.kind][0]


def resolve_rule(scale: Scale, rule: ConsensusRule | None) -> ConsensusRule:
    """Check that ``rule`` applies to ``scale`` (None means the default) and return it."""
    if rule is None:
        return default_rule(scale)
    allowed = _RULES_FOR[scale.kind]
    if rule not in allowed:
        raise ValueError(
            f"consensus rule {rule!r} does not apply to a {scale.kind} scale "
            f"(allowed: {', '.join(allowed)})")
    return rule


def label_domain(scale: Scale, *, judge: bool = False) -> np.ndarray | None:
    """Codes a label may take, sorted; None for an interval scale.

    A pairwise *judge* may always answer "tie" (0), even on a scale whose humans could not.
    """
    if judge and scale.kind == "pairwise":
        return np.array([PAIRWISE_TIE, PAIRWISE_FIRST, PAIRWISE_SECOND])
    dom = scale.domain()
    return None if dom is None else np.asarray(dom, dtype=np.float64)


def as_ratings(scale: Scale, human: object, *, what: str = "human") -> np.ndarray:
    """Validate human ratings and return them as a 2-D float array (items × raters).

    A 1-D array is one rater. NaN marks a missing rating; infinities and codes outside the
    scale raise ``ValueError``.
    """
    arr = np.asarray(human, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{what} ratings must be a 2-D array (items × raters), got {arr.ndim}-D")
    if np.isinf(arr).any():
        raise ValueError(f"{what} ratings contain an infinite value")
    _check_codes(scale, arr, what=what, judge=False)
    return arr


def as_scores(scale: Scale, judge: object, n_items: int, *, what: str = "judge") -> np.ndarray:
    """Validate judge scores (1-D, NaN = unscored) and return them as a float array.

    On an ordinal scale a judge score need not be a code (e.g. the mean of several sampled
    answers); on categorical scales it must be one of the scale's codes.
    """
    arr = np.asarray(judge, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} scores must be a 1-D array, got {arr.ndim}-D")
    if arr.shape[0] != n_items:
        raise ValueError(f"{what} scores cover {arr.shape[0]} items, the human ratings {n_items}")
    if np.isinf(arr).any():
        raise ValueError(f"{what} scores contain an infinite value")
    if scale.kind != "ordinal":
        _check_codes(scale, arr, what=what, judge=True)
    return arr


def _check_codes(scale: Scale, arr: np.ndarray, *, what: str, judge: bool) -> None:
    dom = label_domain(scale, judge=judge)
    if dom is None:
        return
    values = arr[~np.isnan(arr)]
    bad = values[~np.isin(values, dom)]
    if bad.size:
        raise ValueError(
            f"{what} value {bad[0]:g} is not a code of the {scale.describe()} scale "
            f"(codes: {', '.join(f'{v:g}' for v in dom)})")


def value_counts(ratings: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Votes per code: ``counts[i, v]`` = raters of item ``i`` who gave ``domain[v]``."""
    counts = np.empty((ratings.shape[0], domain.size), dtype=np.float64)
    for v, code in enumerate(domain):
        counts[:, v] = (ratings == code).sum(axis=1)
    return counts


def _majority_from_counts(counts: np.ndarray, domain: np.ndarray) -> np.ndarray:
    top = counts.max(axis=1)
    winners = (counts == top[:, None]).sum(axis=1)
    out = domain[np.argmax(counts, axis=1)].astype(np.float64)
    out[(top <= 0) | (winners != 1)] = np.nan
    return out


def _median_rows(ratings: np.ndarray) -> np.ndarray:
    ordered = np.sort(ratings, axis=1)  # NaN sorts last
    k = (~np.isnan(ratings)).sum(axis=1)
    lo = np.maximum((k - 1) // 2, 0)
    hi = np.maximum(k // 2, 0)
    hi = np.minimum(hi, max(ratings.shape[1] - 1, 0))
    rows = np.arange(ratings.shape[0])
    out = (ordered[rows, lo] + ordered[rows, hi]) / 2.0
    out[k == 0] = np.nan
    return out


def _mean_rows(ratings: np.ndarray) -> np.ndarray:
    k = (~np.isnan(ratings)).sum(axis=1)
    total = np.where(np.isnan(ratings), 0.0, ratings).sum(axis=1)
    out = np.full(ratings.shape[0], np.nan)
    has = k > 0
    out[has] = total[has] / k[has]
    return out


def consensus(scale: Scale, human: np.ndarray, *, rule: ConsensusRule | None = None) -> np.ndarray:
    """The human consensus per item.

    Parameters
    ----------
    scale : Scale
        The dimension's scale.
    human : array-like of shape (n_items, n_raters)
        Float codes, NaN for a missing rating. A 1-D array is a single rater.
    rule : {"majority", "median", "mean"}, default None
        None picks the scale's default: majority for binary, nominal and pairwise scales,
        median for ordinal, mean for interval. See the module docstring for the exact rules,
        including how ties in the vote are handled.

    Returns
    -------
    ndarray of shape (n_items,)
        The consensus code (or value), NaN where the item has no rating or (majority rule) no
        single most-voted code.

    Raises
    ------
    ValueError
        If a rating is not a code of the scale, or ``rule`` does not apply to the scale.

    Examples
    --------
    >>> import numpy as np
    >>> from judgecal.scales import Scale
    >>> consensus(Scale(kind="pairwise"), np.array([[1, 1, 0], [0, 0, 2], [1, 2, 0]]))
    array([ 1.,  0., nan])
    >>> consensus(Scale(kind="ordinal", min=1, max=5), np.array([[1, 4, 5], [3, 4, np.nan]]))
    array([4. , 3.5])
    """
    chosen = resolve_rule(scale, rule)
    ratings = as_ratings(scale, human)
    if chosen == "majority":
        dom = label_domain(scale)
        assert dom is not None
        return _majority_from_counts(value_counts(ratings, dom), dom)
    if chosen == "median":
        return _median_rows(ratings)
    return _mean_rows(ratings)


def leave_one_out_consensus(
    scale: Scale, ratings: np.ndarray, *, rule: ConsensusRule | None = None
) -> np.ndarray:
    """Consensus of the *other* raters, for every (item, rater) pair.

    ``out[i, r]`` is the consensus of item ``i`` computed without rater ``r`` under the same
    rule as :func:`consensus`; NaN where rater ``r`` did not rate item ``i`` or the others have
    no consensus. ``ratings`` must already be validated (see :func:`as_ratings`).
    Runs in O(items × raters) for every rule, so 100+ raters per item stay fast.
    """
    chosen = resolve_rule(scale, rule)
    n, n_raters = ratings.shape
    rated = ~np.isnan(ratings)
    out = np.full((n, n_raters), np.nan)
    if chosen == "majority":
        dom = label_domain(scale)
        assert dom is not None
        counts = value_counts(ratings, dom)
        for r in range(n_raters):
            own = (ratings[:, r][:, None] == dom[None, :]).astype(np.float64)
            out[:, r] = _majority_from_counts(counts - own, dom)
    elif chosen == "mean":
        k = rated.sum(axis=1)
        total = np.where(rated, ratings, 0.0).sum(axis=1)
        others = (k - 1)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (total[:, None] - np.where(rated, ratings, 0.0)) / others
        out[np.broadcast_to(others <= 0, out.shape)] = np.nan
    else:
        order = np.argsort(ratings, axis=1, kind="stable")  # NaN last
        ordered = np.take_along_axis(ratings, order, axis=1)
        pos = np.empty_like(order)
        np.put_along_axis(pos, order, np.arange(n_raters)[None, :].repeat(n, axis=0), axis=1)
        k_others = rated.sum(axis=1)[:, None] - 1
        lo = np.maximum((k_others - 1) // 2, 0)
        hi = np.maximum(k_others // 2, 0)
        # Index into the sorted row with the rater's own position removed.
        j_lo = np.minimum(lo + (lo >= pos), n_raters - 1)
        j_hi = np.minimum(hi + (hi >= pos), n_raters - 1)
        out = (np.take_along_axis(ordered, j_lo, axis=1)
               + np.take_along_axis(ordered, j_hi, axis=1)) / 2.0
        out[np.broadcast_to(k_others <= 0, out.shape)] = np.nan
    out[~rated] = np.nan
    return out
