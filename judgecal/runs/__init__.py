"""Runs: one replay of a calibration set through a judge (:mod:`~judgecal.runs.replay`), or a
run whose judgments were produced elsewhere and imported (:mod:`~judgecal.runs.imported`);
what a run's replies add up to (:mod:`~judgecal.runs.summary`)."""

from judgecal.runs.imported import import_judgments, imported_fingerprint
from judgecal.runs.replay import (
    RunResult,
    check_compatible,
    execute_run,
    lock_key,
    new_run_id,
)
from judgecal.runs.summary import summarize_replies, unusable_replies

__all__ = [
    "RunResult",
    "check_compatible",
    "execute_run",
    "import_judgments",
    "imported_fingerprint",
    "lock_key",
    "new_run_id",
    "summarize_replies",
    "unusable_replies",
]
