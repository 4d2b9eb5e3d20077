"""Agreement report: a run's scores set against the humans, per dimension (and segment).

Joins what the store holds (the calibration-set snapshot and the run's replies) and
hands plain arrays to :mod:`judgecal.stats`. Items a run did not cover (``limit``) are
left out; unscored replies are counted and reported, never treated as wrong answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from judgecal.calibration.stored import SetView
from judgecal.errors import InputError
from judgecal.judge import ORIGINAL, SWAPPED
from judgecal.records import SCORED

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "agreement_report",
    "check_segment_field",
    "judge_vector",
    "segment_field_names",
]



def segment_field_names(view: SetView) -> list[str]:
    """The segment fields of a set: those its ``set.yaml`` declares and any its items carry."""
    known = set(getattr(view, "segment_fields", []))
    for item in view.items:
        known.update(item.segments)
    return sorted(known)


def check_segment_field(view: SetView, name: str, option: str = "--by") -> None:
    """Raise :class:`InputError` naming the valid fields unless ``name`` is one of them."""
    known = segment_field_names(view)
    if name not in known:
        has = f"has: {', '.join(known)}" if known else "has no segment fields"
        raise InputError(f"unknown segment field '{name}' for {option} "
                         f"(the set {view.name} {has})")


def judge_vector(
    view: SetView, replies: list[dict[str, Any]], dimension: str, variant: str = ORIGINAL
) -> tuple[np.ndarray, np.ndarray]:
    """Judge codes aligned with ``view.items`` (NaN = unscored) and a mask of items in the run."""
    import numpy as np

    index = {item.id: i for i, item in enumerate(view.items)}
    scores = np.full(len(view.items), np.nan)
    present = np.zeros(len(view.items), dtype=bool)
    for r in replies:
        if r["dimension"] != dimension or r["variant"] != variant:
            continue
        i = index.get(r["item_id"])
        if i is None:
            continue
        present[i] = True
        if r["status"] == SCORED and r["score"] is not None:
            scores[i] = r["score"]
    return scores, present


def agreement_report(
    view: SetView,
    replies: list[dict[str, Any]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    by: str | None = None,
    min_segment_items: int = 30,
) -> dict[str, Any]:
    """Per dimension: the judge against the human consensus, the human ceiling, intervals.

    The returned mapping is JSON-ready (no NaN): ``{"set": ..., "dimensions": {dim: {"n",
    "unscored", "metrics": {name: {"value", "ci_low", "ci_high", ...}}, "ceiling": ...}}}``.
    """
    import numpy as np

    from judgecal import stats

    if by:
        check_segment_field(view, by)
    dims_in_run = sorted({r["dimension"] for r in replies})
    out: dict[str, Any] = {
        "set": {"name": view.name, "version": view.version},
        "bootstrap": {"resamples": n_boot, "seed": seed, "confidence": confidence},
        "dimensions": {},
    }
    for dim in dims_in_run:
        if dim not in view.dimensions:
            continue
        scale = view.dimensions[dim].scale
        judge_all, present = judge_vector(view, replies, dim)
        human = view.human_matrix(dim)[present]
        judge = judge_all[present]
        reasons: dict[str, int] = {}
        for r in replies:
            if r["dimension"] == dim and r["variant"] == ORIGINAL and r["status"] != SCORED:
                key = str(r["unscored_reason"])
                reasons[key] = reasons.get(key, 0) + 1
        consensus = stats.consensus(scale, human)
        usable = ~np.isnan(judge) & ~np.isnan(consensus)
        metrics = stats.judge_agreement(
            scale, human, judge, n_boot=n_boot, seed=seed, confidence=confidence
        )
        ceiling = stats.human_ceiling(scale, human, n_boot=n_boot, seed=seed, confidence=confidence)
        entry: dict[str, Any] = {
            "scale": scale.describe(),
            "items": int(present.sum()),
            "n": int(usable.sum()),
            "unscored": int(np.isnan(judge).sum()),
            "unscored_reasons": reasons,
            "no_consensus": int((~np.isnan(judge) & np.isnan(consensus)).sum()),
            "metrics": {k: v.to_json() for k, v in metrics.items()},
            "ceiling": {k: v.to_json() for k, v in ceiling.items()},
        }
        if scale.kind != "interval":
            entry["confusion"] = stats.confusion(scale, consensus[usable], judge[usable])
        entry["minimum_detectable_change"] = stats.minimum_detectable_change(
            scale, human, judge, seed=seed
        ).to_json()
        swapped, swapped_present = judge_vector(view, replies, dim, SWAPPED)
        if scale.kind == "pairwise" and swapped_present.any():
            both = swapped_present & present
            entry["position_consistency"] = stats.position_consistency(
                judge_all[both], swapped[both], n_boot=n_boot, seed=seed, confidence=confidence
            ).to_json()
        if by:
            segments = np.array([item.segments.get(by, "") for item in view.items], dtype=object)[
                present
            ]
            entry["segments"] = _segments_json(
                stats.by_segment(
                    scale,
                    human,
                    judge,
                    segments,
                    min_items=min_segment_items,
                    n_boot=n_boot,
                    seed=seed,
                    confidence=confidence,
                )
            )
        out["dimensions"][dim] = entry
    return out


def _segments_json(result: dict[str, Any]) -> dict[str, Any]:
    """Metrics as JSON; a ``{"too_small": n}`` segment stays as it is."""
    return {
        seg: {k: (v if isinstance(v, int) else v.to_json()) for k, v in value.items()}
        for seg, value in result.items()
    }
