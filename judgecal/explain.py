"""Item-level explanations: which calibration items the judge gets wrong, and what flipped.

Two questions an engineer asks after a drift alarm:

* **Where does the judge disagree with the humans?** (:func:`disagreements`) On an ordinal or
  interval scale the items are ranked by the distance ``|judge − consensus|``, largest first
  (ties: the item the humans agreed on most comes first). On a binary, nominal or pairwise
  scale an item disagrees when the judge's code differs from the human consensus; those
  items are ranked by how unanimous the humans were (share of raters who gave the
  consensus label, then number of raters): a judge that contradicts a unanimous panel is
  more telling than one that sides with a minority on a contested item.
* **What changed between two runs?** (:func:`flips`) The items whose verdict differs between a
  baseline and a run, with both replies side by side and the human labels; each flip is
  classed ``broke`` (the baseline agreed with the consensus, the run does not), ``fixed``
  (the reverse) or ``changed`` (neither or both agree, e.g. 2 → 1 against a consensus of 4).
  The worst come first, in the order of the incident's worst-flipped items
  (:func:`judgecal.drift.rule.flip_order`): how much further from the consensus the run's
  verdict is than the baseline's, then the item ids in natural order (item-2 before item-10).

Unscored replies are never disagreements (they are counted separately), and items without a
human consensus (a split vote) cannot be wrong; both counts are reported. Only the original
order of a pairwise comparison is used (the swapped variant measures position bias).

Results are JSON-ready dicts; :func:`to_markdown` renders them with every piece of item text
and judge reply escaped (:mod:`judgecal.io.markdown`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from judgecal.drift.rule import flip_harm, flip_order
from judgecal.errors import InputError
from judgecal.judge import ORIGINAL
from judgecal.records import SCORED

if TYPE_CHECKING:
    from judgecal.calibration import StoredSet
    from judgecal.scales import Scale
    from judgecal.store import Store

__all__ = ["disagreements", "flips", "parse_segments", "to_markdown"]

DEFAULT_LIMIT = 20
_CATEGORICAL = ("binary", "nominal", "pairwise")


def parse_segments(specs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["motivation_app=Grammarly"]`` → ``{"motivation_app": "Grammarly"}``."""
    out: dict[str, str] = {}
    for spec in specs:
        field, sep, value = spec.partition("=")
        if not sep or not field.strip():
            raise InputError(f"--segment {spec!r}: expected FIELD=VALUE")
        out[field.strip()] = value.strip()
    return out


def _run_json(run: dict[str, Any]) -> dict[str, Any]:
    fp = run.get("fingerprint") or {}
    return {
        "run_id": run["run_id"],
        "judge_name": run["judge_name"],
        "set_name": run["set_name"],
        "set_version": run["set_version"],
        "started_at": run["started_at"],
        "status": run["status"],
        "model": (fp.get("parts") or {}).get("model"),
        "config_hash": run["config_hash"],
    }


def _select_dimensions(view: StoredSet, available: set[str], dimension: str | None) -> list[str]:
    if dimension is None:
        return [d for d in view.dimensions if d in available]
    if dimension not in view.dimensions:
        raise InputError(
            f"unknown dimension '{dimension}' (the set '{view.name}' has "
            f"{', '.join(view.dimensions)})"
        )
    if dimension not in available:
        raise InputError(f"the run has no replies on dimension '{dimension}'")
    return [dimension]


def _segment_mask(view: StoredSet, segments: dict[str, str] | None) -> list[bool]:
    items = view.items
    if not segments:
        return [True] * len(items)
    from judgecal.agreement import check_segment_field

    for name in segments:
        check_segment_field(view, name, "--segment")
    return [all(str(item.segments.get(k, "")) == v for k, v in segments.items()) for item in items]


def _reply_index(replies: list[dict[str, Any]], dimension: str) -> dict[str, dict[str, Any]]:
    return {
        r["item_id"]: r for r in replies if r["dimension"] == dimension and r["variant"] == ORIGINAL
    }


def _reply_json(scale: Scale, reply: dict[str, Any] | None) -> dict[str, Any]:
    if reply is None:
        return {"status": "missing", "score": None, "label": None, "raw_text": None}
    scored = reply["status"] == SCORED and reply["score"] is not None
    return {
        "status": reply["status"],
        "score": reply["score"] if scored else None,
        "label": _name(scale, reply["score"]) if scored else None,
        "raw_text": reply.get("raw_text"),
        "unscored_reason": None if scored else reply.get("unscored_reason"),
        "served_model": reply.get("served_model"),
    }


def _name(scale: Scale, code: float | None) -> str | None:
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return None
    if scale.kind == "ordinal" and code != int(code) and scale.categories is None:
        return f"{code:g}"
    return scale.name(float(code))


class _Humans:
    """The human side of one dimension: labels per item, consensus and how unanimous."""

    def __init__(self, view: StoredSet, dimension: str):
        import numpy as np

        from judgecal import stats

        self.scale = view.dimensions[dimension].scale
        self.raters = view.raters(dimension)
        self.matrix = view.human_matrix(dimension)
        self.consensus = stats.consensus(self.scale, self.matrix)
        rated = ~np.isnan(self.matrix)
        self.n_raters = rated.sum(axis=1)
        cons = self.consensus[:, None]
        with np.errstate(invalid="ignore"):
            if self.scale.kind in _CATEGORICAL:
                agree = rated & (self.matrix == cons)
            else:  # a half-step median counts both neighbouring labels as agreeing
                agree = rated & (np.abs(self.matrix - cons) <= 0.5)
            spread = np.where(rated, np.abs(self.matrix - cons), 0.0).sum(axis=1)
        self.agreement = np.where(self.n_raters > 0, agree.sum(axis=1) / np.maximum(
            self.n_raters, 1), np.nan)
        self.spread = np.where(self.n_raters > 0, spread / np.maximum(self.n_raters, 1), np.nan)

    def json(self, i: int) -> dict[str, Any]:
        labels = {
            rater: _name(self.scale, float(self.matrix[i, j]))
            for j, rater in enumerate(self.raters)
            if not math.isnan(float(self.matrix[i, j]))
        }
        cons = float(self.consensus[i])
        return {
            "labels": labels,
            "consensus": None if math.isnan(cons) else cons,
            "consensus_label": _name(self.scale, cons),
            "agreement": _round(float(self.agreement[i])),
            "raters": int(self.n_raters[i]),
        }


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _item_json(item: Any) -> dict[str, Any]:
    return {"item_id": item.id, "segments": dict(item.segments), "fields": dict(item.fields)}


def disagreements(
    store: Store,
    run_id: str,
    *,
    dimension: str | None = None,
    segments: dict[str, str] | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """The items where the run's judge disagrees most with the human consensus.

    See the module docstring for the ranking. ``limit`` items per dimension (None: all).
    """
    from judgecal.calibration import StoredSet

    run = store.get_run(run_id)
    view = StoredSet.load(store, run["set_version"])
    replies = store.replies(run["run_id"])
    dims = _select_dimensions(view, {r["dimension"] for r in replies}, dimension)
    mask = _segment_mask(view, segments)
    out: dict[str, Any] = {
        "run": _run_json(run),
        "filters": {"dimension": dimension, "segments": segments or {}},
        "dimensions": {},
    }
    for dim in dims:
        humans = _Humans(view, dim)
        scale = humans.scale
        by_item = _reply_index(replies, dim)
        rows: list[tuple[tuple[float, ...], dict[str, Any]]] = []
        counts = {"in_run": 0, "compared": 0, "unscored": 0, "no_consensus": 0, "disagreeing": 0}
        for i, item in enumerate(view.items):
            reply = by_item.get(item.id)
            if reply is None or not mask[i]:
                continue
            counts["in_run"] += 1
            if reply["status"] != SCORED or reply["score"] is None:
                counts["unscored"] += 1
                continue
            cons = float(humans.consensus[i])
            if math.isnan(cons):
                counts["no_consensus"] += 1
                continue
            counts["compared"] += 1
            score = float(reply["score"])
            distance = abs(score - cons)
            agreement = float(humans.agreement[i])
            if scale.kind in _CATEGORICAL:
                if score == cons:
                    continue
                key: tuple[float, ...] = (-agreement, -float(humans.n_raters[i]), float(i))
                distance = 1.0
            else:
                if distance == 0:
                    continue
                key = (-distance, float(humans.spread[i]), -agreement, float(i))
            counts["disagreeing"] += 1
            rows.append((key, {
                **_item_json(item),
                "judge": _reply_json(scale, reply),
                "humans": humans.json(i),
                "distance": round(distance, 4),
            }))
        rows.sort(key=lambda kv: kv[0])
        out["dimensions"][dim] = {
            "scale": scale.describe(),
            "kind": scale.kind,
            "ranking": _ranking_text(scale),
            **counts,
            "items": [row for _, row in (rows if limit is None else rows[:limit])],
        }
    return out


def _ranking_text(scale: Scale) -> str:
    if scale.kind in _CATEGORICAL:
        return ("judge ≠ human consensus, the most unanimous human panels first")
    return "largest |judge − human consensus| first, then the most agreed-on items"


def flips(
    store: Store,
    run_id: str,
    baseline_id: str,
    *,
    dimension: str | None = None,
    segments: dict[str, str] | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """The items whose verdict differs between ``baseline_id`` and ``run_id``.

    Items are matched by id; the human labels come from the run's calibration set (a note
    says so when the two runs used different set versions). Items scored in one run and
    unscored in the other are counted (``became_unscored`` / ``became_scored``), not listed.
    """
    from judgecal.calibration import StoredSet

    run = store.get_run(run_id)
    base = store.get_run(baseline_id)
    view = StoredSet.load(store, run["set_version"])
    replies = store.replies(run["run_id"])
    base_replies = store.replies(base["run_id"])
    available = {r["dimension"] for r in replies} & {r["dimension"] for r in base_replies}
    dims = _select_dimensions(view, available, dimension)
    mask = _segment_mask(view, segments)
    notes = []
    if run["set_version"] != base["set_version"]:
        notes.append("the two runs used different calibration-set versions: items are matched "
                     "by id and the human labels are those of the run's set")
    out: dict[str, Any] = {
        "run": _run_json(run),
        "baseline": _run_json(base),
        "filters": {"dimension": dimension, "segments": segments or {}},
        "notes": notes,
        "dimensions": {},
    }
    for dim in dims:
        humans = _Humans(view, dim)
        scale = humans.scale
        now, before = _reply_index(replies, dim), _reply_index(base_replies, dim)
        counts = {"compared": 0, "flipped": 0, "broke": 0, "fixed": 0, "changed": 0,
                  "became_unscored": 0, "became_scored": 0}
        rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for i, item in enumerate(view.items):
            a, b = before.get(item.id), now.get(item.id)
            if a is None or b is None or not mask[i]:
                continue
            a_ok = a["status"] == SCORED and a["score"] is not None
            b_ok = b["status"] == SCORED and b["score"] is not None
            if a_ok != b_ok:
                counts["became_unscored" if a_ok else "became_scored"] += 1
                continue
            if not a_ok:
                continue
            counts["compared"] += 1
            sa, sb = float(a["score"]), float(b["score"])
            if sa == sb:
                continue
            cons = float(humans.consensus[i])
            change = "changed"
            if not math.isnan(cons):
                a_right, b_right = _agrees(scale, sa, cons), _agrees(scale, sb, cons)
                if a_right and not b_right:
                    change = "broke"
                elif b_right and not a_right:
                    change = "fixed"
            counts["flipped"] += 1
            counts[change] += 1
            shift = sb - sa
            key = flip_order(flip_harm(scale.kind, sa, sb, cons), item.id)
            rows.append((key, {
                **_item_json(item),
                "change": change,
                "shift": round(shift, 4),
                "baseline": _reply_json(scale, a),
                "run": _reply_json(scale, b),
                "humans": humans.json(i),
            }))
        rows.sort(key=lambda kv: kv[0])
        out["dimensions"][dim] = {
            "scale": scale.describe(),
            "kind": scale.kind,
            **counts,
            "items": [row for _, row in (rows if limit is None else rows[:limit])],
        }
    return out


def _agrees(scale: Scale, score: float, consensus: float) -> bool:
    if scale.kind in _CATEGORICAL:
        return score == consensus
    return abs(score - consensus) <= 0.5


# -- Markdown ------------------------------------------------------------------------------
_TEXT_LIMIT = 400


def _fields_md(item: dict[str, Any], limit: int) -> list[str]:
    """The item's text fields (not its id or segment fields, already in the heading)."""
    from judgecal.io.markdown import escape_markdown_inline, truncate

    lines = []
    for key, value in item["fields"].items():
        if value is None or value == "" or key in item["segments"] or str(value) == item["item_id"]:
            continue
        lines.append(f"- **{escape_markdown_inline(str(key))}**: "
                     f"{escape_markdown_inline(truncate(str(value), limit))}")
    return lines


def _reply_md(reply: dict[str, Any]) -> str:
    from judgecal.io.markdown import escape_markdown_inline

    if reply["label"] is not None:
        return escape_markdown_inline(str(reply["label"]))
    reason = reply.get("unscored_reason") or reply["status"]
    return f"unscored ({escape_markdown_inline(str(reason))})"


def _humans_md(h: dict[str, Any]) -> str:
    from judgecal.io.markdown import escape_markdown_inline

    labels = ", ".join(f"{escape_markdown_inline(r)}: {escape_markdown_inline(str(v))}"
                       for r, v in h["labels"].items())
    cons = h["consensus_label"]
    agreement = "" if h["agreement"] is None else f", {h['agreement']:.0%} of raters agree"
    return (f"consensus **{escape_markdown_inline(str(cons))}**{agreement} ({labels})"
            if cons is not None else f"no consensus ({labels})")


def to_markdown(result: dict[str, Any], *, text_limit: int = _TEXT_LIMIT) -> str:
    """Render a :func:`disagreements` or :func:`flips` result as Markdown (all text escaped)."""
    from judgecal.io.markdown import (
        escape_markdown_cell,
        escape_markdown_inline,
        markdown_fence,
        truncate,
    )

    e = escape_markdown_inline
    run = result["run"]
    base = result.get("baseline")
    lines: list[str] = []
    if base is None:
        lines.append(f"# Where judge {e(run['judge_name'])} disagrees with the humans")
    else:
        lines.append(f"# Verdicts that flipped: judge {e(run['judge_name'])}")
    lines.append("")
    lines.append(f"- run: {e(run['run_id'])} ({e(str(run['started_at']))}, model "
                 f"{e(str(run['model']))}, set {e(run['set_name'])})")
    if base is not None:
        lines.append(f"- baseline: {e(base['run_id'])} ({e(str(base['started_at']))}, model "
                     f"{e(str(base['model']))})")
    segs = result["filters"]["segments"]
    if segs:
        lines.append("- segment: " + ", ".join(f"{e(k)} = {e(v)}" for k, v in segs.items()))
    for note in result.get("notes", []):
        lines.append(f"- note: {e(note)}")
    for dim, d in result["dimensions"].items():
        lines.append("")
        lines.append(f"## {e(dim)} ({e(d['scale'])})")
        lines.append("")
        if base is None:
            lines.append(
                f"{d['disagreeing']} of {d['compared']} compared items disagree with the human "
                f"consensus ({d['unscored']} unscored, {d['no_consensus']} without a consensus). "
                f"Ranking: {e(d['ranking'])}."
            )
        else:
            lines.append(
                f"{d['flipped']} of {d['compared']} items changed verdict: {d['broke']} broke, "
                f"{d['fixed']} fixed, {d['changed']} changed otherwise "
                f"({d['became_unscored']} became unscored, {d['became_scored']} became scored)."
            )
        for n, item in enumerate(d["items"], 1):
            lines.append("")
            segments = ", ".join(f"{e(k)}={e(str(v))}" for k, v in item["segments"].items())
            head = f"### {n}. item {e(item['item_id'])}"
            if segments:
                head += f" ({segments})"
            if base is not None:
                head += f" — {item['change']}"
            lines.append(head)
            lines.append("")
            lines.extend(_fields_md(item, text_limit))
            lines.append(f"- humans: {_humans_md(item['humans'])}")
            lines.append("")
            if base is None:
                distance = ("" if d["kind"] in _CATEGORICAL
                            else f" (distance {item['distance']:g} from the consensus)")
                lines.append(f"Judge verdict: **{_reply_md(item['judge'])}**{distance}")
                raw = item["judge"].get("raw_text")
                if raw:
                    lines.append("")
                    lines.append(markdown_fence(truncate(str(raw), text_limit * 2)))
            else:
                lines.append("| | baseline | run |")
                lines.append("|---|---|---|")
                lines.append(f"| verdict | {_reply_md(item['baseline'])} | "
                             f"{_reply_md(item['run'])} |")
                lines.append(
                    "| reply | "
                    + escape_markdown_cell(truncate(str(item["baseline"].get("raw_text") or ""),
                                                    text_limit))
                    + " | "
                    + escape_markdown_cell(truncate(str(item["run"].get("raw_text") or ""),
                                                    text_limit))
                    + " |"
                )
        if not d["items"]:
            lines.append("")
            lines.append("No items." if base is None else "No verdict changed.")
    return "\n".join(lines) + "\n"
