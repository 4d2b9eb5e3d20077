"""A calibration set as the store keeps it: rebuilt from the snapshot of one version, with the
same view (items, raters, human matrix) as a set loaded from its files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from judgecal.scales import Dimension

if TYPE_CHECKING:
    import numpy as np

    from judgecal.store import Store

__all__ = ["SetView", "StoredItem", "StoredSet"]


class _ItemLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def segments(self) -> dict[str, str]: ...


class SetView(Protocol):
    """What the report needs of a calibration set (a loaded set or a stored snapshot)."""

    name: str
    version: str
    dimensions: dict[str, Dimension]

    @property
    def items(self) -> list[Any]: ...
    def raters(self, dimension: str) -> list[str]: ...
    def human_matrix(self, dimension: str) -> np.ndarray: ...


@dataclass(frozen=True)
class StoredItem:
    id: str
    fields: dict[str, Any]
    segments: dict[str, str]


class StoredSet:
    """A calibration set rebuilt from the store's snapshot of one version."""

    def __init__(self, snapshot: dict[str, Any]):
        head = snapshot["head"]
        manifest = head["manifest"]
        self.name: str = head["name"]
        self.version: str = head["version"]
        self.description: str = manifest.get("description", "")
        self.segment_fields: list[str] = list(manifest.get("segment_fields", []))
        self.dimensions: dict[str, Dimension] = {
            d["name"]: Dimension.model_validate(d) for d in manifest["dimensions"]
        }
        self._items = [
            StoredItem(id=r["item_id"], fields=r["fields"], segments=r["segments"])
            for r in snapshot["items"]
        ]
        self._labels: dict[str, dict[tuple[str, str], float]] = {}
        for row in snapshot["labels"]:
            self._labels.setdefault(row["dimension"], {})[(row["item_id"], row["rater_id"])] = row[
                "code"
            ]

    @classmethod
    def load(cls, store: Store, version: str) -> StoredSet:
        return cls(store.set_snapshot(version))

    @property
    def items(self) -> list[StoredItem]:
        return self._items

    def raters(self, dimension: str) -> list[str]:
        return sorted({r for (_, r) in self._labels.get(dimension, {})})

    def human_matrix(self, dimension: str) -> np.ndarray:
        import numpy as np

        raters = self.raters(dimension)
        col = {r: j for j, r in enumerate(raters)}
        row = {item.id: i for i, item in enumerate(self._items)}
        out = np.full((len(self._items), len(raters)), np.nan)
        for (item_id, rater), code in self._labels.get(dimension, {}).items():
            out[row[item_id], col[rater]] = code
        return out
