"""Moments of production scores (count, sum, sum of squares, min, max, summed in SQL or in
the rollups) and the change of their mean between two periods with a 95 % interval: used by
a blast radius (:mod:`judgecal.scores.link`) and by ``scores shift``."""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from judgecal.scores.source import ScoreSource

__all__ = ["mean_change", "moment_columns", "moments_by_key"]


def moments_by_key(rows: Any) -> dict[Any, tuple[int, float, float, float, float]]:
    """The rows of a grouped query on :func:`moment_columns` (key first), by key:
    ``(n, sum, sum of squares, min, max)``."""
    out: dict[Any, tuple[int, float, float, float, float]] = {}
    for key, n, s, ss, lo, hi in rows:
        out[key] = (int(n), float(s or 0), float(ss or 0), float(lo or 0), float(hi or 0))
    return out


def mean_change(
    before: tuple[int, float, float, float, float] | None,
    after: tuple[int, float, float, float, float] | None,
) -> dict[str, Any]:
    """Means before/after, their difference with a 95 % interval, and ``points``.

    ``points`` is 100 × the difference when every score lies in [0, 1] (the agreement
    scale of judgecal), else ``None`` (the difference is then in the score's own units).
    """
    out: dict[str, Any] = {"n_before": 0, "n_after": 0, "mean_before": None,
                           "mean_after": None, "delta": None, "ci95": None, "points": None,
                           "moved": None}

    def stats(m: tuple[int, float, float, float, float] | None) -> tuple[int, float, float]:
        if not m or m[0] == 0:
            return 0, math.nan, math.nan
        n, s, ss = m[0], m[1], m[2]
        mean = s / n
        var = max(ss / n - mean * mean, 0.0) * n / (n - 1) if n > 1 else math.nan
        return n, mean, var

    nb, mb, vb = stats(before)
    na, ma, va = stats(after)
    out["n_before"], out["n_after"] = nb, na
    if nb:
        out["mean_before"] = mb
    if na:
        out["mean_after"] = ma
    if nb and na:
        delta = ma - mb
        out["delta"] = delta
        if nb > 1 and na > 1:
            se = math.sqrt(vb / nb + va / na)
            out["ci95"] = [delta - 1.96 * se, delta + 1.96 * se]
            out["moved"] = bool(out["ci95"][0] > 0 or out["ci95"][1] < 0)
        lo = min(m[3] for m in (before, after) if m)
        hi = max(m[4] for m in (before, after) if m)
        if lo >= 0.0 and hi <= 1.0:
            out["points"] = 100.0 * delta
    return out


def moment_columns(src: ScoreSource) -> list[Any]:
    """The aggregate columns of a score's moments: count, sum, sum of squares, min, max."""
    score = src.score_expr()
    return [
        sa.func.count(),
        sa.func.sum(score),
        sa.func.sum(score * score),
        sa.func.min(score),
        sa.func.max(score),
    ]
