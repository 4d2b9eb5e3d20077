"""Batch replay (judge.batch) over real HTTP against the recorded judge's batch API: the same
scores as live, results in any order, partial failures, a kill after submitting, expiry, the
deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.harness import Sandbox
from benchmarks.harness.sandbox import kill
from judgecal.calibration import CalibrationSet
from judgecal.errors import JudgeError
from judgecal.judge.batch import custom_id
from judgecal.recorded.faults import draw_fault
from judgecal.recorded.server import RunningServer, start_server
from judgecal.records import FAILED, INCONCLUSIVE, SCORED, UNSCORED
from judgecal.runs.replay import execute_run
from judgecal.store import open_store
from tests.conftest import SETS
from tests.helpers import run_config, run_main

MODEL = "gpt-3.5-turbo"
BATCH = {"batch": True, "batch_poll_s": 0.05}


@pytest.fixture
def recorded() -> Iterator[RunningServer]:
    with start_server(recordings={"*": f"pandalm:{MODEL}"}, sets_dir=SETS,
                      batch_polls=2) as server:
        yield server


def _replies(url: str, run_id: str) -> dict[str, dict[str, Any]]:
    store = open_store(url)
    try:
        return {r["item_id"]: r for r in store.replies(run_id)}
    finally:
        store.close()


def _requests(server: RunningServer) -> dict[str, int]:
    return {k: v["requests"] for k, v in server.stats()["items"].items()}


def _run(server: RunningServer, tmp_path: Path, name: str, cs: CalibrationSet,
         run: dict[str, Any] | None = None, **judge: Any) -> tuple[Any, str]:
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    store = open_store(url)
    try:
        result = execute_run(run_config(server.url, url, run=run, **judge), store, cs)
    finally:
        store.close()
    return result, url


KEPT = ("status", "score", "label", "raw_text", "unscored_reason", "prompt_tokens",
        "completion_tokens", "served_model", "system_fingerprint", "finish_reason", "attempts",
        "prompt_sha256")


@pytest.mark.parametrize("order", ["shuffled", "reversed"])
def test_a_batch_run_gives_the_live_run_s_replies_item_for_item(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet, order: str
) -> None:
    """Results come back in any order (shuffled, reversed): each lands on its own item, with
    the fields a live reply has; unparseable replies are re-asked live, as live re-asks."""
    recorded.configure(batch_order=order, model_id="gpt-3.5-turbo-0613",
                       system_fingerprint="fp_rec")
    live, live_url = _run(recorded, tmp_path, "live", pandalm_set, {"limit": 300})
    recorded.reset_stats()
    batch, batch_url = _run(recorded, tmp_path, "batch", pandalm_set, {"limit": 300}, **BATCH)
    assert batch.status == live.status == "completed"
    a, b = _replies(live_url, live.run_id), _replies(batch_url, batch.run_id)
    assert len(b) == 300
    assert {k: [r[f] for f in KEPT] for k, r in b.items()} == \
        {k: [r[f] for f in KEPT] for k, r in a.items()}
    # A batch has no latency per reply (the live re-asks have theirs).
    assert all(r["latency_ms"] is None for r in b.values() if r["attempts"] == 1)
    for key in ("scored", "unscored", "unscored_reasons", "tokens", "observed_fingerprint"):
        assert batch.summary[key] == live.summary[key], key
    stats = recorded.stats()
    assert stats["batches"]["created"] == 1 and stats["batches"]["lines_answered"] == 300
    # Each item asked once in the batch; the unparseable ones re-asked live twice more.
    garbage = {k for k, r in b.items() if r["status"] == UNSCORED}
    assert garbage and {r["unscored_reason"] for k, r in b.items() if k in garbage} == \
        {"no_verdict_found"}
    requests = _requests(recorded)
    assert {n for k, n in requests.items() if k not in garbage} == {1}
    assert {requests[k] for k in garbage} == {3}
    assert stats["repeated_requests"] == 0  # a re-ask is never the identical request
    assert batch.requested == 300 + 2 * len(garbage)
    (info,) = batch.summary["batches"]
    assert info["status"] == "completed" and info["asked_live"] == len(garbage)


def test_partial_failures_are_asked_again_live_or_unscored_with_their_reason(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    faults = {"500": 0.08, "429": 0.05, "context-length": 0.04, "html": 0.03, "junk": 0.04}
    recorded.configure(faults=faults, seed=3, retry_after_s=0.01)
    result, url = _run(recorded, tmp_path, "b", pandalm_set, {"limit": 200},
                       backoff_base_s=0.01, backoff_max_s=0.02, **BATCH)
    replies = _replies(url, result.run_id)
    first = {i.id: draw_fault(faults, 3, f"{MODEL}\x00{i.id}\x001")[0]
             for i in pandalm_set.items[:200]}
    final = [k for k, f in first.items() if f == "context-length"]
    transient = [k for k, f in first.items() if f in ("500", "429", "html")]
    junk = [k for k, f in first.items() if f == "junk"]
    assert final and transient and junk
    requests = _requests(recorded)
    for k in final:  # a final error: unscored with its reason, never asked again
        assert replies[k]["status"] == UNSCORED
        assert replies[k]["unscored_reason"] == "context_length_exceeded"
        assert requests[k] == 1
    for k in transient + junk:  # asked again live, through the client's retries
        assert requests[k] >= 2
        assert replies[k]["status"] in (SCORED, UNSCORED, FAILED)
        assert replies[k]["attempts"] >= 2
    assert sum(replies[k]["status"] == SCORED for k in transient + junk) >= \
        0.8 * len(transient + junk)
    assert len(replies) == 200 and result.status == "completed"
    (info,) = result.summary["batches"]
    assert info["asked_live"] >= len(transient) + len(junk)
    assert recorded.stats()["batches"]["created"] == 1


def _batch_id(url: str) -> str | None:
    store = open_store(url)
    try:
        runs = store.list_runs()
        rows = store.run_batches(runs[0]["run_id"]) if runs else []
        return next((r["batch_id"] for r in rows if r["batch_id"]), None)
    finally:
        store.close()


def test_a_run_killed_after_submitting_resumes_the_same_batch(
    recorded: RunningServer, tmp_path: Path
) -> None:
    """SIGKILL once the batch is created: the next invocation waits for that batch (the
    server sees one batch submitted) and pays for nothing again."""
    recorded.configure(batch_polls=10**6)  # in progress until the test says otherwise
    box = Sandbox(tmp_path)
    url = box.sqlite_url("s.db")
    cfg = box.write_config("n", base_url=recorded.url, store=url, run={"limit": 120},
                           judge=BATCH)
    proc = box.start("run", "--config", str(cfg), "--json")
    deadline = time.monotonic() + 120
    batch_id = None
    while time.monotonic() < deadline and proc.poll() is None:
        if (tmp_path / "s.db").exists() and (batch_id := _batch_id(url)):
            break
        time.sleep(0.05)
    assert batch_id is not None and proc.poll() is None, "the batch was not submitted"
    time.sleep(0.2)  # a few looks at the batch
    kill(proc)
    assert recorded.stats()["batches"]["created"] == 1

    recorded.configure(batch_polls=0)
    again = box.judgecal("run", "--config", str(cfg), "--json")
    assert again.returncode == 5, again.stderr  # healthy, no baseline yet: not monitored
    payload = json.loads(again.stdout)
    assert payload["resumed"] is True
    summary = payload["summary"]
    assert summary["scored"] + summary["unscored"] == 120
    (info,) = summary["batches"]
    assert info["batch_id"] == batch_id and info["resumed"] is True
    stats = recorded.stats()
    assert stats["batches"]["created"] == 1 and stats["batches"]["files_uploaded"] == 1
    assert stats["batches"]["lines_answered"] == 120
    garbage = summary["unscored"]
    assert summary["requested_now"] == 2 * garbage  # only the live re-asks: nothing again
    assert sorted(set(_requests(recorded).values())) == ([1, 3] if garbage else [1])


def test_an_expired_batch_keeps_its_finished_part_and_the_run_is_inconclusive(
    recorded: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded.configure(batch_expire=0.5, batch_order="input")
    box = Sandbox(tmp_path)
    url = box.sqlite_url("s.db")
    cfg = box.write_config("n", base_url=recorded.url, store=url, run={"limit": 100},
                           judge=BATCH)
    code, out, err = run_main(["run", "--config", str(cfg), "--json"], capsys)
    assert code == 3, err  # inconclusive
    payload = json.loads(out)
    summary = payload["summary"]
    assert "expired" in summary["stopped_because"]
    assert "50 of 100 requests were not answered" in summary["stopped_because"]
    assert summary["missing"] == 50 and summary["scored"] + summary["unscored"] == 50
    replies = _replies(url, payload["run_id"])
    assert set(replies) == {i.id for i in pandalm_items(100)[:50]}  # the finished half
    (info,) = summary["batches"]
    assert info["status"] == "expired" and info["not_run"] == 50
    assert info.get("asked_live", 0) == 0  # nothing more is paid for an inconclusive night
    assert recorded.stats()["batches"]["created"] == 1


def pandalm_items(n: int) -> list[Any]:
    from judgecal.calibration import load_set

    return load_set(SETS / "pandalm").items[:n]


def test_the_deadline_stops_polling_and_cancels_the_batch(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    recorded.configure(batch_polls=10**6)
    started = time.monotonic()
    result, _ = _run(recorded, tmp_path, "b", pandalm_set,
                     {"limit": 40, "deadline_s": 1.0}, batch=True, batch_poll_s=0.1)
    assert time.monotonic() - started < 15
    assert result.status == INCONCLUSIVE
    assert "deadline of 1 s (run.deadline_s)" in result.summary["stopped_because"]
    assert "was in_progress: it was cancelled" in result.summary["stopped_because"]
    stats = recorded.stats()["batches"]
    assert stats["cancelled"] == 1 and stats["looks"] <= 15
    (info,) = result.summary["batches"]
    assert info["status"] == "cancelled" and info["cancelled_by"] == "run.deadline_s"


def test_a_batch_that_fails_validation_makes_the_run_inconclusive_with_its_errors(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    with httpx.Client(base_url=recorded.url + "/") as http:
        up = http.post("files", data={"purpose": "batch"},
                       files={"file": ("x.jsonl", b'{"custom_id": "a"}\nnot json\n')}).json()
        made = http.post("batches", json={"input_file_id": up["id"], "completion_window": "24h",
                                          "endpoint": "/v1/chat/completions"}).json()
        got = http.get(f"batches/{made['id']}").json()
    assert got["status"] == "failed"
    assert [e["line"] for e in got["errors"]["data"]] == [1, 2]
    assert _requests(recorded) == {}


def test_an_endpoint_without_a_batch_api_is_named(
    tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    with start_server(recordings={"*": f"pandalm:{MODEL}"}, sets_dir=SETS,
                      profile="llamacpp") as server, \
            pytest.raises(JudgeError, match="no batch API"):
        _run(server, tmp_path, "b", pandalm_set, {"limit": 30}, **BATCH)


def test_a_kill_between_creating_the_batch_and_storing_its_id_finds_the_batch(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The input file is stored before the batch is created; a resumed run whose batch id
    was never stored looks the batch up by that file instead of creating another."""
    from judgecal.judge.batch import BatchAPI

    create = BatchAPI.create

    def create_then_die(self: BatchAPI, *args: Any, **kwargs: Any) -> Any:
        create(self, *args, **kwargs)
        raise KeyboardInterrupt  # killed before the batch id reached the store

    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = run_config(recorded.url, url, run={"limit": 30}, **BATCH)
    store = open_store(url)
    monkeypatch.setattr(BatchAPI, "create", create_then_die)
    with pytest.raises(KeyboardInterrupt):
        execute_run(cfg, store, pandalm_set)
    monkeypatch.setattr(BatchAPI, "create", create)
    (run,) = store.list_runs()
    (row,) = store.run_batches(run["run_id"])
    assert row["batch_id"] is None and row["state"] == "uploaded"
    again = execute_run(cfg, store, pandalm_set)
    store.close()
    assert again.run_id == run["run_id"] and again.status == "completed"
    assert recorded.stats()["batches"]["created"] == 1
    assert again.summary["batches"][0]["resumed"] is True
    assert set(_requests(recorded).values()) <= {1, 3}


def test_custom_ids_are_unique_and_short() -> None:
    ids = {custom_id(str(i), d, v) for i in range(2000) for d in ("a", "b")
           for v in ("original", "swapped")}
    assert len(ids) == 8000
    assert len(custom_id("x" * 300, "dim", "original")) == 64
