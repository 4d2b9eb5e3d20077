"""The nightly drift check: find the baseline, choose the alarm level, load both runs, apply
the rule (:mod:`judgecal.drift.rule`), save the check in the audit chain.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, select

from judgecal import audit
from judgecal.agreement import judge_vector
from judgecal.audit.snapshots import snapshot_check
from judgecal.calibration import StoredSet
from judgecal.db import schema
from judgecal.drift.baselines import accept_baseline, baselines, current_baseline
from judgecal.drift.cause import describe_field, root_cause
from judgecal.drift.rule import assess, primary_metric
from judgecal.drift.sequential import (
    accumulate,
    reference_of,
    sampled_parts,
    standard_error_points,
)
from judgecal.drift.verdicts import (
    BASELINE_ACCEPTED,
    HEALTHY,
    INCONCLUSIVE,
    NO_BASELINE,
    NOT_COMPARABLE,
    NOTICE,
    AlarmLevel,
    DriftCheck,
    NotComparableError,
    new_check_id,
)
from judgecal.errors import NotFoundError
from judgecal.judge.fingerprint import diff_runs
from judgecal.records import COMPLETED, json_safe
from judgecal.stats._alarm import DimensionData

if TYPE_CHECKING:
    from judgecal.config import DriftSettings
    from judgecal.drift.sampling import SamplePlan
    from judgecal.store import Store

__all__ = [
    "alarm_level",
    "check_run",
    "check_sample",
    "checks_for_run",
    "compare_runs",
    "evaluate",
    "get_check",
    "save_check",
    "snapshot_check",
]





def _seen_signatures(store: Store, judge_name: str, baseline_run_id: str) -> set[str]:
    c = schema.drift_checks.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(schema.drift_checks.c.record).where(
                and_(c.judge_name == judge_name, c.baseline_run_id == baseline_run_id)
            )
        ).all()
    out = set()
    for (record,) in rows:
        sig = ((record or {}).get("fingerprint_diff") or {}).get("signature")
        if sig:
            out.add(str(sig))
    return out


def alarm_level(store: Store, baseline_run: dict[str, Any], run: dict[str, Any],
                settings: DriftSettings) -> AlarmLevel:
    """The alarm level of tonight's check (change event or routine night, see module doc)."""
    alpha = 1.0 - settings.confidence
    diff = diff_runs(baseline_run, run)
    if diff.signature and diff.signature not in _seen_signatures(
        store, run["judge_name"], baseline_run["run_id"]
    ):
        changed = ", ".join(f.label for f in diff.changed_fields)
        return AlarmLevel(alpha, "change_event",
                          f"change event: the fingerprint differs from the baseline's ({changed})"
                          " in a way no earlier check has seen", settings.horizon_nights)
    return AlarmLevel(alpha / settings.horizon_nights, "routine",
                      f"routine night: nothing new in the fingerprint, so the false-alarm "
                      f"budget of {alpha:.0%} is shared by {settings.horizon_nights} nights",
                      settings.horizon_nights)


def check_run(
    store: Store,
    run_id: str,
    settings: DriftSettings,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    actor: str = "judgecal",
    sampling: SamplePlan | None = None,
) -> DriftCheck:
    """Tonight's drift check of a finished run against its judge's baseline (not saved).

    ``sampling``: the run was a sampled night (:mod:`judgecal.drift.sampling`); the check
    says so, compares the sample (or, expanded, the whole set) and adds the evidence across
    nights with the parts of the set each comparison covered.

    With no baseline on the run's set version the verdict is ``no_baseline`` — or, when the
    judge has a baseline on another version only, ``not_comparable`` (it needs a new one).
    ``drift.auto_baseline`` accepts a completed run as the first baseline (saying so).
    An inconclusive run gets the verdict ``inconclusive`` and is never compared.
    """
    run = store.get_run(run_id)
    if run["status"] != COMPLETED:
        return DriftCheck(new_check_id(), run, None, INCONCLUSIVE, None,
                          f"run {run['run_id']} is {run['status']}: no drift check, no "
                          "incident, never a baseline")
    base = current_baseline(store, run["judge_name"], run["set_version"])
    if base is None:
        others = [b for b in baselines(store, run["judge_name"])
                  if b["set_version"] != run["set_version"]]
        if settings.auto_baseline:
            reason = "auto: first completed run of this judge on this set version"
            if others:
                reason += (f" (the previous baseline {others[0]['run_id']} is on set version "
                           f"{others[0]['set_version'][:19]}: not comparable)")
            accept_baseline(store, run["run_id"], actor=actor, reason=reason, auto=True)
            verdict = BASELINE_ACCEPTED
            message = f"accepted run {run['run_id']} as the baseline ({reason})"
        elif others:
            verdict = NOT_COMPARABLE
            message = (f"the calibration set changed: judge {run['judge_name']} has a baseline "
                       f"on set version {others[0]['set_version'][:19]} but none on "
                       f"{run['set_version'][:19]}. A new set version is never compared with an "
                       f"old one: accept a baseline with `judgecal baseline accept "
                       f"{run['run_id']}`.")
        else:
            verdict = NO_BASELINE
            message = (f"no baseline for judge {run['judge_name']} on this set version: accept "
                       f"one with `judgecal baseline accept {run['run_id']}`")
        check = DriftCheck(new_check_id(), run, None, verdict, None, message,
                           settings=settings.model_dump(mode="json"))
        if others:
            check.root_cause = root_cause(
                diff_runs(store.get_run(others[0]["run_id"]), run), moved=False)
        return check
    baseline_run = store.get_run(base["run_id"])
    if baseline_run["run_id"] == run["run_id"]:
        return DriftCheck(new_check_id(), run, baseline_run, HEALTHY, None,
                          "this run is the baseline", root_cause=root_cause(None, moved=False))
    level = alarm_level(store, baseline_run, run, settings)
    return evaluate(store, baseline_run, run, settings, level, n_boot=n_boot, seed=seed,
                    sequential=settings.sequential, sampling=sampling,
                    reference=reference_of(run, baseline_run["run_id"]) is not None)


def check_sample(store: Store, run_id: str, settings: DriftSettings, plan: SamplePlan,
                 summary: dict[str, Any], *, n_boot: int = 1000, seed: int = 0
                 ) -> DriftCheck | None:
    """A sampled night's sample against the baseline while its run is still open (not saved;
    :func:`judgecal.drift.sampling.screen` reads it to decide whether to expand), with the
    ``summary`` the run will be closed with (its observed fingerprint). None when there is
    no baseline to compare with."""
    run = dict(store.get_run(run_id), summary=summary, status=COMPLETED)
    base = current_baseline(store, run["judge_name"], run["set_version"])
    if base is None or base["run_id"] == run["run_id"]:
        return None
    baseline_run = store.get_run(base["run_id"])
    level = alarm_level(store, baseline_run, run, settings)
    return evaluate(store, baseline_run, run, settings, level, n_boot=n_boot, seed=seed,
                    sequential=settings.sequential, sampling=plan, screening=True)


def compare_runs(
    store: Store,
    run_a: str,
    run_b: str,
    settings: DriftSettings,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    flipped_limit: int = -1,
) -> DriftCheck:
    """Compare any two runs on the same set version (``judgecal compare A B``): not saved.

    The alarm level is ``1 − confidence`` (Holm across dimensions): one deliberate comparison,
    not a nightly repetition. Raises :class:`NotComparableError` across set versions.
    """
    a, b = store.get_run(run_a), store.get_run(run_b)
    if a["set_version"] != b["set_version"]:
        diff = diff_runs(a, b)
        raise NotComparableError(
            f"runs {a['run_id']} and {b['run_id']} used different calibration-set versions "
            f"({a['set_version'][:19]} vs {b['set_version'][:19]}): not comparable. "
            + "; ".join(describe_field(f) for f in diff.changed_fields)
        )
    level = AlarmLevel(1.0 - settings.confidence, "comparison",
                       "a single comparison of two chosen runs", settings.horizon_nights)
    return evaluate(store, a, b, settings, level, n_boot=n_boot, seed=seed,
                    flipped_limit=flipped_limit)


def save_check(store: Store, check: DriftCheck, conn: Connection | None = None) -> str:
    """Store a drift check and append it to the audit log (in ``conn``'s transaction if given)."""
    record = check.to_json()
    values = {
        "check_id": check.check_id,
        "run_id": check.run_id,
        "baseline_run_id": check.baseline_run_id,
        "judge_name": check.run["judge_name"],
        "set_name": check.run["set_name"],
        "set_version": check.run["set_version"],
        "created_at": check.created_at,
        "verdict": check.verdict,
        "severity": check.severity,
        "record": json.loads(audit.canonical(json_safe(record))),
    }

    def write(c: Connection) -> None:
        c.execute(schema.drift_checks.insert().values(**values))
        snap = snapshot_check(c, check.check_id)
        assert snap is not None
        audit.append(c, "drift_check", check.check_id, snap)

    if conn is not None:
        write(conn)
    else:
        with store.engine.begin() as c:
            write(c)
    return check.check_id


def get_check(store: Store, check_id: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(
            select(schema.drift_checks).where(schema.drift_checks.c.check_id == check_id)
        ).mappings().first()
    if row is None:
        raise NotFoundError(f"no drift check '{check_id}'")
    return dict(row)


def checks_for_run(store: Store, run_id: str) -> list[dict[str, Any]]:
    c = schema.drift_checks.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(schema.drift_checks).where(c.run_id == run_id).order_by(c.created_at)
        ).mappings().all()
    return [dict(r) for r in rows]



def evaluate(
    store: Store,
    baseline_run: dict[str, Any],
    run: dict[str, Any],
    settings: DriftSettings,
    level: AlarmLevel,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    flipped_limit: int | None = None,
    with_mdc: bool = True,
    sequential: bool = False,
    sampling: SamplePlan | None = None,
    screening: bool = False,
    reference: bool = False,
) -> DriftCheck:
    """Compare ``run`` with ``baseline_run`` at the given alarm level (no saving).

    ``sequential``: then also add tonight to each dimension's evidence across nights against
    this baseline (read from the saved checks; :mod:`judgecal.drift.sequential`) — the
    nightly check does, a manual comparison does not.

    ``sampling``: a sampled night. Unless it expanded, only the sample's replies are compared
    (a run killed while expanding holds some of the rest too). ``screening``: the check of
    the sample that decides the expansion (the night is not yet a sampled or expanded one).

    ``reference``: the run is a reference run of a replicated baseline
    (``drift.baseline_replicates``): compared and added to the evidence as a reference, not
    tested — the check is healthy, says so, and marks its dimensions ``reference``. Unless it
    does not reproduce the baseline (a fingerprint change, or a move the per-night rule
    flags): then it is checked as a night, and says why it is not a reference.
    """
    diff = diff_runs(baseline_run, run)
    check = DriftCheck(
        check_id=new_check_id(), run=run, baseline=baseline_run, verdict=HEALTHY,
        severity=None, message="", alarm_level=level, fingerprint_diff=diff,
        settings=settings.model_dump(mode="json"),
        bootstrap={"resamples": n_boot, "seed": seed},
    )
    if baseline_run["set_version"] != run["set_version"]:
        check.verdict = NOT_COMPARABLE
        check.root_cause = root_cause(diff, moved=False)
        check.message = check.root_cause["summary"]
        return check
    view = StoredSet.load(store, run["set_version"])
    replies_a = store.replies(baseline_run["run_id"])
    replies_b = store.replies(run["run_id"])
    if sampling is not None and not sampling.expanded:
        sample = set(sampling.items)
        replies_b = [r for r in replies_b if r["item_id"] in sample]
    if sampling is not None and not screening:
        check.sampling = sampling.to_json()
    dims_a = {r["dimension"] for r in replies_a}
    dims_b = {r["dimension"] for r in replies_b}
    data: list[DimensionData] = []
    for dim in sorted(dims_a & dims_b):
        if dim not in view.dimensions:
            continue
        scale = view.dimensions[dim].scale
        a, pa = judge_vector(view, replies_a, dim)
        b, pb = judge_vector(view, replies_b, dim)
        data.append(DimensionData(dim, scale, primary_metric(settings, dim, scale),
                             view.human_matrix(dim), a, b, pa, pb))
    assess(check, view, (replies_a, replies_b), data, settings, level, n_boot=n_boot,
           seed=seed, flipped_limit=flipped_limit, with_mdc=with_mdc)
    if sampling is not None:
        for d, entry in zip(data, check.dimensions, strict=True):
            entry["se_points"] = standard_error_points(d, n_boot, seed)
    unlike = None
    if reference:
        unlike = _unlike_baseline(check)
        reference = unlike is None
    if sequential:
        accumulate(store, check, data, settings, n_boot=n_boot, seed=seed,
                   parts=None if sampling is None else sampled_parts(view, sampling),
                   reference=reference)
    if reference:
        _as_reference(check)
    elif unlike is not None:
        check.message = (f"{check.message} — this was to be a reference run of the replicated "
                         f"baseline, but {unlike}: checked as a night, and no more reference "
                         "runs are taken for this baseline")
    return check


def _unlike_baseline(check: DriftCheck) -> str | None:
    """Why a reference run does not reproduce its baseline (None when it does): a visible
    change of the judge, or a move the per-night rule flags. Such a run is not a reference."""
    diff = check.fingerprint_diff
    if diff is not None and diff.signature:
        return "the judge's fingerprint differs from the baseline run's"
    if check.verdict not in (HEALTHY, NOTICE):
        return f"the per-night rule finds it a {check.verdict.replace('_', ' ')}"
    return None


def _as_reference(check: DriftCheck) -> None:
    """A reference run's check: the comparison is kept as evidence, nothing is flagged."""
    ref = reference_of(check.run, check.baseline_run_id) or {}
    for entry in check.dimensions:
        entry["reference"] = True
        entry["real"], entry["severity"], entry["found_by"] = False, None, []
    for watch in check.watches.values():
        for w in watch:
            w["real"], w["severity"] = False, None
    check.verdict, check.severity = HEALTHY, None
    if check.fingerprint_diff is not None:
        check.root_cause = root_cause(check.fingerprint_diff, moved=False)
    moves = "; ".join(f"{e['dimension']} {e['delta_points']:+.1f} points" for e in
                      check.dimensions if e.get("delta_points") is not None)
    moves = moves or "no comparable dimension"
    check.message = (
        f"reference run {ref.get('index', '?')} of {ref.get('of', '?')} of the replicated "
        f"baseline {check.baseline_run_id}: compared with it ({moves}) and added to the "
        "reference of the evidence across nights — not a monitored night, so not tested "
        "and never flagged")
