"""One nightly job, end to end: run → agreement report → drift check → incident/notifications.

This is what ``judgecal run`` does, as a library function the demo and other callers can
use. It never prints; the caller maps :attr:`Nightly.kind` to an exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from judgecal import drift, notify
from judgecal.incidents import ACKNOWLEDGED, CheckOutcome, record_check
from judgecal.records import COMPLETED, RUNNING, json_safe
from judgecal.reports.prometheus import write_prometheus

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
    from judgecal.drift.sampling import SamplePlan
    from judgecal.runs.replay import ReplyCallback, RunResult
    from judgecal.store import Store

__all__ = [
    "EXIT_CODES",
    "AfterRun",
    "Nightly",
    "References",
    "after_run",
    "run_nightly",
    "take_references",
]


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

    With ``run.sample_share`` a night that has a baseline replays tonight's block of the set
    (:mod:`judgecal.drift.sampling`) and, when the sample cannot rule out a drop of incident
    size or anything alarms on it, requests the rest of the set in the same run before the
    run is measured and checked. The summary's ``sampling`` says which.

    With ``drift.baseline_replicates`` K > 1, a baseline accepted tonight (or since the last
    job, with no monitored night yet) is replicated in the same job: K − 1 *reference runs*
    of the whole set, each closed and checked as a reference (:func:`take_references`) —
    before tonight's run when the baseline was accepted earlier, right after it when tonight's
    run became the baseline.
    """
    from judgecal.agreement import agreement_report
    from judgecal.calibration import StoredSet
    from judgecal.drift.sampling import plan_night
    from judgecal.runs.replay import check_compatible, execute_run, lock_key
    from judgecal.store import run_lock

    check_compatible(config.judge, cs, str(config.source or "<config>"))
    store.save_set(cs)
    with run_lock(store.engine, lock_key(config.judge, cs)):
        missed = _check_missed(store, config, cs)
        if missed is not None:
            # The previous job was killed after closing its run: finishing that run *is*
            # tonight's job; starting another would pay for every reply again.
            return missed
        progress = {"on_start": on_start, "on_reply": on_reply, "http_client": http_client}
        before = take_references(config, store, cs, night_to_come=True, **progress)
        spent = before.spent
        plan = plan_night(store, config.judge.name, cs.version, [i.id for i in cs.items],
                          config.run)
        result = execute_run(
            config, store, cs, on_start=on_start, on_reply=on_reply, http_client=http_client,
            finish=False, hold_lock=False,
            only=None if plan is None else plan.only(config.judge.prompts),
            spent_tonight=spent,
        )
        if plan is not None:
            result = _expand_if_unclear(config, store, cs, plan, result, on_start=on_start,
                                        on_reply=on_reply, http_client=http_client,
                                        spent_tonight=spent)
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
        after = References()
        if (watch.check.get("verdict") == drift.BASELINE_ACCEPTED and not before.run_ids
                and not before.failed):  # tonight became the baseline: replicate it now
            after = take_references(config, store, cs, spent=spent + _cost(result.summary),
                                    **progress)
        watch.references = before.run_ids + after.run_ids
        watch.references_note = before.note or after.note
    return Nightly(result=result, report=report, watch=watch)


def _is_reference_check(record: Any) -> bool:
    """Whether a saved check is a reference run's (its dimensions marked ``reference``); a
    record that is damaged (not JSON, or not of that shape) is taken as not one."""
    dims = record.get("dimensions") if isinstance(record, dict) else None
    return isinstance(dims, list) and bool(dims) and all(
        isinstance(d, dict) and d.get("reference") is True for d in dims)


def _monitored_since(store: Store, baseline_run_id: str) -> bool:
    """Whether a monitored night (not the baseline, not a reference run, conclusive) has been
    checked against this baseline: then the reference is closed."""
    from sqlalchemy import select

    from judgecal.db import schema

    c = schema.drift_checks.c
    with store.engine.connect() as conn:
        # A damaged record (one that is not JSON reads as {"undecodable": text}) counts as a
        # monitored night: no reference is added after it.
        rows = conn.execute(select(c.run_id, c.verdict, c.record).where(
            c.baseline_run_id == baseline_run_id)).all()
    return any(run_id != baseline_run_id and verdict != drift.INCONCLUSIVE
               and not _is_reference_check(record)
               for run_id, verdict, record in rows)


def _references_of(store: Store, base: dict[str, Any]) -> list[dict[str, Any]]:
    """The completed reference runs of the baseline run ``base`` (their ``reference_of``)."""
    from sqlalchemy import select

    from judgecal.db import schema

    c = schema.runs.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.summary).where(
            c.judge_name == base["judge_name"], c.set_version == base["set_version"],
            c.status == COMPLETED, c.started_at >= base["started_at"])).all()
    return [ref for (summary,) in rows
            if (ref := drift.reference_of({"summary": summary}, str(base["run_id"])))]


def _no_references_because(config: RunConfig, base: dict[str, Any]) -> str | None:
    """Why the baseline run cannot be replicated now (None when it can): a reference run is
    the same judge replaying the set soon after the baseline run, or it is no reference."""
    from datetime import datetime, timedelta

    from judgecal.judge.prompt import configured_fingerprint
    from judgecal.records import now

    if configured_fingerprint(config.judge)["hash"] != base["config_hash"]:
        return ("the judge's configuration is not the baseline run's, so a replay now would "
                "not repeat it")
    finished = str(base.get("finished_at") or base["started_at"])
    age_h = (now() - datetime.fromisoformat(finished.replace("Z", "+00:00"))) / timedelta(hours=1)
    limit = config.run.stale_after_hours
    if age_h > limit:
        return (f"the baseline run is {age_h:.0f} hours old (run.stale_after_hours: "
                f"{limit:g}), so a replay now would measure today's judge, not the baseline's")
    return None


@dataclass
class References:
    """What :func:`take_references` did."""

    run_ids: list[str] = field(default_factory=list)
    """The reference runs taken (each closed and checked)."""
    spent: float = 0.0
    """What the night has cost so far, these runs included (with ``cost.budget_per_night``)."""
    note: str | None = None
    """Why fewer reference runs than wanted were taken (budget, judge changed, too late)."""
    failed: bool = False
    """The last one did not complete (closed and checked as an inconclusive night)."""


def take_references(config: RunConfig, store: Store, cs: CalibrationSet, *,
                    night_to_come: bool = False, spent: float = 0.0,
                    on_start: Callable[[int, int], None] | None = None,
                    on_reply: ReplyCallback | None = None,
                    http_client: Any = None) -> References:
    """Replay the reference runs the current baseline still lacks (``drift.baseline_replicates``
    − 1 in all), each over the whole set, closed with ``summary.reference_of`` and checked.

    Nothing when the baseline is not replicated, when a monitored night has already been
    checked against it (a reference chosen after seeing the nights it is compared with would
    not be one). Stops at a reference run that gave exactly the baseline's verdicts
    (``reference_of.identical``: the judge repeats itself, so further references would add
    nothing; none is taken for this baseline again), and at one that does not complete: that
    one is closed and checked as an inconclusive night, and the next job tries again before
    its own night.

    With ``cost.budget_per_night`` the reference runs are part of the night: ``spent`` is
    what the night has cost before them, each one's budget gate counts it, and one is only
    started when the night can still pay for it and, ``night_to_come``, for tonight's own
    run after it (each estimated at what the baseline run cost): the monitored night is
    never starved for a reference. The references left out are not taken later (``note``).
    """
    from judgecal.agreement import agreement_report
    from judgecal.calibration import StoredSet
    from judgecal.runs.replay import execute_run

    out = References(spent=spent)
    settings = config.drift
    wanted = settings.baseline_replicates - 1
    base = drift.current_baseline(store, config.judge.name, cs.version)
    if wanted <= 0 or not settings.sequential or base is None:
        return out
    baseline_run_id = str(base["run_id"])
    base_run = store.get_run(baseline_run_id)
    done = _references_of(store, base_run)
    have = len(done)
    if (have >= wanted or any(ref.get("identical") for ref in done)
            or _monitored_since(store, baseline_run_id)):
        return out
    why = _no_references_because(config, base_run)
    if why is not None:
        out.note = f"no reference run taken: {why}"
        return out
    limit = config.cost.budget_per_night
    whole, headroom = (_replay_estimate(store, config, baseline_run_id) if limit is not None
                       else (0.0, 0.0))
    for index in range(have + 1, wanted + 1):
        need = whole * (2 if night_to_come else 1) + headroom
        if limit is not None and out.spent + need > limit:
            out.note = (f"{wanted - index + 1} of the {wanted} reference run(s) not taken: the "
                        f"night's budget of {limit:g} (cost.budget_per_night) has "
                        f"{limit - out.spent:g} left, and a whole replay costs about {whole:g} "
                        f"(plus {headroom:g} held for the requests in flight)"
                        + (", to be paid twice with tonight's own run" if night_to_come
                           else ""))
            break
        result = execute_run(config, store, cs, finish=False, hold_lock=False,
                             on_start=on_start, on_reply=on_reply, http_client=http_client,
                             spent_tonight=out.spent)
        summary = dict(result.summary)
        identical = False
        if result.status == COMPLETED:
            identical = _repeats(store, result.run_id, baseline_run_id)
            summary["reference_of"] = {"baseline_run_id": baseline_run_id, "index": index,
                                       "of": wanted, "identical": identical}
            store.save_metric_report(result.run_id, agreement_report(
                StoredSet.load(store, cs.version), store.replies(result.run_id),
                n_boot=config.run.bootstrap, seed=config.run.seed))
        store.finish_run(result.run_id, result.status, summary)
        checked = after_run(store, result.run_id, config, http_client=http_client)
        out.run_ids.append(result.run_id)
        out.spent += _cost(result.summary)
        if result.status != COMPLETED:
            out.failed = True
            break
        if not _is_reference_check(checked.check):
            out.note = ("the reference run did not reproduce the baseline and was checked as "
                        "a night; no more reference runs for this baseline")
            break
        if identical:
            break
    return out


def _replay_estimate(store: Store, config: RunConfig, run_id: str) -> tuple[float, float]:
    """What replaying the set costs, from the whole run ``run_id`` (the baseline, priced
    now: it may predate the price table), and the headroom its budget gate holds at the end:
    ``concurrency`` requests in flight, each reserved at its worst case (the longest prompt
    seen counted twice over, ``max_tokens``, every re-ask)."""
    from judgecal.runs.cost import UNSET_MAX_TOKENS, run_cost, worst_request_cost

    judge = config.judge
    replies = store.replies(run_id)
    longest = max((r["prompt_tokens"] or 0 for r in replies), default=0)
    worst = worst_request_cost(config.cost.prices[judge.model], 2 * longest,
                               judge.decoding.max_tokens or UNSET_MAX_TOKENS,
                               1 + judge.parse_retries)
    whole = run_cost(replies, config.cost, judge.model) or {}
    return float(whole.get("total") or 0.0), judge.concurrency * worst


def _cost(summary: dict[str, Any]) -> float:
    """What a run cost, from its summary (0 without a price table)."""
    return float((summary.get("cost") or {}).get("total") or 0.0)


def _repeats(store: Store, run_id: str, baseline_run_id: str) -> bool:
    """Whether the run gave exactly the baseline's verdicts (same replies, same scores): a
    judge that repeats itself makes further reference runs pointless."""
    def verdicts(rid: str) -> dict[tuple[str, str, str], tuple[str, float | None]]:
        return {(r["item_id"], r["dimension"], r["variant"]): (r["status"], r["score"])
                for r in store.replies(rid)}

    return verdicts(run_id) == verdicts(baseline_run_id)


def _expand_if_unclear(
    config: RunConfig,
    store: Store,
    cs: CalibrationSet,
    plan: SamplePlan,
    result: RunResult,
    **replay: Any,
) -> RunResult:
    """Tonight's sample against the baseline; when it is not clear, the rest of the set is
    requested in the same (still open) run. Either way the summary says what was replayed.

    Deterministic: a night killed while expanding takes the same decision when it resumes
    (same replies, same seed, the evidence of the same earlier nights), and then only the
    replies still missing are requested."""
    from sqlalchemy import update

    from judgecal.db import schema
    from judgecal.drift.sampling import screen
    from judgecal.runs.replay import RunResult, execute_run

    if result.status == COMPLETED:
        n_boot = config.drift.bootstrap or max(config.run.bootstrap, 1000)
        check = drift.check_sample(store, result.run_id, config.drift, plan, result.summary,
                                   n_boot=n_boot, seed=config.run.seed)
        why = None if check is None else screen(check, config.drift)
        if why is not None:
            plan.expanded, plan.because = True, why
            rest = execute_run(config, store, cs, finish=False, hold_lock=False, **replay)
            with store.engine.begin() as conn:
                conn.execute(update(schema.runs).where(schema.runs.c.run_id == rest.run_id)
                             .values(n_expected=int(rest.summary["expected"])))
            result = RunResult(
                run_id=rest.run_id, status=rest.status, resumed=result.resumed,
                requested=result.requested + rest.requested,
                summary=rest.summary | {
                    "requested_now": result.requested + rest.requested,
                    "elapsed_s": result.summary.get("elapsed_s", 0.0)
                    + rest.summary.get("elapsed_s", 0.0)})
    result.summary["sampling"] = plan.to_json()
    return result


def _check_missed(store: Store, config: RunConfig, cs: CalibrationSet) -> Nightly | None:
    """Drift-check the judge's newest closed run if a kill left it without a check.

    That run *is* tonight's job (returned), unless it was a reference run of a replicated
    baseline: then tonight's job goes on (None), as after any reference run."""
    from judgecal.drift import checks_for_run
    from judgecal.runs.replay import RunResult

    for run in store.list_runs(config.judge.name, limit=5):
        if run["set_version"] != cs.version or run["origin"] != "live":
            continue
        if run["status"] == RUNNING or checks_for_run(store, run["run_id"]):
            return None
        report = store.latest_metric_report(run["run_id"])
        if report is None:
            return None
        watch = after_run(store, run["run_id"], config)
        if (run["summary"] or {}).get("reference_of"):
            return None  # a reference run of the killed job: now checked, tonight goes on
        result = RunResult(run_id=run["run_id"], status=run["status"], resumed=True,
                           requested=0, summary=dict(run["summary"] or {}, requested_now=0))
        return Nightly(result=result, report=report, watch=watch)
    return None


# --------------------------------------------------------------------------- after a run


def _stale_watch(store: Store, check: drift.DriftCheck) -> dict[str, Any] | None:
    """After an inconclusive night: the judge's watch state if that leaves it stale (and a
    ``watch.stale`` notification in the outbox, once per night)."""
    from judgecal.drift.watch import STALE, judge_watch

    w = judge_watch(store, check.run["judge_name"], check.run["set_name"])
    if not any("stale after" in r for r in w.reasons):
        return None
    state = w.to_json() | {"state": STALE}
    key = f"watch.stale:{check.run['judge_name']}:{check.check_id}"
    with store.engine.begin() as conn:
        notify.enqueue(conn, "watch.stale", key, json_safe(state))
    return state


@dataclass
class AfterRun:
    """Everything :func:`after_run` did once a run was recorded."""

    check: dict[str, Any]
    outcome: CheckOutcome
    delivery: dict[str, Any] | None
    prometheus_textfile: str | None = None
    problems: list[str] = field(default_factory=list)
    """Things that failed without touching the run's record (e.g. an unwritable textfile)."""

    stale: dict[str, Any] | None = None
    """The judge's watch state when tonight could not conclude and that left it *stale*."""

    references_note: str | None = None
    """Why fewer reference runs were taken than ``drift.baseline_replicates`` asks (budget)."""

    references: list[str] = field(default_factory=list)
    """Reference runs of a replicated baseline (``drift.baseline_replicates``) this job took:
    before tonight's run (the baseline was accepted since the last job) or after it
    (tonight's run became the baseline)."""

    @property
    def kind(self) -> str:
        """What the exit code says: ``incident``, ``warning``, ``judge_changed``,
        ``not_monitored``, ``stale``, ``inconclusive`` or ``healthy``.

        An incident that is already acknowledged and only confirmed again tonight counts as a
        warning: someone owns it, nobody needs paging again.
        """
        if self.outcome.verdict == drift.INCIDENT:
            if self.outcome.incident_action == "recheck" and \
                    self.outcome.incident_status == ACKNOWLEDGED:
                return "warning"
            return "incident"
        if self.outcome.verdict == drift.WARNING:
            return "warning"
        if self.outcome.verdict == drift.JUDGE_CHANGED:
            return "judge_changed"
        if self.outcome.verdict in (drift.NO_BASELINE, drift.NOT_COMPARABLE):
            return "not_monitored"
        if self.outcome.verdict == drift.INCONCLUSIVE:
            return "stale" if self.stale else "inconclusive"
        return "healthy"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "check": self.check,
            "incident": None if self.outcome.incident_id is None else {
                "incident_id": self.outcome.incident_id,
                "action": self.outcome.incident_action,
                "status": self.outcome.incident_status,
            },
            "notifications": self.delivery,
            "prometheus_textfile": self.prometheus_textfile,
            "problems": self.problems,
            "stale": self.stale,
            "references": self.references,
            "references_note": self.references_note,
        }


def _plan_of(store: Store, run_id: str) -> SamplePlan | None:
    """A sampled night's plan, rebuilt from its run summary and the stored set."""
    from judgecal.calibration import StoredSet
    from judgecal.drift.sampling import SamplePlan

    run = store.get_run(run_id)
    sampled = (run.get("summary") or {}).get("sampling")
    if not sampled:
        return None
    view = StoredSet.load(store, run["set_version"])
    return SamplePlan.from_json(sampled, run["set_version"], [i.id for i in view.items])


def after_run(store: Store, run_id: str, config: RunConfig, *, http_client: Any = None
              ) -> AfterRun:
    """The nightly follow-up of a recorded run: drift check against the baseline, incident or
    warning recorded, notifications delivered, Prometheus textfile rewritten.

    ``config`` is the :class:`judgecal.config.RunConfig` of the run. The run's own record is
    already committed when this starts; nothing here can undo it, and a webhook that is down or
    a textfile that cannot be written only adds to ``problems``.
    An inconclusive run is checked as ``inconclusive``: no comparison, no incident, and it is
    never accepted as a baseline.
    """
    n_boot = config.drift.bootstrap or max(config.run.bootstrap, 1000)
    check = drift.check_run(store, run_id, config.drift, n_boot=n_boot,
                            seed=config.run.seed, actor="judgecal run",
                            sampling=_plan_of(store, run_id))
    outcome = record_check(store, check)
    result = AfterRun(check=json_safe(check.to_json()), outcome=outcome, delivery=None)
    if check.verdict == drift.INCONCLUSIVE:
        result.stale = _stale_watch(store, check)
    try:
        result.delivery = notify.deliver_pending(store, config.notify.webhook,
                                                 http_client=http_client).to_json()
        for key, error in (result.delivery.get("errors") or {}).items():
            result.problems.append(f"notification {key} not delivered yet: {error}")
    except Exception as exc:  # delivery must never fail a run that is already recorded
        result.problems.append(f"notifications not delivered: {type(exc).__name__}: {exc}")
    if config.notify.prometheus_textfile is not None:
        try:
            path = write_prometheus(store, config.notify.prometheus_textfile)
            result.prometheus_textfile = str(path)
        except OSError as exc:
            result.problems.append(f"Prometheus textfile not written: {exc}")
    return result
