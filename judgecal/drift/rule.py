"""The drift rule: per dimension a paired interval at the alarm level, Holm across dimensions,
severity from the size of a real move, and the two watches (unparseable replies, the judge's
own score distribution). Pure: loaded data in, a verdict out (see ``docs/drift.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from judgecal.calibration.model import natural_key
from judgecal.drift.cause import judge_changed, root_cause
from judgecal.drift.prose import message
from judgecal.drift.verdicts import (
    HEALTHY,
    INCIDENT,
    JUDGE_CHANGED,
    NOTICE,
    RANK,
    SEV0,
    SEV2,
    SEV_NOTICE,
    SEV_WARNING,
    WARNING,
    AlarmLevel,
    DriftCheck,
)
from judgecal.errors import ConfigError, Problem
from judgecal.records import SCORED, UNSCORED
from judgecal.stats._alarm import DimensionData
from judgecal.stats._homogeneity import mcnemar_p, stuart_maxwell_p

if TYPE_CHECKING:
    from judgecal.calibration import StoredSet
    from judgecal.config import DriftSettings
    from judgecal.scales import Scale

__all__ = [
    "assess",
    "conclude",
    "distribution_watch",
    "flip_harm",
    "flip_order",
    "flips",
    "mdc",
    "primary_metric",
    "severity_for",
    "unscored_watch",
]


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


def unscored_watch(store_replies: tuple[list[dict[str, Any]], list[dict[str, Any]]],
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
        "p_value": mcnemar_p(b01, b10),
    }


def distribution_watch(d: DimensionData) -> dict[str, Any]:
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
            "p_value": stuart_maxwell_p(a, b, domain),
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


def flip_harm(kind: str, before: float, after: float, consensus: float) -> float:
    """How much further from the human consensus a verdict moved (> 0: worse): on a binary,
    nominal or pairwise scale 1 (right → wrong), −1 (wrong → right) or 0; on an ordinal or
    interval scale the change of the distance. 0 without a consensus (NaN)."""
    c = consensus
    if c != c:  # NaN: no consensus, neither verdict is wrong
        return 0.0
    if kind in ("binary", "nominal", "pairwise"):
        return float(after != c) - float(before != c)
    return float(abs(after - c) - abs(before - c))


def flip_order(harm: float, item_id: str) -> tuple[Any, ...]:
    """The order of flipped items, here and in ``judgecal explain``: the worst first, then
    the item ids in natural order (item-2 before item-10)."""
    return (-harm, natural_key(str(item_id)))


def flips(d: DimensionData, view_items: list[Any], limit: int) -> list[dict[str, Any]]:
    """Items whose verdict changed, worst first (right → wrong before wrong → right); ties
    in natural order of the item ids (:func:`flip_order`)."""
    import numpy as np

    from judgecal import stats

    cons = stats.consensus(d.scale, d.human)
    both = ~np.isnan(d.a) & ~np.isnan(d.b) & (d.a != d.b)
    rows = []
    for i in np.flatnonzero(both):
        c = cons[i]
        harm = flip_harm(d.scale.kind, float(d.a[i]), float(d.b[i]), float(c))
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
    rows.sort(key=lambda r: flip_order(r["harm"], r["item_id"]))
    for r in rows:
        r.pop("harm")
    return rows[:limit] if limit >= 0 else rows


def mdc(d: DimensionData, alpha: float, seed: int) -> dict[str, Any]:
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


def assess(
    check: DriftCheck,
    view: StoredSet,
    replies: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    data: list[DimensionData],
    settings: DriftSettings,
    level: AlarmLevel,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    flipped_limit: int | None = None,
    with_mdc: bool = True,
) -> DriftCheck:
    """The drift rule on loaded data: dimensions, watches, severity, verdict and message."""
    from judgecal import stats

    replies_a, replies_b = replies
    diff = check.fingerprint_diff
    assert diff is not None
    level.dimensions = max(1, len(data))
    decisions = stats.holm(data, level.alpha, n_boot, seed)
    limit = settings.worst_items if flipped_limit is None else flipped_limit
    worst = None
    for d in data:
        comp = stats.paired_difference(d.scale, d.human, d.a, d.b, n_boot=n_boot, seed=seed,
                                       confidence=0.95)
        delta = comp.metrics[d.metric]
        real, used = decisions.get(d.dimension, (False, level.alpha))
        decision = stats.alarm_interval(d, used, n_boot, seed)
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
            if RANK[sev] > RANK[worst]:
                worst = sev
        if with_mdc and comp.n_changed:
            # Not for an unchanged dimension: "same verdicts on every item" says it all, and
            # the scramble search is the slowest part of a check.
            entry["minimum_detectable_change_points"] = mdc(d, used, seed)
        check.dimensions.append(entry)
        if limit:
            check.flipped_items[d.dimension] = flips(d, view.items, limit)
    # Watches: unparseable replies and the judge's own score distribution.
    m = max(1, len(data))
    check.watches = {"unscored": [], "distribution": []}
    for d in data:
        u = unscored_watch((replies_a, replies_b), d.dimension)
        u["real"] = u["p_value"] <= level.alpha / m and (u["change_points"] or 0) > 0
        u["severity"] = (SEV_WARNING if u["real"] and (u["change_points"] or 0)
                         >= settings.unscored_jump_points else None)
        check.watches["unscored"].append(u)
        s = distribution_watch(d)
        s["real"] = s["p_value"] <= level.alpha / m
        s["severity"] = (SEV_WARNING if s["real"] and (s.get("shift_points") or 0)
                         >= settings.distribution_shift_points else
                         (SEV_NOTICE if s["real"] else None))
        check.watches["distribution"].append(s)
        for w in (u, s):
            if RANK[w["severity"]] > RANK[worst]:
                worst = w["severity"]
    return conclude(check, worst)


def conclude(check: DriftCheck, worst: str | None) -> DriftCheck:
    """Verdict, severity, root cause and message of a check whose worst severity is ``worst``
    (the rule's last step; the sequential test calls it again when it finds more)."""
    diff = check.fingerprint_diff
    assert diff is not None
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
    check.message = message(check)
    return check
