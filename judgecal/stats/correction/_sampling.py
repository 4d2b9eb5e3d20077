"""A stratified random sample of a window's score ids, for humans to label."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from judgecal.stats.correction._result import StratifiedSample


def _sorted(items: Sequence[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=repr)


def proportional_allocation(sizes: np.ndarray, n: int) -> np.ndarray:
    """Sample size per stratum: proportional to ``sizes``, at least one each, at most the
    stratum's size, summing to ``n`` when ``len(sizes) <= n <= sizes.sum()``.

    Largest-remainder (Hamilton) rounding of the quotas ``t_h = n·N_h/N``: every stratum
    first gets ``max(1, ⌊t_h⌋)``; a shortfall goes one item each to the strata with the
    largest remainders ``t_h − n_h``; an excess caused by the one-per-stratum floor is taken
    one item at a time from the strata most above their quota. Ties go to the earlier
    stratum. With more strata than ``n`` every stratum gets one (the total exceeds ``n``).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if n >= total:
        return sizes.copy()
    if len(sizes) >= n:
        return np.minimum(np.ones_like(sizes), sizes)
    quota = n * sizes / total
    alloc = np.minimum(np.maximum(1, np.floor(quota).astype(np.int64)), sizes)
    while alloc.sum() < n:
        room = alloc < sizes
        rem = np.where(room, quota - alloc, -np.inf)
        order = np.argsort(-rem, kind="stable")
        need = int(n - alloc.sum())
        take = order[:min(need, int(room.sum()))]
        alloc[take] += 1
    while alloc.sum() > n:
        can = alloc > 1
        over = np.where(can, quota - alloc, np.inf)
        order = np.argsort(over, kind="stable")
        extra = int(alloc.sum() - n)
        take = order[:min(extra, int(can.sum()))]
        alloc[take] -= 1
    return alloc


def stratified_sample(
    score_ids: Sequence[Hashable],
    strata: Sequence[Hashable],
    n: int,
    *,
    seed: int,
) -> StratifiedSample:
    """Draw a stratified random sample of score ids (proportional allocation, ≥ 1 per stratum).

    Parameters
    ----------
    score_ids : sequence of hashable
        The window's score ids (distinct).
    strata : sequence of hashable
        The stratum of each score, e.g. a tuple ``(customer, segment, dimension)``.
    n : int
        The sample size asked for (≥ 1). With more strata than ``n``, every stratum gets
        one score and the sample has one id per stratum; with ``n`` at least the window's
        size, every id is taken.
    seed : int
        Seed of the draw (required: the same ids, strata, ``n`` and seed give the same
        sample, whatever the order of the input).

    Returns
    -------
    StratifiedSample
        The sampled ids (grouped by stratum, strata and ids in sorted order), the stratum of
        each, the allocation per stratum (window size, sample size), ``n_requested``, seed.

    Notes
    -----
    Allocation: :func:`proportional_allocation`. Within stratum h, ``n_h`` of its ``N_h``
    ids are drawn without replacement (simple random sampling), so an id's inclusion
    probability is ``n_h / N_h``; :func:`window_sample_ppi` weights the labels accordingly.
    Input order does not matter: strata and the ids inside each are sorted (by value, or by
    ``repr`` when values of different types cannot be compared) before drawing.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    ids = list(score_ids)
    keys = list(strata)
    if len(ids) != len(keys):
        raise ValueError(f"{len(ids)} score ids but {len(keys)} strata")
    if len(set(ids)) != len(ids):
        raise ValueError("score ids must be distinct")
    groups: dict[Hashable, list[Hashable]] = {}
    for score_id, key in zip(ids, keys, strict=True):
        groups.setdefault(key, []).append(score_id)
    order = _sorted(list(groups))
    sizes = np.array([len(groups[k]) for k in order], dtype=np.int64)
    alloc = proportional_allocation(sizes, int(n)) if len(order) else sizes
    rng = np.random.default_rng(int(seed))
    out_ids: list[Hashable] = []
    out_strata: list[Hashable] = []
    allocation: dict[Hashable, tuple[int, int]] = {}
    for key, size, take in zip(order, sizes, alloc, strict=True):
        members = _sorted(groups[key])
        pick = np.sort(rng.choice(int(size), size=int(take), replace=False))
        out_ids.extend(members[i] for i in pick)
        out_strata.extend([key] * int(take))
        allocation[key] = (int(size), int(take))
    return StratifiedSample(tuple(out_ids), tuple(out_strata), allocation, int(n), int(seed))
