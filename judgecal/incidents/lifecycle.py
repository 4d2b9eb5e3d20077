"""The incident lifecycle: an append-only sequence of events (opened, recheck, acknowledged,
resolved, blast_radius, note), each in its own transaction with its audit entry; the status
is derived from the events, so nothing is ever rewritten. Reading composes record and events.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from judgecal import audit, notify
from judgecal.audit.snapshots import snapshot_event
from judgecal.db import schema
from judgecal.errors import InputError, NotFoundError, Problem
from judgecal.incidents.schema import ACKNOWLEDGED, OPEN, RESOLVED, STATUSES
from judgecal.records import json_safe, utcnow
from judgecal.store import by_id_or_prefix

if TYPE_CHECKING:
    from judgecal.store import Store

__all__ = [
    "acknowledge",
    "add_event",
    "append_event",
    "event_row",
    "events_of",
    "get_incident",
    "list_incidents",
    "resolve",
    "snapshot_event",
    "status_of",
]

_KIND = re.compile(r"^[a-z][a-z0-9_.\-]{0,39}$")




def event_row(r: Any) -> dict[str, Any]:
    """An ``incident_events`` row as the incident shows it."""
    return {"seq": int(r["seq"]), "kind": r["kind"], "at": r["at"], "actor": r["actor"],
            "reason": r["reason"], "data": r["data"]}


def events_of(conn: Connection, incident_id: str) -> list[dict[str, Any]]:
    e = schema.incident_events.c
    rows = conn.execute(
        select(schema.incident_events).where(e.incident_id == incident_id).order_by(e.seq)
    ).mappings().all()
    return [event_row(r) for r in rows]


def status_of(events: list[dict[str, Any]]) -> str:
    status = OPEN
    for ev in events:
        if ev["kind"] == "acknowledged" and status == OPEN:
            status = ACKNOWLEDGED
        elif ev["kind"] == "resolved":
            status = RESOLVED
    return status


def append_event(conn: Connection, incident_id: str, kind: str, data: dict[str, Any],
                  actor: str | None, reason: str | None) -> dict[str, Any]:
    e = schema.incident_events.c
    last = conn.execute(
        select(e.seq).where(e.incident_id == incident_id).order_by(e.seq.desc()).limit(1)
    ).scalar()
    seq = 1 if last is None else int(last) + 1
    event = {
        "incident_id": incident_id,
        "seq": seq,
        "kind": kind,
        "at": utcnow(),
        "actor": actor,
        "reason": reason,
        "data": json.loads(json.dumps(json_safe(data), default=str, allow_nan=False)),
    }
    conn.execute(schema.incident_events.insert().values(**event))
    snap = snapshot_event(conn, f"{incident_id}#{seq}")
    assert snap is not None
    audit.append(conn, "incident_event", f"{incident_id}#{seq}", snap)
    return event


def add_event(
    store: Store,
    incident_id: str,
    kind: str,
    data: dict[str, Any] | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Append one event to an incident's history (never rewriting anything earlier).

    ``acknowledged`` needs an open incident, ``resolved`` one not yet resolved; both need
    ``actor`` (who) and ``reason`` (why). ``opened`` is written only when an incident is
    opened. ``blast_radius`` data becomes the incident's current blast radius (see the module
    docstring for its keys). The event and its audit-log entry are written in one transaction
    (lifecycle events also queue a notification). Returns the event.
    """
    data = dict(data or {})
    if not _KIND.match(kind):
        raise InputError(f"event kind {kind!r}: use lowercase letters, digits, '_', '.' or '-'")
    if kind == "opened":
        raise InputError("'opened' is written when the incident is opened, not added later")
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"event data must be JSON (no NaN): {exc}") from None
    with store.engine.begin() as conn:
        i = schema.incidents.c
        row = conn.execute(
            select(schema.incidents).where(i.incident_id == incident_id).with_for_update()
        ).mappings().first()
        if row is None:
            raise NotFoundError(f"no incident '{incident_id}'")
        status = status_of(events_of(conn, incident_id))
        if kind in ("acknowledged", "resolved"):
            if not (actor and actor.strip()) or not (reason and reason.strip()):
                raise InputError(f"'{kind}' needs who (actor) and why (reason)")
            if kind == "acknowledged" and status != OPEN:
                raise InputError(Problem(f"incident {incident_id}", f"it is {status}: only an "
                                         "open incident can be acknowledged"))
            if kind == "resolved" and status == RESOLVED:
                raise InputError(Problem(f"incident {incident_id}", "it is already resolved"))
        if kind == "recheck" and status == RESOLVED:
            raise InputError(Problem(f"incident {incident_id}",
                                     "it is resolved: a new drift opens a new incident"))
        event = append_event(conn, incident_id, kind, data, actor, reason)
        if kind in ("acknowledged", "resolved", "blast_radius"):
            notify.enqueue(conn, f"incident.{kind}", f"incident.{kind}:{incident_id}#"
                           f"{event['seq']}", {
                               "incident_id": incident_id, "judge": row["judge_name"],
                               "severity": row["severity"], "actor": actor,
                               "reason": reason, "data": event["data"],
                               "status": status_of(events_of(conn, incident_id)),
                           })
    return {k: v for k, v in event.items()}


def acknowledge(store: Store, incident_id: str, actor: str, reason: str) -> dict[str, Any]:
    return add_event(store, incident_id, "acknowledged", {}, actor, reason)


def resolve(store: Store, incident_id: str, actor: str, reason: str,
            data: dict[str, Any] | None = None) -> dict[str, Any]:
    return add_event(store, incident_id, "resolved", data or {}, actor, reason)


# --------------------------------------------------------------------------- reading


def _compose(row: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    record = dict(row["record"])
    blast = None
    for ev in events:
        if ev["kind"] == "blast_radius":
            blast = dict(ev["data"], at=ev["at"], event_seq=ev["seq"])
    severity = dict(record["severity"])
    severity["blast_radius"] = blast
    record["severity"] = severity
    record["status"] = status_of(events)
    record["events"] = events

    def step(kind: str) -> dict[str, Any] | None:
        ev = next((e for e in reversed(events) if e["kind"] == kind), None)
        return None if ev is None else {"by": ev["actor"], "at": ev["at"], "reason": ev["reason"]}

    record["acknowledged"] = step("acknowledged")
    record["resolved"] = step("resolved")
    record["resolved_at"] = record["resolved"]["at"] if record["resolved"] else None
    return record


def get_incident(store: Store, incident_id: str) -> dict[str, Any]:
    """One incident as JSON-able data (see the module docstring and :data:`INCIDENT_SCHEMA`).

    ``incident_id`` may be a unique prefix, or ``latest`` (the newest incident).
    """
    i = schema.incidents.c
    with store.engine.connect() as conn:
        if incident_id == "latest":
            newest = conn.execute(
                select(i.incident_id).order_by(i.opened_at.desc()).limit(1)
            ).scalar()
            if newest is None:
                raise NotFoundError("no incidents yet")
            incident_id = str(newest)
        row = by_id_or_prefix(conn, i.incident_id, incident_id, "incident id")
        if row is None:
            raise NotFoundError(f"no incident '{incident_id}'")
        events = events_of(conn, row["incident_id"])
    return _compose(row, events)


def list_incidents(
    store: Store, judge_name: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Incidents, newest first, as summaries (the fields of :func:`get_incident` without the
    evidence, the fingerprint diff and the events)."""
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    i = schema.incidents.c
    e = schema.incident_events.c
    query = select(schema.incidents).order_by(i.opened_at.desc())
    if judge_name:
        query = query.where(i.judge_name == judge_name)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings().all()]
        events: dict[str, list[dict[str, Any]]] = {}
        for ev in conn.execute(select(schema.incident_events).order_by(e.incident_id, e.seq)
                               ).mappings().all():
            events.setdefault(ev["incident_id"], []).append(event_row(ev))
    out = []
    for row in rows:
        full = _compose(row, events.get(row["incident_id"], []))
        if status is not None and full["status"] != status:
            continue
        out.append({
            k: full.get(k) for k in (
                "incident_id", "schema_version", "judge_name", "set_name", "set_version",
                "baseline_run_id", "run_id", "check_id", "opened_at", "status", "severity",
                "last_healthy_run_at", "production_tags", "acknowledged", "resolved",
                "resolved_at")
        } | {"root_cause": {k: full["root_cause"].get(k)
                            for k in ("code", "title", "summary", "cause_family")},
             "events": len(full["events"])})
    return out
