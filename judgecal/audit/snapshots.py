"""What the log covers: for each kind of record, how to snapshot it again from its own table,
how to list every record that must have an entry, and (optionally) how to read all of them
at once or name what changed. One static table: no module registers itself at import time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, and_, select

from judgecal.audit import sets
from judgecal.audit.chain import AuditProblem, canonical
from judgecal.db import schema
from judgecal.records import RUNNING


def _record(row: Any) -> dict[str, Any]:
    """A row as the canonical record it was logged as. A JSON value that is not JSON at all
    (a record edited by hand in SQLite) arrives from the engine's decoder as
    ``{"undecodable": text}``; a non-finite number, which judgecal never writes, becomes the
    text ``non-finite number Infinity``: either way the hash differs and ``audit verify``
    names the record instead of failing."""
    data = dict(row)
    try:
        return dict(json.loads(canonical(data)))
    except ValueError:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=str)
        return dict(json.loads(text, parse_constant=lambda c: f"non-finite number {c}"))


__all__ = [
    "BULK",
    "DETAILS",
    "REFS",
    "SNAPSHOTS",
    "UNLOGGED_IS_WARNING",
    "BulkFn",
    "DetailFn",
    "RefsFn",
    "SnapshotFn",
    "digest",
    "replies_by_run",
    "reply_rows",
    "snapshot_correction",
    "snapshot_event",
    "snapshot_metric_report",
    "snapshot_run",
    "snapshot_window_labels",
]

SnapshotFn = Callable[[Connection, str], "dict[str, Any] | None"]
RefsFn = Callable[[Connection], Iterable[str]]
BulkFn = Callable[[Connection], Iterable["tuple[str, dict[str, Any]]"]]
DetailFn = Callable[[int, str, Any, Any], "list[AuditProblem]"]

_REPLY_COLUMNS = [c.name for c in schema.replies.columns]


def reply_rows(conn: Connection, run_id: str | None = None) -> Iterable[dict[str, Any]]:
    """The replies of a run (or of every run, grouped by run), in the order their digest is
    computed: item, dimension, variant."""
    r = schema.replies.c
    query = select(*[schema.replies.c[name] for name in _REPLY_COLUMNS])
    if run_id is not None:
        query = query.where(r.run_id == run_id)
    query = query.order_by(r.run_id, r.item_id, r.dimension, r.variant)
    for row in conn.execute(query).yield_per(5000):
        yield dict(zip(_REPLY_COLUMNS, row, strict=True))


def replies_by_run(conn: Connection) -> Iterable[tuple[str, Iterable[dict[str, Any]]]]:
    """Every reply in the store, streamed once, as (run_id, that run's replies) groups."""
    import itertools

    for run_id, group in itertools.groupby(reply_rows(conn), key=lambda row: row["run_id"]):
        yield str(run_id), group


def digest(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    h = hashlib.sha256()
    n = 0
    for row in rows:
        h.update(canonical(row).encode("utf-8"))
        h.update(b"\n")
        n += 1
    return {"count": n, "sha256": h.hexdigest()}


def _repliesdigest(conn: Connection, run_id: str) -> dict[str, Any]:
    """Count and SHA-256 of the run's replies, one canonical JSON line each.

    The digest equals ``sha256sum`` of the ``.replies.jsonl`` file :func:`export_bundle`
    writes for the run.
    """
    return digest(reply_rows(conn, run_id))


def _run_refs(conn: Connection) -> Iterable[str]:
    # A run is logged when it ends; one still running has no entry yet.
    rows = conn.execute(select(schema.runs.c.run_id).where(schema.runs.c.status != RUNNING))
    return [str(r[0]) for r in rows]


def snapshot_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).mappings().first()
    if row is None:
        return None
    record = _record(row)
    record["replies"] = _repliesdigest(conn, run_id)
    return record


def _metric_report_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.metric_reports.c.report_id))]


def _bulk_runs(conn: Connection) -> Iterable[tuple[str, dict[str, Any]]]:
    runs = {
        str(row["run_id"]): _record(row)
        for row in conn.execute(select(schema.runs)).mappings()
    }
    digests = {run_id: digest(rows) for run_id, rows in replies_by_run(conn)}
    empty = digest([])
    for run_id, record in runs.items():
        record["replies"] = digests.get(run_id, empty)
        yield run_id, record




def _bulk_metric_reports(conn: Connection) -> Iterable[tuple[str, dict[str, Any]]]:
    for row in conn.execute(select(schema.metric_reports)).mappings():
        yield str(row["report_id"]), _record(row)




def snapshot_metric_report(conn: Connection, ref: str) -> dict[str, Any] | None:
    try:
        report_id = int(ref)
    except ValueError:
        return None
    row = conn.execute(
        select(schema.metric_reports).where(schema.metric_reports.c.report_id == report_id)
    ).mappings().first()
    return None if row is None else _record(row)


# Records of the drift and incident modules: they register their snapshots themselves;
# listing their refs here lets verification find one whose entry was cut from the log.
def _baseline_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.baselines.c.baseline_id))]


def _drift_check_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.drift_checks.c.check_id))]


def _incident_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.incidents.c.incident_id))]


def _incident_event_refs(conn: Connection) -> Iterable[str]:
    e = schema.incident_events.c
    return [f"{i}#{n}" for i, n in conn.execute(select(e.incident_id, e.seq))]


# -- full verification -------------------------------------------------------------------


def _row_snapshot(table: Any, key: Any) -> SnapshotFn:
    """The snapshot function of a table whose rows are records, keyed by ``key``."""

    def snapshot(conn: Connection, ref: str) -> dict[str, Any] | None:
        value: Any = int(ref) if key.type.python_type is int else ref
        row = conn.execute(select(table).where(key == value)).mappings().first()
        return None if row is None else _record(row)

    return snapshot


snapshot_baseline = _row_snapshot(schema.baselines, schema.baselines.c.baseline_id)
snapshot_check = _row_snapshot(schema.drift_checks, schema.drift_checks.c.check_id)
snapshot_incident = _row_snapshot(schema.incidents, schema.incidents.c.incident_id)


def snapshot_event(conn: Connection, ref: str) -> dict[str, Any] | None:
    """An incident event; ``ref`` is ``INCIDENT#SEQ``."""
    incident_id, _, seq = ref.rpartition("#")
    if not seq.isdigit():
        return None
    e = schema.incident_events.c
    row = conn.execute(
        select(schema.incident_events).where(and_(e.incident_id == incident_id,
                                                  e.seq == int(seq)))
    ).mappings().first()
    return None if row is None else dict(json.loads(canonical(dict(row))))


def _correction_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.corrections.c.correction_id))]


snapshot_correction = _row_snapshot(schema.corrections, schema.corrections.c.correction_id)


def _window_label_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.window_labels.c.import_id).distinct())]


def snapshot_window_labels(conn: Connection, ref: str) -> dict[str, Any] | None:
    """One import of window-sample labels: its rows (by score id) and their digest."""
    w = schema.window_labels.c
    rows = [dict(json.loads(canonical(dict(r)))) for r in conn.execute(
        select(schema.window_labels).where(w.import_id == ref).order_by(w.score_id)
    ).mappings()]
    if not rows:
        return None
    head = {k: rows[0][k] for k in ("import_id", "incident_id", "imported_at", "source_file")}
    return {**head, "labels": digest({"score_id": r["score_id"], "label": r["label"]}
                                     for r in rows)}


# -- the table: every kind of record the log covers ------------------------------------------
# Verification recomputes each covered record from its own table and compares it with the
# newest snapshot of that record in the log, so an edit made directly in SQL is caught even
# when the log itself is untouched.

SNAPSHOTS: dict[str, SnapshotFn] = {
    "run": snapshot_run,
    "metric_report": snapshot_metric_report,
    "baseline": snapshot_baseline,
    "drift_check": snapshot_check,
    "incident": snapshot_incident,
    "incident_event": snapshot_event,
    "correction": snapshot_correction,
    "window_labels": snapshot_window_labels,
    sets.KIND: sets.snapshot_set,
}
"""``kind -> function(conn, ref) -> canonical record, or None when the record is gone``."""
REFS: dict[str, RefsFn] = {
    "run": _run_refs,
    "metric_report": _metric_report_refs,
    "baseline": _baseline_refs,
    "drift_check": _drift_check_refs,
    "incident": _incident_refs,
    "incident_event": _incident_event_refs,
    "correction": _correction_refs,
    "window_labels": _window_label_refs,
    sets.KIND: sets.set_refs,
}
"""``kind -> function(conn) -> every ref of the kind that must have an entry``."""
BULK: dict[str, BulkFn] = {"run": _bulk_runs, "metric_report": _bulk_metric_reports}
"""Optional: ``kind -> function(conn) -> (ref, record) for every record``, the same records as
the kind's snapshot function, read in a few queries instead of one per record (verification of
a year of nightly runs reads every reply once, in one streamed query)."""
DETAILS: dict[str, DetailFn] = {sets.KIND: sets.changed_rows}
"""Optional: ``kind -> function(seq, ref, logged, current) -> problems`` naming what changed
inside an edited record (e.g. the table rows of a calibration set) instead of one generic
"differs in" problem; an empty list falls back to the generic problem."""
UNLOGGED_IS_WARNING: dict[str, str] = {sets.KIND: sets.UNCOVERED}
"""``kind -> message`` for kinds whose records may predate their coverage: a listed record
with no entry is a warning (``record_uncovered``), not a problem."""
