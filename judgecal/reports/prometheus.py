"""The Prometheus textfile: judgecal's state as gauges for node_exporter's textfile collector.

:func:`write_prometheus` writes a ``.prom`` file for node_exporter's textfile collector:
atomically (``prometheus_client.write_to_textfile``: a temporary file in the same
directory, then a rename), so the collector never reads half a file. Metrics (all gauges)::

    judgecal_agreement{judge,set,dimension,metric}          newest completed run
    judgecal_agreement_ci_low / _ci_high{...}               its interval
    judgecal_unscored_rate{judge,set}                       newest run
    judgecal_last_run_timestamp_seconds{judge,set,status}   newest run's finish time
    judgecal_drift_delta_points{judge,set,dimension}        newest drift check
    judgecal_drift_verdict{judge,set,verdict}               1 for the newest check's verdict
    judgecal_open_incidents{judge,severity}                 open or acknowledged incidents
    judgecal_notifications_pending                          outbox backlog
    judgecal_last_conclusive_check_timestamp_seconds{judge,set}
                                                            newest conclusive drift check
                                                            (0 when there never was one)
    judgecal_watch_state{judge,set,state}                   1 for the judge's watch state
                                                            (healthy, drifted, stale,
                                                            not_monitored, changed,
                                                            inconclusive; judgecal status)

Alert on ``time() - judgecal_last_conclusive_check_timestamp_seconds > 36 * 3600`` and on
``judgecal_watch_state{state!="healthy"} == 1``: they fire also when the job stopped running.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from judgecal.db import schema
from judgecal.drift.watch import watch_states
from judgecal.incidents import list_incidents
from judgecal.notify import PENDING
from judgecal.records import COMPLETED, INCONCLUSIVE, REJUDGE

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from judgecal.store import Store

__all__ = ["prometheus_text", "registry", "write_prometheus"]


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def registry(store: Store) -> CollectorRegistry:
    """The metrics of the store (see the module docstring), as a ``prometheus_client``
    registry of gauges."""
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry(auto_describe=True)
    gauges: dict[str, Gauge] = {}
    helps = {
        "judgecal_agreement": "Agreement of the newest completed run with the humans.",
        "judgecal_agreement_ci_low": "Lower end of the agreement's bootstrap interval.",
        "judgecal_agreement_ci_high": "Upper end of the agreement's bootstrap interval.",
        "judgecal_unscored_rate": "Share of requests without a score in the newest run.",
        "judgecal_last_run_timestamp_seconds": "Finish time of the newest run (Unix seconds).",
        "judgecal_drift_delta_points": "Move of the primary metric against the baseline "
                                       "(100 x delta) in the newest drift check.",
        "judgecal_drift_verdict": "Verdict of the newest drift check (1 for the current one).",
        "judgecal_open_incidents": "Open or acknowledged drift incidents.",
        "judgecal_notifications_pending": "Notifications waiting in the webhook outbox.",
        "judgecal_last_conclusive_check_timestamp_seconds":
            "Time of the newest drift check that compared with a baseline (Unix seconds; "
            "0: never).",
        "judgecal_watch_state": "Watch state of the judge (1 for the current one).",
    }

    def add(name: str, labels: dict[str, Any], value: float | None) -> None:
        if value is None:
            return
        gauge = gauges.get(name)
        if gauge is None:
            gauge = gauges[name] = Gauge(name, helps[name], list(labels), registry=reg)
        (gauge.labels(**{k: str(v) for k, v in labels.items()}) if labels else gauge).set(
            float(value))

    r = schema.runs.c
    with store.engine.connect() as conn:
        runs = conn.execute(
            select(schema.runs)
            .where(r.status.in_([COMPLETED, INCONCLUSIVE]), r.origin != REJUDGE)
            .order_by(r.finished_at.desc())
        ).mappings().all()
        newest: dict[tuple[str, str], dict[str, Any]] = {}
        newest_completed: dict[tuple[str, str], dict[str, Any]] = {}
        for row in runs:
            key = (row["judge_name"], row["set_name"])
            newest.setdefault(key, dict(row))
            if row["status"] == COMPLETED:
                newest_completed.setdefault(key, dict(row))
        for (judge, set_name), run in sorted(newest.items()):
            add("judgecal_last_run_timestamp_seconds",
                {"judge": judge, "set": set_name, "status": run["status"]},
                _epoch(run["finished_at"]))
            add("judgecal_unscored_rate", {"judge": judge, "set": set_name},
                (run["summary"] or {}).get("unscored_rate"))
        for (judge, set_name), run in sorted(newest_completed.items()):
            report = conn.execute(
                select(schema.metric_reports.c.report)
                .where(schema.metric_reports.c.run_id == run["run_id"])
                .order_by(schema.metric_reports.c.report_id.desc()).limit(1)
            ).scalar()
            for dim, entry in sorted(((report or {}).get("dimensions") or {}).items()):
                for metric, value in sorted((entry.get("metrics") or {}).items()):
                    labels = {"judge": judge, "set": set_name, "dimension": dim,
                              "metric": metric}
                    add("judgecal_agreement", labels, value.get("value"))
                    add("judgecal_agreement_ci_low", labels, value.get("ci_low"))
                    add("judgecal_agreement_ci_high", labels, value.get("ci_high"))
        c = schema.drift_checks.c
        checks = conn.execute(
            select(schema.drift_checks).order_by(c.created_at.desc())
        ).mappings().all()
        seen: set[tuple[str, str]] = set()
        for check in checks:
            key = (check["judge_name"], check["set_name"])
            if key in seen:
                continue
            seen.add(key)
            labels = {"judge": key[0], "set": key[1]}
            add("judgecal_drift_verdict", labels | {"verdict": check["verdict"]}, 1)
            for entry in (check["record"] or {}).get("dimensions") or []:
                add("judgecal_drift_delta_points", labels | {"dimension": entry["dimension"]},
                    entry.get("delta_points"))
        pending = conn.execute(
            select(func.count()).select_from(schema.notifications)
            .where(schema.notifications.c.status == PENDING)
        ).scalar_one()
    open_counts: dict[tuple[str, str], int] = {}
    for inc in list_incidents(store):
        if inc["status"] != "resolved":
            k = (inc["judge_name"], inc["severity"]["magnitude"]["level"])
            open_counts[k] = open_counts.get(k, 0) + 1
    judges = {j for j, _ in newest} | {j for j, _ in open_counts}
    for judge in sorted(judges):
        for level in ("SEV0", "SEV2"):
            add("judgecal_open_incidents", {"judge": judge, "severity": level},
                open_counts.get((judge, level), 0))
    add("judgecal_notifications_pending", {}, int(pending))
    for w in sorted(watch_states(store), key=lambda w: (w.judge, w.set_name)):
        labels = {"judge": w.judge, "set": w.set_name}
        add("judgecal_last_conclusive_check_timestamp_seconds", labels,
            _epoch(w.last_conclusive_at) or 0.0)
        add("judgecal_watch_state", labels | {"state": w.state}, 1)
    return reg


def prometheus_text(store: Store) -> str:
    """The textfile contents."""
    from prometheus_client import generate_latest

    return generate_latest(registry(store)).decode("utf-8")


def write_prometheus(store: Store, path: str | os.PathLike[str]) -> Path:
    """Write the metrics to ``path`` atomically (its folder is created). Returns the path."""
    from prometheus_client import write_to_textfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(target), registry(store))
    os.chmod(target, 0o644)
    return target
