"""Reference implementations that call the libraries directly (tests and benchmarks only).

These are the *definitions* the fast path must reproduce: ``krippendorff.alpha``,
``sklearn.metrics.cohen_kappa_score`` and ``scipy.stats`` correlations, called once on
explicit data. They are slow on purpose (the naive approach in ``benchmarks/bench_stats.py``
calls them once per bootstrap resample). Not part of the public API.
"""

from __future__ import annotations

import warnings

import numpy as np

from judgecal.scales import Scale
from judgecal.stats._consensus import label_domain


def _kappa(y1: np.ndarray, y2: np.ndarray, labels: np.ndarray, weights: str | None) -> float:
    from sklearn.metrics import cohen_kappa_score

    # scikit-learn rejects non-integer float labels, so pass positions on the label grid;
    # its weights are computed on those positions anyway.
    if y1.size == 0:
        return float("nan")
    i1 = np.searchsorted(labels, y1)
    i2 = np.searchsorted(labels, y2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(
            i1, i2, labels=np.arange(labels.size), weights=weights))


def reference_judge_metrics(scale: Scale, cons: np.ndarray, judge: np.ndarray) -> dict[str, float]:
    """Every ``judge_agreement`` metric computed with the reference libraries.

    ``cons`` and ``judge`` are the consensus and the judge's scores on the items both define.
    Degenerate cases give NaN (the libraries' own convention).
    """
    import krippendorff
    from scipy import stats

    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if scale.kind == "interval":
            out["alpha"] = float(krippendorff.alpha(
                np.vstack([cons, judge]), level_of_measurement="interval"))
        else:
            dom = label_domain(scale, judge=True)
            assert dom is not None
            codes = judge
            labels = dom
            if scale.kind == "ordinal":
                codes = np.clip(np.floor(judge + 0.5), dom[0], dom[-1])
                labels = np.union1d(dom, np.unique(cons))
            out["alpha"] = float(krippendorff.alpha(
                np.vstack([cons, codes]), level_of_measurement=scale.level,
                value_domain=labels))
            exact = float(np.mean(cons == codes))
            if scale.kind == "ordinal":
                # Half-step medians: an evenly spaced grid keeps sklearn's index weights
                # proportional to the value distances.
                grid = np.arange(dom[0], dom[-1] + 0.25, 0.5)
                if not np.isin(labels, grid).all():
                    grid = labels
                out["kappa"] = _kappa(cons, codes, grid, "quadratic")
                out["kappa_linear"] = _kappa(cons, codes, grid, "linear")
                out["exact_agreement"] = exact
                out["within_one"] = float(np.mean(np.abs(cons - codes) <= 1.0))
            else:
                kappa = _kappa(cons, codes, dom, None)
                out["kappa"] = kappa
                out["accuracy" if scale.kind == "pairwise" else "exact_agreement"] = exact
            if scale.kind == "binary":
                out["tpr"] = float(np.mean(codes[cons == 1] == 1)) if (cons == 1).any() else np.nan
                out["tnr"] = float(np.mean(codes[cons == 0] == 0)) if (cons == 0).any() else np.nan
            if scale.kind == "pairwise":
                keep = (cons != 0) & (codes != 0)
                out["accuracy_no_ties"] = (
                    float(np.mean(cons[keep] == codes[keep])) if keep.any() else np.nan)
                out["kappa_no_ties"] = _kappa(cons[keep], codes[keep], dom[1:], None)
        if scale.kind in ("ordinal", "interval"):
            out["spearman"] = float(stats.spearmanr(cons, judge).statistic)
            out["kendall"] = float(stats.kendalltau(cons, judge).statistic)
            out["mean_bias"] = float(np.mean(judge - cons))
            out["mae"] = float(np.mean(np.abs(judge - cons)))
            if scale.kind == "interval":
                out["pearson"] = float(stats.pearsonr(cons, judge).statistic)
    return out


def reference_alpha(scale: Scale, ratings: np.ndarray) -> float:
    """``krippendorff.alpha`` among raters: ``ratings`` is (items × raters), NaN missing."""
    import krippendorff

    dom = label_domain(scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(krippendorff.alpha(
                ratings.T, level_of_measurement=scale.level,
                value_domain=None if dom is None else dom))
        except ValueError:  # e.g. no item with two ratings: the library refuses
            return float("nan")
