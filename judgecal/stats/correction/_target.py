"""What is estimated on each scale: the *target value* of a score, and its categories.

=========  ====================================================================
binary     the rate of ``positive`` (default code 1): target value 1[code == positive]
nominal    the rate of ``positive`` (required): target value 1[code == positive]
pairwise   the preference rate for the first response, ties counting half:
           code 1 → 1, code 0 (tie) → 0.5, code 2 → 0
ordinal    the mean score (codes as numbers; a judge score between codes, e.g. a mean of
           sampled answers, counts as it is)
interval   the mean score
=========  ====================================================================

The estimators (raw, PPI++) average target values. Confusion-matrix inversion works on the
categories and then reports ``Σ_k π_k · v_k`` with ``v_k`` the target value of category k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judgecal.scales import PAIRWISE_FIRST, PAIRWISE_SECOND, PAIRWISE_TIE, Scale
from judgecal.stats._consensus import label_domain

CATEGORICAL_KINDS = ("binary", "nominal", "pairwise", "ordinal")
"""Scales on which confusion-matrix inversion applies."""


@dataclass(frozen=True)
class Target:
    """The quantity estimated on one scale (see the module docstring)."""

    scale: Scale
    description: str
    """E.g. ``"rate of code 1"``, ``"mean score"``."""
    human_codes: np.ndarray | None
    """Categories of a human label, sorted; None on an interval scale."""
    judge_codes: np.ndarray | None
    """Categories of a judge score, sorted (a pairwise judge may always say tie)."""
    positive: float | None
    """The code whose rate is estimated (binary and nominal), else None."""
    bounds: tuple[float, float] | None
    """Range of the target value, when the scale has one."""

    def values(self, codes: np.ndarray) -> np.ndarray:
        """Target value of each score (NaN stays NaN)."""
        codes = np.asarray(codes, dtype=np.float64)
        kind = self.scale.kind
        if kind in ("binary", "nominal"):
            out = (codes == self.positive).astype(np.float64)
        elif kind == "pairwise":
            out = np.select([codes == PAIRWISE_FIRST, codes == PAIRWISE_TIE,
                             codes == PAIRWISE_SECOND], [1.0, 0.5, 0.0], np.nan)
        else:
            return codes.copy()
        out[np.isnan(codes)] = np.nan
        return out

    def category_values(self, codes: np.ndarray) -> np.ndarray:
        """Target value of each category code (for ``Σ_k π_k v_k``)."""
        return self.values(np.asarray(codes, dtype=np.float64))


def target_for(scale: Scale, positive: float | None = None) -> Target:
    """The :class:`Target` of ``scale``.

    Parameters
    ----------
    scale : Scale
        The dimension's scale.
    positive : float, optional
        Binary: the code whose rate is estimated (default 1). Nominal: required, the
        category code whose rate is estimated. Not allowed on other scales.

    Raises
    ------
    ValueError
        If ``positive`` is missing on a nominal scale, not a code of the scale, or given on
        an ordinal, interval or pairwise scale.
    """
    kind = scale.kind
    human = label_domain(scale)
    judge = label_domain(scale, judge=True)
    if kind in ("binary", "nominal"):
        if positive is None:
            if kind == "nominal":
                raise ValueError("a nominal scale needs 'positive': the category whose rate "
                                 "is estimated")
            positive = 1.0
        assert judge is not None
        if float(positive) not in set(judge.tolist()):
            raise ValueError(f"positive={positive!r} is not a code of the {scale.describe()} "
                             "scale")
        return Target(scale, f"rate of code {float(positive):g}", human, judge,
                      float(positive), (0.0, 1.0))
    if positive is not None:
        raise ValueError(f"'positive' applies to binary and nominal scales, not {kind}")
    if kind == "pairwise":
        return Target(scale, "preference rate for the first response (ties count half)",
                      human, judge, None, (0.0, 1.0))
    if kind == "ordinal":
        assert human is not None
        return Target(scale, "mean score", human, judge, None,
                      (float(human[0]), float(human[-1])))
    bounds = None
    if scale.min is not None and scale.max is not None:
        bounds = (float(scale.min), float(scale.max))
    return Target(scale, "mean score", None, None, None, bounds)


def check_scores(target: Target, scores: object, what: str, *, human: bool = False) -> np.ndarray:
    """Validate a 1-D array of codes (NaN = missing) and return it as floats.

    Ordinal judge scores and human consensus values may lie between codes; categorical
    scores must be codes of the scale (``human=True``: the human codes, so a tie is refused
    on a pairwise scale without ties, while a pairwise judge may always answer tie).
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got {arr.ndim}-D")
    if np.isinf(arr).any():
        raise ValueError(f"{what} contain an infinite value")
    codes = target.human_codes if human else target.judge_codes
    if codes is None:
        return arr
    values = arr[~np.isnan(arr)]
    if target.scale.kind == "ordinal":
        bad = values[(values < codes[0]) | (values > codes[-1])]
    else:
        bad = values[~np.isin(values, codes)]
    if bad.size:
        raise ValueError(f"{what}: value {bad[0]:g} is not a code of the "
                         f"{target.scale.describe()} scale")
    return arr
