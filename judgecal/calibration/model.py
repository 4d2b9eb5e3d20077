"""A calibration set in memory: its ``set.yaml`` spec, its items, its human labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from judgecal.scales import Dimension

if TYPE_CHECKING:
    import numpy

__all__ = [
    "LABEL_COLUMNS",
    "MAX_KEY_LENGTH",
    "MAX_PROBLEMS_PER_FILE",
    "SET_FILE",
    "CalibrationSet",
    "Item",
    "SetSpec",
    "natural_key",
]


LABEL_COLUMNS = ("item_id", "rater_id", "dimension", "label")
"""Columns of a long-form labels file (further columns are ignored)."""

SET_FILE = "set.yaml"
MAX_PROBLEMS_PER_FILE = 100
"""Problems listed per file; the rest are counted in one closing problem."""

_NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"

MAX_KEY_LENGTH = 200
"""Longest item id, rater id or dimension name: what the store's key columns hold
(PostgreSQL would refuse a longer one half-way through a run)."""


class SetSpec(BaseModel):
    """The contents of ``set.yaml`` (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN, max_length=200)
    """Short identifier of the set (letters, digits, ``_ . -``)."""
    description: str = ""
    """What the set is, in a sentence or two."""
    license: str | None = None
    """License of the data (SPDX identifier), shown by ``judgecal validate``."""
    items: str = Field(min_length=1)
    """Items file, relative to the set directory: CSV, JSONL or Parquet."""
    labels: str = Field(min_length=1)
    """Long-form labels file (item_id, rater_id, dimension, label), relative to the directory."""
    id_field: str = Field(default="id", min_length=1)
    """Column of the items file holding the item id."""
    segments: list[str] = Field(default_factory=list)
    """Item fields whose values split the set into segments (reported separately)."""
    dimensions: list[Dimension] = Field(min_length=1)
    """The quality axes the items are labelled on, each with its scale."""


@dataclass(frozen=True)
class Item:
    """One calibration item."""

    id: str
    fields: dict[str, Any]
    """Every field of the item's row (the id field included), JSON-safe: values as read,
    except that NaN becomes None and dates, decimals and bytes become text."""
    segments: dict[str, str]
    """Values of the set's segment fields, as text."""


@dataclass
class CalibrationSet:
    """A validated calibration set (build it with :func:`load_set`)."""

    name: str
    path: Path
    """The set's directory."""
    description: str
    version: str
    """``"sha256:<hex>"`` content hash (see the module docstring)."""
    dimensions: dict[str, Dimension]
    """In declared order."""
    items: list[Item]
    """In file order."""
    segment_fields: list[str]
    labels: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict, repr=False)
    """dimension -> item id -> rater id -> label code."""
    license: str | None = None

    def item_index(self) -> dict[str, int]:
        """Item id -> row position (in :attr:`items` order)."""
        return {item.id: i for i, item in enumerate(self.items)}

    def raters(self, dimension: str) -> list[str]:
        """Distinct raters who labelled ``dimension``, in natural order (rater2 < rater10)."""
        by_item = self._dimension_labels(dimension)
        names = {rater for labels in by_item.values() for rater in labels}
        return sorted(names, key=natural_key)

    def human_matrix(self, dimension: str) -> numpy.ndarray:
        """Label codes as an array of shape (items, raters); NaN where a rater gave no label.

        Rows follow :attr:`items`, columns follow :meth:`raters`.
        """
        import numpy as np

        by_item = self._dimension_labels(dimension)
        raters = self.raters(dimension)
        column = {rater: j for j, rater in enumerate(raters)}
        matrix = np.full((len(self.items), len(raters)), np.nan, dtype=float)
        for i, item in enumerate(self.items):
            for rater, code in by_item.get(item.id, {}).items():
                matrix[i, column[rater]] = code
        return matrix

    def labels_for(self, item_id: str, dimension: str) -> dict[str, float]:
        """Rater -> label code for one item on one dimension (empty if unlabelled).

        Raises KeyError for an unknown dimension or item id.
        """
        by_item = self._dimension_labels(dimension)
        if item_id not in by_item and all(item.id != item_id for item in self.items):
            raise KeyError(f"no item {item_id!r} in calibration set {self.name!r}")
        return dict(by_item.get(item_id, {}))

    def _dimension_labels(self, dimension: str) -> dict[str, dict[str, float]]:
        if dimension not in self.dimensions:
            known = ", ".join(self.dimensions)
            raise KeyError(f"calibration set {self.name!r} has no dimension {dimension!r} "
                           f"(it has: {known})")
        return self.labels.get(dimension, {})


def natural_key(text: str) -> tuple[tuple[Any, ...], str]:
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), text
