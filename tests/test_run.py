"""Runs over real HTTP against the recorded judge: results, resume, faults, locks, secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from judgecal.calibration import load_set
from judgecal.recorded.server import RunningServer, start_server
from judgecal.records import UNSCORED
from judgecal.runs.replay import execute_run
from judgecal.store import open_store
from tests.conftest import ROOT
from tests.helpers import run_config, wait_for_scored, write_config

PANDALM = ROOT / "calibration_sets" / "pandalm"


@pytest.fixture
def recorded() -> Iterator[RunningServer]:
    with start_server(
        recordings={"*": "pandalm:gpt-3.5-turbo"},
        sets_dir=ROOT / "calibration_sets",
        timeout_sleep_s=3.0,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def pandalm_set():  # type: ignore[no-untyped-def]
    return load_set(PANDALM)


def _requests(server: RunningServer) -> dict[str, int]:
    return {k: v["requests"] for k, v in server.stats()["items"].items()}


def _scores(store_url: str, run_id: str) -> dict[str, tuple[str, float | None]]:
    store = open_store(store_url)
    try:
        return {r["item_id"]: (r["status"], r["score"]) for r in store.replies(run_id)}
    finally:
        store.close()


def test_full_pandalm_run_keeps_every_reply(
    recorded: RunningServer, tmp_path: Path, pandalm_set
) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(recorded.url, url, concurrency=32)
    store = open_store(url)
    result = execute_run(cfg, store, pandalm_set)
    assert result.status == "completed"
    s = result.summary
    assert (s["expected"], s["scored"], s["unscored"], s["failed"]) == (999, 974, 25, 0)
    assert s["unscored_reasons"] == {"no_verdict_found": 25}
    assert s["observed_fingerprint"]["served_models"]["gpt-3.5-turbo"]["count"] == 999
    replies = store.replies(result.run_id)
    first = next(r for r in replies if r["item_id"] == "0")
    assert first["raw_text"].startswith("1\n\nReason: Response 1 is better")
    assert first["latency_ms"] > 0 and first["prompt_tokens"] > 0 and first["completion_tokens"] > 0
    assert first["prompt_sha256"].startswith("sha256:")
    # Every item was requested once; the 25 unparseable replies were asked again twice.
    requests = _requests(recorded)
    garbage = {r["item_id"] for r in replies if r["status"] == UNSCORED}
    assert {requests[i] for i in requests if i not in garbage} == {1}
    assert {requests[i] for i in garbage} == {3}
    # Running the same config again starts a new run (the first one finished).
    again = execute_run(cfg, store, pandalm_set)
    assert again.run_id != result.run_id and not again.resumed
    store.close()


def test_faults_slow_the_run_but_change_nothing(
    recorded: RunningServer, tmp_path: Path, pandalm_set
) -> None:  # type: ignore[no-untyped-def]
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    cfg = run_config(recorded.url, clean_url, concurrency=32, run={"limit": 300})
    clean = execute_run(cfg, open_store(clean_url), pandalm_set)

    recorded.configure(faults={"429": 0.10, "500": 0.05, "junk": 0.03}, retry_after_s=0.05)
    faulty_url = f"sqlite:///{tmp_path / 'faulty.db'}"
    cfg = run_config(
        recorded.url,
        faulty_url,
        concurrency=32,
        run={"limit": 300},
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        max_retries=10,
    )
    faulty = execute_run(cfg, open_store(faulty_url), pandalm_set)
    faults = recorded.stats()["faults"]
    assert faults.get("429", 0) > 10 and faults.get("500", 0) > 3
    assert faulty.status == clean.status == "completed"
    assert _scores(faulty_url, faulty.run_id) == _scores(clean_url, clean.run_id)


def test_final_errors_are_unscored_not_retried(
    recorded: RunningServer, tmp_path: Path, pandalm_set
) -> None:  # type: ignore[no-untyped-def]
    recorded.configure(faults={"context-length": 1.0})
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(recorded.url, url, run={"limit": 30, "min_items": 1})
    result = execute_run(cfg, open_store(url), pandalm_set)
    assert result.status == "inconclusive"
    assert result.summary["unscored_reasons"] == {"context_length_exceeded": 30}
    assert sum(_requests(recorded).values()) == 30  # never retried


def test_too_many_failures_make_the_run_inconclusive(
    recorded: RunningServer, tmp_path: Path, pandalm_set
) -> None:  # type: ignore[no-untyped-def]
    recorded.configure(faults={"503": 0.6})
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(
        recorded.url, url, run={"limit": 40, "min_items": 5}, max_retries=1, backoff_base_s=0.0
    )
    result = execute_run(cfg, open_store(url), pandalm_set)
    assert result.status == "inconclusive"
    assert result.summary["failed"] > 0
    assert any("no score" in p for p in result.summary["inconclusive_because"])


def _judgecal(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "judgecal", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_killed_run_resumes_without_rerequesting(recorded: RunningServer, tmp_path: Path) -> None:
    recorded.configure(latency_ms=40)
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url, url, limit=200)
    proc = _judgecal("run", "--config", str(cfg), "--json")
    run_id = wait_for_scored(db, url, 40)
    assert run_id is not None, "the run did not get going"
    store = open_store(url)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done_before = store.done_keys(run_id)
    assert 40 <= len(done_before) < 200
    counts_at_kill = _requests(recorded)

    again = _judgecal("run", "--config", str(cfg), "--json")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 5, err  # healthy run, but no baseline: not monitored
    payload = json.loads(out)
    assert payload["run_id"] == run_id and payload["resumed"] is True
    assert payload["summary"]["scored"] + payload["summary"]["unscored"] == 200
    after = _requests(recorded)
    for item_id, _dim, _variant in done_before:
        assert after[item_id] == counts_at_kill[item_id], f"item {item_id} was requested again"
    assert payload["summary"]["requested_now"] == 200 - len(done_before)
    store.close()


def test_second_run_of_same_config_exits_4(recorded: RunningServer, tmp_path: Path) -> None:
    recorded.configure(latency_ms=200)  # the first run still holds the lock when the second starts
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url, url, limit=150)
    first = _judgecal("run", "--config", str(cfg), "--json")
    store = open_store(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (tmp_path / "s.db").exists() and store.list_runs():
            break
        time.sleep(0.02)
    second = _judgecal("run", "--config", str(cfg), "--json")
    _, err2 = second.communicate(timeout=60)
    _out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 5, err1  # no baseline: not monitored
    assert second.returncode == 4, err2
    assert "another judgecal run holds the lock" in err2
    assert len(store.list_runs()) == 1
    store.close()


def test_api_key_never_stored_or_logged(recorded: RunningServer, tmp_path: Path) -> None:
    secret = "sk-judgecal-SENTINEL-7f3a9c"
    url = f"sqlite:///{tmp_path / 's.db'}"
    recorded.configure(faults={"500": 0.05})
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url, url, limit=60)
    proc = _judgecal(
        "run",
        "--config",
        str(cfg),
        "--json",
        "--verbose",
        env={"OPENAI_API_KEY": secret, "JUDGECAL_DEBUG_HTTP": "1"},
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err  # no baseline: not monitored
    assert secret not in out and secret not in err
    for path in tmp_path.iterdir():
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    shown = _judgecal("runs", "show", "latest", "--json", "--replies", env={"JUDGECAL_STORE": url})
    out, err = shown.communicate(timeout=60)
    assert shown.returncode == 0, err
    assert secret not in out
    assert json.loads(out)["judge_config"]["api_key_env"] == "OPENAI_API_KEY"


def test_unscored_reply_is_reported_with_reason(
    recorded: RunningServer, tmp_path: Path, pandalm_set
) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 's.db'}"
    # Item 0..99 of PandaLM include some of the 25 garbage replies of gpt-3.5.
    cfg = run_config(recorded.url, url, run={"limit": 999, "min_items": 1})
    result = execute_run(cfg, open_store(url), pandalm_set)
    garbage = [r for r in open_store(url).replies(result.run_id) if r["status"] == UNSCORED]
    assert len(garbage) == 25
    assert all(r["unscored_reason"] == "no_verdict_found" and r["attempts"] == 3 for r in garbage)
