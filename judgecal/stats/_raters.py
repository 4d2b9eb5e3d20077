"""Krippendorff's α among human raters: the agreement humans reach among themselves."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from judgecal.scales import Scale

__all__ = ["alpha_among_raters"]


def alpha_among_raters(scale: Scale, matrix: np.ndarray) -> dict[str, Any]:
    """Krippendorff's α among the raters of ``matrix`` (items × raters, NaN missing).

    Computed with the ``krippendorff`` package at the scale's level of measurement
    (nominal for binary, nominal and pairwise scales; ordinal; interval), passing the
    scale's full value domain for nominal and ordinal scales.

    Returns ``{"value", "level", "pairable_items", "reason"}``. ``value`` is None, with
    the ``reason`` in words, when α is undefined: fewer than two raters, no item with
    two or more labels, or no variation at all among the labels.
    """
    import warnings

    import krippendorff
    import numpy as np

    result: dict[str, Any] = {"value": None, "level": scale.level, "pairable_items": 0,
                              "reason": None}
    if matrix.shape[1] < 2:
        result["reason"] = (
            "only one rater: there is no human-human agreement to measure"
            if matrix.shape[1] == 1 else "no labels"
        )
        return result
    per_item = np.sum(~np.isnan(matrix), axis=1)
    pairable = matrix[per_item >= 2]
    result["pairable_items"] = int(pairable.shape[0])
    if pairable.shape[0] == 0:
        result["reason"] = "no item has labels from two or more raters"
        return result
    values = np.unique(pairable[~np.isnan(pairable)])
    if values.size < 2:
        result["reason"] = (
            f"every label is {scale.name(float(values[0]))!r}: with no variation α is undefined"
        )
        return result
    kwargs: dict[str, Any] = {"level_of_measurement": scale.level}
    domain = scale.domain()
    if domain is not None and scale.level != "interval":
        kwargs["value_domain"] = domain
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            value = float(krippendorff.alpha(reliability_data=matrix.T, **kwargs))
    except (ValueError, ZeroDivisionError) as exc:
        result["reason"] = f"krippendorff could not compute α: {exc}"
        return result
    if not math.isfinite(value):
        result["reason"] = "α is undefined for these labels (zero expected disagreement)"
        return result
    result["value"] = value
    return result
