"""Secrets: a sentinel API key and webhook secrets in the environment appear nowhere.

``make reliability`` runs the full scenario at a larger size; this is the reduced one plus
a focused check of an endpoint that echoes the key back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from judgecal.store import open_store
from judgecal.testing import Sandbox, format_table
from judgecal.testing.leaks import EchoJudge, secrets_scan
from judgecal.testing.sandbox import cli_in_process


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
