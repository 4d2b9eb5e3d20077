"""Unattended nights: hostile replies, poisoned stores, bounded waits, secrets, Ctrl-C.

Every test talks real HTTP to the recorded judge (or to a closed port) and reads the real
store afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from judgecal.calibration import CalibrationSet
from judgecal.errors import ConfigError, JudgeError
from judgecal.judge.completion import MalformedReply, read_completion, token_count
from judgecal.recorded.faults import MALFORMED_200
from judgecal.recorded.server import RunningServer
from judgecal.records import FAILED, SCORED
from judgecal.redact import Redactor, safe_url
from judgecal.runs.replay import execute_run
from judgecal.store import open_store
from tests.conftest import ROOT
from tests.helpers import interruptible, run_config, wait_for_scored, write_config

PANDALM = ROOT / "calibration_sets" / "pandalm"




def _judgecal(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "judgecal", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=interruptible,
    )


# --------------------------------------------------------------------------- reading replies


@pytest.mark.parametrize("kind", sorted(MALFORMED_200))
def test_every_malformed_body_is_a_malformed_reply(kind: str) -> None:
    with pytest.raises(MalformedReply) as info:
        read_completion(MALFORMED_200[kind])
    assert info.value.reason.startswith("malformed_reply: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12, 12), (12.0, 12), (0, 0), (-5, None), ("lots", None), (True, None), (3.5, None),
     (1e30, None), (None, None), ([1], None)],
)
def test_token_count_accepts_only_counts(value: object, expected: int | None) -> None:
    assert token_count(value) == expected


@pytest.mark.parametrize("kind", [*sorted(MALFORMED_200), "bad-usage"])
def test_hostile_200_replies_end_the_run_with_a_status(
    kind: str, recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    """Each malformed HTTP 200 is retried and, if it persists, kept failed with its reason:
    the run ends with a status (never an exception), nothing is stored as what it is not."""
    recorded.configure(faults={kind: 1.0})
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(
        recorded.url, url, run={"limit": 30, "min_items": 1}, max_retries=1,
        backoff_base_s=0.0, concurrency=4,
    )
    store = open_store(url)
    result = execute_run(cfg, store, pandalm_set)
    replies = store.replies(result.run_id)
    if kind == "bad-usage":
        # The verdicts are real; only the token counts are junk: dropped, not stored as text.
        assert result.status == "completed"
        assert {r["status"] for r in replies} <= {SCORED, "unscored"}
        assert all(r["prompt_tokens"] is None and r["completion_tokens"] is None for r in replies)
        with store.engine.connect() as conn:
            kinds = conn.execute(
                text("SELECT DISTINCT typeof(prompt_tokens), typeof(completion_tokens) "
                     "FROM replies")
            ).all()
        assert kinds == [("null", "null")]
    else:
        assert result.status == "inconclusive"
        assert replies and all(r["status"] == FAILED for r in replies)
        assert all(r["unscored_reason"].startswith("transient_failure: malformed_reply")
                   for r in replies), {r["unscored_reason"] for r in replies}
    # The next night starts clean: nothing left running.
    assert store.find_resumable_run(cfg.judge.name, pandalm_set.version,
                                    store.get_run(result.run_id)["config_hash"]) is None


def test_malformed_replies_through_the_cli_exit_3_without_task_noise(
    recorded: RunningServer, tmp_path: Path
) -> None:
    recorded.configure(faults={"html": 0.5, "wrong-shape": 0.5})
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url,
                       f"sqlite:///{tmp_path / 's.db'}", limit=60, min_items=1)
    proc = _judgecal("run", "--config", str(cfg))
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 3, err
    assert "Task exception was never retrieved" not in err
    assert "Traceback" not in err
    assert len(err.splitlines()) < 20, err


def test_endpoint_failing_everything_stops_early(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    recorded.configure(faults={"html": 1.0})
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(recorded.url, url, run={"limit": 400, "min_items": 1}, max_retries=0,
                     concurrency=4)
    result = execute_run(cfg, open_store(url), pandalm_set)
    assert result.status == "inconclusive"
    assert "in a row" in result.summary["stopped_because"]
    assert recorded.stats()["requests"] < 100  # not 400: it stopped


# --------------------------------------------------------------------------- poisoned store


def test_unresumable_run_is_closed_failed_and_the_next_starts_clean(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(recorded.url, url, run={"limit": 30, "min_items": 1})
    store = open_store(url)
    first = execute_run(cfg, store, pandalm_set, finish=False)  # left running, like a kill
    with store.engine.begin() as conn:  # a reply written by something else: text in an int
        conn.execute(text("UPDATE replies SET prompt_tokens = 'lots' WHERE rowid IN "
                          "(SELECT rowid FROM replies LIMIT 1)"))
    second = execute_run(cfg, store, pandalm_set)
    assert second.run_id != first.run_id and not second.resumed
    assert second.status == "completed"
    old = store.get_run(first.run_id)
    assert old["status"] == "failed"
    assert "prompt_tokens 'lots'" in old["summary"]["failed_because"]
    third = execute_run(cfg, store, pandalm_set)
    assert third.status == "completed"


# --------------------------------------------------------------------------- bounded waits


def test_retry_after_of_an_hour_is_capped_and_the_deadline_ends_the_run(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    recorded.configure(faults={"429": 1.0}, retry_after_s=3600)
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(recorded.url, url, run={"limit": 10, "min_items": 1, "deadline_s": 4},
                     retry_after_max_s=1.0, max_retries=50)
    started = time.monotonic()
    result = execute_run(cfg, open_store(url), pandalm_set)
    took = time.monotonic() - started
    assert took < 30, took
    assert result.status == "inconclusive"
    assert "deadline" in result.summary["stopped_because"]
    assert any("deadline" in p for p in result.summary["inconclusive_because"])
    # Requests were retried about once a second (the cap), not once an hour.
    assert recorded.stats()["requests"] >= 20


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connections_fail_fast_naming_the_url(
    tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    base = f"http://user:hunter2secret@127.0.0.1:{_closed_port()}/v1"
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(base, url, run={"limit": 30, "min_items": 1})
    started = time.monotonic()
    with pytest.raises(JudgeError) as info:
        execute_run(cfg, open_store(url), pandalm_set)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert base.replace("user:hunter2secret@", "") in message
    assert "hunter2secret" not in message


def test_refused_connections_exit_1_from_the_cli(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_closed_port()}/v1"
    cfg = write_config(tmp_path / "nightly.yaml", base, f"sqlite:///{tmp_path / 's.db'}",
                       limit=30)
    started = time.monotonic()
    proc = _judgecal("run", "--config", str(cfg))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert time.monotonic() - started < 15
    assert base in err and "Traceback" not in err


# --------------------------------------------------------------------------- secrets


def test_redactor_replaces_known_secrets_and_credential_shapes() -> None:
    r = Redactor(["hook-token-1234567890", "short"])
    assert r("x hook-token-1234567890 y short") == "x [redacted] y short"
    assert r("Authorization: Bearer abcdefghijklmnop") == "Authorization: [redacted]"
    assert r("https://hooks.slack.com/services/T0/B0/XYZ") == "https://[redacted]"
    assert safe_url("https://u:p@host:8080/v1?key=abc") == "https://host:8080/v1"


def test_a_key_echoed_by_the_endpoint_is_stored_nowhere(
    recorded: RunningServer, tmp_path: Path
) -> None:
    secret = "judgecal-SENTINEL-key-7f3a9c11"
    hook_token = "T0SECRET/B0SECRET/hooktoken12345678"
    hmac_key = "hmac-SENTINEL-0d0d0d0d"
    recorded.configure(faults={"echo-key": 1.0})
    db = tmp_path / "s.db"
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url, f"sqlite:///{db}",
                       limit=40, min_items=1)
    with cfg.open("a") as fh:
        fh.write("notify:\n  webhook:\n    url_env: HOOK_URL\n    secret_env: HOOK_SECRET\n"
                 "    tries_per_run: 1\n    timeout_s: 0.5\n")
    env = {
        "OPENAI_API_KEY": secret,
        "HOOK_URL": f"http://127.0.0.1:{_closed_port()}/services/{hook_token}",
        "HOOK_SECRET": hmac_key,
        "JUDGECAL_DEBUG_HTTP": "1",
    }
    proc = _judgecal("run", "--config", str(cfg), "--verbose", env=env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode not in (1, 2), err
    assert "/chat/completions item=" in err  # JUDGECAL_DEBUG_HTTP shows each request
    for value in (secret, "hooktoken12345678", hmac_key):
        assert value not in out and value not in err
        for path in tmp_path.iterdir():
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path
    store = open_store(f"sqlite:///{db}")
    replies = store.replies(store.list_runs()[0]["run_id"])
    assert replies and all("[redacted]" in (r["served_model"] or "") for r in replies)


# --------------------------------------------------------------------------- exit 2, Ctrl-C


def test_missing_key_writes_nothing(tmp_path: Path, pandalm_set: CalibrationSet) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config("http://127.0.0.1:9/v1", url, api_key_required=True,
                     api_key_env="JUDGECAL_TEST_NO_SUCH_KEY")
    store = open_store(url)
    with pytest.raises(ConfigError):
        execute_run(cfg, store, pandalm_set)
    assert store.list_runs() == []


def test_missing_key_from_the_cli_is_exit_2_and_creates_no_store(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    cfg = write_config(tmp_path / "nightly.yaml", "http://127.0.0.1:9/v1", f"sqlite:///{db}")
    judge = tmp_path / "judge.yaml"
    lines = [ln for ln in judge.read_text().splitlines() if not ln.startswith("api_key")]
    judge.write_text("\n".join([*lines, "api_key_required: true",
                                "api_key_env: JUDGECAL_TEST_NO_SUCH_KEY", ""]))
    proc = _judgecal("run", "--config", str(cfg))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "JUDGECAL_TEST_NO_SUCH_KEY" in err
    assert not db.exists()


def test_ctrl_c_ends_the_run_cleanly_and_it_resumes(
    recorded: RunningServer, tmp_path: Path
) -> None:
    recorded.configure(latency_ms=250)  # 200 items take ~6 s: Ctrl-C lands mid-run under load
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url, url, limit=200)
    proc = _judgecal("run", "--config", str(cfg), "--json")
    run_id = wait_for_scored(db, url, 20)
    assert run_id is not None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Task exception" not in err
    assert len(err.strip().splitlines()) == 1, err
    again = _judgecal("run", "--config", str(cfg), "--json")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 5, err  # no baseline: not monitored
    payload = json.loads(out)
    assert payload["run_id"] == run_id and payload["resumed"] is True


def test_webhook_token_reaches_neither_logs_nor_the_outbox(
    recorded: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs every request URL at INFO; a Slack-style URL is its own token."""
    import logging

    from judgecal.config import WebhookSettings
    from judgecal.notify import deliver_pending, enqueue, outbox

    token = "T0AAAA/B0BBBB/hooksecret0123456789"
    url = f"{recorded.url.rsplit('/v1', 1)[0]}/services/{token}"  # answers 404
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with store.engine.begin() as conn:
        enqueue(conn, "drift.warning", "drift.warning:x", {"judge": "j"})
    hook = WebhookSettings(url=url, tries_per_run=1, timeout_s=2)
    with caplog.at_level(logging.DEBUG):
        report = deliver_pending(store, hook, sleep=lambda _s: None)
    assert report.errors  # 404: kept for a later run
    # The client side's records (the recorded server, which *receives* the URL, logs too).
    client_side = [r.getMessage() for r in caplog.records
                   if not r.name.startswith("judgecal.recorded")]
    assert any("HTTP Request" in m for m in client_side)  # httpx did log the request ...
    assert not any("hooksecret0123456789" in m for m in client_side)  # ... without the token
    assert all("hooksecret" not in (n["last_error"] or "") for n in outbox(store))


def test_a_password_in_the_judge_url_is_not_stored(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    base = recorded.url.replace("http://", "http://judge:pw-SENTINEL-31337@")
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(base, url, run={"limit": 5, "min_items": 1})
    store = open_store(url)
    result = execute_run(cfg, store, pandalm_set)
    assert result.status == "completed"
    stored = store.get_run(result.run_id)["judge_config"]["base_url"]
    assert stored == recorded.url.replace("http://", "http://judge:[redacted]@")
    assert b"pw-SENTINEL-31337" not in (tmp_path / "s.db").read_bytes()
