"""What the remedy reads: the incident's affected window of production scores, the healthy
judge's scores before the onset, and the calibration items' paired labels.

* **The window** is the one the incident was linked to: the newest ``blast_radius`` event's
  ``window`` (start, end, new fingerprints), or — before any link — the one
  :func:`judgecal.scores.link_incident` would compute (onset from the history, end at the
  resolution or now).
* **The calibration pairs** per dimension: the human consensus of each calibration item
  (:func:`judgecal.stats.consensus` over the stored set's raters), the drifted judge's score
  of it (the replies of the incident's run) and the healthy judge's (the replies of the
  baseline run).
* **Before the onset**: the healthy judge's production scores in the same-length period
  before the window (scores carrying one of the window's new fingerprints left out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from judgecal.errors import InputError, NotFoundError
from judgecal.scores import window as scores_window
from judgecal.scores.link import (
    Window,
    affected_condition,
    iso,
    parse_optional,
)
from judgecal.scores.source import ScoreSource

if TYPE_CHECKING:
    from judgecal.scales import Scale
    from judgecal.store import Store

__all__ = [
    "Affected",
    "Calibration",
    "WindowScores",
    "affected",
    "incident_window",
    "load_calibration",
    "read_before",
    "read_window",
]


@dataclass
class WindowScores:
    """Production scores, one entry per score (parallel arrays)."""

    score_ids: list[str]
    dimensions: np.ndarray
    scores: np.ndarray
    customers: list[str | None]
    segments: list[str | None]
    traces: list[str | None] = field(default_factory=list)
    """The conversation or trace of each score (None where the history has none)."""

    @property
    def n(self) -> int:
        return len(self.score_ids)

    def select(self, mask: np.ndarray) -> WindowScores:
        idx = np.flatnonzero(mask)
        return WindowScores([self.score_ids[i] for i in idx], self.dimensions[idx],
                            self.scores[idx], [self.customers[i] for i in idx],
                            [self.segments[i] for i in idx],
                            [self.traces[i] for i in idx] if self.traces else [])

    def clusters(self) -> list[tuple[str, str]] | None:
        """One cluster id per score when some scores share a trace (a score without one is
        a cluster of its own), else None: the scores are independent as far as the history
        says."""
        named = [t for t in self.traces if t is not None]
        if len(set(named)) == len(named):
            return None
        return [("trace", t) if t is not None else ("score", sid)
                for t, sid in zip(self.traces, self.score_ids, strict=True)]


def _named(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _read(src: ScoreSource, where: sa.ColumnElement[bool]) -> WindowScores:
    c = src.c
    query = (sa.select(c("score_id"), c("dimension"), c("score"), c("customer"), c("segment"),
                       c("trace_id"))
             .select_from(src.selectable).where(where)
             .order_by(c("scored_at"), c("score_id")))
    ids: list[str] = []
    dims: list[str] = []
    scores: list[float] = []
    customers: list[str | None] = []
    segments: list[str | None] = []
    traces: list[str | None] = []
    with src.engine.connect() as conn:
        for sid, dim, score, cust, seg, trace in conn.execute(query):
            ids.append(str(sid))
            dims.append(str(dim))
            scores.append(np.nan if score is None else float(score))
            customers.append(_named(cust))
            segments.append(_named(seg))
            traces.append(_named(trace))
    return WindowScores(ids, np.array(dims, dtype=object), np.array(scores, dtype=np.float64),
                        customers, segments, traces)


def read_window(src: ScoreSource, window: Window) -> WindowScores:
    """Every affected score of ``window``, in time order."""
    return _read(src, affected_condition(src, window))


def read_before(src: ScoreSource, window: Window) -> WindowScores:
    """The judge's scores in the same-length period before the window, without the window's
    new fingerprints: the healthy judge on production traffic before the onset."""
    c = src.c
    start = window.start - (window.end - window.start)
    parts = [c("judge") == window.judge, c("scored_at") >= src.t(start),
             c("scored_at") < src.t(window.start)]
    if window.fingerprints:
        fp = c("fingerprint")
        parts.append(sa.or_(fp.is_(None), fp.not_in(list(window.fingerprints))))
    return _read(src, sa.and_(*parts))


def incident_window(store: Store, incident: dict[str, Any], src: ScoreSource,
                    until: datetime | None = None) -> tuple[Window, dict[str, Any]]:
    """The incident's affected window and where it came from (``{"from": ...}``)."""
    judge = str(incident["judge_name"])
    blast = (incident.get("severity") or {}).get("blast_radius") or {}
    win = blast.get("window") or {}
    start, end = parse_optional(win.get("start")), parse_optional(win.get("end"))
    if until is None and start is not None and end is not None:
        fps = tuple(str(f) for f in win.get("fingerprints") or ())
        return Window(judge, start, end, fps), {
            "from": f"blast_radius event #{blast.get('event_seq')}",
            "start": iso(start), "end": iso(end), "fingerprints": list(fps),
            "end_reason": win.get("end_reason")}
    onset, end, reason = scores_window.incident_window(store, src, incident, until=until)
    if end is None:
        from judgecal.records import now

        end = now()
    if end <= onset.at:
        raise InputError(f"the window end {iso(end)} is not after the onset {iso(onset.at)}")
    return Window(judge, onset.at, end, onset.fingerprints), {
        "from": "onset computed from the score history (the incident is not linked yet)",
        "start": iso(onset.at), "end": iso(end), "fingerprints": list(onset.fingerprints),
        "end_reason": reason}


@dataclass
class Affected:
    """An incident, its affected window (and where it came from) and the window's scores."""

    incident: dict[str, Any]
    window: Window
    window_json: dict[str, Any]
    scores: WindowScores

    @property
    def incident_id(self) -> str:
        return str(self.incident["incident_id"])


def affected(store: Store, incident_id: str, src: ScoreSource | None = None) -> Affected:
    """The incident (by id or prefix), its window and every affected score, read from
    ``src`` (default: the store's ingested history)."""
    from judgecal import incidents
    from judgecal.scores.source import store_source

    incident = incidents.get_incident(store, incident_id)
    source = src or store_source(store.engine)
    window, window_json = incident_window(store, incident, source)
    return Affected(incident, window, window_json, read_window(source, window))


@dataclass
class Calibration:
    """The calibration items' paired labels, per dimension (aligned with the set's items)."""

    set_name: str
    set_version: str
    run_id: str
    baseline_run_id: str | None
    scales: dict[str, Scale] = field(default_factory=dict)
    human: dict[str, np.ndarray] = field(default_factory=dict)
    drifted: dict[str, np.ndarray] = field(default_factory=dict)
    healthy: dict[str, np.ndarray] = field(default_factory=dict)
    item_segments: list[dict[str, str]] = field(default_factory=list)
    """The segment values of each calibration item (``{field: value}``)."""

    def segment_mask(self, value: str | None) -> np.ndarray | None:
        """Calibration items carrying ``value`` in one of their segment fields, or None when
        no item does (production segments and the set's segments need not share names)."""
        if value is None:
            return None
        mask = np.array([value in segs.values() for segs in self.item_segments], dtype=bool)
        return mask if mask.any() else None

    def describe(self) -> dict[str, Any]:
        return {
            "set_name": self.set_name, "set_version": self.set_version,
            "drifted_run_id": self.run_id, "healthy_run_id": self.baseline_run_id,
            "dimensions": {
                dim: {"scale": self.scales[dim].describe(),
                      "items_with_consensus": int((~np.isnan(self.human[dim])).sum()),
                      "pairs_drifted": int((~np.isnan(self.human[dim])
                                            & ~np.isnan(self.drifted[dim])).sum()),
                      "pairs_healthy": None if dim not in self.healthy else int(
                          (~np.isnan(self.human[dim]) & ~np.isnan(self.healthy[dim])).sum())}
                for dim in sorted(self.scales)},
        }


def load_calibration(store: Store, incident: dict[str, Any]) -> Calibration:
    """Human consensus and both judges' scores of the calibration items, per dimension."""
    from judgecal import stats
    from judgecal.agreement import judge_vector
    from judgecal.calibration import StoredSet

    version = str(incident["set_version"])
    try:
        view = StoredSet.load(store, version)
    except (NotFoundError, KeyError):
        raise InputError(f"incident {incident['incident_id']}: the calibration set version "
                         f"{version} is not in the store, so there is nothing to correct "
                         "with") from None
    run_id = str(incident["run_id"])
    drifted_replies = store.replies(run_id)
    base_id = incident.get("baseline_run_id")
    healthy_replies: list[dict[str, Any]] = []
    if base_id:
        try:
            healthy_replies = store.replies(str(base_id))
        except NotFoundError:
            healthy_replies = []
    cal = Calibration(view.name, view.version, run_id, str(base_id) if base_id else None,
                      item_segments=[dict(item.segments) for item in view.items])
    for dim in sorted({r["dimension"] for r in drifted_replies}):
        if dim not in view.dimensions:
            continue
        scale = view.dimensions[dim].scale
        cal.scales[dim] = scale
        cal.human[dim] = stats.consensus(scale, view.human_matrix(dim))
        cal.drifted[dim] = judge_vector(view, drifted_replies, dim)[0]
        if any(r["dimension"] == dim for r in healthy_replies):
            cal.healthy[dim] = judge_vector(view, healthy_replies, dim)[0]
    if not cal.scales:
        raise InputError(f"incident {incident['incident_id']}: its run {run_id} has no reply "
                         f"on a dimension of the calibration set {view.name}")
    return cal
