"""Scores that come in clusters (one conversation or trace scored several times).

Scores of one conversation are not independent: a window of 1,000 scores from 100
conversations carries less information than 1,000 unrelated scores. The window terms of the
remedy's intervals are therefore computed over clusters when cluster ids are given:

* a mean's variance is the cluster-robust (CR1) one,
  ``G/(G−1) · Σ_g e_g² / N²`` with ``e_g = Σ_{j∈g} (x_j − x̄)`` the residual total of
  cluster g (Cameron & Miller 2015, "A Practitioner's Guide to Cluster-Robust Inference",
  J. Human Resources 50(2)); with one score per cluster it is the i.i.d. variance with
  divisor N − 1;
* a bootstrap resamples whole clusters (drawn as multinomial counts over the distinct
  per-cluster category counts, which is the same distribution as drawing G clusters with
  replacement).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["cluster_bootstrap_shares", "cluster_codes", "cluster_variance"]


def cluster_codes(clusters: Sequence[Hashable] | np.ndarray, size: int,
                  keep: np.ndarray) -> np.ndarray:
    """Cluster number (0..G−1) of each kept score. ``clusters`` has one id per score
    (``size`` of them); ``keep`` masks the scores used. Raises ValueError on a length
    mismatch."""
    ids = list(clusters)
    if len(ids) != size:
        raise ValueError(f"clusters has {len(ids)} ids for {size} window scores")
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(c, len(index)) for c in ids), dtype=np.int64,
                        count=len(ids))[keep]
    _, compact = np.unique(codes, return_inverse=True)
    return np.asarray(compact, dtype=np.int64).reshape(-1)


def cluster_variance(x: np.ndarray, codes: np.ndarray) -> tuple[float, int]:
    """(CR1 variance of the mean of ``x``, number of clusters). Needs two clusters or
    more; with fewer the variance is NaN."""
    g = int(codes.max()) + 1 if codes.size else 0
    if g < 2:
        return float("nan"), g
    totals = np.bincount(codes, weights=x - x.mean(), minlength=g)
    return g / (g - 1) * float((totals ** 2).sum()) / x.size ** 2, g


def cluster_bootstrap_shares(categories: np.ndarray, n_categories: int, codes: np.ndarray,
                             n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_categories)`` category shares of the window, each replicate drawn by
    resampling whole clusters with replacement. ``categories`` holds each score's
    category index (0..n_categories−1)."""
    g = int(codes.max()) + 1
    per_cluster = np.zeros((g, n_categories))
    np.add.at(per_cluster, (codes, categories), 1.0)
    types, type_counts = np.unique(per_cluster, axis=0, return_counts=True)
    out = np.empty((n_boot, n_categories))
    step = max(1, min(n_boot, 2_000_000 // max(types.shape[0], 1)))
    for start in range(0, n_boot, step):  # bounded memory for windows of many clusters
        stop = min(n_boot, start + step)
        draws = rng.multinomial(g, type_counts / g, size=stop - start).astype(np.float64)
        counts = draws @ types
        out[start:stop] = counts / counts.sum(axis=1, keepdims=True)
    return out
