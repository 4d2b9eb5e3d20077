"""One nightly job, end to end: run → agreement report → drift check → incident/notifications.

This is what ``judgecal run`` does, as a library function the demo and other callers can
use. It never prints; the caller maps :attr:`Nightly.kind` to an exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgecal.records import INCONCLUSIVE

if TYPE_CHECKING:
    from judgecal.calibration import CalibrationSet
    from judgecal.config import RunConfig
    from judgecal.incidents import AfterRun
    from judgecal.runner import ReplyCallback, RunResult
    from judgecal.store import Store


@dataclass
class Nightly:
    result: RunResult
    report: dict[str, Any]
    watch: AfterRun

    @property
    def kind(self) -> str:
        """``healthy``, ``warning``, ``incident`` or ``inconclusive``."""
        if self.result.status == INCONCLUSIVE:
            return "inconclusive"
        return self.watch.kind

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.result.run_id,
            "status": self.result.status,
            "resumed": self.result.resumed,
            "outcome": self.kind,
            "summary": self.result.summary,
            "dimensions": self.report["dimensions"],
            "drift": self.watch.to_json(),
        }


def run_nightly(
    config: RunConfig,
    store: Store,
    cs: CalibrationSet,
    *,
    on_start: Callable[[int, int], None] | None = None,
    on_reply: ReplyCallback | None = None,
    http_client: Any = None,
) -> Nightly:
    """Replay, measure, check against the baseline, record and notify."""
    from judgecal.agreement import StoredSet, agreement_report
    from judgecal.incidents import after_run
    from judgecal.runner import execute_run

    result = execute_run(
        config, store, cs, on_start=on_start, on_reply=on_reply, http_client=http_client
    )
    report = agreement_report(
        StoredSet.load(store, cs.version),
        store.replies(result.run_id),
        n_boot=config.run.bootstrap,
        seed=config.run.seed,
    )
    store.save_metric_report(result.run_id, report)
    watch = after_run(store, result.run_id, config)
    return Nightly(result=result, report=report, watch=watch)
