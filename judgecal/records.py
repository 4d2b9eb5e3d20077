"""Plain records passed between the judge client, the runner and the store."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "ABORTED",
    "COMPLETED",
    "FAILED",
    "INCONCLUSIVE",
    "REJUDGE",
    "RUNNING",
    "SCORED",
    "UNSCORED",
    "ReplyRecord",
    "SimulatedClock",
    "json_safe",
    "now",
    "simulated_clock",
    "utcnow",
]

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

# Run origins
REJUDGE = "rejudge"
"""A remedy's re-judge of an incident's window (production inputs, no human labels): left out
of the watch, the trust report, the Prometheus file and ``latest``."""


class SimulatedClock:
    """A clock that starts at a chosen instant and then runs at real speed.

    Used by the demo to play a month of nightly runs in a few minutes: each night sets
    the clock to that night's 02:00 UTC; time then advances as it really passes, so the
    order of everything recorded within a night is kept.
    """

    def __init__(self, start: datetime):
        self.set(start)

    def set(self, instant: datetime) -> None:
        self._base = instant.astimezone(UTC)
        self._started = time.monotonic()

    def __call__(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._started)


_clock: SimulatedClock | None = None


def now() -> datetime:
    """Current UTC time (the simulated clock's while one is installed)."""
    return _clock() if _clock is not None else datetime.now(UTC)


@contextmanager
def simulated_clock(start: datetime) -> Iterator[SimulatedClock]:
    """Install a :class:`SimulatedClock` for the duration of the block (demo only)."""
    global _clock
    previous = _clock
    _clock = SimulatedClock(start)
    try:
        yield _clock
    finally:
        _clock = previous


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/inf replaced by None (bare NaN is not JSON) and keys as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def utcnow() -> str:
    """Current UTC time as ISO-8601 with a trailing Z (the store's timestamp format)."""
    return now().isoformat().replace("+00:00", "Z")


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
