"""Watch state: is each judge really being watched, and what did the watching find?

A monitor that silently stops monitoring is worse than none. From the store alone (the runs,
their drift checks, baselines and incidents) each judge on each calibration set gets one
state:

==================  ========================================================================
``drifted``         an open (or acknowledged) incident, or the newest check is a warning
``not_monitored``   no accepted baseline on the set version the judge now runs on: nothing
                    is compared, so nothing can alarm
``stale``           no conclusive drift check for longer than ``run.stale_after_hours``
``changed``         the fingerprint differs from the baseline's and nobody accepted it yet
``inconclusive``    the newest run could not conclude (too many unscored replies, deadline)
``healthy``         the newest check compared with the baseline and found no real move
==================  ========================================================================

The first state that applies, in this order, is the judge's state. A *conclusive* check is
one that compared a run with an accepted baseline (or accepted the run as the baseline); the
acceptance of a baseline counts as one too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from judgecal.db import schema
from judgecal.drift.baselines import current_baseline
from judgecal.drift.verdicts import (
    BASELINE_ACCEPTED,
    INCIDENT,
    JUDGE_CHANGED,
    NOTICE,
    WARNING,
)
from judgecal.drift.verdicts import HEALTHY as HEALTHY_VERDICT
from judgecal.records import REJUDGE, RUNNING, now

if TYPE_CHECKING:
    from judgecal.store import Store

__all__ = [
    "CHANGED",
    "DRIFTED",
    "HEALTHY",
    "INCONCLUSIVE",
    "NOT_MONITORED",
    "STALE",
    "STATES",
    "JudgeWatch",
    "judge_watch",
    "watch_states",
]

DRIFTED = "drifted"
STALE = "stale"
NOT_MONITORED = "not_monitored"
CHANGED = "changed"
INCONCLUSIVE = "inconclusive"
HEALTHY = "healthy"
STATES = (DRIFTED, NOT_MONITORED, STALE, CHANGED, INCONCLUSIVE, HEALTHY)
"""Worst first."""

DEFAULT_STALE_AFTER_HOURS = 36.0

CONCLUSIVE_VERDICTS = (
    HEALTHY_VERDICT, NOTICE, JUDGE_CHANGED, WARNING, INCIDENT, BASELINE_ACCEPTED,
)


@dataclass
class JudgeWatch:
    """The watch state of one judge on one calibration set."""

    judge: str
    set_name: str
    state: str
    reasons: list[str] = field(default_factory=list)
    set_version: str | None = None
    last_run_id: str | None = None
    last_run_at: str | None = None
    last_run_status: str | None = None
    last_verdict: str | None = None
    last_conclusive_at: str | None = None
    hours_since_conclusive: float | None = None
    stale_after_hours: float = DEFAULT_STALE_AFTER_HOURS
    baseline_run_id: str | None = None
    open_incidents: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _when(iso: str | None) -> datetime | None:
    return None if not iso else datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _hours(later: datetime, earlier: datetime) -> float:
    return (later - earlier) / timedelta(hours=1)


def judge_watch(
    store: Store, judge: str, set_name: str, *, at: datetime | None = None
) -> JudgeWatch:
    """The state of ``judge`` on the set ``set_name`` (see the module docstring)."""
    at = at or now()
    r, c = schema.runs.c, schema.drift_checks.c
    with store.engine.connect() as conn:
        runs = conn.execute(
            select(r.run_id, r.set_version, r.status, r.started_at, r.finished_at, r.summary)
            .where(r.judge_name == judge, r.set_name == set_name, r.status != RUNNING,
                   r.origin != REJUDGE)
            .order_by(r.started_at.desc())
        ).mappings().all()
        checks = conn.execute(
            select(c.verdict, c.created_at, c.run_id)
            .where(c.judge_name == judge, c.set_name == set_name)
            .order_by(c.created_at.desc())
        ).mappings().all()
    w = JudgeWatch(judge=judge, set_name=set_name, state=HEALTHY)
    if not runs:
        w.state = NOT_MONITORED
        w.reasons.append("no finished run yet")
        return w
    newest = runs[0]
    w.set_version = newest["set_version"]
    w.last_run_id, w.last_run_status = newest["run_id"], newest["status"]
    w.last_run_at = newest["finished_at"] or newest["started_at"]
    w.stale_after_hours = float(
        (newest["summary"] or {}).get("stale_after_hours") or DEFAULT_STALE_AFTER_HOURS
    )
    w.last_verdict = checks[0]["verdict"] if checks else None
    conclusive = next((ch for ch in checks if ch["verdict"] in CONCLUSIVE_VERDICTS), None)
    baseline = current_baseline(store, judge, newest["set_version"])
    w.baseline_run_id = baseline["run_id"] if baseline else None
    # Accepting a run as the baseline is a reviewed, conclusive look at the judge too.
    stamps = [t for t in (conclusive["created_at"] if conclusive else None,
                          baseline["accepted_at"] if baseline else None) if t]
    w.last_conclusive_at = max(stamps, key=lambda t: _when(t) or at) if stamps else None
    since = _when(w.last_conclusive_at)
    first_seen = _when(runs[-1]["started_at"])
    if since is not None:
        w.hours_since_conclusive = round(_hours(at, since), 2)
    w.open_incidents = _open_incidents(store, judge, set_name)

    limit = w.stale_after_hours
    reference = since or first_seen
    if w.open_incidents:
        w.state = DRIFTED
        w.reasons.append(f"open incident(s): {', '.join(w.open_incidents)}")
    elif w.last_verdict == WARNING:
        w.state = DRIFTED
        w.reasons.append("the newest drift check is a warning")
    if baseline is None:
        w.reasons.append(
            f"no accepted baseline on set version {str(newest['set_version'])[:19]}: "
            f"nothing is compared (judgecal baseline accept {newest['run_id']})"
        )
        if w.state == HEALTHY:
            w.state = NOT_MONITORED
    if reference is not None and _hours(at, reference) > limit:
        what = (f"the last conclusive drift check was {_hours(at, reference):.0f} hours ago"
                if since is not None else
                f"no conclusive drift check in the {_hours(at, reference):.0f} hours since the "
                "first run")
        w.reasons.append(f"{what} (stale after {limit:g} hours)")
        if w.state == HEALTHY:
            w.state = STALE
    if w.last_verdict == JUDGE_CHANGED:
        w.reasons.append("the fingerprint differs from the baseline's and was not accepted")
        if w.state == HEALTHY:
            w.state = CHANGED
    if newest["status"] != "completed":
        w.reasons.append(f"the newest run is {newest['status']}")
        if w.state == HEALTHY:
            w.state = INCONCLUSIVE
    return w


def _open_incidents(store: Store, judge: str, set_name: str) -> list[str]:
    """Incidents of the judge on the set without a ``resolved`` event."""
    i, e = schema.incidents.c, schema.incident_events.c
    resolved = select(e.incident_id).where(e.kind == "resolved")
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(i.incident_id)
            .where(i.judge_name == judge, i.set_name == set_name,
                   i.incident_id.not_in(resolved))
            .order_by(i.opened_at)
        ).all()
    return [str(r[0]) for r in rows]


def watch_states(store: Store, *, at: datetime | None = None) -> list[JudgeWatch]:
    """Every judge on every set the store has runs for, worst state first."""
    r = schema.runs.c
    with store.engine.connect() as conn:
        pairs = conn.execute(select(r.judge_name, r.set_name).where(r.origin != REJUDGE)
                             .distinct()).all()
    states = [judge_watch(store, j, s, at=at) for j, s in sorted(pairs)]
    states.sort(key=lambda w: STATES.index(w.state))
    return states
