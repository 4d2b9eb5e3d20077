"""The remedy: what an incident's affected scores should have been, with honest intervals.

``judgecal incidents correct|sample|labels``. One room per part:
:mod:`~judgecal.remedy.window` (the window, the pre-onset scores, the calibration pairs),
:mod:`~judgecal.remedy.correct` (raw, PPI++, shift-robust, window-sample figures side by side,
per dimension, segment and customer, with the agreement, representativeness and placebo
checks), :mod:`~judgecal.remedy.stored` (a new audited version per correction, linked to
the incident, exportable) and :mod:`~judgecal.remedy.sample` (the stratified window sample,
its annotation queue and the labels' import). The statistics are
:mod:`judgecal.stats.correction`. It sits in the layer of :mod:`judgecal.scores`, whose
window it reads.
"""

from judgecal.remedy.correct import CLUSTER_NOTE, SAMPLE_METHOD, correct_incident, targets
from judgecal.remedy.sample import draw_sample, import_labels, window_labels
from judgecal.remedy.stored import (
    export_correction,
    export_format,
    export_rows,
    get_correction,
    headline,
    save_correction,
)

__all__ = [
    "CLUSTER_NOTE",
    "SAMPLE_METHOD",
    "correct_incident",
    "draw_sample",
    "export_correction",
    "export_format",
    "export_rows",
    "get_correction",
    "headline",
    "import_labels",
    "save_correction",
    "targets",
    "window_labels",
]
