"""Drift detection: baselines, the drift rule, false-alarm control, root cause in plain words.

Baselines
---------
Each judge name has, per calibration-set version, one *accepted baseline run*
(:func:`accept_baseline`; the ``baselines`` table keeps every acceptance, the newest is
current). Every night is compared with that fixed baseline — never with the previous night,
so small moves cannot add up unnoticed and the reference does not wander. A run on a new set
version is never compared with a baseline on another version: it needs its own baseline,
and the check says so (verdict ``not_comparable``). Only a completed (not inconclusive) run
can become a baseline; ``drift.auto_baseline`` accepts the first one automatically.

The drift rule
--------------
Per dimension, the *primary metric* (kappa for binary, nominal and pairwise scales,
quadratic-weighted kappa for ordinal, Krippendorff's alpha for interval; configurable) is
compared between the baseline and the run on the items **both runs scored** (unscored items
never stop a comparison; how many were left out is reported), with a paired bootstrap interval
of the difference (:func:`judgecal.stats.paired_difference`). The move in *points* is
100 × Δ. A move is *real* when its interval at the alarm level (below) excludes 0; a real
drop of at least ``sev0_points`` (default 8) is SEV0, ``sev2_points`` (4) SEV2 — both open an
incident — and ``warning_points`` (1) a warning. Severity is read from the point estimate;
``severity_range`` gives the severities at both ends of the interval, so a borderline case is
visible as such. A real *rise* is a judge change too (scores on either side are not
comparable): by default a warning naming the dimension and the fingerprint change.

Also watched, on the same items: a rise of the *unscored rate* (replies that could not be
parsed; transport failures are excluded — a flaky endpoint makes a run inconclusive, not
drifted), tested with an exact McNemar test, and a shift of the judge's own *score
distribution* (leniency, position preference), tested with the Stuart–Maxwell test of
marginal homogeneity (categorical scales) or the Wilcoxon signed-rank test (numeric scales).
Each is a warning when real at the alarm level and at least ``unscored_jump_points`` /
``distribution_shift_points`` large.

False alarms
------------
*Across dimensions*: Holm's step-down procedure on the per-dimension tests. With ``m``
dimensions, intervals are first taken at level ``alpha / m``; every dimension whose interval
excludes 0 is real; the remaining ``r`` are re-tested at ``alpha / r``, until no more are
found. The family-wise false-alarm rate of one check is at most ``alpha``. The two watches
are tested at ``alpha / m`` each (Bonferroni).

Intervals come from the paired bootstrap; at levels finer than the bootstrap resolves
(fewer than 10 resamples beyond an end, e.g. 0.05 / 30 with 1000 resamples) the interval is
the normal one, Δ ± z · SE, with the bootstrap standard error.

*Across nights*: the nightly repetition against a fixed baseline is where false alarms pile
up (30 tests at 5 % would alarm on most months with no change at all). The alarm level
therefore depends on whether the night brings *new evidence of a change*:

* **change event** — the fingerprint differs from the baseline's (configured or observed
  half) in a way no earlier check against this baseline has seen: ``alpha = 1 −
  confidence`` (default 0.05). Each distinct change is tested once at the full level.
* **routine night** — nothing new is visible: ``alpha = (1 − confidence) / horizon_nights``
  (default 0.05 / 30). By Bonferroni, the chance of any false alarm over ``horizon_nights``
  routine nights against one baseline is at most ``1 − confidence``, however the nights are
  correlated (they share the baseline, so they are); each further 30 nights adds at most
  another 5 %.

Under "no change" (same configuration, same served model), every night is routine, so the
false-alarm rate over 30 nights is at most 5 %. The price is sensitivity to changes nothing
visible announces (an *unexplained provider-side change*): they must be larger to alarm on
the first night, though a persistent one is re-tested every night. The two watches are
tested at the same level and need a 5-point shift on top, so chance alarms from them are
rare; the benchmark counts them.

Measured (``benchmarks/bench_detection.py``: LLMBar GPT-4 verdicts re-drawn every night from
its real original/swapped-order disagreements; 100 sequences of 30 nights, 200 drift trials
per row; a 4-point drop made by mixing in real ChatGPT verdicts):

=========================  =========  =========  =========  =========  =========  =========
noise (verdicts differing   3.6 %      3.6 %      3.6 %      1.6 %      1.6 %      1.6 %
between two nights)
items                       419        1,000      2,000      419        1,000      2,000
false alarms / 30 nights    3 %        5 %        4 %        0 %        2 %        2 %
alarm, 1st night, visible   40 %       78 %       98 %       66 %       94 %       100 %
alarm, 1st night, invisible 7 %        34 %       75 %       11 %       59 %       97 %
invisible, within 3 nights  16 %       61 %       95 %       36 %       87 %       100 %
=========================  =========  =========  =========  =========  =========  =========

(Wilson 95 % bounds of the false-alarm rates reach 7–11 % with 100 sequences.) A drop of
exactly 4 points is classed SEV2 about half the time: its point estimate falls on either
side of the threshold. A deterministic endpoint (identical verdicts every night) never
raises a false alarm.

A drop that is real opens at most one incident per (judge, set version, baseline): later
nights add ``recheck`` events to the open incident instead of opening new ones.

Root cause
----------
From the fingerprint diff (:mod:`judgecal.fingerprint`), in this order of precedence:
calibration-set change (not comparable), planned model migration (requested model
changed), rubric/prompt change (prompt text, rubric or parse rule), decoding change, silent
provider update (requested model unchanged, served model ids or system fingerprint changed),
unexplained provider-side change (nothing visible changed). All belong to the field's
*judge drift* cause; when agreement did not move, the summary says the judge is not the
cause and names the other three (model migration, prompt change, input distribution shift).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, select

from judgecal import audit
from judgecal.agreement import StoredSet, judge_vector
from judgecal.errors import ConfigError, InputError, NotFoundError, Problem
from judgecal.fingerprint import FingerprintDiff, describe_change, diff_runs
from judgecal.records import COMPLETED, SCORED, UNSCORED, json_safe, utcnow
from judgecal.records import now as clock_now
from judgecal.store import schema

if TYPE_CHECKING:
    import numpy as np

    from judgecal.config import DriftSettings
    from judgecal.scales import Scale
    from judgecal.store import Store

# Verdicts of a drift check, from worst to best.
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
_RANK = {None: 0, SEV_NOTICE: 1, SEV_WARNING: 2, SEV2: 3, SEV0: 4}

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


# --------------------------------------------------------------------------- baselines


def current_baseline(store: Store, judge_name: str, set_version: str) -> dict[str, Any] | None:
    """The accepted baseline of a judge on a set version (newest acceptance), or None."""
    b = schema.baselines.c
    with store.engine.connect() as conn:
        row = conn.execute(
            select(schema.baselines)
            .where(and_(b.judge_name == judge_name, b.set_version == set_version))
            .order_by(b.baseline_id.desc())
            .limit(1)
        ).mappings().first()
    return None if row is None else dict(row)


def baselines(store: Store, judge_name: str | None = None, *, history: bool = False
              ) -> list[dict[str, Any]]:
    """Baselines, newest first: the current one per (judge, set version), or every acceptance."""
    b = schema.baselines.c
    query = select(schema.baselines).order_by(b.baseline_id.desc())
    if judge_name:
        query = query.where(b.judge_name == judge_name)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings().all()]
    if history:
        return rows
    seen: set[tuple[str, str]] = set()
    out = []
    for row in rows:
        key = (row["judge_name"], row["set_version"])
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def accept_baseline(
    store: Store, run_id: str, *, actor: str, reason: str, auto: bool = False
) -> dict[str, Any]:
    """Make a completed run the baseline of its judge on its set version.

    Raises :class:`InputError` for a run that is still running or inconclusive (an
    inconclusive run is never a baseline). Accepting the current baseline again is a no-op.
    """
    run = store.get_run(run_id)
    if run["status"] != COMPLETED:
        raise InputError(
            f"run {run['run_id']} is {run['status']}: only a completed run can be a baseline"
        )
    if not actor.strip() or not reason.strip():
        raise InputError("accepting a baseline needs who (actor) and why (reason)")
    existing = current_baseline(store, run["judge_name"], run["set_version"])
    if existing is not None and existing["run_id"] == run["run_id"]:
        return existing
    values = {
        "judge_name": run["judge_name"],
        "set_name": run["set_name"],
        "set_version": run["set_version"],
        "run_id": run["run_id"],
        "accepted_at": utcnow(),
        "actor": actor,
        "reason": reason,
        "auto": auto,
        "replaces_run_id": existing["run_id"] if existing else None,
    }
    with store.engine.begin() as conn:
        result = conn.execute(schema.baselines.insert().values(**values))
        key = result.inserted_primary_key
        assert key is not None
        baseline_id = int(key[0])
        record = snapshot_baseline(conn, str(baseline_id))
        assert record is not None
        audit.append(conn, "baseline", str(baseline_id), record)
    return dict(values, baseline_id=baseline_id)


@audit.snapshot_kind("baseline")
def snapshot_baseline(conn: Connection, ref: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(schema.baselines).where(schema.baselines.c.baseline_id == int(ref))
    ).mappings().first()
    return None if row is None else dict(json.loads(audit.canonical(dict(row))))


@audit.snapshot_kind("drift_check")
def snapshot_check(conn: Connection, ref: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(schema.drift_checks).where(schema.drift_checks.c.check_id == ref)
    ).mappings().first()
    return None if row is None else dict(json.loads(audit.canonical(dict(row))))


# --------------------------------------------------------------------------- results


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
        }


def new_check_id() -> str:
    stamp = clock_now().strftime("%Y%m%dT%H%M%S")
    return f"dc{stamp}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- root cause


def root_cause(diff: FingerprintDiff | None, *, moved: bool) -> dict[str, Any]:
    """The root cause in plain words, from the fingerprint diff and whether agreement moved.

    Returns ``{"code", "title", "summary", "cause_family", "factors": [{"code", "words"}]}``.
    """
    factors: list[dict[str, str]] = []

    def add(code: str, words: str) -> None:
        factors.append({"code": code, "words": words})

    if diff is not None:
        set_v = diff.get("context.set_version")
        if set_v is not None and set_v.changed:
            add(CALIBRATION_SET_CHANGE,
                f"the calibration set changed (version {str(set_v.before)[:19]} → "
                f"{str(set_v.after)[:19]}): the two runs answered different questions and "
                "cannot be compared")
        model = diff.get("configured.model")
        if model is not None and model.changed:
            add(PLANNED_MODEL_MIGRATION,
                f"the judge's configuration now requests the model '{model.after}' instead of "
                f"'{model.before}'")
        for name in ("configured.prompt", "configured.rubric", "configured.parser"):
            change = diff.get(name)
            if change is not None and change.changed:
                what = {"configured.prompt": "the judge's prompt text was edited",
                        "configured.rubric": "the judge's rubric was edited",
                        "configured.parser": "the rule that reads the judge's verdict changed"}
                extra = ""
                if change.detail and "lines_added" in change.detail:
                    extra = (f": {change.detail['lines_added']} line(s) added, "
                             f"{change.detail['lines_removed']} removed")
                add(RUBRIC_PROMPT_CHANGE, what[name] + extra)
        decoding = diff.get("configured.decoding")
        if decoding is not None and decoding.changed:
            add(DECODING_CHANGE, "the judge's decoding settings changed: "
                + describe_change(decoding).split(": ", 1)[-1])
        served = diff.get("observed.served_models")
        sysfp = diff.get("observed.system_fingerprints")
        observed_bits = [c for c in (served, sysfp) if c is not None and c.changed]
        if observed_bits and not (model is not None and model.changed):
            requested = model.after if model is not None else "?"
            words = [describe_change(c) for c in observed_bits]
            add(SILENT_PROVIDER_UPDATE,
                f"the judge still requests '{requested}', but the provider now reports "
                + "; ".join(words))
        version = diff.get("configured.judgecal_version")
        if version is not None and version.changed and not factors:
            add("tool_upgrade", f"judgecal was upgraded ({version.before} → {version.after}); "
                "the requests sent to the judge are otherwise unchanged")
    codes = [f["code"] for f in factors if f["code"] != "tool_upgrade"]
    if codes:
        code = codes[0]
    elif moved:
        code = UNEXPLAINED_PROVIDER_CHANGE
    else:
        code = JUDGE_STABLE
    if code == CALIBRATION_SET_CHANGE:
        summary = (factors[0]["words"][0].upper() + factors[0]["words"][1:]
                   + ". Accept a baseline on the new version.")
        family = CAUSE_FAMILY
    elif moved:
        lead = {
            PLANNED_MODEL_MIGRATION: "The judge was moved to another model on purpose",
            RUBRIC_PROMPT_CHANGE: "The judge's instructions were changed",
            DECODING_CHANGE: "The judge's sampling settings were changed",
            SILENT_PROVIDER_UPDATE: "The provider changed the model behind the judge without "
                                    "any change on our side",
            UNEXPLAINED_PROVIDER_CHANGE: "The judge's verdicts changed although nothing "
                                         "visible changed: same configuration, same reported "
                                         "model",
        }[code]
        detail = "; ".join(f["words"] for f in factors)
        summary = f"{lead}" + (f": {detail}." if detail else ".")
        summary += " This is judge drift: the grader itself changed, so scores given before and "
        summary += "after the change are not comparable."
        family = CAUSE_FAMILY
    elif code == JUDGE_STABLE:
        summary = ("The judge is stable: its agreement with the humans did not move beyond "
                   "what chance explains, and its fingerprint is unchanged. If production "
                   "scores moved, the judge is not the cause: look at a model migration or a "
                   "prompt change of the system being judged, or a shift in its inputs.")
        family = "not judge drift"
    else:
        detail = "; ".join(f["words"] for f in factors)
        summary = (f"The judge changed ({detail}), but its agreement with the humans did not "
                   "move beyond what chance explains on this set. Review it and accept this "
                   "run as the new baseline; scores before and after may still differ.")
        family = CAUSE_FAMILY
    return {
        "code": code,
        "title": CAUSE_TITLES.get(code, code),
        "summary": summary,
        "cause_family": family,
        "factors": factors,
    }


# --------------------------------------------------------------------------- the rule


def primary_metric(settings: DriftSettings, dimension: str, scale: Scale) -> str:
    from judgecal import stats

    chosen = settings.primary_metric.get(dimension) or settings.primary_metric.get(scale.kind)
    if chosen and chosen not in stats.metrics_for(scale):
        raise ConfigError(Problem(
            file="<config>", field="drift.primary_metric",
            message=f"'{chosen}' is not reported for the {scale.kind} dimension '{dimension}' "
                    f"(choose one of {', '.join(stats.metrics_for(scale))})"))
    return chosen or stats.PRIMARY_METRIC[scale.kind]


def _worse(metric: str, delta: float, before: float | None, after: float | None) -> bool:
    from judgecal import stats

    better = stats.METRICS[metric].higher_is_better
    if better is True:
        return delta < 0
    if better is False:
        return delta > 0
    return abs(after or 0.0) > abs(before or 0.0)


def severity_for(points: float, worse: bool, settings: DriftSettings) -> str:
    """Severity of a *real* move of ``points`` (``worse``: in the bad direction)."""
    size = abs(points)
    if not worse and settings.rises != "incident":
        if size >= settings.warning_points:
            return SEV_WARNING if settings.rises == "warning" else SEV_NOTICE
        return SEV_NOTICE
    if size >= settings.sev0_points:
        return SEV0
    if size >= settings.sev2_points:
        return SEV2
    if size >= settings.warning_points:
        return SEV_WARNING
    return SEV_NOTICE


def _pts(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


@dataclass
class DimensionData:
    """One dimension of a comparison: codes aligned by item (NaN = unscored)."""

    dimension: str
    scale: Scale
    metric: str
    human: np.ndarray
    a: np.ndarray
    b: np.ndarray
    present_a: np.ndarray
    present_b: np.ndarray
    intervals: dict[tuple[float, int], Any] = field(default_factory=dict)


MIN_TAIL_RESAMPLES = 10
"""A percentile interval needs at least this many bootstrap resamples beyond each end."""

_ONE_SE = 2 * NormalDist().cdf(1.0) - 1.0  # central share within ±1 standard deviation


def _interval(d: DimensionData, alpha: float, n_boot: int, seed: int) -> Any:
    """Paired interval of the primary metric's change at level ``1 - alpha``.

    A percentile interval when the bootstrap resolves it (at least ``MIN_TAIL_RESAMPLES``
    resamples beyond each end); beyond that (e.g. 0.05 / 30 with 1000 resamples) the normal
    interval ``Δ ± z · SE``, with the bootstrap standard error read robustly from the central
    68.3 % percentile interval.
    """
    from judgecal import stats

    key = (alpha, n_boot)
    if key in d.intervals:
        return d.intervals[key]
    if n_boot == 0 or alpha / 2 * n_boot >= MIN_TAIL_RESAMPLES:
        mv = stats.paired_difference(
            d.scale, d.human, d.a, d.b, metrics=[d.metric], n_boot=n_boot, seed=seed,
            confidence=1.0 - alpha,
        ).metrics[d.metric]
    else:
        one = stats.paired_difference(
            d.scale, d.human, d.a, d.b, metrics=[d.metric], n_boot=n_boot, seed=seed,
            confidence=_ONE_SE,
        ).metrics[d.metric]
        if one.value is None or one.ci_low is None or one.ci_high is None:
            mv = one
        else:
            se = (one.ci_high - one.ci_low) / 2.0
            z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
            mv = stats.MetricValue(
                value=one.value, ci_low=one.value - z * se, ci_high=one.value + z * se,
                n=one.n, note="normal interval with the bootstrap standard error",
            )
    d.intervals[key] = mv
    return mv


def holm(dims: list[DimensionData], alpha: float, n_boot: int, seed: int
         ) -> dict[str, tuple[bool, float]]:
    """Holm's step-down over dimensions: ``{dim: (real, level used)}`` (see module doc)."""
    out: dict[str, tuple[bool, float]] = {}
    remaining = [d for d in dims if _interval(d, alpha, 0, seed).value is not None]
    for d in dims:
        if d not in remaining:
            out[d.dimension] = (False, alpha)
    while remaining:
        level = alpha / len(remaining)
        found = [d for d in remaining if _interval(d, level, n_boot, seed).excludes_zero]
        for d in remaining:
            out[d.dimension] = (d in found, level)
        if not found:
            break
        remaining = [d for d in remaining if d not in found]
    return out


def decide(dims: list[DimensionData], alpha: float, *, n_boot: int, seed: int
           ) -> dict[str, dict[str, Any]]:
    """The drift rule's decision per dimension, without a store (benchmarks use it).

    Returns ``{dim: {"real", "level", "delta_points", "interval_points"}}``: whether the move
    is real under Holm at family level ``alpha``, the level it was tested at, and its
    interval at that level.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, (real, used) in holm(dims, alpha, n_boot, seed).items():
        d = next(x for x in dims if x.dimension == name)
        iv = _interval(d, used, n_boot, seed)
        out[name] = {
            "real": real,
            "level": used,
            "delta_points": _pts(iv.value),
            "interval_points": [_pts(iv.ci_low), _pts(iv.ci_high)],
        }
    return out


def _mcnemar_p(b01: int, b10: int) -> float:
    """Exact two-sided McNemar p-value for discordant counts."""
    if b01 + b10 == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(b01, b01 + b10, 0.5).pvalue)


def _unscored_watch(store_replies: tuple[list[dict[str, Any]], list[dict[str, Any]]],
                    dimension: str) -> dict[str, Any]:
    ra, rb = store_replies
    state_a = {r["item_id"]: r["status"] for r in ra
               if r["dimension"] == dimension and r["variant"] == "original"}
    state_b = {r["item_id"]: r["status"] for r in rb
               if r["dimension"] == dimension and r["variant"] == "original"}
    # Transport failures (status "failed") are left out: they say nothing about the judge.
    common = [i for i in state_a if i in state_b
              and state_a[i] in (SCORED, UNSCORED) and state_b[i] in (SCORED, UNSCORED)]
    n = len(common)
    ua = sum(1 for i in common if state_a[i] == UNSCORED)
    ub = sum(1 for i in common if state_b[i] == UNSCORED)
    b01 = sum(1 for i in common if state_a[i] == SCORED and state_b[i] == UNSCORED)
    b10 = sum(1 for i in common if state_a[i] == UNSCORED and state_b[i] == SCORED)
    return {
        "dimension": dimension,
        "items": n,
        "baseline_rate": ua / n if n else None,
        "run_rate": ub / n if n else None,
        "change_points": 100.0 * (ub - ua) / n if n else None,
        "newly_unscored": b01,
        "newly_scored": b10,
        "p_value": _mcnemar_p(b01, b10),
    }


def _stuart_maxwell_p(a: np.ndarray, b: np.ndarray, domain: list[float]) -> float:
    import numpy as np
    from scipy.stats import chi2

    k = len(domain)
    index = {v: i for i, v in enumerate(domain)}
    table = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        table[index[float(x)], index[float(y)]] += 1
    d = table.sum(axis=1) - table.sum(axis=0)
    s = -(table + table.T)
    np.fill_diagonal(s, table.sum(axis=1) + table.sum(axis=0) - 2 * np.diag(table))
    d, s = d[:-1], s[:-1, :-1]
    rank = int(np.linalg.matrix_rank(s))
    if rank == 0:
        return 1.0
    stat = float(d @ np.linalg.pinv(s) @ d)
    return float(chi2.sf(stat, rank))


def _distribution_watch(d: DimensionData) -> dict[str, Any]:
    import numpy as np

    both = d.present_a & d.present_b & ~np.isnan(d.a) & ~np.isnan(d.b)
    a, b = d.a[both], d.b[both]
    n = int(both.sum())
    out: dict[str, Any] = {"dimension": d.dimension, "items": n}
    domain = d.scale.domain()
    if n == 0:
        return out | {"shift_points": None, "p_value": 1.0}
    if d.scale.kind in ("binary", "nominal", "pairwise") and domain:
        before = {d.scale.name(v): float((a == v).mean()) for v in domain}
        after = {d.scale.name(v): float((b == v).mean()) for v in domain}
        shift = max(abs(after[k] - before[k]) for k in before)
        return out | {
            "kind": "category shares",
            "before": before,
            "after": after,
            "shift_points": 100.0 * shift,
            "p_value": _stuart_maxwell_p(a, b, domain),
            "test": "Stuart-Maxwell (marginal homogeneity)",
        }
    from scipy.stats import wilcoxon

    span = (d.scale.max - d.scale.min) if (d.scale.max is not None and d.scale.min is not None) \
        else float(np.nanmax(np.abs(np.concatenate([a, b]))) or 1.0)
    mean_shift = float((b - a).mean())
    p = 1.0 if np.all(a == b) else float(wilcoxon(a, b).pvalue)
    return out | {
        "kind": "mean score",
        "before": float(a.mean()),
        "after": float(b.mean()),
        "shift_points": 100.0 * abs(mean_shift) / span,
        "direction": "unchanged" if mean_shift == 0 else (
            "more lenient" if mean_shift > 0 else "harsher"),
        "p_value": p,
        "test": "Wilcoxon signed-rank",
    }


def _flips(d: DimensionData, view_items: list[Any], limit: int) -> list[dict[str, Any]]:
    """Items whose verdict changed, worst first (right → wrong before wrong → right)."""
    import numpy as np

    from judgecal import stats

    cons = stats.consensus(d.scale, d.human)
    both = ~np.isnan(d.a) & ~np.isnan(d.b) & (d.a != d.b)
    rows = []
    for i in np.flatnonzero(both):
        c = cons[i]
        if np.isnan(c):
            harm = 0.0
        else:
            harm = float(abs(d.b[i] - c) > 0) - float(abs(d.a[i] - c) > 0) \
                if d.scale.kind in ("binary", "nominal", "pairwise") \
                else float(abs(d.b[i] - c) - abs(d.a[i] - c))
        item = view_items[i]
        rows.append({
            "item_id": item.id,
            "human": None if np.isnan(c) else d.scale.name(float(c)),
            "baseline": d.scale.name(float(d.a[i])),
            "current": d.scale.name(float(d.b[i])),
            "effect": "worse" if harm > 0 else ("better" if harm < 0 else "different"),
            "harm": harm,
            "segments": dict(item.segments),
        })
    rows.sort(key=lambda r: (-r["harm"], r["item_id"]))
    for r in rows:
        r.pop("harm")
    return rows[:limit] if limit >= 0 else rows


def _mdc(d: DimensionData, alpha: float, seed: int) -> dict[str, Any]:
    import numpy as np

    from judgecal import stats

    out: dict[str, Any] = {"alpha": alpha, "power": 0.8}
    for name in ("set", "pair"):
        if name == "pair" and not bool(((d.a != d.b) & ~np.isnan(d.a) & ~np.isnan(d.b)).any()):
            out[name], out[f"{name}_note"] = None, "the two runs gave identical verdicts"
            continue
        try:
            mv = stats.minimum_detectable_change(
                d.scale, d.human, d.a, metric=d.metric, alpha=alpha, power=0.8, seed=seed,
                n_boot=200, judge_b=d.b if name == "pair" else None,
            )
        except ValueError as exc:
            out[name] = None
            out[f"{name}_note"] = str(exc)
            continue
        out[name] = _pts(mv.value)
        out[f"{name}_note"] = mv.note or mv.undefined
    return out


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
) -> DriftCheck:
    """Compare ``run`` with ``baseline_run`` at the given alarm level (no lookup, no saving)."""
    from judgecal import stats

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
    level.dimensions = max(1, len(data))
    decisions = holm(data, level.alpha, n_boot, seed)
    limit = settings.worst_items if flipped_limit is None else flipped_limit
    worst = None
    for d in data:
        comp = stats.paired_difference(d.scale, d.human, d.a, d.b, n_boot=n_boot, seed=seed,
                                       confidence=0.95)
        delta = comp.metrics[d.metric]
        real, used = decisions.get(d.dimension, (False, level.alpha))
        decision = _interval(d, used, n_boot, seed)
        entry: dict[str, Any] = {
            "dimension": d.dimension,
            "scale": d.scale.describe(),
            "metric": d.metric,
            "baseline": comp.a[d.metric].to_json(),
            "current": comp.b[d.metric].to_json(),
            "delta": delta.to_json(),
            "delta_points": _pts(delta.value),
            "interval95_points": [_pts(delta.ci_low), _pts(delta.ci_high)],
            "decision_confidence": 1.0 - used,
            "decision_interval_points": [_pts(decision.ci_low), _pts(decision.ci_high)],
            "real": real,
            "n_common": comp.n_common,
            "scored_only_by_baseline": comp.left_out_a,
            "scored_only_by_run": comp.left_out_b,
            "n_changed": comp.n_changed,
            "metrics": {k: {"baseline": comp.a[k].to_json(), "current": comp.b[k].to_json(),
                            "delta": v.to_json()} for k, v in comp.metrics.items()},
            "description": view.dimensions[d.dimension].description,
        }
        if delta.value is None:
            entry |= {"direction": None, "severity": None, "severity_range": None}
        else:
            worse = _worse(d.metric, delta.value, comp.a[d.metric].value, comp.b[d.metric].value)
            entry["direction"] = ("drop" if worse else "rise") if delta.value != 0 else "none"
            sev = severity_for(100 * delta.value, worse, settings) if real else None
            entry["severity"] = sev
            if decision.ci_low is not None and decision.ci_high is not None:
                ends = sorted([abs(decision.ci_low), abs(decision.ci_high)])
                near = 0.0 if decision.ci_low <= 0 <= decision.ci_high else ends[0]
                entry["severity_range"] = [
                    severity_for(100 * near, worse, settings) if near > 0 else None,
                    severity_for(100 * ends[1], worse, settings),
                ]
            else:
                entry["severity_range"] = None
            if _RANK[sev] > _RANK[worst]:
                worst = sev
        if with_mdc and comp.n_changed:
            # Not for an unchanged dimension: "same verdicts on every item" says it all, and
            # the scramble search is the slowest part of a check.
            entry["minimum_detectable_change_points"] = _mdc(d, used, seed)
        check.dimensions.append(entry)
        if limit:
            check.flipped_items[d.dimension] = _flips(d, view.items, limit)
    # Watches: unparseable replies and the judge's own score distribution.
    m = max(1, len(data))
    check.watches = {"unscored": [], "distribution": []}
    for d in data:
        u = _unscored_watch((replies_a, replies_b), d.dimension)
        u["real"] = u["p_value"] <= level.alpha / m and (u["change_points"] or 0) > 0
        u["severity"] = (SEV_WARNING if u["real"] and (u["change_points"] or 0)
                         >= settings.unscored_jump_points else None)
        check.watches["unscored"].append(u)
        s = _distribution_watch(d)
        s["real"] = s["p_value"] <= level.alpha / m
        s["severity"] = (SEV_WARNING if s["real"] and (s.get("shift_points") or 0)
                         >= settings.distribution_shift_points else
                         (SEV_NOTICE if s["real"] else None))
        check.watches["distribution"].append(s)
        for w in (u, s):
            if _RANK[w["severity"]] > _RANK[worst]:
                worst = w["severity"]
    moved = any(e.get("real") for e in check.dimensions) or worst in (SEV_WARNING, SEV2, SEV0)
    check.root_cause = root_cause(diff, moved=moved)
    if worst in (SEV0, SEV2):
        check.verdict, check.severity = INCIDENT, worst
    elif worst == SEV_WARNING:
        check.verdict, check.severity = WARNING, worst
    elif judge_changed(diff):
        check.verdict, check.severity = JUDGE_CHANGED, None
    elif worst == SEV_NOTICE:
        check.verdict, check.severity = NOTICE, None
    else:
        check.verdict, check.severity = HEALTHY, None
    check.message = _message(check)
    return check


def judge_changed(diff: FingerprintDiff) -> bool:
    """Whether the judge itself differs from the baseline's: its configuration (model, prompt,
    rubric, decoding, parse rule) or what the provider says served it. A new judgecal
    version alone is not a judge change."""
    return diff.observed_changed or any(
        f.changed for f in diff.fields
        if f.half == "configured" and f.field != "configured.judgecal_version"
    )


def _fmt_pts(x: float | None) -> str:
    return "?" if x is None else f"{x:+.1f}"


def describe_dimension(e: dict[str, Any]) -> str:
    """One line per dimension, e.g. ``preference: kappa 0.657 → -0.184, -84.0 points …``."""
    if e["delta_points"] is None:
        return f"{e['dimension']}: {e['metric']} undefined ({e['delta'].get('undefined')})"
    lo, hi = e["interval95_points"]
    dlo, dhi = e["decision_interval_points"]
    text = (f"{e['dimension']}: {e['metric']} {e['baseline']['value']:.3f} → "
            f"{e['current']['value']:.3f}, {_fmt_pts(e['delta_points'])} points "
            f"(95% interval {_fmt_pts(lo)} to {_fmt_pts(hi)}")
    if abs(e["decision_confidence"] - 0.95) > 1e-9:
        text += (f"; at the alarm level {100 * e['decision_confidence']:.2f}%: "
                 f"{_fmt_pts(dlo)} to {_fmt_pts(dhi)}")
    text += f") on {e['n_common']} items both runs scored"
    left = e["scored_only_by_baseline"] + e["scored_only_by_run"]
    if left:
        text += f", {left} left out (scored by one run only)"
    return text


def describe_shift(w: dict[str, Any]) -> str:
    """``share of '1' 47% → 41%, tie 4% → 10%`` or ``mean 3.2 → 3.6 (more lenient)``."""
    if w.get("kind") == "category shares":
        moved = [(k, w["before"][k], w["after"][k]) for k in w["before"]
                 if abs(w["after"][k] - w["before"][k]) >= 0.005]
        moved.sort(key=lambda t: -abs(t[2] - t[1]))
        return ", ".join(f"'{k}' {100 * a:.0f}% → {100 * b:.0f}%" for k, a, b in moved[:3])
    if w.get("kind") == "mean score":
        return f"mean {w['before']:.2f} → {w['after']:.2f}, {w['direction']}"
    return ""


def _message(check: DriftCheck) -> str:
    parts = []
    for e in check.dimensions:
        if e["delta_points"] is None:
            parts.append(describe_dimension(e))
            continue
        if e["real"]:
            verb = "fell" if e["direction"] == "drop" else "rose"
            parts.append(f"{e['dimension']}: agreement {verb} by {abs(e['delta_points']):.1f} "
                         f"points ({e['severity']}); the move is real at the alarm level.")
            rng = e.get("severity_range")
            if rng and rng[0] != rng[1]:
                parts.append(f"  The interval allows anything from {rng[0] or 'no real move'} "
                             f"to {rng[1]}: treat the severity as approximate.")
        elif e["n_changed"] == 0:
            parts.append(f"{e['dimension']}: unchanged — the same verdict on all "
                         f"{e['n_common']} items both runs scored.")
        else:
            lo, hi = e["decision_interval_points"]
            text = (f"{e['dimension']}: {e['metric']} moved {_fmt_pts(e['delta_points'])} points "
                    f"({e['baseline']['value']:.3f} → {e['current']['value']:.3f}); the interval "
                    f"{_fmt_pts(lo)} to {_fmt_pts(hi)} includes no change, so this set cannot "
                    "tell whether agreement really moved.")
            mdc = e.get("minimum_detectable_change_points") or {}
            if mdc.get("set") is not None:
                text += (f" It detects changes of about {mdc['set']:.1f} points or more when a "
                         "judge drifts on a share of the items")
                if mdc.get("pair") is not None:
                    text += (f"; for two runs whose verdicts differ on {e['n_changed']} of "
                             f"{e['n_common']} items, as these do, about {mdc['pair']:.1f} points")
                text += "."
            parts.append(text)
    for w in check.watches.get("unscored", []):
        if w["severity"]:
            parts.append(f"{w['dimension']}: unparseable replies rose from "
                         f"{100 * w['baseline_rate']:.1f}% to {100 * w['run_rate']:.1f}%.")
    for w in check.watches.get("distribution", []):
        if w["severity"] == SEV_WARNING:
            parts.append(f"{w['dimension']}: the judge's own verdicts shifted on the same items "
                         f"({describe_shift(w)}).")
    if check.verdict == JUDGE_CHANGED and check.fingerprint_diff is not None:
        changed = ", ".join(f.label for f in check.fingerprint_diff.changed_fields
                            if f.half != "context")
        parts.append(f"The judge changed ({changed}) although agreement did not really move: "
                     "scores before and after are not comparable until the change is accepted "
                     f"(judgecal baseline accept {check.run['run_id']}).")
    return "\n".join(parts)


# --------------------------------------------------------------------------- nightly check


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
) -> DriftCheck:
    """Tonight's drift check of a finished run against its judge's baseline (not saved).

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
    return evaluate(store, baseline_run, run, settings, level, n_boot=n_boot, seed=seed)


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
            + "; ".join(describe_change(f) for f in diff.changed_fields)
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


def last_healthy_run(store: Store, judge_name: str, before: str) -> dict[str, Any] | None:
    """The newest *healthy* run of a judge that finished before ``before`` (ISO time).

    Healthy: a completed run that is (or was) an accepted baseline, or whose drift check found
    nothing worse than a notice.
    """
    r = schema.runs.c
    c = schema.drift_checks.c
    with store.engine.connect() as conn:
        healthy_ids = {row[0] for row in conn.execute(
            select(c.run_id).where(and_(c.judge_name == judge_name,
                                        c.verdict.in_(HEALTHY_VERDICTS)))
        ).all()}
        healthy_ids |= {row[0] for row in conn.execute(
            select(schema.baselines.c.run_id).where(schema.baselines.c.judge_name == judge_name)
        ).all()}
        if not healthy_ids:
            return None
        row = conn.execute(
            select(schema.runs)
            .where(and_(r.judge_name == judge_name, r.status == COMPLETED,
                        r.finished_at < before, r.run_id.in_(sorted(healthy_ids))))
            .order_by(r.finished_at.desc())
            .limit(1)
        ).mappings().first()
    return None if row is None else dict(row)
