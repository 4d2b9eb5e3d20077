"""Plain records passed between the judge client, the runner and the store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# Reply statuses
SCORED = "scored"
"""A reply that parsed into a score."""
UNSCORED = "unscored"
"""A final reply without a score (unparseable, empty, prompt too long…); never retried."""
FAILED = "failed"
"""No usable reply after every retry (429/5xx/timeouts); retried when the run resumes."""

# Run statuses
RUNNING = "running"
COMPLETED = "completed"
INCONCLUSIVE = "inconclusive"
ABORTED = "aborted"


def utcnow() -> str:
    """Current UTC time as ISO-8601 with a trailing Z (the store's timestamp format)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ReplyRecord:
    """Everything kept about one judge request: the audit trail of a single score."""

    item_id: str
    dimension: str
    variant: str
    status: str
    score: float | None = None
    label: str | None = None
    raw_text: str | None = None
    unscored_reason: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    served_model: str | None = None
    system_fingerprint: str | None = None
    finish_reason: str | None = None
    attempts: int = 1
    error: str | None = None
    prompt_sha256: str | None = None
    created_at: str = field(default_factory=utcnow)

    def to_row(self, run_id: str) -> dict[str, Any]:
        row = asdict(self)
        row["run_id"] = run_id
        return row
