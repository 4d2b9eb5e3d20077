"""One nightly job, end to end: run → agreement report → drift check → incident/notifications.

This is what ``judgecal run`` does, as a library function the demo and other callers can
use. It never prints; the caller maps :attr:`Nightly.kind` to an exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgecal.records import COMPLETED, RUNNING

EXIT_CODES: dict[str, int] = {
    "healthy": 0,
    "inconclusive": 3,
    "not_monitored": 5,
    "stale": 6,
    "warning": 10,
    "judge_changed": 11,
    "incident": 20,
}
"""The exit code of ``judgecal run`` for each outcome of a night (:attr:`Nightly.kind`).

``not_monitored``: no accepted baseline, so nothing was compared. ``stale``: the night could
not conclude and the judge has had no conclusive check for longer than
``run.stale_after_hours``. ``judge_changed``: the fingerprint differs from the baseline's
while agreement did not really move; repeated every night until a new baseline is accepted.
"""

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
        """``healthy``, ``warning``, ``incident``, ``judge_changed``, ``not_monitored``,
        ``stale`` or ``inconclusive`` (see :data:`EXIT_CODES`)."""
        if self.result.status != COMPLETED:
            return "stale" if self.watch.stale else "inconclusive"
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
    """Replay, measure, check against the baseline, record and notify.

    The whole job holds the run lock of the judge and set. The run is closed only after its
    metric report is stored, so a job killed at any point resumes the same run; a run that
    was closed but never drift-checked (killed in between) is checked first.
    """
    from judgecal.agreement import StoredSet, agreement_report
    from judgecal.incidents import after_run
    from judgecal.runner import check_compatible, execute_run, lock_key
    from judgecal.store import run_lock

    check_compatible(config.judge, cs, str(config.source or "<config>"))
    store.save_set(cs)
    with run_lock(store.engine, lock_key(config.judge, cs)):
        missed = _check_missed(store, config, cs)
        if missed is not None:
            # The previous job was killed after closing its run: finishing that run *is*
            # tonight's job; starting another would pay for every reply again.
            return missed
        result = execute_run(
            config, store, cs, on_start=on_start, on_reply=on_reply, http_client=http_client,
            finish=False, hold_lock=False,
        )
        existing = store.latest_metric_report(result.run_id)
        if existing is not None and result.requested == 0:
            report = existing  # stored before a kill; the replies have not changed since
        else:
            report = agreement_report(
                StoredSet.load(store, cs.version),
                store.replies(result.run_id),
                n_boot=config.run.bootstrap,
                seed=config.run.seed,
            )
            store.save_metric_report(result.run_id, report)
        store.finish_run(result.run_id, result.status, result.summary)
        watch = after_run(store, result.run_id, config, http_client=http_client)
    return Nightly(result=result, report=report, watch=watch)


def _check_missed(store: Store, config: RunConfig, cs: CalibrationSet) -> Nightly | None:
    """Drift-check the judge's newest closed run if a kill left it without a check."""
    from judgecal.drift import checks_for_run
    from judgecal.incidents import after_run
    from judgecal.runner import RunResult

    for run in store.list_runs(config.judge.name, limit=5):
        if run["set_version"] != cs.version or run["origin"] != "live":
            continue
        if run["status"] == RUNNING or checks_for_run(store, run["run_id"]):
            return None
        report = store.latest_metric_report(run["run_id"])
        if report is None:
            return None
        watch = after_run(store, run["run_id"], config)
        result = RunResult(run_id=run["run_id"], status=run["status"], resumed=True,
                           requested=0, summary=dict(run["summary"] or {}, requested_now=0))
        return Nightly(result=result, report=report, watch=watch)
    return None
