"""What the trust report shows, gathered from the store as one JSON-ready dict.

The report is built in two steps: :func:`trust_report_data` reads the store (runs, their
newest metric report, fingerprints, incidents, the worst-disagreeing items of the newest
run) and returns plain data; :mod:`judgecal.reports.trust` draws the figures and renders the
HTML. Keeping the data separate lets tests check the content without parsing HTML.

Each judge gets a verdict in words (:mod:`judgecal.reports.verdict`, where the rule is
defined and printed in the report):

- **not trustworthy** — drifted (an open incident, or the newest drift check is a warning);
  or on some dimension the headline agreement's 95% interval lies entirely below half the
  human ceiling; or the newest run's unscored rate is above the run's limit;
- **watch** — not monitored (no accepted baseline), stale (no conclusive drift check for too
  long), changed (unaccepted fingerprint change) or inconclusive (the newest run could not
  conclude), per :func:`judgecal.drift.watch.judge_watch`; or on some dimension the
  agreement is below 80% of the human ceiling (or undefined, or without a ceiling);
- **trustworthy** — otherwise.

Its reasons cover agreement against the ceiling, baseline status, open incidents, unscored
rate and watch state; unmonitored and stale judges are listed in ``flags``. Each incident
carries its blast radius and its stored corrected figures as table rows
(:mod:`judgecal.reports.incident_tables`).

Reads are read-only SQL over the store's tables (one query per table, not one per run), so
a year of nightly runs is gathered in a handful of queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from judgecal.db import schema
from judgecal.errors import InputError
from judgecal.records import REJUDGE, RUNNING, utcnow
from judgecal.reports.verdict import RULE, judge_verdict

if TYPE_CHECKING:
    from judgecal.audit import VerifyResult
    from judgecal.store import Store

__all__ = ["HEADLINE", "parse_since", "trust_report_data"]

HEADLINE: dict[str, str] = {
    "binary": "kappa",
    "nominal": "kappa",
    "pairwise": "kappa",
    "ordinal": "kappa",
    "interval": "alpha",
}
"""Fallback headline metric per scale kind (``judgecal.stats.PRIMARY_METRIC`` when present)."""

WORST_ITEMS = 10


def _headline(kind: str) -> str:
    try:
        from judgecal.stats import PRIMARY_METRIC
    except ImportError:  # pragma: no cover - stats is part of judgecal
        return HEADLINE.get(kind, "alpha")
    primary: dict[str, str] = {str(k): v for k, v in PRIMARY_METRIC.items()}
    return primary.get(kind, HEADLINE.get(kind, "alpha"))


def parse_since(since: str | None) -> str | None:
    """Validate ``--since`` (an ISO date or date-time) and return it as a sortable UTC string."""
    if since is None or not since.strip():
        return None
    text = since.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--since {since!r}: expected a date such as 2026-01-31 "
                         "or a date-time such as 2026-01-31T06:00:00Z") from None
    if parsed.tzinfo is not None:
        from datetime import UTC

        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.isoformat()


def _when(run: dict[str, Any]) -> str:
    return str(run.get("finished_at") or run["started_at"])


def _kind_of(scale_text: str | None) -> str:
    return (scale_text or "interval").split(" ", 1)[0]


def _metric_rows(entry: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Judge metric, human ceiling and description for every metric of one dimension."""
    try:
        from judgecal.stats import METRICS
    except ImportError:  # pragma: no cover
        METRICS = {}
    metrics = entry.get("metrics") or {}
    ceiling = entry.get("ceiling") or {}
    names = list(metrics) + [n for n in ceiling if n not in metrics]
    rows = []
    for name in names:
        info = METRICS.get(name)
        rows.append({
            "name": name,
            "judge": metrics.get(name),
            "ceiling": ceiling.get(name),
            "description": info.description if info is not None else "",
            "headline": name == _headline(kind),
        })
    return rows


def _load_incidents(store: Store, judge_name: str) -> tuple[list[dict[str, Any]], str | None]:
    """The judge's incidents with their events, or ([], why not)."""
    from judgecal import incidents as module

    listed = module.list_incidents(store, judge_name=judge_name)
    out = []
    for row in listed:
        incident_id = row.get("incident_id")
        full = module.get_incident(store, incident_id) if incident_id is not None else row
        out.append(dict(full))
    out.sort(key=lambda i: str(i.get("opened_at") or ""))
    return out, None


def _resolved_at(incident: dict[str, Any]) -> str | None:
    for event in incident.get("events") or []:
        kind = str(event.get("kind") or event.get("status") or event.get("action") or "")
        if kind.startswith("resolve"):
            return str(event.get("at") or event.get("created_at") or "") or None
    return None


def _fingerprint_history(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run whose fingerprint differs from the run before it (and the first run)."""
    from judgecal.drift import describe_field
    from judgecal.judge import fingerprint

    history: list[dict[str, Any]] = []
    prev: dict[str, Any] | None = None
    for run in runs:
        deep = fingerprint.deep_fingerprint(run)
        parts = (deep["configured"].get("parts") or {})
        base = {
            "run_id": run["run_id"],
            "at": _when(run),
            "tag": deep["tag"],
            "model": parts.get("model"),
            "served": deep["observed"].get("dominant_served_model"),
            "note": deep["observed"].get("note"),
        }
        if prev is None:
            history.append({**base, "first": True, "changes": [], "diffs": []})
        else:
            diff = fingerprint.diff_runs(prev, run)
            changed = [f for f in diff.changed_fields if f.field != "context.judge"]
            if changed:
                history.append({
                    **base,
                    "first": False,
                    "previous_run_id": prev["run_id"],
                    "changes": [describe_field(f) for f in changed],
                    "diffs": [
                        {"label": f.label, "lines": f.detail["diff"]}
                        for f in changed
                        if isinstance(f.detail, dict) and f.detail.get("diff")
                    ],
                })
        prev = run
    return history


def _points(
    runs: list[dict[str, Any]], reports: dict[str, dict[str, Any]], dim: str, metric: str
) -> list[dict[str, Any]]:
    points = []
    for run in runs:
        report = reports.get(run["run_id"])
        entry = ((report or {}).get("dimensions") or {}).get(dim)
        if not entry:
            continue
        m = (entry.get("metrics") or {}).get(metric) or {}
        c = (entry.get("ceiling") or {}).get(metric) or {}
        points.append({
            "run_id": run["run_id"],
            "at": _when(run),
            "status": run["status"],
            "value": m.get("value"),
            "ci_low": m.get("ci_low"),
            "ci_high": m.get("ci_high"),
            "undefined": m.get("undefined"),
            "ceiling": c.get("value"),
            "ceiling_low": c.get("ci_low"),
            "ceiling_high": c.get("ci_high"),
            "n": entry.get("n"),
            "unscored": entry.get("unscored"),
        })
    return points


def _read(store: Store, judge: str | None, since: str | None) -> tuple[
    list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, dict[str, Any]]
]:
    """Runs (oldest first), newest metric report per run, set manifests per version."""
    runs_t, reports_t, sets_t = schema.runs, schema.metric_reports, schema.calibration_sets
    query = (select(runs_t).where(runs_t.c.status != RUNNING, runs_t.c.origin != REJUDGE)
             .order_by(runs_t.c.started_at))
    if judge is not None:
        query = query.where(runs_t.c.judge_name == judge)
    if since is not None:
        query = query.where(runs_t.c.started_at >= since)
    reports: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        runs = [dict(r) for r in conn.execute(query).mappings()]
        wanted = {r["run_id"] for r in runs}
        rq = select(reports_t.c.run_id, reports_t.c.report).order_by(reports_t.c.report_id)
        for run_id, report in conn.execute(rq):
            if run_id in wanted:
                reports[str(run_id)] = dict(report)
        versions = {r["set_version"] for r in runs}
        manifests = {
            str(v): dict(m)
            for v, m in conn.execute(select(sets_t.c.version, sets_t.c.manifest))
            if v in versions
        }
    return runs, reports, manifests


def _scale_kinds(manifests: dict[str, dict[str, Any]]) -> dict[tuple[str, str], str]:
    out = {}
    for version, manifest in manifests.items():
        for d in manifest.get("dimensions") or []:
            out[(version, d["name"])] = str((d.get("scale") or {}).get("kind", "interval"))
    return out


def trust_report_data(
    store: Store,
    *,
    judge: str | None = None,
    since: str | None = None,
    verification: VerifyResult | None = None,
    worst_items: int = WORST_ITEMS,
    verify: bool = True,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Everything the trust report shows, per judge, as plain JSON-ready data.

    The audit log is verified (:func:`judgecal.audit.verify`) unless ``verification`` is given
    or ``verify`` is False; in the latter case the report says it was not verified. ``at``
    is the moment the watch states are judged at (default now).
    """
    from judgecal import audit
    from judgecal.drift.watch import judge_watch
    from judgecal.explain import disagreements
    from judgecal.reports.incident_tables import blast_tables, correction_table

    since_key = parse_since(since)
    if verification is None and verify:
        verification = audit.verify(store.engine)
    runs, reports, manifests = _read(store, judge, since_key)
    if judge is not None and not runs:
        known = sorted({r["judge_name"] for r in store.list_runs(limit=10_000)})
        if not known or judge not in known:
            raise InputError(f"no judge named {judge!r} in the store"
                             + (f" (judges: {', '.join(known)})" if known else ""))
    kinds = _scale_kinds(manifests)
    by_judge: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_judge.setdefault(run["judge_name"], []).append(run)

    judges = []
    for name in sorted(by_judge):
        jruns = by_judge[name]
        incidents, incidents_note = _load_incidents(store, name)
        if since_key is not None:
            incidents = [i for i in incidents
                         if str(i.get("opened_at") or "") >= since_key
                         or _resolved_at(i) is None]
        for inc in incidents:
            inc["resolved_at"] = _resolved_at(inc)
            inc["blast_tables"] = blast_tables((inc.get("severity") or {}).get("blast_radius")
                                               if isinstance(inc.get("severity"), dict)
                                               else None)
            inc["correction"] = correction_table(inc)
        dims: dict[str, dict[str, Any]] = {}
        for run in jruns:
            report = reports.get(run["run_id"]) or {}
            for dim, entry in (report.get("dimensions") or {}).items():
                if dim in dims:
                    continue
                kind = kinds.get((run["set_version"], dim)) or _kind_of(entry.get("scale"))
                dims[dim] = {"name": dim, "kind": kind, "scale": entry.get("scale"),
                             "metric": _headline(kind)}
        for dim, d in dims.items():
            d["points"] = _points(jruns, reports, dim, d["metric"])
            d["incidents"] = [
                {"incident_id": i.get("incident_id"), "at": i.get("opened_at"),
                 "resolved_at": i.get("resolved_at"),
                 "severity": _severity_level(i)}
                for i in incidents
                if _incident_dims(i) is None or dim in (_incident_dims(i) or [])
            ]
        latest = next((r for r in reversed(jruns) if r["run_id"] in reports), None)
        current: dict[str, Any] | None = None
        worst: dict[str, Any] | None = None
        if latest is not None:
            report = reports[latest["run_id"]]
            current = {
                "run_id": latest["run_id"],
                "at": _when(latest),
                "status": latest["status"],
                "set": report.get("set") or {},
                "dimensions": {
                    dim: {
                        "scale": entry.get("scale"),
                        "n": entry.get("n"),
                        "items": entry.get("items"),
                        "unscored": entry.get("unscored"),
                        "no_consensus": entry.get("no_consensus"),
                        "rows": _metric_rows(entry, dims.get(dim, {}).get("kind", "interval")),
                        "confusion": entry.get("confusion"),
                        "mdc": entry.get("minimum_detectable_change"),
                    }
                    for dim, entry in (report.get("dimensions") or {}).items()
                },
            }
            if worst_items > 0:
                worst = disagreements(store, latest["run_id"], limit=worst_items)
        watch = [judge_watch(store, name, set_name, at=at).to_json()
                 for set_name in sorted({str(r["set_name"]) for r in jruns})]
        open_ids = sorted({str(i) for w in watch for i in w["open_incidents"]}
                          | {str(i.get("incident_id")) for i in incidents
                             if i.get("resolved_at") is None})
        newest = (jruns[-1].get("summary") or {})
        verdict = judge_verdict(current, watch, open_incidents=open_ids,
                                unscored_rate=newest.get("unscored_rate"),
                                max_unscored_rate=newest.get("max_unscored_rate"))
        judges.append({
            "name": name,
            "verdict": verdict,
            "watch": watch,
            "runs": (rows := [_run_row(r, reports.get(r["run_id"]), dims) for r in jruns]),
            "monthly_cost": _monthly_cost(rows),
            "first_at": _when(jruns[0]),
            "last_at": _when(jruns[-1]),
            "dimensions": dims,
            "current": current,
            "fingerprints": _fingerprint_history(jruns),
            "incidents": incidents,
            "incidents_note": incidents_note,
            "open_incidents": sum(1 for i in incidents if i.get("resolved_at") is None),
            "worst": worst,
        })
    return {
        "generated_at": utcnow(),
        "store": store.url,
        "filters": {"judge": judge, "since": since_key},
        "audit": None if verification is None else verification.to_json(),
        "judges": judges,
        "metrics_glossary": _glossary(),
        "verdict_rule": [{"verdict": v, "when": w} for v, w in RULE],
    }


def _severity_level(incident: dict[str, Any]) -> str | None:
    sev = incident.get("severity")
    if isinstance(sev, dict):
        level = sev.get("level") or sev.get("severity")
        if level is None and isinstance(sev.get("magnitude"), dict):
            level = sev["magnitude"].get("level") or sev["magnitude"].get("severity")
        return None if level is None else str(level)
    return None if sev is None else str(sev)


def _incident_dims(incident: dict[str, Any]) -> list[str] | None:
    sev = incident.get("severity")
    dims = sev.get("dimensions") if isinstance(sev, dict) else None
    if isinstance(dims, dict):
        return [str(k) for k in dims]
    if isinstance(dims, list) and dims:
        return [str(d.get("dimension") if isinstance(d, dict) else d) for d in dims]
    return None


def _run_row(
    run: dict[str, Any], report: dict[str, Any] | None, dims: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    summary = run.get("summary") or {}
    fp = run.get("fingerprint") or {}
    headline = {}
    for dim, d in dims.items():
        entry = ((report or {}).get("dimensions") or {}).get(dim)
        headline[dim] = None if entry is None else (entry.get("metrics") or {}).get(d["metric"])
    return {
        "run_id": run["run_id"],
        "at": _when(run),
        "status": run["status"],
        "origin": run.get("origin"),
        "set_version": run["set_version"],
        "model": (fp.get("parts") or {}).get("model"),
        "config_hash": run["config_hash"],
        "unscored_rate": summary.get("unscored_rate"),
        "cost": (summary.get("cost") or {}).get("total"),
        "currency": (summary.get("cost") or {}).get("currency"),
        "headline": headline,
        "has_report": report is not None,
    }


def _monthly_cost(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cost per calendar month (UTC) of the runs that recorded one, oldest first."""
    months: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r["cost"] is None or not r["at"]:
            continue
        key = (str(r["at"])[:7], str(r["currency"]))
        m = months.setdefault(key, {"month": key[0], "currency": key[1], "total": 0.0,
                                    "runs": 0})
        m["total"] += float(r["cost"])
        m["runs"] += 1
    return [months[k] for k in sorted(months)]


def _glossary() -> list[dict[str, str]]:
    try:
        from judgecal.stats import METRICS
    except ImportError:  # pragma: no cover
        return []
    return [{"name": m.name, "description": m.description} for m in METRICS.values()]
