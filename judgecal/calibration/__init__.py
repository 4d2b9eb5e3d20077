"""Calibration sets: human-labelled items, loaded, validated strictly and hashed.

A calibration set is a directory with a ``set.yaml`` that names an items file and a
long-form labels file (``item_id, rater_id, dimension, label``) and declares each
dimension with its :class:`~judgecal.scales.Scale`. :func:`load_set` reads all of it,
collects *every* problem it finds (file, line, field, message) and raises them together
as one :class:`~judgecal.errors.CalibrationSetError`; nothing half-valid comes back.

The **version** of a set is a content hash of what a run is measured against — the
dimensions (name and scale), every item field, and every label as its code. It does not
depend on the file format (CSV, JSONL or Parquet), on the order of the label rows, or on
documentation (set name, descriptions, README). Item order does count: it fixes the row
order of the human matrix and thus which items a seeded bootstrap draws.

numpy and krippendorff are imported inside the functions that need them, so that
``import judgecal.calibration`` stays cheap for the CLI.

One room per part: :mod:`~judgecal.calibration.model`, :mod:`~judgecal.calibration.load`,
:mod:`~judgecal.calibration.version`, :mod:`~judgecal.calibration.summary` and
:mod:`~judgecal.calibration.stored` (a set rebuilt from the store's snapshot).
"""

from judgecal.calibration.load import load_set
from judgecal.calibration.model import (
    LABEL_COLUMNS,
    MAX_KEY_LENGTH,
    MAX_PROBLEMS_PER_FILE,
    SET_FILE,
    CalibrationSet,
    Item,
    SetSpec,
)
from judgecal.calibration.stored import SetView, StoredItem, StoredSet
from judgecal.calibration.summary import format_summary, human_alpha, summarize
from judgecal.calibration.version import set_version

__all__ = [
    "LABEL_COLUMNS",
    "MAX_KEY_LENGTH",
    "MAX_PROBLEMS_PER_FILE",
    "SET_FILE",
    "CalibrationSet",
    "Item",
    "SetSpec",
    "SetView",
    "StoredItem",
    "StoredSet",
    "format_summary",
    "human_alpha",
    "load_set",
    "set_version",
    "summarize",
]
