"""Evidence across nights in the nightly check: each dimension's sequential state against the
accepted baseline, updated after the per-night rule, and what a crossing makes of the verdict.

The statistics are :mod:`judgecal.stats.sequential` (an anytime-valid e-process over the
nightly paired Δ against one baseline). Here:

* **State** — one :class:`~judgecal.stats.sequential.SequentialState` per (judge, set
  version, baseline run, dimension), kept in the drift check's own record
  (``dimensions[i].sequential.state``), so it is saved and audited with the check. Tonight's
  state is last night's, read from the newest saved check against the same baseline; a new
  baseline run has no saved state, so the evidence starts afresh.
* **Observation** — tonight's Δ of the primary metric in points (turned so that a drop is
  negative for a metric where smaller is better), and its paired-bootstrap standard error,
  the half-width of the central 68.3 % percentile interval (:func:`judgecal.stats.
  alarm_interval`, the same resamples as the rule's interval).
* **Level** — ``drift.sequential_alpha / m`` per dimension (Bonferroni over the ``m``
  dimensions compared), fixed for the life of the state.
* **Verdict** — a crossing is at least a warning; its severity is read from the estimated
  drop since the change point against ``warning_points``/``sev2_points``/``sev0_points``, so
  a drop of 4 points or more opens an incident. Once crossed (the state stays crossed until
  a new baseline is accepted), a later night keeps that severity when it looks more like the
  drop than like the baseline (tonight's change nearer −drop than 0), as a persistent drop
  is flagged every night by the per-night rule; otherwise it is a notice that says so — a
  judge back to its baseline's verdicts is not flagged again on the strength of past nights.
* **Onset** — the run of the estimated change point; an incident found this way takes its
  last healthy run from *before* that run, so the blast radius starts where the drop began.
* **Replicated baseline** — with ``drift.baseline_replicates`` K > 1 the nightly job replays
  the whole set K − 1 more times right after a baseline is accepted (before any monitored
  night): *reference runs* (:func:`reference_of`). Each is compared with the accepted run
  and added as a reference (``NightObservation.reference``): the nights are then measured
  against the mean of the K runs, no drop may begin on a reference, and each night is
  weighed by the noise the references showed rather than by its own spread, which a drop
  inflates (:func:`judgecal.stats.sequential.null_standard_errors`; each comparison keeps
  how many items changed, ``changed_items``). A reference run is
  not tested by the per-night rule (it is no monitored night, so the false-alarm budget is
  untouched), and its check is healthy and says what it was.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from judgecal.db import schema
from judgecal.drift.prose import ACCUMULATED
from judgecal.drift.rule import conclude, severity_for
from judgecal.drift.verdicts import RANK, SEV_NOTICE, SEV_WARNING, DriftCheck
from judgecal.stats import sequential as seq

if TYPE_CHECKING:
    from judgecal.calibration import StoredSet
    from judgecal.config import DriftSettings
    from judgecal.drift.sampling import SamplePlan
    from judgecal.stats._alarm import DimensionData
    from judgecal.store import Store

Part = tuple[Any, dict[str, Any] | None]
"""One comparison of a night for the evidence: a mask over the set's items (None: all the
night compared) and its cover (None: the whole set)."""

__all__ = [
    "ONE_SE_ALPHA",
    "TONIGHT",
    "accumulate",
    "changed_items",
    "onset_before",
    "previous_states",
    "reference_of",
    "sampled_parts",
    "standard_error_points",
]

ONE_SE_ALPHA = 2.0 * (1.0 - NormalDist().cdf(1.0))
"""The level whose central interval is ± one standard error (68.3 %)."""
TONIGHT = "tonight's comparison"
"""``found_by`` of a dimension that the night's own rule found."""


def previous_states(store: Store, judge_name: str, set_version: str, baseline_run_id: str,
                    run_id: str, dimensions: list[str],
                    unreadable: dict[str, str] | None = None
                    ) -> dict[str, seq.SequentialState]:
    """Each dimension's newest saved state against this baseline (checks of ``run_id`` itself
    are left out, so checking a run again never counts it twice).

    A saved state that cannot be read (edited by hand, damaged, or written by a version of
    judgecal whose state this one does not know) is passed over for the newest older one that
    can, or for none (the evidence starts afresh), and its reason goes into ``unreadable``:
    the nightly check goes on watching instead of failing every night until a new baseline
    is accepted."""
    candidates = _saved_states(store, judge_name, set_version, baseline_run_id, run_id,
                               dimensions, unreadable, keep=1)
    return {dim: states[0] for dim, states in candidates.items() if states}


KEEP_CANDIDATES = 3
"""Readable saved states kept per dimension, newest first: when the newest cannot be carried
on tonight, the next is tried."""


def _saved_states(store: Store, judge_name: str, set_version: str, baseline_run_id: str,
                  run_id: str, dimensions: list[str], unreadable: dict[str, str] | None,
                  keep: int = KEEP_CANDIDATES) -> dict[str, list[seq.SequentialState]]:
    """Up to ``keep`` readable saved states per dimension against this baseline, newest
    first (see :func:`previous_states`)."""
    from judgecal.db.engine import is_undecodable

    c = schema.drift_checks.c
    wanted = set(dimensions)
    out: dict[str, list[seq.SequentialState]] = {d: [] for d in dimensions}

    def passed_over(dim: str, why: str) -> None:
        if unreadable is not None and not out[dim]:
            unreadable.setdefault(dim, why[:200])

    with store.engine.connect() as conn:
        rows = conn.execute(
            select(c.record).where(and_(
                c.judge_name == judge_name, c.set_version == set_version,
                c.baseline_run_id == baseline_run_id, c.run_id != run_id))
            .order_by(c.created_at.desc(), c.check_id.desc())
        )
        for (record,) in rows:
            if is_undecodable(record):  # how the engine reads a record that is not JSON
                for each in wanted:
                    passed_over(each, "a saved check record is not JSON")
                continue
            entries = record.get("dimensions") if isinstance(record, dict) else None
            if not isinstance(entries, list):
                entries = [None]  # no dimensions at all: damaged like an unnamed entry
            named = set()
            for entry in entries:
                dim = entry.get("dimension") if isinstance(entry, dict) else None
                if not isinstance(dim, str):
                    continue  # an entry without a name: see below
                named.add(dim)
                if dim not in wanted or len(out[dim]) >= keep:
                    continue
                sequential = entry.get("sequential")
                if not isinstance(sequential, dict) or "state" not in sequential:
                    continue  # a night without evidence saves no state
                try:
                    out[dim].append(seq.SequentialState.from_json(sequential["state"]))
                except (ValueError, KeyError, TypeError, AttributeError,
                        OverflowError) as exc:
                    passed_over(dim, f"{type(exc).__name__}: {exc}")
            if len(named) < len(entries):  # whichever dimension an unnamed entry was
                for each in wanted - named:
                    passed_over(each, "a saved check's entry has no dimension name")
            if all(len(out[d]) >= keep for d in wanted):
                break
    return out


def reference_of(run: dict[str, Any], baseline_run_id: str | None) -> dict[str, Any] | None:
    """The run's reference-run record (``summary.reference_of``) when it is a reference run of
    the replicated baseline ``baseline_run_id``; None otherwise (a monitored night)."""
    ref = (run.get("summary") or {}).get("reference_of")
    if isinstance(ref, dict) and baseline_run_id and ref.get("baseline_run_id") == \
            baseline_run_id:
        return ref
    return None


def standard_error_points(d: DimensionData, n_boot: int, seed: int) -> float | None:
    """Paired-bootstrap standard error of the change, in points: the half-width of the central
    68.3 % percentile interval (None when undefined)."""
    from judgecal import stats

    iv = stats.alarm_interval(d, ONE_SE_ALPHA, n_boot, seed)
    if iv.ci_low is None or iv.ci_high is None:
        return None
    return 100.0 * (iv.ci_high - iv.ci_low) / 2.0


def sampled_parts(view: StoredSet, plan: SamplePlan) -> list[Part]:
    """The comparisons a sampled night adds to the evidence: its sample; an expanded night its
    sample and then the rest of the set, apart — the decision to expand was taken on the
    sample, so adding the whole set as one comparison would let that decision choose what
    the evidence sees (see ``docs/drift.md``)."""
    import numpy as np

    if not plan.expanded:
        return [(None, plan.cover())]
    sample = set(plan.items)
    universe = set(plan.order)
    ids = [item.id for item in view.items]
    in_sample = np.array([i in sample for i in ids], dtype=bool)
    in_rest = np.array([i in universe and i not in sample for i in ids], dtype=bool)
    return [(in_sample, plan.cover()), (in_rest, plan.cover(rest=True))]


def changed_items(d: DimensionData, mask: Any = None) -> int:
    """Items whose scores differ between the two runs, among those the change and its
    standard error rest on: both runs scored them and the humans have a consensus (on
    ``mask`` when given)."""
    from judgecal import stats

    human, a, b = (d.human, d.a, d.b) if mask is None else (d.human[mask], d.a[mask],
                                                             d.b[mask])
    return stats.paired_difference(d.scale, human, a, b, metrics=[d.metric],
                                   n_boot=0).n_changed


def _part(d: DimensionData, mask: Any, n_boot: int, seed: int
          ) -> tuple[float | None, float | None, int]:
    """The change (points), its standard error and the items compared on ``mask``."""
    import numpy as np

    from judgecal import stats
    from judgecal.stats._alarm import DimensionData as Data

    sub = Data(d.dimension, d.scale, d.metric, d.human[mask], d.a[mask], d.b[mask],
               d.present_a[mask], d.present_b[mask])
    n = int(np.count_nonzero(~np.isnan(sub.a) & ~np.isnan(sub.b)))
    iv = stats.alarm_interval(sub, ONE_SE_ALPHA, n_boot, seed)
    if iv.value is None or iv.ci_low is None or iv.ci_high is None:
        return None, None, n
    return 100.0 * iv.value, 100.0 * (iv.ci_high - iv.ci_low) / 2.0, n


def _run_times(store: Store, run_id: str | None) -> dict[str, Any] | None:
    """The change-point run's id and times, looked up by its exact id (None when there is no
    such run: a saved state may name one that was never stored)."""
    if run_id is None:
        return None
    r = schema.runs.c
    with store.engine.connect() as conn:
        row = conn.execute(select(r.run_id, r.started_at, r.finished_at)
                           .where(r.run_id == run_id)).mappings().first()
    return None if row is None else dict(row)


def _severity(decision: seq.SequentialDecision, min_drop: float, tonight: float | None,
              settings: DriftSettings) -> str | None:
    """The crossing's severity tonight (``tonight``: tonight's change in the drop's direction,
    None when the night carried no evidence)."""
    if not decision.crossed:
        return None
    drop = decision.drop_points
    if drop is None or drop < min_drop:
        return SEV_NOTICE  # crossed earlier; the drop no longer shows: say so, quietly
    if not decision.newly_crossed and (tonight is None or decision.skipped
                                       or tonight > -drop / 2.0):
        # After the crossing night, a night keeps the alarm only when it looks more like the
        # estimated drop than like the baseline (nearer −drop than 0): a judge back to its
        # baseline's verdicts is not flagged again on the strength of past nights.
        return SEV_NOTICE
    sev = severity_for(drop, True, settings)
    return sev if RANK[sev] >= RANK[SEV_WARNING] else SEV_WARNING


def accumulate(
    store: Store,
    check: DriftCheck,
    data: list[DimensionData],
    settings: DriftSettings,
    *,
    n_boot: int,
    seed: int,
    parts: list[Part] | None = None,
    reference: bool = False,
) -> DriftCheck:
    """Update each dimension's sequential state with tonight's comparison (after the per-night
    rule has run on ``check``) and let a crossing raise the verdict (see module doc).

    ``parts``: a sampled night's comparisons and the parts of the set they cover
    (:func:`sampled_parts`); None: one comparison of the whole set.

    ``reference``: the run is a reference run of the replicated baseline: its comparison is
    added to each state as a reference (never alarms), unless a monitored night is already
    in the state (then it is left out and the entry says why)."""
    import dataclasses

    import numpy as np

    from judgecal import stats

    baseline = check.baseline
    assert baseline is not None
    judge, version = check.run["judge_name"], check.run["set_version"]
    m = max(1, len(data))
    alpha = settings.sequential_alpha / m
    unreadable: dict[str, str] = {}
    saved = _saved_states(store, judge, version, check.baseline_run_id or "", check.run_id,
                          [d.dimension for d in data], unreadable)
    entries = {e["dimension"]: e for e in check.dimensions}
    tonight_worst: str | None = None  # what the per-night rule and its watches found
    for w in (*check.dimensions, *check.watches.get("unscored", []),
              *check.watches.get("distribution", [])):
        if RANK[w.get("severity")] > RANK[tonight_worst]:
            tonight_worst = w["severity"]
    worst = tonight_worst
    onsets: list[dict[str, Any]] = []
    found: list[str] = []
    for d in data:
        entry = entries[d.dimension]
        better = stats.METRICS[d.metric].higher_is_better
        if better is None or entry["delta_points"] is None:
            why = ("the metric has no better direction (closer to 0 is better): no drop to "
                   "accumulate" if better is None else "the change is undefined tonight")
            entry["sequential"] = {"skipped": why}
            entry["mdc_points"] = _nightly_mdc(entry)
            continue
        delta = float(entry["delta_points"]) * (1.0 if better else -1.0)
        se = standard_error_points(d, n_boot, seed)
        scored_by_baseline = int(np.count_nonzero(~np.isnan(d.a)))
        fresh = seq.new_state(judge, version, check.baseline_run_id or "", d.dimension,
                              alpha=alpha)
        candidates = saved.get(d.dimension) or []
        state = candidates[0] if candidates else fresh
        if reference and len(state.nights) > state.reference:
            entry["sequential"] = {"skipped": "a reference run after a monitored night is not "
                                              "added: the reference is fixed before the nights"}
            entry["mdc_points"] = _nightly_mdc(entry)
            continue
        observations = []
        for mask, cover in parts or [(None, None)]:
            obs: tuple[float | None, float | None, int]
            if mask is None:
                obs = (delta, se, int(entry["n_common"]))
            else:
                d_part, se_part, n_part = _part(d, mask, n_boot, seed)
                obs = (None if d_part is None else d_part * (1.0 if better else -1.0),
                       se_part, n_part)
            observations.append(seq.NightObservation(
                check.baseline_run_id or "", obs[0], obs[1], obs[2], scored_by_baseline,
                check.run_id, cover, reference=reference, changed=changed_items(d, mask)))
        # A saved state that reads but cannot be carried on tonight: the next older one, or
        # a fresh one; a fresh state that fails is a real error and is raised.
        for candidate in [*candidates, fresh]:
            try:
                state, decision, newly = _add(candidate, observations)
                carried = candidate is not fresh
                break
            except (ValueError, KeyError, TypeError, IndexError, ArithmeticError) as exc:
                if candidate is fresh:
                    raise
                unreadable.setdefault(d.dimension, f"{type(exc).__name__}: {exc}"[:200])
        decision = dataclasses.replace(decision, newly_crossed=newly)
        sev = _severity(decision, state.min_drop_points, delta, settings)
        change_run = _run_times(store, decision.change_point_run_id)
        entry["sequential"] = decision.to_json() | _weighing(state, decision) | {
            "se_points": se,
            "severity": sev,
            "change_point_run": change_run,
            "state": state.to_json(),
        }
        if d.dimension in unreadable:
            entry["sequential"]["notes"].append(
                "the evidence saved by an earlier check against this baseline could not be "
                f"read ({unreadable[d.dimension]}): "
                + ("it goes on from the newest earlier state that could"
                   if carried else "it starts afresh tonight"))
        nightly_sev = entry.get("severity") if entry.get("real") else None
        found_by = []
        if nightly_sev is not None and RANK[nightly_sev] >= RANK[SEV_WARNING]:
            found_by.append(TONIGHT)
        if sev is not None and RANK[sev] >= RANK[SEV_WARNING]:
            found_by.append(ACCUMULATED)
            found.append(d.dimension)
            if change_run is not None:
                onsets.append({"dimension": d.dimension, "night": decision.change_point,
                               "drop_points": decision.drop_points, **change_run})
        entry["found_by"] = found_by
        entry["mdc_points"] = (decision.mdc_points if decision.mdc_points is not None
                               else _nightly_mdc(entry))
        entry["mdc_basis"] = ("accumulated evidence" if decision.mdc_points is not None
                              else "tonight's comparison")
        if RANK[sev] > RANK[entry.get("severity")] and RANK[sev] >= RANK[SEV_WARNING]:
            entry["severity"] = sev
            entry["real"] = True  # real by accumulated evidence (found_by says which)
        for level in (entry.get("severity"), sev):  # a notice too: crossed, no new alarm
            if RANK[level] > RANK[worst]:
                worst = level
    onsets.sort(key=lambda o: (o.get("started_at") or "", o["dimension"]))
    check.sequential = {
        "alpha": settings.sequential_alpha,
        "alpha_per_dimension": alpha,
        "dimensions": m,
        "found": found,
        "found_by_evidence": bool(found) and RANK[worst] > RANK[tonight_worst],
        "onset": onsets[0] if onsets else None,
    }
    return conclude(check, worst)


def _add(state: seq.SequentialState, observations: list[seq.NightObservation]
         ) -> tuple[seq.SequentialState, seq.SequentialDecision, bool]:
    """Tonight's comparisons added to ``state`` in turn: (state, last decision, crossed on any
    of them)."""
    newly = False
    decision: seq.SequentialDecision | None = None
    for observation in observations:
        state, decision = seq.update(state, observation)
        newly = newly or decision.newly_crossed
    assert decision is not None
    return state, decision, newly


def _weighing(state: seq.SequentialState, decision: seq.SequentialDecision
              ) -> dict[str, Any]:
    """The standard error tonight's last comparison (the rest of the set on an expanded
    sampled night) was weighed by in the evidence, and why: the reference runs' noise,
    tonight's own spread, or the bound on how much surer than its own spread a night may
    be made."""
    if decision.skipped is not None or len(state.nights) <= state.reference:
        return {}
    weighed = float(seq.effective_se(state.nights, state.reference)[-1])
    own = state.nights[-1].se_points
    if weighed == own:
        by = "tonight's own spread"
    elif math.isclose(weighed, seq.OWN_SE_SHARE * own):
        by = (f"{seq.OWN_SE_SHARE:g} of tonight's own spread (tonight is noisier than the "
              "reference runs)")
    else:
        by = "the reference runs' noise"
    return {"weighed_se_points": weighed, "weighed_by": by}


def _nightly_mdc(entry: dict[str, Any]) -> float | None:
    mdc = entry.get("minimum_detectable_change_points") or {}
    value = mdc.get("set")
    return float(value) if value is not None and math.isfinite(value) else None


def onset_before(check: DriftCheck) -> str | None:
    """When the sequential test found the drift: the start of the change-point run (the last
    healthy run is looked for before it); None otherwise."""
    onset = (check.sequential or {}).get("onset")
    if not onset or not onset.get("started_at"):
        return None
    return str(onset["started_at"])
