"""Opening an incident: the immutable record of a drift (the evidence, the three severity
axes, the root cause, the last healthy run), written once with its audit entry and its
notification in the transaction that saves the drift check.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, select

from judgecal import audit, drift, notify
from judgecal.audit.snapshots import snapshot_incident
from judgecal.db import schema
from judgecal.incidents.lifecycle import append_event, events_of, status_of
from judgecal.incidents.schema import OPEN, RESOLVED, SCHEMA_VERSION
from judgecal.judge.fingerprint import production_tag
from judgecal.records import json_safe, utcnow
from judgecal.records import now as clock_now

if TYPE_CHECKING:
    from judgecal.store import Store

__all__ = [
    "CheckOutcome",
    "build_record",
    "new_incident_id",
    "record_check",
    "snapshot_incident",
]



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
        "mdc_points": worst.get("mdc_points"),
        "found_by": worst.get("found_by"),
    }
    q = worst.get("sequential") or {}
    if "accumulated evidence across nights" in (worst.get("found_by") or []):
        magnitude |= {"estimated_drop_points": q.get("drop_points"),
                      "change_point_run_id": q.get("change_point_run_id"),
                      "nights": q.get("nights"), "e_value": q.get("e_value"),
                      "threshold": q.get("threshold")}
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


def _onset(c: dict[str, Any], last_healthy: dict[str, Any] | None) -> dict[str, Any]:
    """Where the drift is estimated to begin: the sequential test's change-point run when it
    found one, else tonight's run; scores after the last healthy run are the suspects."""
    found = (c.get("sequential") or {}).get("onset")
    run = found or {k: (c["runs"]["current"] or {}).get(k)
                    for k in ("run_id", "started_at", "finished_at")}
    return {
        "run_id": run.get("run_id"),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "method": "change point of the accumulated evidence" if found else "tonight's run",
        "night": None if not found else found.get("night"),
        "dimension": None if not found else found.get("dimension"),
        "estimated_drop_points": None if not found else found.get("drop_points"),
        "after": None if last_healthy is None else last_healthy["finished_at"],
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
        "found_by": ("accumulated evidence across nights"
                     if (c.get("sequential") or {}).get("found_by_evidence")
                     else "tonight's comparison with the baseline"),
        "onset": _onset(c, last_healthy),
        "evidence": {
            "message": c["message"],
            "runs": {"baseline": _run_brief(check.baseline), "current": _run_brief(check.run)},
            "alarm_level": c["alarm_level"],
            "dimensions": c["dimensions"],
            "watches": c["watches"],
            "worst_flipped_items": c["flipped_items"],
            "bootstrap": c["bootstrap"],
            "sequential": c.get("sequential"),
            "thresholds": {k: c["settings"].get(k) for k in
                           ("warning_points", "sev2_points", "sev0_points", "confidence",
                            "horizon_nights", "rises", "sequential", "sequential_alpha")},
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
        if status_of(events_of(conn, incident_id)) != RESOLVED:
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
        # Found by evidence across nights: the drop began at the change-point run, so the
        # last healthy run is the newest one before it (the blast radius starts there).
        before = min(drift.onset_before(check) or check.run["started_at"],
                     check.run["started_at"])
        last_healthy = drift.last_healthy_run(store, check.run["judge_name"], before=before)
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
                append_event(conn, existing, "recheck", data, "judgecal", None)
                outcome.incident_id, outcome.incident_action = existing, "recheck"
                outcome.incident_status = status_of(events_of(conn, existing))
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
                append_event(conn, incident_id, "opened",
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
