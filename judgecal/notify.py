"""Notifications: a webhook outbox and a Prometheus textfile.

Webhook
-------
A notification is written to the ``notifications`` table (the *outbox*) in the same
transaction as the record it announces (an incident, a warning check, a lifecycle step), so
it can never be lost and never blocks that record. :func:`deliver_pending` runs afterwards:
it POSTs each pending notification as JSON, retrying a few times with exponential backoff
(0.5 s, 1 s, 2 s … within one run), and leaves what still fails *pending* for the next run
(``attempts``, ``last_error`` and ``next_attempt_at`` are kept). After
``webhook.max_attempts`` attempts a notification is marked ``failed`` (kept, not retried).
Each notification has a ``dedupe_key`` (e.g. ``incident.opened:INC-…``), sent as the header
``X-Judgecal-Delivery``, so a receiver can drop a duplicate delivered twice after a timeout.

Body: ``{"event": "incident.opened", "sent_at": ..., "data": {...}}``. With
``webhook.secret_env`` set, the header ``X-Judgecal-Signature: sha256=<hex>`` is the
HMAC-SHA256 of the body under the key read from that environment variable.

Events (``webhook.events`` selects them): ``incident`` → ``incident.opened``; ``recheck`` →
``incident.recheck`` (an open incident confirmed by a later night); ``warning`` →
``drift.warning``; ``notice`` → ``drift.notice``; ``judge_changed`` → ``drift.judge_changed``
(the fingerprint differs from the baseline's, agreement unchanged, not yet accepted);
``not_monitored`` → ``watch.not_monitored`` (a run with no accepted baseline to compare with);
``stale`` → ``watch.stale`` (no conclusive check for longer than ``run.stale_after_hours``);
``lifecycle`` → ``incident.acknowledged``,
``incident.resolved``, ``incident.blast_radius``. Notifications of unselected events, and any
pending while no webhook is configured, are marked ``skipped``.

Prometheus
----------
:func:`write_prometheus` writes a ``.prom`` file for node_exporter's textfile collector:
atomically (a temporary file in the same directory, then ``os.replace``), so the collector
never reads half a file. Metrics (all gauges)::

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

import hashlib
import hmac
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, func, or_, select, update

from judgecal.db import schema
from judgecal.records import COMPLETED, INCONCLUSIVE, utcnow
from judgecal.redact import Redactor, install_log_filter, url_secrets

if TYPE_CHECKING:
    import httpx

    from judgecal.config import WebhookSettings
    from judgecal.store import Store

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
SKIPPED = "skipped"

EVENT_GROUPS: dict[str, str] = {
    "incident.opened": "incident",
    "incident.recheck": "recheck",
    "drift.warning": "warning",
    "drift.notice": "notice",
    "drift.judge_changed": "judge_changed",
    "watch.not_monitored": "not_monitored",
    "watch.stale": "stale",
    "incident.acknowledged": "lifecycle",
    "incident.resolved": "lifecycle",
    "incident.blast_radius": "lifecycle",
}
"""Event name → the ``webhook.events`` entry that selects it."""


def enqueue(conn: Connection, event: str, dedupe_key: str, data: dict[str, Any]) -> bool:
    """Put a notification in the outbox inside the caller's transaction.

    Returns False (and writes nothing) when one with the same ``dedupe_key`` exists.
    """
    n = schema.notifications.c
    if conn.execute(select(n.notification_id).where(n.dedupe_key == dedupe_key)).first():
        return False
    conn.execute(
        schema.notifications.insert().values(
            dedupe_key=dedupe_key,
            event=event,
            created_at=utcnow(),
            payload=json.loads(json.dumps(data, default=str, allow_nan=False)),
            status=PENDING,
            attempts=0,
        )
    )
    return True


@dataclass
class DeliveryReport:
    """What :func:`deliver_pending` did."""

    delivered: list[str] = field(default_factory=list)
    retry_later: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "retry_later": self.retry_later,
            "failed": self.failed,
            "skipped": self.skipped,
            "errors": self.errors,
        }


def sign(body: bytes, secret: str) -> str:
    """The signature header value for a body: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _later_backoff(attempts: int) -> float:
    """Wait before the next run may retry: 1 min, 2 min, 4 min … capped at 6 h."""
    return float(min(60 * 2 ** max(attempts - 1, 0), 6 * 3600))


def deliver_pending(
    store: Store,
    webhook: WebhookSettings | None,
    *,
    http_client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: str | None = None,
) -> DeliveryReport:
    """POST every due pending notification; keep the failures pending for a later run.

    Never raises for an unreachable endpoint: errors are recorded on the notification and in
    the returned report. ``http_client`` and ``sleep`` are injectable for tests.
    """
    import httpx

    report = DeliveryReport()
    n = schema.notifications.c
    stamp = now or utcnow()
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(
            select(schema.notifications)
            .where(and_(n.status == PENDING,
                        or_(n.next_attempt_at.is_(None), n.next_attempt_at <= stamp)))
            .order_by(n.notification_id)
        ).mappings().all()]
    url = webhook.resolved_url() if webhook is not None else None
    selected = set(webhook.events) if webhook is not None else set()
    to_send = []
    for row in rows:
        if url is None or EVENT_GROUPS.get(row["event"], row["event"]) not in selected:
            report.skipped.append(row["dedupe_key"])
            _update(store, row["notification_id"], status=SKIPPED,
                    last_error=None if url else "no webhook configured")
        else:
            to_send.append(row)
    if not to_send or webhook is None or url is None:
        return report
    secret = os.environ.get(webhook.secret_env) if webhook.secret_env else None
    # The URL often *is* the token (Slack, Discord): it must not reach the store through an
    # error message, nor a log through httpx's request lines.
    redact = Redactor([*url_secrets(url), secret])
    install_log_filter(redact)
    client = http_client or httpx.Client(timeout=webhook.timeout_s)
    # Longest a delivery can take here; a claim lasts that long plus a margin.
    lease_s = webhook.tries_per_run * webhook.timeout_s + 0.5 * 2**webhook.tries_per_run + 60
    try:
        for row in to_send:
            if not _claim(store, row, lease_s):
                continue  # another process (another judge's run) is delivering it now
            body = json.dumps(
                {"event": row["event"], "sent_at": utcnow(), "delivery": row["dedupe_key"],
                 "data": row["payload"]},
                sort_keys=True, ensure_ascii=False,
            ).encode("utf-8")
            headers = {"Content-Type": "application/json", "User-Agent": "judgecal",
                       "X-Judgecal-Delivery": row["dedupe_key"],
                       "X-Judgecal-Event": row["event"]}
            if secret:
                headers["X-Judgecal-Signature"] = sign(body, secret)
            attempts = int(row["attempts"])
            error = None
            for i in range(webhook.tries_per_run):
                attempts += 1
                try:
                    response = client.post(url, content=body, headers=headers,
                                           timeout=webhook.timeout_s)
                    if 200 <= response.status_code < 300:
                        error = None
                        break
                    error = f"HTTP {response.status_code}"
                    if 400 <= response.status_code < 500 and response.status_code not in (408,
                                                                                           429):
                        break  # the endpoint refuses this body: retrying will not help
                except httpx.HTTPError as exc:
                    error = redact.text(f"{type(exc).__name__}: {exc}")[:500]
                if i + 1 < webhook.tries_per_run:
                    sleep(0.5 * 2**i)
            if error is None:
                report.delivered.append(row["dedupe_key"])
                _update(store, row["notification_id"], status=DELIVERED, attempts=attempts,
                        delivered_at=utcnow(), last_error=None, next_attempt_at=None)
            elif attempts >= webhook.max_attempts:
                report.failed.append(row["dedupe_key"])
                report.errors[row["dedupe_key"]] = error
                _update(store, row["notification_id"], status=FAILED, attempts=attempts,
                        last_error=error)
            else:
                report.retry_later.append(row["dedupe_key"])
                report.errors[row["dedupe_key"]] = error
                _update(store, row["notification_id"], attempts=attempts, last_error=error,
                        next_attempt_at=_iso_in(_later_backoff(attempts)))
    finally:
        if http_client is None:
            client.close()
    return report


def _claim(store: Store, row: dict[str, Any], lease_s: float) -> bool:
    """Take a pending notification for delivery; only one process wins.

    Compare-and-set on ``next_attempt_at``: the winner moves it ``lease_s`` into the future,
    so a concurrent deliverer that read the same row sees it changed and skips it, and one
    that reads later sees it not yet due. If the winner dies mid-delivery the lease runs
    out and a later run retries (the ``X-Judgecal-Delivery`` key lets a receiver drop that
    rare duplicate).
    """
    n = schema.notifications.c
    old = row["next_attempt_at"]
    with store.engine.begin() as conn:
        result = conn.execute(
            update(schema.notifications)
            .where(and_(n.notification_id == row["notification_id"], n.status == PENDING,
                        n.next_attempt_at.is_(None) if old is None else n.next_attempt_at == old))
            .values(next_attempt_at=_iso_in(lease_s))
        )
    return result.rowcount == 1


def _update(store: Store, notification_id: int, **values: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(schema.notifications)
            .where(schema.notifications.c.notification_id == notification_id)
            .values(**values)
        )


def outbox(store: Store, status: str | None = None) -> list[dict[str, Any]]:
    """Notifications, oldest first (optionally of one status)."""
    n = schema.notifications.c
    query = select(schema.notifications).order_by(n.notification_id)
    if status:
        query = query.where(n.status == status)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings().all()]


# --------------------------------------------------------------------------- Prometheus


def _label(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: Any) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def prometheus_text(store: Store) -> str:
    """The textfile contents (see the module docstring for the metrics)."""
    from judgecal.incidents import list_incidents

    lines: dict[str, list[str]] = {}
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
        lines.setdefault(name, []).append(f"{name}{_labels(**labels)} {float(value):.10g}")

    r = schema.runs.c
    with store.engine.connect() as conn:
        runs = conn.execute(
            select(schema.runs)
            .where(r.status.in_([COMPLETED, INCONCLUSIVE]))
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
    from judgecal.drift.watch import watch_states

    for w in sorted(watch_states(store), key=lambda w: (w.judge, w.set_name)):
        labels = {"judge": w.judge, "set": w.set_name}
        add("judgecal_last_conclusive_check_timestamp_seconds", labels,
            _epoch(w.last_conclusive_at) or 0.0)
        add("judgecal_watch_state", labels | {"state": w.state}, 1)
    out = []
    for name, samples in lines.items():
        out.append(f"# HELP {name} {helps[name]}")
        out.append(f"# TYPE {name} gauge")
        out.extend(samples)
    return "\n".join(out) + "\n"


def write_prometheus(store: Store, path: str | os.PathLike[str]) -> Path:
    """Write :func:`prometheus_text` to ``path`` atomically. Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = prometheus_text(store)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
