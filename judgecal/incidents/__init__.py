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

One room per part: :mod:`~judgecal.incidents.schema` (version, statuses, JSON Schema),
:mod:`~judgecal.incidents.record` (opening), :mod:`~judgecal.incidents.lifecycle` (events and
reading), :mod:`~judgecal.incidents.markdown` and :mod:`~judgecal.incidents.postmortem` (the
renderings). What a nightly job does after its run (check, record, notify) is
:func:`judgecal.nightly.after_run`.
"""

from judgecal.incidents.lifecycle import (
    acknowledge,
    add_event,
    get_incident,
    list_incidents,
    resolve,
    snapshot_event,
)
from judgecal.incidents.markdown import md, render_markdown
from judgecal.incidents.postmortem import render_postmortem
from judgecal.incidents.record import (
    CheckOutcome,
    build_record,
    new_incident_id,
    record_check,
    snapshot_incident,
)
from judgecal.incidents.schema import (
    ACKNOWLEDGED,
    INCIDENT_SCHEMA,
    OPEN,
    RESOLVED,
    SCHEMA_VERSION,
    STATUSES,
    Incident,
    validate_incident,
)

__all__ = [
    "ACKNOWLEDGED",
    "INCIDENT_SCHEMA",
    "OPEN",
    "RESOLVED",
    "SCHEMA_VERSION",
    "STATUSES",
    "CheckOutcome",
    "Incident",
    "acknowledge",
    "add_event",
    "build_record",
    "get_incident",
    "list_incidents",
    "md",
    "new_incident_id",
    "record_check",
    "render_markdown",
    "render_postmortem",
    "resolve",
    "snapshot_event",
    "snapshot_incident",
    "validate_incident",
]
