"""Agreement statistics: the judge against the human consensus, and the human ceiling.

Everything takes float codes (see :mod:`judgecal.scales`) with NaN for a missing rating or an
unscored item, and returns :class:`MetricValue` objects (value, bootstrap interval, items used,
or a reason when undefined). Point estimates equal the reference libraries (krippendorff,
scikit-learn, scipy) to 1e-9; bootstrap replicates use a vectorised weighted fast path that is
checked against the libraries on explicitly resampled data in the tests.

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
``METRICS`` / ``metrics_for`` the metric registry (scales, description, direction)
``alarm_interval`` / ``holm`` the drift rule's paired interval at any level, Holm's step-down
``mcnemar_p`` / ``stuart_maxwell_p`` paired tests of marginal homogeneity

Where the rules are written down
--------------------------------
* consensus and tie rules: :mod:`judgecal.stats._consensus`;
* metric definitions per scale, ordinal rounding of non-integer judge scores, half-step
  medians and the undefined-metric sentinels: :mod:`judgecal.stats._agreement`;
* the human ceiling: :mod:`judgecal.stats._ceiling`;
* the fast path and its fallbacks: :mod:`judgecal.stats._kernels`.

Intervals
---------
Percentile bootstrap over items (``n_boot`` resamples, default 1000, ``confidence`` 0.95).
The same ``seed`` gives the same intervals (bit-identical on one machine; batching and BLAS
may change the last bits elsewhere). Simulated coverage of the 95 % interval at 300 items:
binary kappa 94.4 %, pairwise kappa 94.3 %, pairwise accuracy 94.6 % (2,000 sets each);
ordinal quadratic kappa 93.8 % and 95.6 % on two designs, Spearman 96.6 % (500 sets). The
percentile interval is close to nominal at these sizes; for kappa it covers slightly less,
as percentile intervals of a small-sample-biased ratio do (see tests/test_stats_coverage.py).

Caveats
-------
Memory is bounded: replicates are processed in batches of about two million numbers. When
both the consensus and the judge are continuous with many distinct values (their contingency
table would exceed 50,000 cells), Kendall's tau falls back to ``scipy.stats.kendalltau`` per
resample, which is slower. This package imports numpy (and scipy only on those paths); the
reference libraries are imported only by tests and benchmarks, and ``judgecal`` itself never
imports this package.
"""

from judgecal.stats._agreement import (
    confusion,
    judge_agreement,
    minimum_detectable_change,
    paired_difference,
    position_consistency,
)
from judgecal.stats._alarm import MIN_TAIL_RESAMPLES, DimensionData, alarm_interval, decide, holm
from judgecal.stats._ceiling import human_ceiling
from judgecal.stats._consensus import ConsensusRule, consensus, default_rule
from judgecal.stats._homogeneity import mcnemar_p, stuart_maxwell_p
from judgecal.stats._raters import alpha_among_raters
from judgecal.stats._registry import METRICS, PRIMARY_METRIC, MetricInfo, metrics_for
from judgecal.stats._result import MetricValue, PairedComparison
from judgecal.stats._segments import SegmentResult, by_segment

__all__ = [
    "METRICS",
    "MIN_TAIL_RESAMPLES",
    "PRIMARY_METRIC",
    "ConsensusRule",
    "DimensionData",
    "MetricInfo",
    "MetricValue",
    "PairedComparison",
    "SegmentResult",
    "alarm_interval",
    "alpha_among_raters",
    "by_segment",
    "confusion",
    "consensus",
    "decide",
    "default_rule",
    "holm",
    "human_ceiling",
    "judge_agreement",
    "mcnemar_p",
    "metrics_for",
    "minimum_detectable_change",
    "paired_difference",
    "position_consistency",
    "stuart_maxwell_p",
]
