"""Agreement statistics: the judge against the human consensus, and the human ceiling.

Everything takes float codes (see :mod:`judgecal.scales`) with NaN for a missing rating or an
unscored item, and returns :class:`MetricValue` objects (value, bootstrap interval, items used,
or a reason when undefined). Point estimates equal the reference libraries (krippendorff,
scikit-learn, scipy); bootstrap replicates use a vectorised weighted fast path.

Public API
----------
``consensus``                 human consensus per item (majority / median / mean)
``judge_agreement``           judge vs consensus, every metric with an interval
``confusion``                 confusion matrix (rows = human consensus, columns = judge)
``human_ceiling``             alpha among humans + each rater vs the others' consensus
``paired_difference``         two runs on the same items, paired intervals on b − a
``minimum_detectable_change`` smallest change a drift check on this set would detect
``position_consistency``      same pairwise verdict with the responses swapped
``by_segment``                every metric per segment value (or ``{"too_small": n}``)
``METRICS`` / ``metrics_for`` the metric registry

This package imports numpy; scipy is imported only on slow paths and the reference
libraries only in tests and benchmarks. ``judgecal`` itself never imports it.
"""

from judgecal.stats._agreement import (
    confusion,
    judge_agreement,
    minimum_detectable_change,
    paired_difference,
    position_consistency,
)
from judgecal.stats._ceiling import human_ceiling
from judgecal.stats._consensus import ConsensusRule, consensus, default_rule
from judgecal.stats._registry import METRICS, PRIMARY_METRIC, MetricInfo, metrics_for
from judgecal.stats._result import MetricValue, PairedComparison
from judgecal.stats._segments import SegmentResult, by_segment

__all__ = [
    "METRICS",
    "PRIMARY_METRIC",
    "ConsensusRule",
    "MetricInfo",
    "MetricValue",
    "PairedComparison",
    "SegmentResult",
    "by_segment",
    "confusion",
    "consensus",
    "default_rule",
    "human_ceiling",
    "judge_agreement",
    "metrics_for",
    "minimum_detectable_change",
    "paired_difference",
    "position_consistency",
]
