"""A calibration set summarised: items, raters, label distributions and the human agreement
(Krippendorff's α among the raters, from :mod:`judgecal.stats`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from judgecal.calibration.model import CalibrationSet

__all__ = [
    "format_summary",
    "human_alpha",
    "summarize",
]


def human_alpha(cs: CalibrationSet, dimension: str) -> dict[str, Any]:
    """Krippendorff's α among the human raters of one dimension (see
    :func:`judgecal.stats.alpha_among_raters`).

    Returns ``{"value", "level", "pairable_items", "reason"}``. ``value`` is None, with
    the ``reason`` in words, when α is undefined: fewer than two raters, no item with
    two or more labels, or no variation at all among the labels.
    """
    from judgecal.stats import alpha_among_raters

    matrix = cs.human_matrix(dimension)  # KeyError for an unknown dimension
    return alpha_among_raters(cs.dimensions[dimension].scale, matrix)


def summarize(cs: CalibrationSet) -> dict[str, Any]:
    """A JSON-able summary of a set: size, raters, label distributions, human α, segments."""
    labelled_any: set[str] = set()
    dimensions: dict[str, Any] = {}
    for name, dimension in cs.dimensions.items():
        scale = dimension.scale
        by_item = cs.labels.get(name, {})
        raters = cs.raters(name)
        counts = [len(by_item.get(item.id, {})) for item in cs.items]
        labelled_any.update(item_id for item_id, labels in by_item.items() if labels)
        codes = Counter(code for labels in by_item.values() for code in labels.values())
        domain = scale.domain()
        if domain is not None:
            distribution = {scale.name(code): codes.get(code, 0) for code in domain}
        else:
            distribution = _interval_distribution(codes)
        unlabelled = [item.id for item, n in zip(cs.items, counts, strict=True) if n == 0]
        dimensions[name] = {
            "description": dimension.description,
            "scale": scale.describe(),
            "kind": scale.kind,
            "level": scale.level,
            "raters": len(raters),
            "rater_ids": raters,
            "labels": sum(counts),
            "raters_per_item": {
                "min": min(counts, default=0),
                "mean": (sum(counts) / len(counts)) if counts else 0.0,
                "max": max(counts, default=0),
            },
            "distribution": distribution,
            "items_without_labels": len(unlabelled),
            "unlabelled_examples": unlabelled[:10],
            "human_alpha": human_alpha(cs, name),
        }
    segments: dict[str, dict[str, int]] = {}
    for segment in cs.segment_fields:
        values = Counter(item.segments[segment] for item in cs.items)
        segments[segment] = dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))
    unlabelled_ids = [item.id for item in cs.items if item.id not in labelled_any]
    return {
        "name": cs.name,
        "description": cs.description,
        "license": cs.license,
        "path": str(cs.path),
        "version": cs.version,
        "items": len(cs.items),
        "items_without_labels": len(unlabelled_ids),
        "unlabelled_examples": unlabelled_ids[:10],
        "dimensions": dimensions,
        "segments": segments,
    }


def _interval_distribution(codes: Counter[float], max_values: int = 20) -> dict[str, int]:
    """Counts per value, or per one of ten equal-width bins when values are many."""
    values = sorted(codes)
    if len(values) <= max_values:
        return {f"{v:g}": codes[v] for v in values}
    low, high = values[0], values[-1]
    width = (high - low) / 10
    bins: dict[str, int] = {}
    for k in range(10):
        start, end = low + k * width, low + (k + 1) * width
        last = k == 9
        bins[f"{start:g}..{end:g}"] = sum(
            n for v, n in codes.items() if start <= v and (v < end or (last and v <= high))
        )
    return bins


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`summarize` output as readable text (what ``judgecal validate`` prints)."""
    lines = [f"{summary['name']}: valid calibration set", f"  version  {summary['version']}"]
    if summary.get("license"):
        lines.append(f"  license  {summary['license']}")
    n_dims = len(summary["dimensions"])
    lines.append(f"  items    {summary['items']}"
                 + (f" ({summary['items_without_labels']} without any label: "
                    f"{', '.join(summary['unlabelled_examples'])}"
                    + (", ..." if summary["items_without_labels"] > 10 else "") + ")"
                    if summary["items_without_labels"] else ""))
    for segment, values in summary["segments"].items():
        shown = ", ".join(f"{value} {count}" for value, count in list(values.items())[:8])
        more = f", ... ({len(values)} values)" if len(values) > 8 else ""
        lines.append(f"  segment  {segment}: {shown}{more}")
    lines.append(f"  {n_dims} dimension{'s' if n_dims != 1 else ''}:")
    for name, dim in summary["dimensions"].items():
        lines.append(f"    {name} — {dim['scale']}")
        raters = dim["rater_ids"]
        who = f" ({', '.join(raters)})" if len(raters) <= 6 else ""
        per = dim["raters_per_item"]
        lines.append(f"      labels {dim['labels']} from {dim['raters']} rater"
                     f"{'s' if dim['raters'] != 1 else ''}{who}; per item "
                     f"min {per['min']} / mean {per['mean']:.2f} / max {per['max']}")
        total = sum(dim["distribution"].values()) or 1
        dist = ", ".join(f"{label} {count} ({100 * count / total:.0f}%)"
                         for label, count in dim["distribution"].items())
        lines.append(f"      distribution {dist}")
        alpha = dim["human_alpha"]
        if alpha["value"] is None:
            lines.append(f"      human α ({alpha['level']}): undefined — {alpha['reason']}")
        else:
            lines.append(f"      human α ({alpha['level']}) {alpha['value']:.3f} over "
                         f"{alpha['pairable_items']} items with 2+ labels")
        if dim["items_without_labels"]:
            lines.append(f"      items without labels: {dim['items_without_labels']}")
    return "\n".join(lines)
