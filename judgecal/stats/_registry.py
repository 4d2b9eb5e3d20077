"""Registry of every metric the engine reports: which scales it applies to, what it means, and
which direction is better. Docs and the CLI list metrics from here."""

from __future__ import annotations

from dataclasses import dataclass

from judgecal.scales import Scale, ScaleKind

_ALL: frozenset[ScaleKind] = frozenset({"binary", "nominal", "ordinal", "interval", "pairwise"})
_CATEGORICAL: frozenset[ScaleKind] = frozenset({"binary", "nominal", "pairwise"})


@dataclass(frozen=True)
class MetricInfo:
    """What one metric key means."""

    name: str
    """The key in the result dicts, e.g. ``"kappa"``."""
    scales: frozenset[ScaleKind]
    """Scale kinds the metric is reported for."""
    description: str
    """One sentence for reports and ``--help``."""
    higher_is_better: bool | None
    """True: larger is better agreement. None: closer to 0 is better (``mean_bias``).
    False: smaller is better (``mae``)."""
    ceiling: bool = True
    """Whether ``human_ceiling`` reports it too (raters against the others' consensus)."""


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo(
            "alpha", _ALL,
            "Krippendorff's alpha between the judge and the human consensus, at the scale's "
            "level of measurement (nominal, ordinal or interval).", True),
        MetricInfo(
            "kappa", frozenset({"binary", "nominal", "pairwise", "ordinal"}),
            "Cohen's kappa against the human consensus: unweighted for binary, nominal and "
            "pairwise scales, quadratic-weighted for ordinal scales.", True),
        MetricInfo(
            "kappa_linear", frozenset({"ordinal"}),
            "Cohen's kappa with linear weights against the human consensus.", True),
        MetricInfo(
            "exact_agreement", frozenset({"binary", "nominal", "ordinal"}),
            "Share of items where the judge's code equals the human consensus.", True),
        MetricInfo(
            "within_one", frozenset({"ordinal"}),
            "Share of items where the judge's code is at most one step from the consensus.",
            True),
        MetricInfo(
            "spearman", frozenset({"ordinal", "interval"}),
            "Spearman rank correlation between judge scores and the consensus.", True),
        MetricInfo(
            "kendall", frozenset({"ordinal", "interval"}),
            "Kendall's tau-b between judge scores and the consensus.", True),
        MetricInfo(
            "pearson", frozenset({"interval"}),
            "Pearson correlation between judge scores and the consensus.", True),
        MetricInfo(
            "mean_bias", frozenset({"ordinal", "interval"}),
            "Mean of judge − consensus: positive means a lenient judge, negative a harsh one.",
            None),
        MetricInfo(
            "mae", frozenset({"ordinal", "interval"}),
            "Mean absolute difference between judge score and consensus.", False),
        MetricInfo(
            "tpr", frozenset({"binary"}),
            "True-positive rate: share of consensus-positive items the judge calls positive.",
            True),
        MetricInfo(
            "tnr", frozenset({"binary"}),
            "True-negative rate: share of consensus-negative items the judge calls negative.",
            True),
        MetricInfo(
            "accuracy", frozenset({"pairwise"}),
            "Share of items where the judge's preference (1, 2 or tie) equals the human "
            "majority.", True),
        MetricInfo(
            "kappa_no_ties", frozenset({"pairwise"}),
            "Unweighted Cohen's kappa on the items where neither the human majority nor the "
            "judge is a tie.", True),
        MetricInfo(
            "accuracy_no_ties", frozenset({"pairwise"}),
            "Accuracy on the items where neither the human majority nor the judge is a tie.",
            True),
        MetricInfo(
            "alpha_humans", _ALL,
            "Krippendorff's alpha among all human raters (human ceiling only).", True,
            ceiling=False),
        MetricInfo(
            "position_consistency", frozenset({"pairwise"}),
            "Share of items with the same verdict when the two responses are shown in swapped "
            "order (from position_consistency()).", True, ceiling=False),
    ]
}
"""Every metric key, in report order."""

_JUDGE_KEYS: dict[ScaleKind, tuple[str, ...]] = {
    "binary": ("alpha", "kappa", "exact_agreement", "tpr", "tnr"),
    "nominal": ("alpha", "kappa", "exact_agreement"),
    "pairwise": ("alpha", "kappa", "accuracy", "kappa_no_ties", "accuracy_no_ties"),
    "ordinal": ("alpha", "kappa", "kappa_linear", "exact_agreement", "within_one",
                "spearman", "kendall", "mean_bias", "mae"),
    "interval": ("alpha", "spearman", "kendall", "pearson", "mean_bias", "mae"),
}

PRIMARY_METRIC: dict[ScaleKind, str] = {
    "binary": "kappa",
    "nominal": "kappa",
    "pairwise": "kappa",
    "ordinal": "kappa",
    "interval": "alpha",
}
"""The headline agreement metric per scale kind (the default for drift checks and the MDC)."""


def metrics_for(scale: Scale | ScaleKind) -> list[str]:
    """Metric keys that ``judge_agreement`` returns for a scale, in report order.

    ``human_ceiling`` returns ``"alpha_humans"`` followed by these keys.
    """
    kind = scale if isinstance(scale, str) else scale.kind
    return list(_JUDGE_KEYS[kind])
