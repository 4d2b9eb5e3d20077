"""The version of a set: a content hash of the dimensions, every item field and every label
as its code (not of the file format, the label order or the documentation).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from judgecal.scales import Dimension

if TYPE_CHECKING:
    from judgecal.calibration.model import Item

__all__ = [
    "set_version",
]


def _canonical_value(value: Any) -> Any:
    """Item field values as text, so CSV, JSONL and Parquet copies hash alike."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def set_version(
    dimensions: dict[str, Dimension],
    items: list[Item],
    labels: dict[str, dict[str, dict[str, float]]],
) -> str:
    payload = {
        "dimensions": [
            {"name": d.name, "scale": d.scale.model_dump(mode="json")}
            for d in dimensions.values()
        ],
        "items": [
            {key: _canonical_value(value) for key, value in item.fields.items()}
            for item in items
        ],
        "labels": sorted(
            [name, item_id, rater, code]
            for name, by_item in labels.items()
            for item_id, by_rater in by_item.items()
            for rater, code in by_rater.items()
        ),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
