"""Benchmark of the agreement statistics engine against the naive approach.

Workload: 10,000 items x 6 dimensions (two ordinal 1-5, binary, nominal with 4 categories,
pairwise with ties, interval 0-10 with a mean consensus) x 3 human raters, two judge runs
(a baseline and a drifted candidate). For every dimension: ``paired_difference`` with all of
the scale's metrics and 2,000 paired bootstrap resamples (both runs' metrics and the paired
differences), then ``human_ceiling`` with 2,000 resamples (timed separately).

The naive approach is a loop over resamples that draws the item indices, indexes the data and
calls the reference libraries (krippendorff, scikit-learn, scipy) for both runs on every
resample. It is timed on a subset of resamples and extrapolated to the full count (said so in
the output). Point estimates of the fast path are compared with the libraries on the full data.

Usage: ``python benchmarks/bench_stats.py [--quick]`` (``--quick``: 2,000 items, 500 resamples).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judgecal.scales import Scale
from judgecal.stats import consensus, human_ceiling, paired_difference
from tests.support.reference import reference_judge_metrics

TARGET_RATIO = 50.0


@dataclass
class Dimension:
    name: str
    scale: Scale
    human: np.ndarray
    judge_a: np.ndarray
    judge_b: np.ndarray


def _simulate(n: int, seed: int) -> list[Dimension]:
    rng = np.random.default_rng(seed)
    dims: list[Dimension] = []

    def latent() -> tuple[np.ndarray, np.ndarray]:
        truth = rng.normal(size=n)
        raters = truth[:, None] + rng.normal(scale=0.8, size=(n, 3))
        judge = truth + rng.normal(scale=0.6, size=n)
        return raters, judge

    def drift(a: np.ndarray, codes: np.ndarray, share: float = 0.05) -> np.ndarray:
        b = a.copy()
        pick = rng.random(n) < share
        b[pick] = rng.choice(codes, size=int(pick.sum()))
        return b

    def unscored(a: np.ndarray, share: float = 0.01) -> np.ndarray:
        a = a.copy()
        a[rng.random(n) < share] = np.nan
        return a

    cuts5 = np.array([-1.2, -0.4, 0.4, 1.2])
    for name in ("factual_consistency", "fluency"):
        raters, judge = latent()
        human = np.digitize(raters, cuts5) + 1.0
        a = np.digitize(judge, cuts5) + 1.0
        dims.append(Dimension(name, Scale(kind="ordinal", min=1, max=5), human,
                              unscored(a), unscored(drift(a, np.arange(1.0, 6.0)))))
    raters, judge = latent()
    a = (judge > 0.5).astype(float)
    dims.append(Dimension("safety", Scale(kind="binary"), (raters > 0.5).astype(float),
                          unscored(a), unscored(drift(a, np.array([0.0, 1.0])))))
    raters, judge = latent()
    cuts4 = np.array([-0.7, 0.0, 0.7])
    a = np.digitize(judge, cuts4).astype(float)
    dims.append(Dimension("tone", Scale(kind="nominal", categories=["a", "b", "c", "d"]),
                          np.digitize(raters, cuts4).astype(float), unscored(a),
                          unscored(drift(a, np.arange(4.0)))))
    raters, judge = latent()
    cuts3 = np.array([-0.25, 0.25])
    to_pref = np.array([2.0, 0.0, 1.0])
    a = to_pref[np.digitize(judge, cuts3)]
    dims.append(Dimension("preference", Scale(kind="pairwise"),
                          to_pref[np.digitize(raters, cuts3)], unscored(a),
                          unscored(drift(a, np.array([0.0, 1.0, 2.0])))))
    raters, judge = latent()
    human = np.clip(np.round(5 + 2 * raters), 0, 10)
    a = np.clip(np.round(5 + 2 * judge), 0, 10)
    dims.append(Dimension("formatting", Scale(kind="interval", min=0, max=10), human,
                          unscored(a), unscored(drift(a, np.arange(0.0, 11.0)))))
    return dims


def _naive_replicates(dim: Dimension, n_boot: int, seed: int) -> None:
    cons = consensus(dim.scale, dim.human)
    common = ~np.isnan(cons) & ~np.isnan(dim.judge_a) & ~np.isnan(dim.judge_b)
    c, a, b = cons[common], dim.judge_a[common], dim.judge_b[common]
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        idx = rng.integers(0, c.size, size=c.size)
        reference_judge_metrics(dim.scale, c[idx], a[idx])
        reference_judge_metrics(dim.scale, c[idx], b[idx])


def _max_point_difference(dim: Dimension, fast: dict[str, dict[str, float | None]]) -> float:
    cons = consensus(dim.scale, dim.human)
    common = ~np.isnan(cons) & ~np.isnan(dim.judge_a) & ~np.isnan(dim.judge_b)
    worst = 0.0
    for run, judge in (("a", dim.judge_a), ("b", dim.judge_b)):
        ref = reference_judge_metrics(dim.scale, cons[common], judge[common])
        for key, value in ref.items():
            got = fast[run][key]
            if got is None or not np.isfinite(value):
                worst = max(worst, 0.0 if (got is None) == (not np.isfinite(value)) else np.inf)
            else:
                worst = max(worst, abs(got - value))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 items, 500 resamples")
    parser.add_argument("--naive-resamples", type=int, default=None,
                        help="naive resamples actually timed per dimension (extrapolated)")
    args = parser.parse_args(argv)
    n_items, n_boot = (2_000, 500) if args.quick else (10_000, 2_000)
    naive_timed = args.naive_resamples or (5 if args.quick else 10)
    dims = _simulate(n_items, seed=7)
    print(f"judgecal.stats benchmark: {n_items:,} items x {len(dims)} dimensions x 3 raters, "
          f"{n_boot:,} paired bootstrap resamples, all metrics")

    for dim in dims:  # warm-up: lazy imports and first-call costs are not timed
        paired_difference(dim.scale, dim.human[:50], dim.judge_a[:50], dim.judge_b[:50],
                          n_boot=5, seed=0)
    # Fast path first, so the peak RSS measured after it is the fast path's own.
    fast_times: list[float] = []
    diffs: list[float] = []
    n_metrics: list[int] = []
    points: list[dict[str, dict[str, float | None]]] = []
    for dim in dims:
        start = time.perf_counter()
        comp = paired_difference(dim.scale, dim.human, dim.judge_a, dim.judge_b,
                                 n_boot=n_boot, seed=1)
        fast_times.append(time.perf_counter() - start)
        n_metrics.append(len(comp.metrics))
        points.append({"a": {k: v.value for k, v in comp.a.items()},
                       "b": {k: v.value for k, v in comp.b.items()}})
    start = time.perf_counter()
    for dim in dims:
        human_ceiling(dim.scale, dim.human, n_boot=n_boot, seed=1)
    ceiling = time.perf_counter() - start
    fast_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    # Reference point estimates (krippendorff on ~130 interval values is memory hungry).
    diffs = [_max_point_difference(dim, pts) for dim, pts in zip(dims, points, strict=True)]
    _naive_replicates(dims[0], 1, seed=0)  # warm-up: library imports are not timed
    naive_times: list[float] = []
    for dim in dims:
        start = time.perf_counter()
        _naive_replicates(dim, naive_timed, seed=1)
        naive_times.append((time.perf_counter() - start) / naive_timed * n_boot)
    naive_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    print(f"{'dimension':<20}{'scale':<10}{'metrics':>8}{'fast s':>9}{'naive s*':>10}"
          f"{'ratio':>8}{'max |Δpoint|':>14}")
    for dim, fast, naive, k, diff in zip(dims, fast_times, naive_times, n_metrics, diffs,
                                         strict=True):
        print(f"{dim.name:<20}{dim.scale.kind:<10}{k:>8}{fast:>9.2f}{naive:>10.1f}"
              f"{naive / fast:>7.0f}x{diff:>14.1e}")
    worst_diff = max(diffs)
    fast_total, naive_total = sum(fast_times), sum(naive_times)
    categorical = [i for i, d in enumerate(dims) if d.scale.kind != "interval"]
    ratio = naive_total / fast_total
    ratio_no_interval = (sum(naive_times[i] for i in categorical)
                         / sum(fast_times[i] for i in categorical))
    print(f"* naive time extrapolated from {naive_timed} timed resamples per dimension "
          f"(both runs per resample) to {n_boot:,}; library import excluded")
    print(f"human ceiling (alpha among raters + leave-one-out, all dimensions, {n_boot:,} "
          f"resamples, fast path only): {ceiling:.2f} s")
    print(f"point estimates vs krippendorff/scikit-learn/scipy: max |difference| "
          f"{worst_diff:.1e} ({'identical to 1e-9' if worst_diff <= 1e-9 else 'MISMATCH'})")
    print(f"peak RSS: fast path {fast_peak_mb:.0f} MB; after the naive loop {naive_peak_mb:.0f} MB")
    verdict = "meets" if min(ratio, ratio_no_interval) >= TARGET_RATIO else "MISSES"
    print(f"SUMMARY stats: fast {fast_total:.2f} s vs naive {naive_total:.0f} s (extrapolated): "
          f"{ratio:.0f}x faster ({ratio_no_interval:.0f}x without the interval dimension), "
          f"{verdict} the {TARGET_RATIO:.0f}x target; peak RSS {fast_peak_mb:.0f} MB")
    return 0 if worst_diff <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
