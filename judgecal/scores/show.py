"""One suspicious score, one answer: which judge produced it, and what was known of that
judge at that moment.

:func:`score_story` reads one production score (from the store's ``score_history`` or a
table read in place) and puts beside it:

* the **calibration runs** of its judge just before and just after it was scored, each with
  its status, its agreement with the people on the score's dimension (every metric of the
  run's stored report, with its interval; computed when an imported run has none) and its
  production tag;
* the **baseline in force** when it was scored (the newest baseline of the judge accepted
  before that moment);
* whether the **fingerprint** on the score matches what the calibration runs saw (the
  production tag of the run before, of the run after, of neither);
* every **incident** whose linked window holds it (scored inside the window with one of the
  window's new fingerprints, or any fingerprint when the window lists none), with its
  severity, status and — once the remedy has corrected it — the corrected figure of the
  score's dimension.

Re-judge runs of the remedy are not calibration runs and are left out.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from judgecal.errors import NotFoundError
from judgecal.records import COMPLETED, INCONCLUSIVE
from judgecal.scores.link import iso, parse_optional
from judgecal.scores.source import CANONICAL, ScoreSource

if TYPE_CHECKING:
    from judgecal.store import Store

__all__ = ["score_story"]


def _read_score(src: ScoreSource, score_id: str) -> dict[str, Any]:
    c = src.c
    query = (sa.select(*[c(name) for name in CANONICAL]).select_from(src.selectable)
             .where(c("score_id") == score_id).limit(2))
    with src.engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        raise NotFoundError(f"no score {score_id!r} in {src.description}")
    row = dict(zip(CANONICAL, rows[0], strict=True))
    row["scored_at"] = src.when(row["scored_at"])
    row["score"] = None if row["score"] is None else float(row["score"])
    return row


def _run_view(store: Store, run: dict[str, Any], dimension: str) -> dict[str, Any]:
    from judgecal.judge.fingerprint import production_tag

    report = store.latest_metric_report(str(run["run_id"]))
    stored = report is not None
    if report is None:  # an imported run: its agreement is computed here, not stored
        from judgecal.agreement import agreement_report
        from judgecal.calibration import StoredSet

        try:
            view = StoredSet.load(store, str(run["set_version"]))
            report = agreement_report(view, store.replies(str(run["run_id"])), n_boot=500)
        except NotFoundError:
            report = {}
    dim = (report.get("dimensions") or {}).get(dimension) or {}
    return {
        "run_id": run["run_id"], "started_at": run["started_at"],
        "finished_at": run.get("finished_at"), "status": run["status"],
        "set_name": run["set_name"], "production_tag": production_tag(run),
        "dimension": dimension if dim else None,
        "metrics": {name: {k: m.get(k) for k in ("value", "ci_low", "ci_high", "undefined")}
                    for name, m in (dim.get("metrics") or {}).items()},
        "n": dim.get("n"), "report": "stored" if stored else "computed now (500 resamples)",
    }


def _baseline_at(store: Store, judge: str, at: str) -> dict[str, Any] | None:
    from judgecal.db import schema

    b = schema.baselines.c
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(schema.baselines).where(b.judge_name == judge, b.accepted_at <= at)
            .order_by(b.accepted_at.desc(), b.baseline_id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return {k: row[k] for k in ("run_id", "set_name", "set_version", "accepted_at", "actor",
                                "reason", "auto")}


def _incidents_holding(store: Store, score: dict[str, Any]) -> list[dict[str, Any]]:
    from judgecal import incidents
    from judgecal.incidents.corrected import latest_correction

    at: datetime = score["scored_at"]
    out = []
    for summary in incidents.list_incidents(store, judge_name=str(score["judge"])):
        incident = incidents.get_incident(store, str(summary["incident_id"]))
        win = ((incident.get("severity") or {}).get("blast_radius") or {}).get("window") or {}
        start, end = parse_optional(win.get("start")), parse_optional(win.get("end"))
        if start is None or end is None or not start <= at < end:
            continue
        fps = [str(f) for f in win.get("fingerprints") or ()]
        if fps and score["fingerprint"] not in fps:
            continue
        entry: dict[str, Any] = {
            "incident_id": incident["incident_id"],
            "severity": (incident.get("severity") or {}).get("level"),
            "status": incident.get("status"), "window": {"start": iso(start), "end": iso(end),
                                                         "fingerprints": fps},
            "corrected": None,
        }
        fix = latest_correction(incident)
        if fix:
            for fig in fix.get("figures") or []:
                if fig.get("dimension") == score["dimension"]:
                    entry["corrected"] = {"version": fix.get("version"),
                                          "target": fig.get("target"),
                                          "shown": fig.get("shown"),
                                          "corrected": fig.get("corrected"),
                                          "why_none": fig.get("why_none")}
                    break
        out.append(entry)
    return out


def score_story(store: Store, score_id: str, *, source: ScoreSource | None = None
                ) -> dict[str, Any]:
    """Everything judgecal knows about one production score (JSON-ready)."""
    from judgecal.scores.source import store_source

    src = source or store_source(store.engine)
    score = _read_score(src, score_id)
    at = score["scored_at"]
    stamp = iso(at) or ""
    runs = [r for r in store.list_runs(str(score["judge"]), limit=100_000)
            if r["status"] in (COMPLETED, INCONCLUSIVE)]
    started = [(parse_optional(str(r["started_at"])), r) for r in runs]
    before = [r for t, r in started if t is not None and t <= at]
    after = [r for t, r in started if t is not None and t > at]
    dim = str(score["dimension"])
    run_before = _run_view(store, before[0], dim) if before else None
    run_after = _run_view(store, after[-1], dim) if after else None
    tag = score["fingerprint"]
    tags = {"before": run_before and run_before["production_tag"],
            "after": run_after and run_after["production_tag"]}
    if tag is None:
        match = "the score carries no fingerprint"
    elif tag == tags["before"] and tag == tags["after"]:
        match = "matches the calibration runs before and after it"
    elif tag == tags["before"]:
        match = "matches the calibration run before it (not the one after)"
    elif tag == tags["after"]:
        match = "matches the calibration run after it (not the one before)"
    elif not runs:
        match = "no calibration run of this judge to compare with"
    else:
        match = "matches neither calibration run: the judge that scored it was not the one " \
            "the calibration runs saw"
    return {
        "score": {**score, "scored_at": stamp},
        "source": src.description,
        "judge": score["judge"],
        "fingerprint_matches": match,
        "fingerprint_match": {"before": tag is not None and tag == tags["before"],
                              "after": tag is not None and tag == tags["after"]},
        "baseline_in_force": _baseline_at(store, str(score["judge"]), stamp),
        "run_before": run_before,
        "run_after": run_after,
        "incidents": _incidents_holding(store, score),
    }
