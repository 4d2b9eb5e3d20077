"""The judge client against a server that is not OpenAI: the recorded judge's ``llamacpp``
profile (model name echoed, no system_fingerprint, only ``max_tokens`` honoured, one request
at a time), over real HTTP, through the library and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from judgecal.calibration import CalibrationSet
from judgecal.config import Decoding, load_judge
from judgecal.judge.client import REASK_NOTE, JudgeClient
from judgecal.judge.fingerprint import served_half
from judgecal.judge.prompt import ORIGINAL, PromptRenderer
from judgecal.recorded import PROFILES
from judgecal.recorded.server import ITEM_HEADER, RunningServer, start_server
from judgecal.records import FAILED, SCORED, UNSCORED
from judgecal.runs.replay import execute_run
from judgecal.store import open_store
from tests.conftest import ROOT, SETS
from tests.helpers import run_config, run_main

JUDGE_FILE = "llamacpp-local.yaml"
GARBAGE_IN_FIRST_120 = 2
"""Items 114 and 116 of PandaLM: gpt-3.5-turbo gave no verdict (the recorded reply has none)."""


@pytest.fixture
def llamacpp() -> Iterator[RunningServer]:
    """A llama.cpp-like recorded judge; the model id and fingerprint settings must be ignored."""
    with start_server(recordings={"*": "pandalm:gpt-3.5-turbo"}, sets_dir=SETS,
                      profile="llamacpp", model_id="gpt-3.5-turbo-0613",
                      system_fingerprint="fp_should_not_show") as server:
        yield server


def _config(server: RunningServer, tmp_path: Path, name: str = "s", **over: Any) -> Any:
    run = {"limit": 40, "min_items": 1, **over.pop("run", {})}
    return run_config(server.url, f"sqlite:///{tmp_path / name}.db", judge_file=JUDGE_FILE,
                      run=run, backoff_base_s=0.0, backoff_max_s=0.0, **over)


def _replies(cfg: Any, run_id: str) -> list[dict[str, Any]]:
    return open_store(cfg.store).replies(run_id)


def _write_config(tmp_path: Path, base_url: str, limit: int = 30, **judge: Any) -> Path:
    """A run config and judge file on disk, for the CLI."""
    text = (ROOT / "configs" / "judges" / JUDGE_FILE).read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:8080/v1", base_url)
    text += "".join(f"{k}: {json.dumps(v)}\n" for k, v in judge.items())
    (tmp_path / "judge.yaml").write_text(text, encoding="utf-8")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"store: sqlite:///{tmp_path / 'cli.db'}\n"
        f"calibration_set: {SETS / 'pandalm'}\njudge: judge.yaml\n"
        f"run:\n  limit: {limit}\n  min_items: 1\n  bootstrap: 100\n",
        encoding="utf-8",
    )
    return cfg


# --------------------------------------------------------------------------- the server


def _request(server: RunningServer, cs: CalibrationSet, i: int, **extra: Any) -> dict[str, Any]:
    judge = load_judge(ROOT / "configs" / "judges" / JUDGE_FILE)
    item = cs.items[i]
    messages = PromptRenderer(judge).messages("preference", item.fields, ORIGINAL)
    r = httpx.post(f"{server.url}/chat/completions", timeout=30,
                   json={"model": "my-local-model", "messages": messages, **extra},
                   headers={ITEM_HEADER: item.id})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_profile_echoes_the_model_sends_no_fingerprint_and_reads_only_max_tokens(
    llamacpp: RunningServer, pandalm_set: CalibrationSet
) -> None:
    assert set(PROFILES) == {"default", "llamacpp"}
    full = _request(llamacpp, pandalm_set, 0, max_completion_tokens=2)
    assert full["model"] == "my-local-model"  # the configured model_id is ignored
    assert "system_fingerprint" not in full
    assert full["choices"][0]["finish_reason"] == "stop"  # max_completion_tokens ignored
    cut = _request(llamacpp, pandalm_set, 0, max_tokens=2)
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["choices"][0]["message"]["content"] == full["choices"][0]["message"]["content"][:8]
    # The default profile honours both and reports what it is told to.
    llamacpp.configure(profile="default")
    other = _request(llamacpp, pandalm_set, 0, max_completion_tokens=2)
    assert other["choices"][0]["finish_reason"] == "length"
    assert other["model"] == "gpt-3.5-turbo-0613"
    assert other["system_fingerprint"] == "fp_should_not_show"


def test_profile_answers_one_request_at_a_time(
    llamacpp: RunningServer, pandalm_set: CalibrationSet
) -> None:
    def four_at_once() -> float:
        started = time.perf_counter()
        threads = [threading.Thread(target=_request, args=(llamacpp, pandalm_set, i))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started

    llamacpp.configure(latency_ms=150)
    assert four_at_once() >= 0.6  # 4 × 150 ms, one after the other
    assert llamacpp.stats()["max_concurrent"] == 1
    llamacpp.configure(profile="default")
    llamacpp.reset_stats()
    four_at_once()
    assert llamacpp.stats()["max_concurrent"] > 1


def test_timeout_must_exceed_concurrency_times_the_slowest_reply(
    llamacpp: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    llamacpp.configure(latency_ms=300)
    # Three requests in flight, 300 ms each, one at a time: the later ones wait past 0.45 s.
    short = _config(llamacpp, tmp_path, "short", run={"limit": 3}, concurrency=3,
                    timeout_s=0.45, max_retries=0)
    result = execute_run(short, open_store(short.store), pandalm_set)
    failed = [r for r in _replies(short, result.run_id) if r["status"] == FAILED]
    assert failed and {r["unscored_reason"] for r in failed} == {"transient_failure: timeout"}
    generous = _config(llamacpp, tmp_path, "generous", run={"limit": 3}, concurrency=3,
                       timeout_s=3 * 0.3 * 4, max_retries=0)
    result = execute_run(generous, open_store(generous.store), pandalm_set)
    assert result.summary["scored"] == 3
    assert llamacpp.stats()["max_concurrent"] == 1


# --------------------------------------------------------------------------- fingerprint


def test_served_half_rule() -> None:
    echo = {"served_models": {"m": {"count": 5}}, "system_fingerprints": {}}
    informative, note = served_half(echo, "m")
    assert informative is False and note is not None
    assert "echoed the requested name 'm'" in note and "no system_fingerprint" in note
    with_fp = {**echo, "system_fingerprints": {"b4521-abc": 5}}
    informative, note = served_half(with_fp, "m")
    assert informative is True and note is not None and "only its system_fingerprint" in note
    assert served_half({"served_models": {"m-0613": {"count": 5}}}, "m") == (True, None)
    assert served_half({}, "m")[0] is False


def test_run_and_runs_show_say_the_served_model_half_is_uninformative(
    llamacpp: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _write_config(tmp_path, llamacpp.url)
    code, out, err = run_main(["run", "--config", str(cfg), "--verbose"], capsys)
    assert code == 5, err  # completed, no baseline yet
    expected = ("served-model fingerprint uninformative: the endpoint only echoed the "
                "requested name 'qwen2.5-7b-instruct' and sent no system_fingerprint")
    assert expected in out
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    code, shown, err = run_main(["--store", store, "runs", "show", "latest"], capsys)
    assert code == 0, err
    assert expected in shown
    code, raw, err = run_main(["--store", store, "runs", "show", "latest", "--json"], capsys)
    assert code == 0, err
    observed = json.loads(raw)["summary"]["observed_fingerprint"]
    assert observed["informative"] is False and "echoed" in observed["note"]


# --------------------------------------------------------------------------- re-asks


def test_reask_after_an_unparseable_reply_never_repeats_the_identical_request(
    llamacpp: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = _config(llamacpp, tmp_path, run={"limit": 120})
    result = execute_run(cfg, open_store(cfg.store), pandalm_set)
    unscored = [r for r in _replies(cfg, result.run_id) if r["status"] == UNSCORED]
    assert len(unscored) == GARBAGE_IN_FIRST_120
    stats = llamacpp.stats()
    for r in unscored:
        assert r["unscored_reason"] == "no_verdict_found" and r["attempts"] == 3
        assert stats["items"][r["item_id"]]["requests"] == 3  # 1 + parse_retries
    assert stats["requests"] == 120 + 2 * GARBAGE_IN_FIRST_120
    assert stats["repeated_requests"] == 0

    # What the client did before: the identical request again, paid for twice more per item.
    monkeypatch.setattr(JudgeClient, "_reask_kwargs", lambda self, kwargs, n: kwargs)
    llamacpp.reset_stats()
    again = _config(llamacpp, tmp_path, "again", run={"limit": 120})
    execute_run(again, open_store(again.store), pandalm_set)
    assert llamacpp.stats()["repeated_requests"] == 2 * GARBAGE_IN_FIRST_120


def test_reask_request_differs_by_note_and_seed() -> None:
    judge = load_judge(ROOT / "configs" / "judges" / JUDGE_FILE)
    client = JudgeClient(judge)
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    first = client._request_kwargs(messages, "7")
    one, two = client._reask_kwargs(first, 1), client._reask_kwargs(first, 2)
    assert first["messages"] == messages and first["seed"] == 1  # untouched
    assert one["messages"][-1]["content"] == "q" + REASK_NOTE.format(n=1)
    assert one["messages"][0] == messages[0]
    assert (one["seed"], two["seed"]) == (2, 3)
    assert len({json.dumps(k, sort_keys=True) for k in (first, one, two)}) == 3


# --------------------------------------------------------------------------- max_tokens


def test_max_tokens_is_sent_and_replies_cut_by_it_are_flagged(
    llamacpp: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    decoding = Decoding(temperature=0, max_tokens=3, max_tokens_param="both")
    cfg = _config(llamacpp, tmp_path, decoding=decoding)
    result = execute_run(cfg, open_store(cfg.store), pandalm_set)
    scored = [r for r in _replies(cfg, result.run_id) if r["status"] == SCORED]
    # "1\n\nReason: …" cut to 12 characters still shows its verdict: scored, but flagged.
    assert len(scored) == 40 and {r["finish_reason"] for r in scored} == {"length"}
    assert result.summary["truncated"] == 40

    # Sent only as max_completion_tokens, llama.cpp ignores the limit: whole replies.
    only = decoding.model_copy(update={"max_tokens_param": "max_completion_tokens"})
    cfg = _config(llamacpp, tmp_path, "only", decoding=only)
    result = execute_run(cfg, open_store(cfg.store), pandalm_set)
    assert {r["finish_reason"] for r in _replies(cfg, result.run_id)} == {"stop"}
    assert result.summary["truncated"] == 0


def test_a_cut_reply_without_a_verdict_is_unscored_as_truncated(
    llamacpp: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    judge = load_judge(ROOT / "configs" / "judges" / JUDGE_FILE)
    prompts = judge.prompts["preference"].model_copy(
        update={"parse": judge.prompts["preference"].parse.model_copy(
            update={"pattern": r"^\s*([012])\s+Reason:"})}
    )
    decoding = judge.decoding.model_copy(update={"max_tokens": 1})  # 4 characters: "1\n\nR"
    cfg = _config(llamacpp, tmp_path, run={"limit": 10}, decoding=decoding,
                  prompts={"preference": prompts})
    result = execute_run(cfg, open_store(cfg.store), pandalm_set)
    replies = _replies(cfg, result.run_id)
    assert {r["status"] for r in replies} == {UNSCORED}
    assert {r["unscored_reason"] for r in replies} == {"truncated"}
    assert {r["attempts"] for r in replies} == {3}
    assert result.summary["unscored_reasons"] == {"truncated": 10}
    code, shown, _ = run_main(["--store", cfg.store, "runs", "show", "latest"], capsys)
    assert code == 0
    assert "unscored because: truncated × 10" in shown


# --------------------------------------------------------------------------- finish, usage


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_without_a_finish_reason_is_a_failure_not_a_reply(
    llamacpp: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet,
    capsys: pytest.CaptureFixture[str], stream: bool,
) -> None:
    llamacpp.configure(faults={"no-finish-reason": 1.0})
    cfg = _config(llamacpp, tmp_path, run={"limit": 6}, stream=stream, max_retries=2)
    result = execute_run(cfg, open_store(cfg.store), pandalm_set)
    replies = _replies(cfg, result.run_id)
    reason = ("transient_failure: stream_ended_without_finish_reason" if stream
              else "transient_failure: no_finish_reason")
    assert [r["status"] for r in replies] == [FAILED] * 6
    assert {r["unscored_reason"] for r in replies} == {reason}
    assert all(r["score"] is None and r["attempts"] == 3 for r in replies)
    assert llamacpp.stats()["requests"] == 6 * 3
    assert result.status == "inconclusive"
    assert result.summary["unscored_reasons"] == {reason: 6}
    code, shown, _ = run_main(["--store", cfg.store, "runs", "show", "latest"], capsys)
    assert code == 0
    assert f"unscored because: {reason} × 6" in shown

    # At a partial rate the retries leave the scores of a clean run.
    flaky = _config(llamacpp, tmp_path, "flaky", run={"limit": 30}, stream=stream)
    clean = _config(llamacpp, tmp_path, "clean", run={"limit": 30}, stream=stream)
    llamacpp.configure(faults={"no-finish-reason": 0.3})
    a = execute_run(flaky, open_store(flaky.store), pandalm_set)
    llamacpp.configure(faults={})
    b = execute_run(clean, open_store(clean.store), pandalm_set)

    def scores(cfg: Any, run_id: str) -> dict[str, Any]:
        return {r["item_id"]: r["score"] for r in _replies(cfg, run_id)}

    assert scores(flaky, a.run_id) == scores(clean, b.run_id)


def test_replies_without_usage_store_unknown_token_counts_not_zero(
    llamacpp: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    llamacpp.configure(faults={"no-usage": 1.0})
    cfg = _config(llamacpp, tmp_path, run={"limit": 12})
    result = execute_run(cfg, open_store(cfg.store), pandalm_set)
    replies = _replies(cfg, result.run_id)
    assert {r["status"] for r in replies} == {SCORED}
    assert {(r["prompt_tokens"], r["completion_tokens"]) for r in replies} == {(None, None)}
    assert result.summary["tokens"] == {"prompt": None, "completion": None, "unknown": 12}
    code, shown, _ = run_main(["--store", cfg.store, "runs", "show", "latest"], capsys)
    assert code == 0
    assert "tokens: unknown (the endpoint reported no usage)" in shown


# --------------------------------------------------------------------------- debug output


def test_debug_http_prints_each_request_from_the_cli_without_the_key(
    llamacpp: RunningServer, tmp_path: Path
) -> None:
    cfg = _write_config(tmp_path, llamacpp.url, limit=5, api_key_required=True)
    key = "sk-judgecal-SENTINEL-debug-0a0a0a0a"
    env = {**os.environ, "LLAMA_API_KEY": key, "JUDGECAL_DEBUG_HTTP": "1",
           "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.run([sys.executable, "-m", "judgecal", "run", "--config", str(cfg),
                           "--verbose"], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 5, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "/chat/completions item=" in line]
    assert len(lines) == llamacpp.stats()["requests"] == 5
    assert all("max_tokens=256 max_completion_tokens=256" in line for line in lines)
    assert all("-> reply finish=stop tokens=" in line for line in lines)
    assert key not in proc.stderr and key not in proc.stdout
