"""Drift incidents: immutable evidence, an append-only lifecycle, and three renderings.

An incident is opened by :func:`record_check` when a drift check reaches SEV2 or worse
(warnings are recorded as checks, not incidents). Its *record* — the evidence — is written
once and never updated: the runs compared, every dimension's metrics with their intervals,
the worst-flipped items, the fingerprint diff, the root cause, the last healthy run. What
happens afterwards is a sequence of *events* (``incident_events``), each appended with
:func:`add_event` in its own transaction together with its audit-log entry:

=================  =============================================================
``opened``         written with the record (who: judgecal, data: the check)
``recheck``        a later night confirmed the drift against the same baseline
``acknowledged``   someone took it (who and why required; only while open)
``resolved``       closed (who and why required); a later drift opens a new one
``blast_radius``   affected production scores (written by the score-history link)
``note``           free text / data from anyone
=================  =============================================================

Other lowercase kinds are accepted as evidence. The status is derived from the events
(open → acknowledged → resolved), so nothing is ever rewritten.

JSON (:func:`get_incident`, schema :data:`INCIDENT_SCHEMA`, ``schema_version`` 1)::

    {"incident_id", "schema_version", "judge_name", "set_name", "set_version",
     "baseline_run_id", "run_id", "check_id", "opened_at", "status",
     "severity": {"level", "magnitude": {...}, "blast_radius": {...} | null,
                  "dimensions": [...]},
     "root_cause": {"code", "title", "summary", "cause_family", "factors"},
     "fingerprint_diff": {...}, "production_tags": {"before", "after"},
     "last_healthy_run_at", "last_healthy_run_id", "evidence": {...},
     "events": [{"seq", "kind", "at", "actor", "reason", "data"}, ...],
     "acknowledged": {...} | null, "resolved": {...} | null, "resolved_at"}

``severity.blast_radius`` is the ``data`` of the newest ``blast_radius`` event (plus its
``at``), or null until one is linked. Keys read by the renderings (all optional):
``pct_traffic`` / ``traffic_pct`` (% of production scores in the affected window produced by
the affected judge), ``pct_customers`` / ``customers_pct`` (% of named customers with at least
one affected score), ``affected_scores``, ``scores_in_window``, ``customers_affected``,
``customers_active``, ``window`` ``{"start", "end"}``, ``top_customers`` ``[{"customer",
"affected_scores"}]`` or ``customers`` ``{name: affected score count}`` (a complete map).

Renderings: :func:`render_markdown` for engineers, :func:`render_postmortem` for customers
(plain words: no metric names, no statistics vocabulary).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, select

from judgecal import audit, drift, notify
from judgecal.db import schema
from judgecal.errors import InputError, NotFoundError, Problem
from judgecal.fingerprint import production_tag
from judgecal.records import json_safe, utcnow
from judgecal.records import now as clock_now
from judgecal.store import by_id_or_prefix

if TYPE_CHECKING:
    from judgecal.config import RunConfig
    from judgecal.store import Store

SCHEMA_VERSION = 1

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)

_KIND = re.compile(r"^[a-z][a-z0-9_.\-]{0,39}$")

INCIDENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://judgecal.dev/schemas/incident-1.json",
    "title": "judgecal drift incident",
    "type": "object",
    "required": [
        "incident_id", "schema_version", "judge_name", "set_name", "set_version",
        "baseline_run_id", "run_id", "check_id", "opened_at", "status", "severity",
        "root_cause", "fingerprint_diff", "last_healthy_run_at", "events", "evidence",
    ],
    "properties": {
        "incident_id": {"type": "string"},
        "schema_version": {"const": SCHEMA_VERSION},
        "judge_name": {"type": "string"},
        "set_name": {"type": "string"},
        "set_version": {"type": "string"},
        "baseline_run_id": {"type": "string"},
        "run_id": {"type": "string"},
        "check_id": {"type": "string"},
        "opened_at": {"type": "string"},
        "status": {"enum": list(STATUSES)},
        "severity": {
            "type": "object",
            "required": ["level", "magnitude", "blast_radius", "dimensions"],
            "properties": {
                "level": {"enum": ["SEV0", "SEV2"]},
                "magnitude": {
                    "type": "object",
                    "required": ["level", "dimension", "metric", "points", "baseline",
                                 "current", "interval95_points", "decision_interval_points",
                                 "decision_confidence"],
                },
                "blast_radius": {"type": ["object", "null"]},
                "dimensions": {"type": "array", "items": {
                    "type": "object",
                    "required": ["dimension", "metric", "points", "direction", "severity",
                                 "real"],
                }},
            },
        },
        "root_cause": {
            "type": "object",
            "required": ["code", "summary", "cause_family"],
            "properties": {"cause_family": {"const": "judge drift"}},
        },
        "fingerprint_diff": {"type": "object", "required": ["changed", "fields"]},
        "production_tags": {"type": "object", "required": ["before", "after"]},
        "last_healthy_run_at": {"type": ["string", "null"]},
        "evidence": {"type": "object",
                     "required": ["runs", "dimensions", "watches", "worst_flipped_items"]},
        "events": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["seq", "kind", "at", "actor", "reason", "data"],
        }},
    },
}
"""JSON Schema of :func:`get_incident` (``schema_version`` 1). A new field may be added
without a new version; renaming or removing one needs ``schema_version`` 2."""


# --------------------------------------------------------------------------- audit snapshots


@audit.snapshot_kind("incident")
def snapshot_incident(conn: Connection, ref: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(schema.incidents).where(schema.incidents.c.incident_id == ref)
    ).mappings().first()
    return None if row is None else dict(json.loads(audit.canonical(dict(row))))


@audit.snapshot_kind("incident_event")
def snapshot_event(conn: Connection, ref: str) -> dict[str, Any] | None:
    incident_id, _, seq = ref.rpartition("#")
    if not seq.isdigit():
        return None
    e = schema.incident_events.c
    row = conn.execute(
        select(schema.incident_events).where(and_(e.incident_id == incident_id,
                                                  e.seq == int(seq)))
    ).mappings().first()
    return None if row is None else dict(json.loads(audit.canonical(dict(row))))


# --------------------------------------------------------------------------- opening


def new_incident_id() -> str:
    return f"INC-{clock_now().strftime('%Y%m%d')}-{secrets.token_hex(3)}"


@dataclass
class CheckOutcome:
    """What :func:`record_check` did with a drift check."""

    check_id: str
    verdict: str
    severity: str | None
    incident_id: str | None = None
    incident_action: str | None = None
    """``opened`` (a new incident) or ``recheck`` (evidence added to an open one)."""
    incident_status: str | None = None
    notifications: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "verdict": self.verdict,
            "severity": self.severity,
            "incident_id": self.incident_id,
            "incident_action": self.incident_action,
            "incident_status": self.incident_status,
            "notifications": self.notifications,
        }


def _magnitude(dimensions: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rank = {None: 0, "notice": 1, "warning": 2, "SEV2": 3, "SEV0": 4}
    moved = [
        {
            "dimension": e["dimension"],
            "description": e.get("description", ""),
            "metric": e["metric"],
            "points": e["delta_points"],
            "direction": e["direction"],
            "severity": e["severity"],
            "real": e["real"],
        }
        for e in dimensions
        if e.get("real")
    ]
    worst = max(
        (e for e in dimensions if e.get("real")),
        key=lambda e: (rank[e["severity"]], abs(e["delta_points"] or 0)),
    )
    magnitude = {
        "level": worst["severity"],
        "dimension": worst["dimension"],
        "metric": worst["metric"],
        "points": worst["delta_points"],
        "direction": worst["direction"],
        "baseline": worst["baseline"],
        "current": worst["current"],
        "interval95_points": worst["interval95_points"],
        "decision_interval_points": worst["decision_interval_points"],
        "decision_confidence": worst["decision_confidence"],
        "severity_range": worst.get("severity_range"),
        "n_common": worst["n_common"],
        "minimum_detectable_change_points": worst.get("minimum_detectable_change_points"),
    }
    return magnitude, moved


def _run_brief(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    summary = run.get("summary") or {}
    return {
        "run_id": run["run_id"],
        "status": run["status"],
        "origin": run.get("origin"),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "requested_model": (run.get("judge_config") or {}).get("model"),
        "served_models": (summary.get("observed_fingerprint") or {}).get("served_models"),
        "configured_hash": (run.get("fingerprint") or {}).get("hash"),
        "production_tag": production_tag(run),
        "scored": summary.get("scored"),
        "unscored": summary.get("unscored"),
        "failed": summary.get("failed"),
    }


def build_record(check: drift.DriftCheck, incident_id: str, opened_at: str,
                 last_healthy: dict[str, Any] | None) -> dict[str, Any]:
    """The immutable evidence of a new incident, from the check that found the drift."""
    c = check.to_json()
    magnitude, moved = _magnitude(c["dimensions"])
    return {
        "incident_id": incident_id,
        "schema_version": SCHEMA_VERSION,
        "judge_name": c["judge_name"],
        "set_name": c["set_name"],
        "set_version": c["set_version"],
        "baseline_run_id": c["baseline_run_id"],
        "run_id": c["run_id"],
        "check_id": c["check_id"],
        "opened_at": opened_at,
        "severity": {"level": check.severity, "magnitude": magnitude, "dimensions": moved},
        "root_cause": c["root_cause"],
        "fingerprint_diff": c["fingerprint_diff"],
        "production_tags": {
            "before": production_tag(check.baseline or {}),
            "after": production_tag(check.run),
        },
        "last_healthy_run_at": None if last_healthy is None else last_healthy["finished_at"],
        "last_healthy_run_id": None if last_healthy is None else last_healthy["run_id"],
        "evidence": {
            "message": c["message"],
            "runs": {"baseline": _run_brief(check.baseline), "current": _run_brief(check.run)},
            "alarm_level": c["alarm_level"],
            "dimensions": c["dimensions"],
            "watches": c["watches"],
            "worst_flipped_items": c["flipped_items"],
            "bootstrap": c["bootstrap"],
            "thresholds": {k: c["settings"].get(k) for k in
                           ("warning_points", "sev2_points", "sev0_points", "confidence",
                            "horizon_nights", "rises")},
        },
    }


def _open_incident_for(conn: Connection, judge_name: str, set_version: str,
                       baseline_run_id: str) -> str | None:
    i = schema.incidents.c
    ids = [r[0] for r in conn.execute(
        select(i.incident_id).where(and_(i.judge_name == judge_name,
                                         i.set_version == set_version,
                                         i.baseline_run_id == baseline_run_id))
        .order_by(i.opened_at.desc())
    ).all()]
    for incident_id in ids:
        if _status(_events(conn, incident_id)) != RESOLVED:
            return str(incident_id)
    return None


def _notification(incident: dict[str, Any], event: str) -> dict[str, Any]:
    sev = incident["severity"]
    mag = sev["magnitude"]
    return {
        "incident_id": incident["incident_id"],
        "judge": incident["judge_name"],
        "set": incident["set_name"],
        "severity": sev["level"],
        "dimension": mag["dimension"],
        "metric": mag["metric"],
        "points": mag["points"],
        "interval95_points": mag["interval95_points"],
        "root_cause": {k: incident["root_cause"][k] for k in ("code", "title", "summary")},
        "run_id": incident["run_id"],
        "baseline_run_id": incident["baseline_run_id"],
        "opened_at": incident["opened_at"],
        "event": event,
    }


def record_check(store: Store, check: drift.DriftCheck) -> CheckOutcome:
    """Save a drift check and act on it, in one transaction.

    SEV2 or worse opens an incident — or, when an incident of the same judge, set version and
    baseline is still open, appends a ``recheck`` event to it (one incident per drift, not one
    per night). Warnings and notices are recorded with the check. Every outcome worth telling
    is put in the notification outbox in the same transaction (delivered later by
    :func:`judgecal.notify.deliver_pending`).
    """
    outcome = CheckOutcome(check.check_id, check.verdict, check.severity)
    last_healthy = None
    if check.verdict == drift.INCIDENT:
        last_healthy = drift.last_healthy_run(store, check.run["judge_name"],
                                              before=check.run["started_at"])
    with store.engine.begin() as conn:
        drift.save_check(store, check, conn)
        if check.verdict == drift.INCIDENT:
            assert check.baseline_run_id is not None
            existing = _open_incident_for(conn, check.run["judge_name"],
                                          check.run["set_version"], check.baseline_run_id)
            if existing is not None:
                data = {"check_id": check.check_id, "run_id": check.run_id,
                        "severity": check.severity,
                        "dimensions": [{"dimension": e["dimension"],
                                        "points": e["delta_points"],
                                        "interval95_points": e["interval95_points"],
                                        "severity": e["severity"]}
                                       for e in check.dimensions]}
                _append_event(conn, existing, "recheck", data, "judgecal", None)
                outcome.incident_id, outcome.incident_action = existing, "recheck"
                outcome.incident_status = _status(_events(conn, existing))
                key = f"incident.recheck:{existing}:{check.check_id}"
                if notify.enqueue(conn, "incident.recheck", key,
                                  dict(data, incident_id=existing, judge=check.run["judge_name"],
                                       status=outcome.incident_status)):
                    outcome.notifications.append(key)
            else:
                incident_id = new_incident_id()
                opened_at = utcnow()
                record = build_record(check, incident_id, opened_at, last_healthy)
                conn.execute(schema.incidents.insert().values(
                    incident_id=incident_id,
                    schema_version=SCHEMA_VERSION,
                    judge_name=record["judge_name"],
                    set_name=record["set_name"],
                    set_version=record["set_version"],
                    baseline_run_id=record["baseline_run_id"],
                    run_id=record["run_id"],
                    check_id=record["check_id"],
                    severity=check.severity,
                    opened_at=opened_at,
                    record=json.loads(audit.canonical(json_safe(record))),
                ))
                snap = snapshot_incident(conn, incident_id)
                assert snap is not None
                audit.append(conn, "incident", incident_id, snap)
                _append_event(conn, incident_id, "opened",
                              {"check_id": check.check_id, "severity": check.severity},
                              "judgecal", "drift check reached " + str(check.severity))
                outcome.incident_id, outcome.incident_action = incident_id, "opened"
                outcome.incident_status = OPEN
                key = f"incident.opened:{incident_id}"
                if notify.enqueue(conn, "incident.opened", key,
                                  _notification(record, "incident.opened")):
                    outcome.notifications.append(key)
        elif check.verdict in (drift.WARNING, drift.NOTICE, drift.JUDGE_CHANGED,
                               drift.NO_BASELINE, drift.NOT_COMPARABLE):
            event = {drift.WARNING: "drift.warning", drift.NOTICE: "drift.notice",
                     drift.JUDGE_CHANGED: "drift.judge_changed"}.get(
                         check.verdict, "watch.not_monitored")
            key = f"{event}:{check.check_id}"
            payload = {
                "check_id": check.check_id,
                "judge": check.run["judge_name"],
                "set": check.run["set_name"],
                "run_id": check.run_id,
                "baseline_run_id": check.baseline_run_id,
                "verdict": check.verdict,
                "message": check.message,
                "root_cause": {k: check.root_cause.get(k) for k in ("code", "title", "summary")},
                "dimensions": [{"dimension": e["dimension"], "points": e["delta_points"],
                                "interval95_points": e["interval95_points"],
                                "real": e["real"], "severity": e["severity"]}
                               for e in check.dimensions],
            }
            if notify.enqueue(conn, event, key, json_safe(payload)):
                outcome.notifications.append(key)
    return outcome


# --------------------------------------------------------------------------- events


def _event(r: Any) -> dict[str, Any]:
    """An ``incident_events`` row as the incident shows it."""
    return {"seq": int(r["seq"]), "kind": r["kind"], "at": r["at"], "actor": r["actor"],
            "reason": r["reason"], "data": r["data"]}


def _events(conn: Connection, incident_id: str) -> list[dict[str, Any]]:
    e = schema.incident_events.c
    rows = conn.execute(
        select(schema.incident_events).where(e.incident_id == incident_id).order_by(e.seq)
    ).mappings().all()
    return [_event(r) for r in rows]


def _status(events: list[dict[str, Any]]) -> str:
    status = OPEN
    for ev in events:
        if ev["kind"] == "acknowledged" and status == OPEN:
            status = ACKNOWLEDGED
        elif ev["kind"] == "resolved":
            status = RESOLVED
    return status


def _append_event(conn: Connection, incident_id: str, kind: str, data: dict[str, Any],
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
        status = _status(_events(conn, incident_id))
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
        event = _append_event(conn, incident_id, kind, data, actor, reason)
        if kind in ("acknowledged", "resolved", "blast_radius"):
            notify.enqueue(conn, f"incident.{kind}", f"incident.{kind}:{incident_id}#"
                           f"{event['seq']}", {
                               "incident_id": incident_id, "judge": row["judge_name"],
                               "severity": row["severity"], "actor": actor,
                               "reason": reason, "data": event["data"],
                               "status": _status(_events(conn, incident_id)),
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
    record["status"] = _status(events)
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
        events = _events(conn, row["incident_id"])
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
            events.setdefault(ev["incident_id"], []).append(_event(ev))
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


# --------------------------------------------------------------------------- Markdown


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#<>])")


def md(text: Any) -> str:
    """Escape text from data (item ids, names, reasons) for Markdown and embedded HTML."""
    s = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", s.replace("&", "&amp;"))


def _pts(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}"


def _metric(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None:
        return "undefined"
    text = f"{m['value']:.3f}"
    if m.get("ci_low") is not None:
        text += f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
    return text


def _blast_text(blast: dict[str, Any] | None) -> str:
    if not blast:
        return "not linked yet (run `judgecal scores link`)"
    parts = []
    traffic = _pct(blast, ("traffic_pct", "traffic_percent", "pct_traffic"), ("traffic_share",))
    customers = _pct(blast, ("customers_pct", "named_customers_pct", "pct_customers"),
                     ("customers_share", "customer_share"))
    if traffic is not None:
        parts.append(f"{traffic:.1f}% of traffic")
    if customers is not None:
        parts.append(f"{customers:.1f}% of named customers")
    if blast.get("affected_scores") is not None:
        total = blast.get("scores_in_window") or blast.get("total_scores")
        parts.append(f"{blast['affected_scores']} affected score(s)"
                     + (f" of {total}" if total else ""))
    affected_customers = blast.get("customers_affected", blast.get("affected_customers"))
    if affected_customers is not None:
        active = blast.get("customers_active") or blast.get("total_customers")
        parts.append(f"{affected_customers} customer(s)" + (f" of {active}" if active else ""))
    window = _window(blast)
    if window:
        parts.append(f"window {window[0]} → {window[1]}")
    return "; ".join(parts) or md(json.dumps({k: v for k, v in blast.items()
                                              if k not in ("at", "event_seq")}))


def _pct(data: dict[str, Any], pct_keys: tuple[str, ...], share_keys: tuple[str, ...]
         ) -> float | None:
    for k in pct_keys:
        if isinstance(data.get(k), int | float):
            return float(data[k])
    for k in share_keys:
        if isinstance(data.get(k), int | float):
            return 100.0 * float(data[k])
    return None


def _window(data: dict[str, Any]) -> tuple[str, str] | None:
    w = data.get("window")
    if isinstance(w, dict) and w.get("start") and w.get("end"):
        return str(w["start"]), str(w["end"])
    if data.get("window_start") and data.get("window_end"):
        return str(data["window_start"]), str(data["window_end"])
    return None


def render_markdown(incident: dict[str, Any]) -> str:
    """The incident for engineers: severity axes, root cause, fingerprint diff, evidence,
    worst-flipped items, timeline."""
    sev = incident["severity"]
    mag = sev["magnitude"]
    rc = incident["root_cause"]
    ev = incident["evidence"]
    runs = ev["runs"]
    out = [
        f"# {md(incident['incident_id'])} — {sev['level']} judge drift: {md(rc['title'])}",
        "",
        f"**Status:** {incident['status']}  ",
        f"**Judge:** {md(incident['judge_name'])}  ",
        f"**Calibration set:** {md(incident['set_name'])} (version "
        f"`{incident['set_version'][:19]}`)  ",
        f"**Opened:** {incident['opened_at']}  ",
        f"**Last healthy run:** {incident.get('last_healthy_run_at') or 'none on record'}"
        + (f" (`{incident['last_healthy_run_id']}`)" if incident.get("last_healthy_run_id")
           else ""),
        "",
        "| | baseline | run |",
        "|---|---|---|",
        f"| run | `{runs['baseline']['run_id']}` | `{runs['current']['run_id']}` |",
        f"| finished | {runs['baseline']['finished_at']} | {runs['current']['finished_at']} |",
        f"| requested model | {md(runs['baseline']['requested_model'])} | "
        f"{md(runs['current']['requested_model'])} |",
        f"| production tag | `{incident['production_tags']['before']}` | "
        f"`{incident['production_tags']['after']}` |",
        "",
        "## Severity",
        "",
        f"- **Magnitude: {mag['level']}** — {md(mag['dimension'])} {md(mag['metric'])} "
        f"{_metric(mag['baseline'])} → {_metric(mag['current'])}: "
        f"**{_pts(mag['points'])} points** (95% interval {_pts(mag['interval95_points'][0])} "
        f"to {_pts(mag['interval95_points'][1])}"
        + ("" if abs(mag["decision_confidence"] - 0.95) < 1e-9 else
           f"; at the alarm level {100 * mag['decision_confidence']:.2f}%: "
           f"{_pts(mag['decision_interval_points'][0])} to "
           f"{_pts(mag['decision_interval_points'][1])}")
        + f") on {mag['n_common']} items.",
    ]
    rng = mag.get("severity_range")
    if rng and rng[0] != rng[1]:
        out.append(f"  The interval spans severities {rng[0] or 'none'} to {rng[1]}: the "
                   "level is the point estimate's, not a certainty.")
    out += [
        f"- **Blast radius:** {_blast_text(sev.get('blast_radius'))}",
        "- **Dimensions:** " + (", ".join(
            f"{md(d['dimension'])} ({d['direction']} {_pts(d['points'])} points, "
            f"{d['severity']})" for d in sev["dimensions"]) or "none"),
        "",
        "## Root cause",
        "",
        f"**{md(rc['title'])}** (cause family: {rc['cause_family']}). {md(rc['summary'])}",
        "",
    ]
    for f in rc.get("factors") or []:
        out.append(f"- {md(f['words'])}")
    out += ["", "## Fingerprint diff", "", "| field | baseline | run | changed |",
            "|---|---|---|---|"]
    for f in incident["fingerprint_diff"]["fields"]:
        out.append(f"| {md(f['label'])} | {md(_short(f['before']))} | {md(_short(f['after']))} "
                   f"| {'**yes**' if f['changed'] else 'no'} |")
    for note in incident["fingerprint_diff"].get("notes") or []:
        out.append(f"\n> {md(note)}")
    for f in incident["fingerprint_diff"]["fields"]:
        detail = f.get("detail")
        if f["changed"] and isinstance(detail, dict) and detail.get("diff"):
            out += ["", f"{md(f['label'])} diff:", "", "```diff"]
            out += [line.replace("```", "ʼʼʼ") for line in detail["diff"]]
            out.append("```")
    out += ["", "## Evidence", "", f"Alarm level: {md(ev['alarm_level']['reason'])} "
            f"(alpha {ev['alarm_level']['alpha']:.4g}, {ev['alarm_level']['correction']}).", "",
            "| dimension | metric | baseline | run | Δ points | 95% interval | items | "
            "left out | verdicts changed | min. detectable |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for d in ev["dimensions"]:
        mdc = (d.get("minimum_detectable_change_points") or {}).get("set")
        out.append(
            f"| {md(d['dimension'])} | {md(d['metric'])} | {_metric(d['baseline'])} | "
            f"{_metric(d['current'])} | {_pts(d['delta_points'])} | "
            f"{_pts(d['interval95_points'][0])} to {_pts(d['interval95_points'][1])} | "
            f"{d['n_common']} | {d['scored_only_by_baseline'] + d['scored_only_by_run']} | "
            f"{d['n_changed']} | {'—' if mdc is None else f'{mdc:.1f}'} |")
    for w in ev["watches"].get("unscored") or []:
        if w.get("baseline_rate") is not None:
            out.append(f"\nUnparseable replies ({md(w['dimension'])}): "
                       f"{100 * w['baseline_rate']:.1f}% → {100 * w['run_rate']:.1f}% "
                       f"(p = {w['p_value']:.3g}).")
    for w in ev["watches"].get("distribution") or []:
        if w.get("shift_points") is not None:
            out.append(f"\nJudge's own verdicts ({md(w['dimension'])}): "
                       f"{md(drift.describe_shift(w))} — {w['test']}, p = {w['p_value']:.3g}.")
    for dim, items in (ev.get("worst_flipped_items") or {}).items():
        if not items:
            continue
        out += ["", f"### Worst-flipped items: {md(dim)}", "",
                "| item | humans | baseline | run | effect | segments |",
                "|---|---|---|---|---|---|"]
        for it in items:
            segs = ", ".join(f"{k}={v}" for k, v in (it.get("segments") or {}).items())
            out.append(f"| {md(it['item_id'])} | {md(it['human'])} | {md(it['baseline'])} | "
                       f"{md(it['current'])} | {it['effect']} | {md(segs)} |")
    out += ["", "## Timeline", ""]
    for e in incident["events"]:
        who = f" by {md(e['actor'])}" if e.get("actor") else ""
        why = f": {md(e['reason'])}" if e.get("reason") else ""
        extra = ""
        if e["kind"] == "blast_radius":
            extra = f" — {_blast_text(e['data'])}"
        elif e["kind"] == "recheck":
            extra = f" — run `{e['data'].get('run_id')}`, {e['data'].get('severity')}"
        out.append(f"- {e['at']} — **{md(e['kind'])}**{who}{why}{extra}")
    return "\n".join(out) + "\n"


def _short(value: Any) -> str:
    if isinstance(value, dict):
        if all(isinstance(v, dict) and "share" in v for v in value.values()):
            return ", ".join(f"{k} ({v['share']:.0%})" for k, v in value.items()) or "none"
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[7:19]
    return "—" if value is None else str(value)


# --------------------------------------------------------------------------- postmortem

_LEVEL_WORDS = {"SEV0": "critical (the highest of our three levels)",
                "SEV2": "major (the middle of our three levels)"}

_WHAT_CHANGED = {
    drift.SILENT_PROVIDER_UPDATE: (
        "The company that provides the AI model behind our automated grader replaced or "
        "updated that model without notice. Nothing changed in our own setup: we asked for "
        "the same model as before, but the answers came from a different one."),
    drift.PLANNED_MODEL_MIGRATION: (
        "We moved our automated grader to a different AI model, and the new model grades "
        "differently from the old one."),
    drift.RUBRIC_PROMPT_CHANGE: (
        "We changed the instructions our automated grader follows, and the new instructions "
        "made it grade differently."),
    drift.DECODING_CHANGE: (
        "We changed technical settings that control how our automated grader writes its "
        "answers, and that made it grade differently."),
    drift.UNEXPLAINED_PROVIDER_CHANGE: (
        "Our automated grader started grading differently although nothing changed in our "
        "setup and the provider reported the same model as before. The most likely "
        "explanation is an unannounced change on the provider's side."),
}

_WILL_DO = {
    drift.SILENT_PROVIDER_UPDATE: [
        "Ask the provider for the exact model version and pin it where the provider allows, "
        "so that a silent replacement cannot happen again unnoticed.",
    ],
    drift.PLANNED_MODEL_MIGRATION: [
        "Check every future change of the grader's model against hand-graded examples "
        "before it goes live.",
    ],
    drift.RUBRIC_PROMPT_CHANGE: [
        "Check every future change of the grader's instructions against hand-graded "
        "examples before it goes live.",
    ],
    drift.DECODING_CHANGE: [
        "Check every future change of the grader's settings against hand-graded examples "
        "before it goes live.",
    ],
    drift.UNEXPLAINED_PROVIDER_CHANGE: [
        "Ask the provider what changed, and pin the model version where the provider allows.",
    ],
}


_ALWAYS_DO = [
    "Re-check the grades that the changed grader produced, and tell you about any that change.",
    "Keep checking the grader every night against the hand-graded examples, so that a change "
    "like this is caught within a day.",
]


def _when(iso: str | None) -> str:
    if not iso:
        return "an unknown time"
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{t.day} {t.strftime('%B %Y')} at {t.strftime('%H:%M')} UTC"


def _day(iso: str | None) -> str:
    if not iso:
        return "an unknown date"
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{t.day} {t.strftime('%B %Y')}"


def _rate_metric(dim: dict[str, Any]) -> tuple[float, float] | None:
    """The plain agreement rate (share of items where judge and humans agree), before/after."""
    for key in ("accuracy", "exact_agreement"):
        m = (dim.get("metrics") or {}).get(key)
        if m and m["baseline"].get("value") is not None and m["current"].get("value") is not None:
            return float(m["baseline"]["value"]), float(m["current"]["value"])
    return None


def _check_customer(incident: dict[str, Any], customer: str, per: Any,
                    top: dict[str, Any]) -> None:
    """Refuse a postmortem for a customer the blast radius shows had no affected score (a
    typo, or a customer that was not affected): the complete per-customer map does not name
    it, or every affected customer is listed and it is not among them. A customer the map
    gives 0 is known and gets the draft ("none of your grades...")."""
    blast = incident["severity"].get("blast_radius") or {}
    if isinstance(per, dict):
        if customer in per:
            return
        affected = sorted(str(c) for c, n in per.items() if n)
    else:
        count = blast.get("customers_affected", blast.get("affected_customers"))
        if customer in top or not isinstance(count, int) or len(top) < count:
            return  # listed, or not every affected customer is listed: it may be one
        affected = sorted(top)
    raise InputError(f"--customer {customer!r}: the customer is unknown or has no affected "
                     f"scores in the blast radius of incident {incident['incident_id']} "
                     f"(affected customers: {_names(affected)})")


def _names(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most]) or "none"
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def render_postmortem(incident: dict[str, Any], customer: str | None = None) -> str:
    """A customer-facing postmortem draft in plain words: what changed, how big, who was
    affected, what we did, what we will do. No metric names or statistics vocabulary."""
    sev = incident["severity"]
    mag = sev["magnitude"]
    rc = incident["root_cause"]
    ev = incident["evidence"]
    dim = next((d for d in ev["dimensions"] if d["dimension"] == mag["dimension"]),
               ev["dimensions"][0])
    n = mag["n_common"]
    opened = incident["opened_at"]
    lines = [
        f"# Incident report: a change in our automated grading ({_day(opened)})",
        "",
        "*Draft for review before sending.*" + (f" Prepared for {customer}." if customer else ""),
        "",
        "## What changed",
        "",
        _WHAT_CHANGED.get(rc["code"], "Our automated grader started grading differently."),
        "",
        "## How big",
        "",
        f"Every night we check our automated grader against {n} examples that people graded "
        "by hand, and compare its grades with theirs.",
    ]
    rate = _rate_metric(dim)
    direction = "fell" if mag["direction"] == "drop" else "rose"
    if rate is not None:
        lines.append(
            f"Before the change it agreed with the people on {100 * rate[0]:.0f} out of 100 "
            f"examples; after it, on {100 * rate[1]:.0f} out of 100.")
    b, c = mag["baseline"].get("value"), mag["current"].get("value")
    if b is not None and c is not None:
        lines.append(
            f"On a 100-point agreement score, where 100 means it always agrees with the people "
            f"and 0 means it does no better than guessing, its score {direction} from "
            f"{100 * b:.0f} to {100 * c:.0f}.")
    lo, hi = mag["interval95_points"]
    if lo is not None and hi is not None:
        near, far = sorted([abs(lo), abs(hi)])
        move = "drop" if direction == "fell" else "rise"
        lines.append(
            f"Allowing for the limited number of examples, the true {move} is most likely "
            f"between {near:.0f} and {far:.0f} points.")
    rng = mag.get("severity_range")
    lines.append("")
    level = _LEVEL_WORDS.get(sev["level"], "significant")
    text = f"We rated this incident as {level}."
    if rng and rng[0] != rng[1]:
        text += (" The change is close to the boundary between two of our levels, so its exact "
                 "size is uncertain.")
    lines.append(text)
    lines += ["", "## Who was affected", ""]
    blast = sev.get("blast_radius")
    window = _window(blast or {})
    if blast:
        traffic = _pct(blast, ("traffic_pct", "traffic_percent", "pct_traffic"),
                       ("traffic_share",))
        customers = _pct(blast, ("customers_pct", "named_customers_pct", "pct_customers"),
                         ("customers_share", "customer_share"))
        when = (f" between {_when(window[0])} and {_when(window[1])}" if window
                else " during the affected period")
        if traffic is not None:
            lines.append(f"About {traffic:.0f} in 100 of the grades our system produced{when} "
                         "came from the changed grader.")
        if customers is not None:
            lines.append(f"{customers:.0f} in 100 of our customers had at least one grade from "
                         "the changed grader.")
        per = blast.get("customers")
        top = {str(c.get("customer")): c.get("affected_scores")
               for c in blast.get("top_customers") or [] if isinstance(c, dict)}
        if customer:
            _check_customer(incident, customer, per, top)
        if customer and isinstance(per, dict):
            count = per.get(customer)
            if count:
                lines.append(f"For {customer}, {count} grade(s) came from the changed grader.")
            else:
                lines.append(f"None of {customer}'s grades came from the changed grader.")
        elif customer and top.get(customer):
            lines.append(f"For {customer}, {top[customer]} grade(s) came from the changed "
                         "grader.")
        elif customer:
            lines.append(f"We are confirming exactly which of {customer}'s grades were "
                         "affected and will send you the list.")
    else:
        lines.append("We are still identifying which grades were produced by the changed "
                     "grader, and will tell you as soon as we know.")
    if incident.get("last_healthy_run_at"):
        lines.append(f"Grades produced before {_when(incident['last_healthy_run_at'])}, when our "
                     "last nightly check found the grader working normally, are not affected.")
    lines += ["", "## What we did", ""]
    lines.append(f"- {_when(opened)}: our nightly check detected the change and opened this "
                 "incident.")
    for e in incident["events"]:
        if e["kind"] == "acknowledged":
            lines.append(f"- {_when(e['at'])}: our team started investigating.")
        elif e["kind"] == "blast_radius":
            first = not any(x["kind"] == "blast_radius" for x in incident["events"]
                            if x["seq"] < e["seq"])
            lines.append(f"- {_when(e['at'])}: " + (
                "we identified the grades that were affected." if first else
                "we updated the count of affected grades."))
        elif e["kind"] == "resolved":
            lines.append(f"- {_when(e['at'])}: we resolved the incident."
                         + (f" Our note: {e['reason']}" if e.get("reason") else ""))
    if incident["status"] != RESOLVED:
        lines.append("- The incident is still open; we will update you when it is resolved.")
    lines += ["", "## What we will do", ""]
    for item in [*_WILL_DO.get(rc["code"], []), *_ALWAYS_DO]:
        lines.append(f"- {item}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- after a run


def _stale_watch(store: Store, check: drift.DriftCheck) -> dict[str, Any] | None:
    """After an inconclusive night: the judge's watch state if that leaves it stale (and a
    ``watch.stale`` notification in the outbox, once per night)."""
    from judgecal.drift.watch import STALE, judge_watch

    w = judge_watch(store, check.run["judge_name"], check.run["set_name"])
    if not any("stale after" in r for r in w.reasons):
        return None
    state = w.to_json() | {"state": STALE}
    key = f"watch.stale:{check.run['judge_name']}:{check.check_id}"
    with store.engine.begin() as conn:
        notify.enqueue(conn, "watch.stale", key, json_safe(state))
    return state


@dataclass
class AfterRun:
    """Everything :func:`after_run` did once a run was recorded."""

    check: dict[str, Any]
    outcome: CheckOutcome
    delivery: dict[str, Any] | None
    prometheus_textfile: str | None = None
    problems: list[str] = field(default_factory=list)
    """Things that failed without touching the run's record (e.g. an unwritable textfile)."""

    stale: dict[str, Any] | None = None
    """The judge's watch state when tonight could not conclude and that left it *stale*."""

    @property
    def kind(self) -> str:
        """What the exit code says: ``incident``, ``warning``, ``judge_changed``,
        ``not_monitored``, ``stale``, ``inconclusive`` or ``healthy``.

        An incident that is already acknowledged and only confirmed again tonight counts as a
        warning: someone owns it, nobody needs paging again.
        """
        if self.outcome.verdict == drift.INCIDENT:
            if self.outcome.incident_action == "recheck" and \
                    self.outcome.incident_status == ACKNOWLEDGED:
                return "warning"
            return "incident"
        if self.outcome.verdict == drift.WARNING:
            return "warning"
        if self.outcome.verdict == drift.JUDGE_CHANGED:
            return "judge_changed"
        if self.outcome.verdict in (drift.NO_BASELINE, drift.NOT_COMPARABLE):
            return "not_monitored"
        if self.outcome.verdict == drift.INCONCLUSIVE:
            return "stale" if self.stale else "inconclusive"
        return "healthy"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "check": self.check,
            "incident": None if self.outcome.incident_id is None else {
                "incident_id": self.outcome.incident_id,
                "action": self.outcome.incident_action,
                "status": self.outcome.incident_status,
            },
            "notifications": self.delivery,
            "prometheus_textfile": self.prometheus_textfile,
            "problems": self.problems,
            "stale": self.stale,
        }


def after_run(store: Store, run_id: str, config: RunConfig, *, http_client: Any = None
              ) -> AfterRun:
    """The nightly follow-up of a recorded run: drift check against the baseline, incident or
    warning recorded, notifications delivered, Prometheus textfile rewritten.

    ``config`` is the :class:`judgecal.config.RunConfig` of the run. The run's own record is
    already committed when this starts; nothing here can undo it, and a webhook that is down or
    a textfile that cannot be written only adds to ``problems``.
    An inconclusive run is checked as ``inconclusive``: no comparison, no incident, and it is
    never accepted as a baseline.
    """
    n_boot = config.drift.bootstrap or max(config.run.bootstrap, 1000)
    check = drift.check_run(store, run_id, config.drift, n_boot=n_boot,
                            seed=config.run.seed, actor="judgecal run")
    outcome = record_check(store, check)
    result = AfterRun(check=json_safe(check.to_json()), outcome=outcome, delivery=None)
    if check.verdict == drift.INCONCLUSIVE:
        result.stale = _stale_watch(store, check)
    try:
        result.delivery = notify.deliver_pending(store, config.notify.webhook,
                                                 http_client=http_client).to_json()
        for key, error in (result.delivery.get("errors") or {}).items():
            result.problems.append(f"notification {key} not delivered yet: {error}")
    except Exception as exc:  # delivery must never fail a run that is already recorded
        result.problems.append(f"notifications not delivered: {type(exc).__name__}: {exc}")
    if config.notify.prometheus_textfile is not None:
        try:
            path = notify.write_prometheus(store, config.notify.prometheus_textfile)
            result.prometheus_textfile = str(path)
        except OSError as exc:
            result.problems.append(f"Prometheus textfile not written: {exc}")
    return result
