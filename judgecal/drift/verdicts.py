"""Verdicts, severities and root-cause codes of a drift check, and its record.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from judgecal.errors import InputError
from judgecal.judge.fingerprint import FingerprintDiff
from judgecal.records import now as clock_now
from judgecal.records import utcnow

__all__ = [
    "BASELINE_ACCEPTED",
    "CALIBRATION_SET_CHANGE",
    "CAUSE_FAMILY",
    "CAUSE_TITLES",
    "DECODING_CHANGE",
    "HEALTHY",
    "HEALTHY_VERDICTS",
    "INCIDENT",
    "INCONCLUSIVE",
    "JUDGE_CHANGED",
    "JUDGE_STABLE",
    "NOTICE",
    "NOT_COMPARABLE",
    "NO_BASELINE",
    "PLANNED_MODEL_MIGRATION",
    "RANK",
    "RUBRIC_PROMPT_CHANGE",
    "SEV0",
    "SEV2",
    "SEV_NOTICE",
    "SEV_WARNING",
    "SILENT_PROVIDER_UPDATE",
    "UNEXPLAINED_PROVIDER_CHANGE",
    "WARNING",
    "AlarmLevel",
    "DriftCheck",
    "NotComparableError",
    "new_check_id",
]


INCIDENT = "incident"
WARNING = "warning"
JUDGE_CHANGED = "judge_changed"
"""The fingerprint differs from the baseline's (configured or observed half) but agreement
did not really move: scores on either side are still not comparable until someone accepts
a new baseline, so the night says so (exit 11, a webhook event) instead of passing quietly."""
NOTICE = "notice"
HEALTHY = "healthy"
NO_BASELINE = "no_baseline"
BASELINE_ACCEPTED = "baseline_accepted"
NOT_COMPARABLE = "not_comparable"
INCONCLUSIVE = "inconclusive"

SEV0 = "SEV0"
SEV2 = "SEV2"
SEV_WARNING = "warning"
SEV_NOTICE = "notice"
RANK = {None: 0, SEV_NOTICE: 1, SEV_WARNING: 2, SEV2: 3, SEV0: 4}

HEALTHY_VERDICTS = (HEALTHY, NOTICE, JUDGE_CHANGED, BASELINE_ACCEPTED)
"""A run whose check ended with one of these is a *healthy* run of its judge."""

CAUSE_FAMILY = "judge drift"

# Root-cause codes, in order of precedence.
CALIBRATION_SET_CHANGE = "calibration_set_change"
PLANNED_MODEL_MIGRATION = "planned_model_migration"
RUBRIC_PROMPT_CHANGE = "rubric_prompt_change"
DECODING_CHANGE = "decoding_change"
SILENT_PROVIDER_UPDATE = "silent_provider_update"
UNEXPLAINED_PROVIDER_CHANGE = "unexplained_provider_change"
JUDGE_STABLE = "judge_stable"

CAUSE_TITLES = {
    CALIBRATION_SET_CHANGE: "calibration-set change (not comparable)",
    PLANNED_MODEL_MIGRATION: "planned model migration",
    RUBRIC_PROMPT_CHANGE: "rubric/prompt change",
    DECODING_CHANGE: "decoding change",
    SILENT_PROVIDER_UPDATE: "silent provider update",
    UNEXPLAINED_PROVIDER_CHANGE: "unexplained provider-side change",
    JUDGE_STABLE: "judge stable",
}


class NotComparableError(InputError):
    """Two runs cannot be compared (different calibration-set versions)."""



@dataclass
class AlarmLevel:
    """The significance level of one check, and why it was chosen."""

    alpha: float
    kind: str
    """``change_event``, ``routine`` or ``comparison`` (a manual ``compare``)."""
    reason: str
    horizon_nights: int
    dimensions: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "confidence": 1.0 - self.alpha,
            "kind": self.kind,
            "reason": self.reason,
            "horizon_nights": self.horizon_nights,
            "dimensions": self.dimensions,
            "correction": "Holm across dimensions",
        }


@dataclass
class DriftCheck:
    """A run compared with its baseline: verdict, severity, evidence (JSON via ``to_json``)."""

    check_id: str
    run: dict[str, Any]
    baseline: dict[str, Any] | None
    verdict: str
    severity: str | None
    message: str
    created_at: str = field(default_factory=utcnow)
    alarm_level: AlarmLevel | None = None
    dimensions: list[dict[str, Any]] = field(default_factory=list)
    watches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fingerprint_diff: FingerprintDiff | None = None
    root_cause: dict[str, Any] = field(default_factory=dict)
    flipped_items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    bootstrap: dict[str, Any] = field(default_factory=dict)
    sequential: dict[str, Any] | None = None
    """The sequential test across nights (:mod:`judgecal.drift.sequential`): its level, which
    dimensions it found, and the run from which the change is estimated to start; None when
    it did not run (no baseline, a manual comparison, ``drift.sequential: false``)."""
    sampling: dict[str, Any] | None = None
    """A sampled night (:mod:`judgecal.drift.sampling`): its share, block, and whether and why
    it expanded to the whole set; None for a night that replayed the whole set."""

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def baseline_run_id(self) -> str | None:
        return None if self.baseline is None else str(self.baseline["run_id"])

    def to_json(self) -> dict[str, Any]:
        def _run(r: dict[str, Any] | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {k: r.get(k) for k in ("run_id", "judge_name", "set_name", "set_version",
                                          "status", "origin", "started_at", "finished_at")}

        return {
            "check_id": self.check_id,
            "created_at": self.created_at,
            "judge_name": self.run["judge_name"],
            "set_name": self.run["set_name"],
            "set_version": self.run["set_version"],
            "run_id": self.run_id,
            "baseline_run_id": self.baseline_run_id,
            "runs": {"baseline": _run(self.baseline), "current": _run(self.run)},
            "verdict": self.verdict,
            "severity": self.severity,
            "message": self.message,
            "alarm_level": self.alarm_level.to_json() if self.alarm_level else None,
            "dimensions": self.dimensions,
            "watches": self.watches,
            "fingerprint_diff": self.fingerprint_diff.to_json() if self.fingerprint_diff else None,
            "root_cause": self.root_cause,
            "flipped_items": self.flipped_items,
            "settings": self.settings,
            "bootstrap": self.bootstrap,
            "sequential": self.sequential,
            "sampling": self.sampling,
        }


def new_check_id() -> str:
    stamp = clock_now().strftime("%Y%m%dT%H%M%S")
    return f"dc{stamp}-{secrets.token_hex(3)}"
