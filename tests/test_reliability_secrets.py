"""Secrets: a sentinel API key and webhook secrets in the environment appear nowhere.

``make reliability`` runs the full scenario at a larger size; this is the reduced one plus
a focused check of an endpoint that echoes the key back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.harness import Sandbox, format_table
from benchmarks.harness.leaks import EchoJudge, secrets_scan, url_password_scan
from benchmarks.harness.sandbox import cli_in_process
from judgecal.store import open_store


def test_an_endpoint_echoing_the_key_does_not_get_it_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-judgecal-SENTINEL-echo-1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    box = Sandbox(tmp_path)
    echo = EchoJudge(400)
    try:
        cfg = box.write_config("c", base_url=echo.url, store=box.sqlite_url("s.db"),
                               judge={"max_retries": 0}, run={"limit": 5, "min_items": 1})
        code, out, err = cli_in_process(["run", "--config", str(cfg), "--json"])
    finally:
        echo.stop()
    assert code == 3, err
    assert key not in out and key not in err
    store = open_store(box.sqlite_url("s.db"))
    try:
        replies = store.replies(store.list_runs()[0]["run_id"])
    finally:
        store.close()
    assert len(replies) == 5
    assert all(r["unscored_reason"] == "bad_key_format" for r in replies)
    assert all("[redacted]" in r["error"] and key not in r["error"] for r in replies)
    assert key.encode() not in (tmp_path / "s.db").read_bytes()


def test_sentinel_secrets_appear_nowhere(tmp_path: Path) -> None:
    report = secrets_scan(Sandbox(tmp_path), limit=150, reading_runs=2)
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
    assert report.leaks == [] and report.places > 50
    # The echo-key nights (plain and streamed): every reply carried the key in its model
    # id, fingerprint and text, and every one is stored with [redacted] in all three.
    assert len(report.echo_exits) == 2 and not set(report.echo_exits) & {1, 2}
    assert report.echoed_replies == 2 * 150
    assert report.echoed_redacted == report.echoed_replies
    # The HTTP libraries really logged at DEBUG (into the file and onto stderr).
    log = (tmp_path / "judgecal-debug.log").read_text(encoding="utf-8")
    assert report.log_bytes > 0 and "openai._base_client DEBUG" in log
    assert "httpx INFO HTTP Request" in log and "judgecal.http" in log


def test_a_password_in_the_judge_url_appears_nowhere(tmp_path: Path) -> None:
    report = url_password_scan(Sandbox(tmp_path), limit=10)
    rows = report.rows()
    assert report.exit_code == 5 and report.places > 10  # the scenario ran (no baseline)
    assert all(r.ok for r in rows) and report.found == [], format_table(rows)
