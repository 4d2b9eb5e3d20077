"""The incident JSON: its version, statuses and JSON Schema.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACKNOWLEDGED",
    "INCIDENT_SCHEMA",
    "OPEN",
    "RESOLVED",
    "SCHEMA_VERSION",
    "STATUSES",
]

SCHEMA_VERSION = 1

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)

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
