"""Webhook outbox (real HTTP to a local receiver) and the Prometheus textfile."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from judgecal import drift, incidents, nightly, notify
from judgecal.calibration import CalibrationSet, load_set
from judgecal.config import RunConfig, WebhookSettings, load_judge
from judgecal.reports.prometheus import write_prometheus
from judgecal.runs.imported import import_judgments
from judgecal.store import Store, open_store
from tests.conftest import ROOT, SETS
from tests.helpers import llmbar_verdicts


class Receiver:
    """A local webhook endpoint answering with a scripted sequence of status codes."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'n.db'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def llmbar() -> CalibrationSet:
    return load_set(SETS / "llmbar")


def _closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/hook"


def _enqueue(store: Store, event: str = "incident.opened", key: str = "k1") -> None:
    with store.engine.begin() as conn:
        notify.enqueue(conn, event, key, {"incident_id": "INC-1", "severity": "SEV0"})


def test_delivered_once_and_signed(store: Store, receiver: Receiver,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JC_HOOK_SECRET", "s3cret")
    _enqueue(store)
    with store.engine.begin() as conn:  # the same key again is not queued twice
        assert not notify.enqueue(conn, "incident.opened", "k1", {})
    hook = WebhookSettings(url=receiver.url, secret_env="JC_HOOK_SECRET")
    report = notify.deliver_pending(store, hook)
    assert report.delivered == ["k1"] and not report.retry_later
    (req,) = receiver.requests
    body = req["body"]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert req["headers"]["X-Judgecal-Signature"] == expected
    assert req["headers"]["X-Judgecal-Delivery"] == "k1"
    payload = json.loads(body)
    assert payload["event"] == "incident.opened" and payload["data"]["incident_id"] == "INC-1"
    assert "s3cret" not in body.decode()
    assert notify.outbox(store)[0]["status"] == "delivered"
    assert notify.deliver_pending(store, hook).delivered == []  # nothing twice


def test_retried_with_backoff_within_a_run(store: Store, receiver: Receiver) -> None:
    receiver.statuses = [503, 502]
    _enqueue(store)
    waits: list[float] = []
    report = notify.deliver_pending(store, WebhookSettings(url=receiver.url), sleep=waits.append)
    assert report.delivered == ["k1"]
    assert waits == [0.5, 1.0] and len(receiver.requests) == 3
    assert notify.outbox(store)[0]["attempts"] == 3


def test_endpoint_down_is_retried_on_a_later_run(store: Store, receiver: Receiver) -> None:
    _enqueue(store)
    down = WebhookSettings(url=_closed_port_url(), tries_per_run=2)
    report = notify.deliver_pending(store, down, sleep=lambda s: None)
    assert report.retry_later == ["k1"] and "ConnectError" in report.errors["k1"]
    row = notify.outbox(store)[0]
    assert row["status"] == "pending" and row["attempts"] == 2 and row["next_attempt_at"]
    # Not due yet: a run a second later leaves it alone.
    up = WebhookSettings(url=receiver.url)
    assert notify.deliver_pending(store, up).delivered == []
    # A later run (after the backoff) delivers it.
    later = notify.deliver_pending(store, up, now="2999-01-01T00:00:00Z")
    assert later.delivered == ["k1"] and len(receiver.requests) == 1


def test_gives_up_after_max_attempts_and_does_not_retry_a_refusal(
    store: Store, receiver: Receiver
) -> None:
    _enqueue(store, key="a")
    hook = WebhookSettings(url=_closed_port_url(), tries_per_run=2, max_attempts=2)
    assert notify.deliver_pending(store, hook, sleep=lambda s: None).failed == ["a"]
    assert notify.outbox(store, "failed")[0]["dedupe_key"] == "a"
    receiver.statuses = [400]
    _enqueue(store, key="b")
    report = notify.deliver_pending(store, WebhookSettings(url=receiver.url),
                                    sleep=lambda s: None)
    assert report.retry_later == ["b"] and len(receiver.requests) == 1  # 400: no retry now


def test_unselected_events_and_no_webhook_are_skipped(store: Store, receiver: Receiver) -> None:
    _enqueue(store, "drift.notice", "n1")
    _enqueue(store, "incident.opened", "i1")
    report = notify.deliver_pending(store, WebhookSettings(url=receiver.url, events=["incident"]))
    assert report.skipped == ["n1"] and report.delivered == ["i1"]
    _enqueue(store, "incident.opened", "i2")
    assert notify.deliver_pending(store, None).skipped == ["i2"]
    assert {r["dedupe_key"]: r["status"] for r in notify.outbox(store)} == {
        "n1": "skipped", "i1": "delivered", "i2": "skipped"}


def test_webhook_settings_need_one_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="exactly one of 'url' and 'url_env'"):
        WebhookSettings()
    monkeypatch.setenv("JC_HOOK_URL", "https://hooks.example.org/T0/B0/xyz")
    assert WebhookSettings(url_env="JC_HOOK_URL").resolved_url() == (
        "https://hooks.example.org/T0/B0/xyz")


def _import(store: Store, cs: CalibrationSet, tmp: Path, strategy: str, served: str) -> str:
    path = tmp / f"{strategy.replace('/', '-')}-{served}.jsonl"
    verdicts = llmbar_verdicts(strategy)
    path.write_text("".join(json.dumps({"item_id": i.id, "dimension": "preference",
                                        "score": verdicts[i.id]}) + "\n" for i in cs.items))
    return str(import_judgments(store, cs, path, judge_name="llmbar-judge", model="gpt-4",
                                prompt_text="p", served_model=served)["run_id"])


def test_a_dead_webhook_never_blocks_the_record(
    store: Store, llmbar: CalibrationSet, tmp_path: Path, receiver: Receiver
) -> None:
    base = _import(store, llmbar, tmp_path, "GPT-4/Vanilla", "gpt-4-0613")
    drift.accept_baseline(store, base, actor="t", reason="r")
    bad = _import(store, llmbar, tmp_path, "ChatGPT/Vanilla", "gpt-3.5-turbo-0613")
    prom = tmp_path / "textfile" / "judgecal.prom"
    config = RunConfig.model_validate({
        "calibration_set": SETS / "llmbar",
        "judge": load_judge(ROOT / "configs" / "judges" / "llmbar-gpt4-vanilla.yaml"),
        "run": {"bootstrap": 300},
        "notify": {"webhook": {"url": _closed_port_url(), "tries_per_run": 1},
                   "prometheus_textfile": str(prom)},
    })
    done = nightly.after_run(store, bad, config)
    assert done.kind == "incident" and done.outcome.incident_id
    assert incidents.get_incident(store, done.outcome.incident_id)["status"] == "open"
    assert done.problems and "not delivered yet" in done.problems[0]
    assert notify.outbox(store, "pending")[0]["event"] == "incident.opened"
    assert done.prometheus_textfile == str(prom)
    text = prom.read_text()
    assert 'judgecal_open_incidents{judge="llmbar-judge",severity="SEV0"} 1.0' in text
    assert ('judgecal_drift_verdict{judge="llmbar-judge",set="llmbar",verdict="incident"} 1.0'
            in text)
    assert "judgecal_notifications_pending 1.0" in text
    # The endpoint is back: the next run's delivery sends what was waiting.
    later = notify.deliver_pending(store, WebhookSettings(url=receiver.url),
                                   now="2999-01-01T00:00:00Z")
    assert later.delivered == [f"incident.opened:{done.outcome.incident_id}"]


def test_prometheus_textfile_is_written_atomically(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "prom" / "judgecal.prom"
    write_prometheus(store, path)
    first = path.read_text()
    assert first.endswith("\n") and "# TYPE judgecal_notifications_pending gauge" in first
    write_prometheus(store, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["judgecal.prom"]  # no temp files
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    for line in path.read_text().splitlines():
        assert line.startswith("#") or line.split()[-1].replace(".", "").replace("-", "").isdigit()
    # A valid exposition: Prometheus' own parser reads every family back.
    from prometheus_client.parser import text_string_to_metric_families

    names = {f.name for f in text_string_to_metric_families(path.read_text())}
    assert "judgecal_notifications_pending" in names
