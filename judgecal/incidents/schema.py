"""The incident JSON: its version, statuses, and its schema as pydantic models.

:class:`Incident` describes what :func:`judgecal.incidents.get_incident` returns
(``schema_version`` 1). The models name the fields every consumer may rely on and allow
more (``extra="allow"``): a new field may be added without a new version; renaming or
removing one needs ``schema_version`` 2. :data:`INCIDENT_SCHEMA` is the JSON Schema generated
from them (``judgecal incidents show --json`` output validates against it), and
:func:`validate_incident` checks a document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACKNOWLEDGED",
    "INCIDENT_SCHEMA",
    "OPEN",
    "RESOLVED",
    "SCHEMA_VERSION",
    "STATUSES",
    "Event",
    "Incident",
    "Magnitude",
    "RootCause",
    "Severity",
    "validate_incident",
]

SCHEMA_VERSION = 1

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Magnitude(_Open):
    """The worst dimension's move: level, points, and its intervals."""

    level: str
    dimension: str
    metric: str
    points: float | None
    baseline: Any
    current: Any
    interval95_points: list[float | None]
    decision_interval_points: list[float | None]
    decision_confidence: float


class DimensionMove(_Open):
    """One dimension of the drift check."""

    dimension: str
    metric: str
    points: float | None
    direction: str | None
    severity: str | None
    real: bool


class Severity(_Open):
    """The three axes: magnitude, blast radius (null until linked), dimensions."""

    level: Literal["SEV0", "SEV2"]
    magnitude: Magnitude
    blast_radius: dict[str, Any] | None
    dimensions: list[DimensionMove]


class RootCause(_Open):
    """The root cause in plain words."""

    code: str
    summary: str
    cause_family: Literal["judge drift"]


class FingerprintDiffDoc(_Open):
    changed: list[str]
    fields: list[dict[str, Any]]


class ProductionTags(_Open):
    before: str
    after: str


class Evidence(_Open):
    runs: Any
    dimensions: Any
    watches: Any
    worst_flipped_items: Any


class Event(_Open):
    """One step of the lifecycle."""

    seq: int
    kind: str
    at: str
    actor: str | None
    reason: str | None
    data: dict[str, Any]


class Incident(_Open):
    """A drift incident as :func:`judgecal.incidents.get_incident` returns it."""

    incident_id: str
    schema_version: Literal[1]
    judge_name: str
    set_name: str
    set_version: str
    baseline_run_id: str
    run_id: str
    check_id: str
    opened_at: str
    status: Literal["open", "acknowledged", "resolved"]
    severity: Severity
    root_cause: RootCause
    fingerprint_diff: FingerprintDiffDoc
    production_tags: ProductionTags | None = None
    last_healthy_run_at: str | None
    evidence: Evidence
    events: list[Event] = Field(min_length=1)


INCIDENT_SCHEMA: dict[str, Any] = Incident.model_json_schema()
"""JSON Schema of :func:`judgecal.incidents.get_incident` (``schema_version`` 1)."""


def validate_incident(data: Any) -> Incident:
    """``data`` checked against the schema (:class:`pydantic.ValidationError` if it is not an
    incident)."""
    return Incident.model_validate(data)
