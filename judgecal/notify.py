"""Notifications: the webhook outbox.

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

The Prometheus textfile is :mod:`judgecal.reports.prometheus`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, or_, select, update

from judgecal.db import schema
from judgecal.records import utcnow
from judgecal.redact import Redactor, install_log_filter, url_secrets

if TYPE_CHECKING:
    import httpx

    from judgecal.config import WebhookSettings
    from judgecal.store import Store

__all__ = [
    "DELIVERED",
    "EVENT_GROUPS",
    "FAILED",
    "PENDING",
    "SKIPPED",
    "DeliveryReport",
    "deliver_pending",
    "enqueue",
    "outbox",
    "sign",
]

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
