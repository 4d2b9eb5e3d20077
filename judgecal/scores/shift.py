"""Production scores moved: is the judge the cause?

A quality regression with no crash has one of four root causes — model migration, prompt
change, judge drift, input distribution shift. judgecal can speak for the judge:

* an **incident** of that judge whose window overlaps the *later* period → judge drift is a
  cause. An incident that overlaps only the earlier period is listed apart
  (``earlier_incidents``): the reference scores came partly from the drifted judge, so the
  comparison is not clean, and the verdict is *undetermined* unless something else decides
  it (an unverified new fingerprint);
* a **new fingerprint** of the judge in production that no healthy calibration check has
  seen since → the judge changed unverified (run a calibration now);
* **calibration healthy throughout** (no incident, every drift check in the period
  healthy, at least one during the later period) → the judge is *not* the cause, and the
  other three causes are what to look at. For the input distribution shift this module
  measures the segment mix of the two periods and how much of each dimension's move the
  mix alone explains (mix effect + within-segment effect = total move, exactly);
* otherwise **undetermined** (no calibration check covers the period).

The score statistics come from one grouped query (period × dimension × segment) run in the
database holding the scores (on the store's own history: from its rollups, see
:mod:`judgecal.scores.rollup`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from judgecal.errors import InputError
from judgecal.records import now as clock_now
from judgecal.scores.link import iso
from judgecal.scores.moments import mean_change, moment_columns
from judgecal.scores.source import ScoreSource

__all__ = [
    "JUDGE_CHANGED",
    "JUDGE_DRIFT",
    "NOT_THE_JUDGE",
    "UNDETERMINED",
    "judge_shift",
    "production_shift",
]

JUDGE_DRIFT = "judge_drift"
JUDGE_CHANGED = "judge_changed_unverified"
NOT_THE_JUDGE = "judge_not_the_cause"
UNDETERMINED = "undetermined"

OTHER_CAUSES = ("model migration", "prompt change", "input distribution shift")


def production_shift(
    src: ScoreSource,
    judge: str,
    *,
    since: datetime,
    until: datetime | None = None,
    before_start: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compare the judge's production scores in [since, until) with the period before.

    The earlier period is [``before_start``, since), by default as long as the later one.
    Returns per-dimension means with a 95 % interval of the move, the segment mix of both
    periods with its total-variation distance, the mix/within decomposition of each move, and
    the fingerprints of the judge first seen in the compared span.
    """
    now = now or clock_now()
    until = until or now
    if until <= since:
        raise InputError(f"--until {iso(until)} must be after --since {iso(since)}")
    before_start = before_start or since - (until - since)
    if before_start >= since:
        raise InputError("the earlier period must start before --since")
    c = src.c
    later = sa.case((c("scored_at") >= src.t(since), 1), else_=0).label("later")
    with src.engine.connect() as conn:
        rows: list[Any]
        if src.rollups:  # the store: hourly and daily rollups, raw rows at the edges only
            from judgecal.scores import rollup

            rows = [
                (period, dim, seg, *m)
                for period, (lo, hi) in enumerate(((before_start, since), (since, until)))
                for (dim, seg), m in rollup.moments(conn, src, start=lo, end=hi,
                                                    judges=[judge]).items()
            ]
        else:
            rows = list(conn.execute(
                sa.select(later, c("dimension"), c("segment"), *moment_columns(src))
                .select_from(src.selectable)
                .where(c("judge") == judge, c("scored_at") >= src.t(before_start),
                       c("scored_at") < src.t(until))
                .group_by(later, c("dimension"), c("segment"))
            ).all())
        fingerprints = _new_fingerprints(src, conn, judge, before_start, until)

    # cells[(period, dimension, segment)] = (n, sum, sumsq, min, max)
    cells: dict[tuple[int, str, str | None], tuple[int, float, float, float, float]] = {}
    for period, dim, seg, n, s, ss, lo, hi in rows:
        key = (int(period), str(dim), None if seg in (None, "") else str(seg))
        cells[key] = (int(n), float(s or 0), float(ss or 0), float(lo), float(hi))

    def merged(period: int, dim: str) -> tuple[int, float, float, float, float] | None:
        parts = [v for (p, d, _), v in cells.items() if p == period and d == dim]
        if not parts:
            return None
        return (sum(v[0] for v in parts), sum(v[1] for v in parts), sum(v[2] for v in parts),
                min(v[3] for v in parts), max(v[4] for v in parts))

    dims = sorted({d for _, d, _ in cells})
    segments = sorted({s for _, _, s in cells}, key=lambda s: (s is None, s or ""))
    by_dimension = []
    for dim in dims:
        change = mean_change(merged(0, dim), merged(1, dim))
        change.update(_decompose(cells, dim, segments))
        by_dimension.append({"dimension": dim, **change})

    counts = {p: {s: 0 for s in segments} for p in (0, 1)}
    for (p, _, s), v in cells.items():
        counts[p][s] += v[0]
    totals = {p: sum(counts[p].values()) for p in (0, 1)}
    mix: list[dict[str, Any]] = []
    tvd: float | None = 0.0 if totals[0] and totals[1] else None
    for s in segments:
        b = counts[0][s] / totals[0] if totals[0] else None
        a = counts[1][s] / totals[1] if totals[1] else None
        mix.append({"segment": s, "share_before": b, "share_after": a,
                    "change_points": None if a is None or b is None else 100 * (a - b)})
        if tvd is not None and a is not None and b is not None:
            tvd += 0.5 * abs(a - b)
    return {
        "judge": judge,
        "source": src.description,
        "before": {"start": iso(before_start), "end": iso(since), "scores": totals[0]},
        "after": {"start": iso(since), "end": iso(until), "scores": totals[1]},
        "by_dimension": by_dimension,
        "moved": [d["dimension"] for d in by_dimension if d.get("moved")],
        "segment_mix": mix,
        "segment_mix_tvd": tvd,
        "new_fingerprints": fingerprints,
    }


def _decompose(
    cells: dict[tuple[int, str, str | None], tuple[int, float, float, float, float]],
    dim: str,
    segments: list[str | None],
) -> dict[str, Any]:
    """Split the move of one dimension into a mix effect and a within-segment effect."""
    nb = {s: cells.get((0, dim, s), (0, 0.0))[0] for s in segments}
    na = {s: cells.get((1, dim, s), (0, 0.0))[0] for s in segments}
    tb, ta = sum(nb.values()), sum(na.values())
    if not tb or not ta:
        return {"mix_effect": None, "within_effect": None}
    overall_b = sum(cells.get((0, dim, s), (0, 0.0))[1] for s in segments) / tb
    mb = {s: cells[(0, dim, s)][1] / nb[s] if nb[s] else overall_b for s in segments}
    ma = {s: cells[(1, dim, s)][1] / na[s] if na[s] else 0.0 for s in segments}
    mix = sum((na[s] / ta - nb[s] / tb) * mb[s] for s in segments)
    within = sum(na[s] / ta * (ma[s] - mb[s]) for s in segments)
    return {"mix_effect": mix, "within_effect": within}


def _new_fingerprints(
    src: ScoreSource, conn: sa.Connection, judge: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Fingerprints of the judge first seen in [start, end), after an earlier one."""
    known = src.first_seen(conn, judge)
    if known is None:
        c = src.c
        candidates = list(conn.execute(
            sa.select(c("fingerprint")).select_from(src.selectable)
            .where(c("judge") == judge, c("scored_at") >= src.t(start),
                   c("scored_at") < src.t(end))
            .group_by(c("fingerprint"))
        ).scalars().all())
        oldest = conn.execute(
            sa.select(c("fingerprint")).select_from(src.selectable)
            .where(c("judge") == judge, c("fingerprint").is_not(None))
            .order_by(c("scored_at")).limit(1)
        ).scalar()
        if oldest is not None and oldest not in candidates:
            candidates.append(oldest)
        known = {}
        for fp in candidates:
            if fp in (None, ""):
                continue
            first = src.when(conn.execute(
                sa.select(sa.func.min(c("scored_at"))).select_from(src.selectable)
                .where(c("judge") == judge, c("fingerprint") == fp)
            ).scalar())
            if first is not None:
                known[str(fp)] = first
    ordered = sorted(known.items(), key=lambda kv: kv[1])
    # The judge's very first fingerprint is where its history starts, not a change.
    return [
        {"fingerprint": fp, "first_seen": iso(first)}
        for fp, first in ordered[1:]
        if start <= first < end
    ]


# -- the judge's side: incidents and calibration checks ------------------------------------------
def _parse(value: Any) -> datetime | None:
    from judgecal.scores.link import parse_optional

    return parse_optional(value)


def _incident_span(incident: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    blast = (incident.get("severity") or {}).get("blast_radius") or {}
    onset = _parse((blast.get("onset") or {}).get("at")) if isinstance(blast, dict) else None
    start = onset or _parse(incident.get("last_healthy_run_at")) or _parse(
        incident.get("opened_at")) or now
    end = _parse(incident.get("resolved_at")) or now
    return start, end


def _checks(store: Any, judge: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Drift checks of the judge created in [start, end], oldest first."""
    from judgecal.db import schema

    c = schema.drift_checks.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.check_id, c.run_id, c.created_at, c.verdict, c.severity)
            .where(c.judge_name == judge, c.created_at >= iso(start), c.created_at <= iso(end))
            .order_by(c.created_at)
        ).mappings().all()
    return [dict(r) for r in rows]


def judge_shift(
    store: Any,
    judge: str,
    *,
    since: datetime,
    until: datetime | None = None,
    before_start: datetime | None = None,
    source: ScoreSource | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """:func:`production_shift` plus the verdict on the judge (see the module docstring)."""
    from judgecal import drift, incidents
    from judgecal.scores.source import store_source

    now = now or clock_now()
    src = source or store_source(store.engine)
    result = production_shift(src, judge, since=since, until=until, before_start=before_start,
                              now=now)
    span_start = _parse(result["before"]["start"]) or since
    span_end = _parse(result["after"]["end"]) or now

    covering: list[dict[str, Any]] = []  # overlapping the later period: the judge is a cause
    earlier: list[dict[str, Any]] = []  # overlapping only the earlier period
    for inc in incidents.list_incidents(store, judge_name=judge):
        start, end = _incident_span(inc, now)
        if not (start < span_end and end > span_start):
            continue
        row = {"incident_id": inc["incident_id"], "status": inc["status"],
               "severity": (inc.get("severity") or {}).get("level"),
               "window": {"start": iso(start), "end": iso(end)},
               "root_cause": (inc.get("root_cause") or {}).get("title")}
        (covering if end > since else earlier).append(row)
    checks = _checks(store, judge, span_start, span_end)
    healthy = [ch for ch in checks if ch["verdict"] in drift.HEALTHY_VERDICTS]
    unhealthy = [ch for ch in checks if ch["verdict"] in (drift.INCIDENT, drift.WARNING)]
    healthy_after = [ch for ch in healthy if (_parse(ch["created_at"]) or now) >= since]
    unverified = []
    for fp in result["new_fingerprints"]:
        first = _parse(fp["first_seen"]) or now
        if not any((_parse(ch["created_at"]) or now) >= first for ch in healthy):
            unverified.append(fp)

    moved = result["moved"]
    earlier_text = (f"incident(s) {', '.join(i['incident_id'] for i in earlier)} of {judge} "
                    "cover only the earlier period, so the scores compared against came partly "
                    "from the drifted judge; choose an earlier period before the incident "
                    "(--before-start, --since)")
    if covering:
        verdict = JUDGE_DRIFT
        text = (f"judge drift is a cause: {len(covering)} incident(s) of {judge} cover the "
                f"later period ({', '.join(i['incident_id'] for i in covering)}); run "
                "`judgecal scores link` on them for the affected scores")
    elif unverified:
        verdict = JUDGE_CHANGED
        text = (f"the judge changed in production: fingerprint "
                f"{', '.join(f['fingerprint'] for f in unverified)} first seen at "
                f"{unverified[0]['first_seen']} and no healthy calibration check since; "
                "run a calibration (`judgecal run`) before trusting these scores")
    elif earlier:
        verdict = UNDETERMINED
        text = f"cannot say whether {judge} is the cause: {earlier_text}"
    elif healthy_after and not unhealthy:
        verdict = NOT_THE_JUDGE
        text = (f"the judge is not the cause: {len(healthy)} calibration check(s) of {judge} in "
                "the period were healthy and no incident covers it"
                + ("; the move comes from one of the other three causes: "
                   + ", ".join(OTHER_CAUSES) if moved else
                   "; production scores did not move beyond noise"))
    else:
        verdict = UNDETERMINED
        text = (f"cannot say whether {judge} is the cause: "
                + ("drift checks in the period were not healthy"
                   if unhealthy else "no healthy calibration check of it during the later period")
                + "; run a calibration (`judgecal run`)")
    result.update({
        "verdict": verdict,
        "explanation": text,
        "incidents": covering,
        "earlier_incidents": earlier,
        "calibration_checks": [
            {k: ch[k] for k in ("check_id", "run_id", "created_at", "verdict", "severity")}
            for ch in checks
        ],
        "other_causes": _other_causes(result, since) if verdict != JUDGE_DRIFT else [],
    })
    return result


def _other_causes(result: dict[str, Any], since: datetime) -> list[dict[str, Any]]:
    tvd = result.get("segment_mix_tvd")
    shifts = sorted(
        (m for m in result["segment_mix"] if m["change_points"] is not None),
        key=lambda m: -abs(m["change_points"]),
    )
    evidence = "no segment data"
    if tvd is not None:
        evidence = f"segment mix moved by {100 * tvd:.1f} points (total variation distance)"
        if shifts:
            top = shifts[0]
            evidence += (f"; largest: {top['segment'] or '(none)'} "
                         f"{100 * (top['share_before'] or 0):.1f}% → "
                         f"{100 * (top['share_after'] or 0):.1f}%")
    explained = []
    for d in result["by_dimension"]:
        if d.get("moved") and d.get("delta") and d.get("mix_effect") is not None:
            explained.append(f"{d['dimension']}: mix explains {d['mix_effect']:+.4f} of "
                             f"{d['delta']:+.4f}")
    if explained:
        evidence += "; " + "; ".join(explained)
    day = iso(since)
    return [
        {"cause": "input distribution shift", "evidence": evidence,
         "check": "compare the inputs of the two periods (segments, customers, lengths, "
                  "languages); per-segment means are in by_dimension"},
        {"cause": "model migration", "evidence": None,
         "check": f"did the model generating the responses change around {day}? "
                  "check deploys and provider model versions"},
        {"cause": "prompt change", "evidence": None,
         "check": f"did the system or generation prompt change around {day}? "
                  "check prompt versions and feature flags"},
    ]
