"""Measurement scales of calibration dimensions.

A label (human) or a score (judge) is stored as a float *code*:

=========  ===========================================================
binary     0 or 1 (``categories`` may name them, e.g. ``[no, yes]``)
nominal    index into ``categories``
ordinal    the integer itself for a ``min``..``max`` range, or the index
           into ordered ``categories``
interval   the number itself (optionally bounded by ``min``/``max``)
pairwise   1 = first response better, 2 = second better, 0 = tie
=========  ===========================================================
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judgecal.messages import excerpt

__all__ = [
    "PAIRWISE_FIRST",
    "PAIRWISE_SECOND",
    "PAIRWISE_TIE",
    "Dimension",
    "Level",
    "Scale",
    "ScaleKind",
]

ScaleKind = Literal["binary", "nominal", "ordinal", "interval", "pairwise"]
Level = Literal["nominal", "ordinal", "interval"]

PAIRWISE_TIE = 0.0
PAIRWISE_FIRST = 1.0
PAIRWISE_SECOND = 2.0
_PAIRWISE_WORDS = {
    "0": PAIRWISE_TIE,
    "tie": PAIRWISE_TIE,
    "1": PAIRWISE_FIRST,
    "a": PAIRWISE_FIRST,
    "2": PAIRWISE_SECOND,
    "b": PAIRWISE_SECOND,
}


class Scale(BaseModel):
    """The scale of one dimension, as declared in a calibration set's ``set.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ScaleKind
    """binary, nominal, ordinal, interval or pairwise."""
    categories: list[str] | None = None
    """Names of the categories (nominal: required; binary/ordinal: optional)."""
    min: float | None = None
    """Lowest value of an ordinal range (required for ordinal without categories) or interval."""
    max: float | None = None
    """Highest value of an ordinal range or interval."""
    ties: bool = True
    """Pairwise only: whether a tie (0) is an allowed label."""

    @model_validator(mode="after")
    def _check(self) -> Scale:
        if self.kind == "nominal" and not self.categories:
            raise ValueError("a nominal scale needs 'categories'")
        if self.kind == "binary" and self.categories is not None and len(self.categories) != 2:
            raise ValueError("a binary scale has exactly two categories")
        if self.kind == "ordinal" and not self.categories:
            if self.min is None or self.max is None:
                raise ValueError("an ordinal scale needs 'min' and 'max' (or ordered 'categories')")
            if self.min != int(self.min) or self.max != int(self.max):
                raise ValueError("an ordinal range has integer 'min' and 'max'")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError("'min' must be below 'max'")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must be distinct")
        return self

    @property
    def level(self) -> Level:
        """Krippendorff level of measurement for this scale."""
        if self.kind == "ordinal":
            return "ordinal"
        if self.kind == "interval":
            return "interval"
        return "nominal"

    def domain(self) -> list[float] | None:
        """All possible codes, in order, or None for an interval scale."""
        if self.kind == "binary":
            return [0.0, 1.0]
        if self.kind == "pairwise":
            return (
                [PAIRWISE_TIE, PAIRWISE_FIRST, PAIRWISE_SECOND]
                if self.ties
                else [PAIRWISE_FIRST, PAIRWISE_SECOND]
            )
        if self.categories:
            return [float(i) for i in range(len(self.categories))]
        if self.kind == "ordinal":
            assert self.min is not None and self.max is not None
            return [float(v) for v in range(int(self.min), int(self.max) + 1)]
        return None

    def code(self, raw: object) -> float:
        """Turn a raw label (number or category name) into its code.

        Raises ValueError with a user-facing reason when the label is off-scale.
        """
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            raise ValueError("label is empty")
        if isinstance(raw, bool):
            raw = int(raw)
        text = str(raw).strip()
        if self.kind == "pairwise":
            key = text.lower()
            with contextlib.suppress(ValueError, OverflowError):
                as_float = float(key)
                if as_float == int(as_float):  # "1.0" is 1; "1.5" is no preference at all
                    key = str(int(as_float))
            value = _PAIRWISE_WORDS.get(key)
            if value is None or (value == PAIRWISE_TIE and not self.ties):
                allowed = "1, 2" + (", 0 (tie)" if self.ties else "")
                raise ValueError(f"label {excerpt(text)} is not a pairwise preference ({allowed})")
            return value
        if self.categories is not None:
            if text in self.categories:
                return float(self.categories.index(text))
            if self.kind == "binary":
                lowered = text.lower()
                if lowered in ("true", "false"):
                    return 1.0 if lowered == "true" else 0.0
            number = _as_number(text)
            if (number is not None and math.isfinite(number) and number == int(number)
                    and 0 <= number < len(self.categories)):
                return float(number)
            raise ValueError(f"label {excerpt(text)} is not one of {self.categories}")
        number = _as_number(text)
        if self.kind == "binary":
            if text.lower() in ("true", "yes"):
                return 1.0
            if text.lower() in ("false", "no"):
                return 0.0
            if number is not None and number in (0.0, 1.0):
                return float(number)
            raise ValueError(f"label {excerpt(text)} is not binary (0/1)")
        if number is None:
            raise ValueError(f"label {excerpt(text)} is not a number")
        if not math.isfinite(number):
            raise ValueError(f"label {excerpt(text)} is not finite")
        if self.kind == "ordinal" and number != int(number):
            raise ValueError(f"label {excerpt(text)} is not an integer on the ordinal scale")
        if (self.min is not None and number < self.min) or (
            self.max is not None and number > self.max
        ):
            raise ValueError(f"label {excerpt(text)} is outside the scale "
                             f"{self.min:g}..{self.max:g}")
        return number

    def name(self, code: float) -> str:
        """Display name of a code."""
        if self.kind == "pairwise":
            return {0.0: "tie", 1.0: "1", 2.0: "2"}.get(code, f"{code:g}")
        if self.categories is not None and code == int(code) and 0 <= code < len(self.categories):
            return self.categories[int(code)]
        return f"{code:g}"

    def describe(self) -> str:
        """One-line description, e.g. ``ordinal 1..5``."""
        if self.categories is not None:
            return f"{self.kind} {self.categories}"
        if self.kind in ("ordinal", "interval") and self.min is not None and self.max is not None:
            return f"{self.kind} {self.min:g}..{self.max:g}"
        if self.kind == "pairwise":
            return "pairwise (1, 2" + (", 0=tie)" if self.ties else ")")
        return self.kind


class Dimension(BaseModel):
    """One quality axis a calibration set is labelled on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=200)
    """Identifier used in label files and judge configs."""
    scale: Scale
    description: str = ""
    """What the humans were asked, in words (shown in reports)."""


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
