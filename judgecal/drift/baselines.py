"""Baselines: the accepted reference run of each judge on each calibration-set version.

The ``baselines`` table keeps every acceptance; the newest is current. Every night is compared
with that fixed baseline — never with the previous night, so small moves cannot add up
unnoticed. Only a completed (not inconclusive) run can become a baseline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from judgecal import audit
from judgecal.audit.snapshots import snapshot_baseline
from judgecal.db import schema
from judgecal.drift.verdicts import HEALTHY_VERDICTS
from judgecal.errors import InputError
from judgecal.records import COMPLETED, REJUDGE, utcnow

if TYPE_CHECKING:
    from judgecal.store import Store

__all__ = [
    "accept_baseline",
    "baselines",
    "current_baseline",
    "last_healthy_run",
    "snapshot_baseline",
]


def current_baseline(store: Store, judge_name: str, set_version: str) -> dict[str, Any] | None:
    """The accepted baseline of a judge on a set version (newest acceptance), or None."""
    b = schema.baselines.c
    with store.engine.connect() as conn:
        row = conn.execute(
            select(schema.baselines)
            .where(and_(b.judge_name == judge_name, b.set_version == set_version))
            .order_by(b.baseline_id.desc())
            .limit(1)
        ).mappings().first()
    return None if row is None else dict(row)


def baselines(store: Store, judge_name: str | None = None, *, history: bool = False
              ) -> list[dict[str, Any]]:
    """Baselines, newest first: the current one per (judge, set version), or every acceptance."""
    b = schema.baselines.c
    query = select(schema.baselines).order_by(b.baseline_id.desc())
    if judge_name:
        query = query.where(b.judge_name == judge_name)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings().all()]
    if history:
        return rows
    seen: set[tuple[str, str]] = set()
    out = []
    for row in rows:
        key = (row["judge_name"], row["set_version"])
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def accept_baseline(
    store: Store, run_id: str, *, actor: str, reason: str, auto: bool = False
) -> dict[str, Any]:
    """Make a completed run the baseline of its judge on its set version.

    Raises :class:`InputError` for a run that is still running or inconclusive (an
    inconclusive run is never a baseline), or a sampled night that did not expand.
    Accepting the current baseline again is a no-op.
    """
    run = store.get_run(run_id)
    if run["origin"] == REJUDGE:
        raise InputError(f"run {run['run_id']} re-judged an incident's production window: "
                         "it has no human labels and cannot be a baseline")
    if run["status"] != COMPLETED:
        raise InputError(
            f"run {run['run_id']} is {run['status']}: only a completed run can be a baseline"
        )
    sampled = (run.get("summary") or {}).get("sampling") or {}
    if sampled and not sampled.get("expanded"):
        raise InputError(
            f"run {run['run_id']} is a sampled night ({sampled.get('text')}): a baseline "
            "must have replayed the whole set — accept a full or expanded night")
    if not actor.strip() or not reason.strip():
        raise InputError("accepting a baseline needs who (actor) and why (reason)")
    existing = current_baseline(store, run["judge_name"], run["set_version"])
    if existing is not None and existing["run_id"] == run["run_id"]:
        return existing
    values = {
        "judge_name": run["judge_name"],
        "set_name": run["set_name"],
        "set_version": run["set_version"],
        "run_id": run["run_id"],
        "accepted_at": utcnow(),
        "actor": actor,
        "reason": reason,
        "auto": auto,
        "replaces_run_id": existing["run_id"] if existing else None,
    }
    with store.engine.begin() as conn:
        result = conn.execute(schema.baselines.insert().values(**values))
        key = result.inserted_primary_key
        assert key is not None
        baseline_id = int(key[0])
        record = snapshot_baseline(conn, str(baseline_id))
        assert record is not None
        audit.append(conn, "baseline", str(baseline_id), record)
    return dict(values, baseline_id=baseline_id)





def last_healthy_run(store: Store, judge_name: str, before: str) -> dict[str, Any] | None:
    """The newest *healthy* run of a judge that finished before ``before`` (ISO time).

    Healthy: a completed run that is (or was) an accepted baseline, or whose drift check found
    nothing worse than a notice.
    """
    r = schema.runs.c
    c = schema.drift_checks.c
    with store.engine.connect() as conn:
        healthy_ids = {row[0] for row in conn.execute(
            select(c.run_id).where(and_(c.judge_name == judge_name,
                                        c.verdict.in_(HEALTHY_VERDICTS)))
        ).all()}
        healthy_ids |= {row[0] for row in conn.execute(
            select(schema.baselines.c.run_id).where(schema.baselines.c.judge_name == judge_name)
        ).all()}
        if not healthy_ids:
            return None
        row = conn.execute(
            select(schema.runs)
            .where(and_(r.judge_name == judge_name, r.status == COMPLETED,
                        r.finished_at < before, r.run_id.in_(sorted(healthy_ids))))
            .order_by(r.finished_at.desc())
            .limit(1)
        ).mappings().first()
    return None if row is None else dict(row)
