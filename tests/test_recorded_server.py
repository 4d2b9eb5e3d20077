"""The recorded judge over real HTTP on 127.0.0.1: replies, matching, faults, stats, CLI."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner

from judgecal.cli.main import cli
from judgecal.recorded import FAULT_KINDS, JUNK_REPLY, NO_VERDICT_REPLY
from judgecal.recorded.faults import MALFORMED_200
from judgecal.recorded.server import ITEM_HEADER, RunningServer, ServerConfig, start_server
from tests.conftest import SETS, TEST_DATA

ALIASES = {
    "gpt-3.5-turbo": "pandalm:gpt-3.5-turbo",
    "pandalm-7b": "pandalm:pandalm-7b",
    "gpt-4": "llmbar:GPT-4/Vanilla",
    "gpt-4-rating": "llmbar:GPT-4/Rating",
    "palm2-cot": "llmbar:PaLM2/CoT",
}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


PANDALM = {r["id"]: r for r in _jsonl(SETS / "pandalm" / "items.jsonl")}
LLMBAR = {r["id"]: r for r in _jsonl(SETS / "llmbar" / "items.jsonl")}


def _recorded(set_name: str, name: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in _jsonl(SETS / set_name / "recorded" / f"{name}.jsonl")}


GPT35 = _recorded("pandalm", "gpt-3.5-turbo")
PANDALM7B = _recorded("pandalm", "pandalm-7b")
GPT4_VANILLA = _recorded("llmbar", "GPT-4/Vanilla")


def pandalm_prompt(item: dict[str, Any], swapped: bool = False) -> list[dict[str, str]]:
    r1, r2 = (item["response2"], item["response1"]) if swapped else (
        item["response1"], item["response2"])
    user = (
        "Compare two responses to the same task.\n\n"
        f"### Instruction:\n{item['instruction']}\n\n### Input:\n{item['input']}\n\n"
        f"### Response 1:\n{r1}\n\n### Response 2:\n{r2}\n\n"
        "Reply with 1 or 2 (0 for a tie) on the first line, then 'Reason:'."
    )
    return [{"role": "system", "content": "You are a careful evaluator."},
            {"role": "user", "content": user}]


def llmbar_prompt(item: dict[str, Any], swapped: bool = False) -> list[dict[str, str]]:
    a, b = (item["output_2"], item["output_1"]) if swapped else (item["output_1"], item["output_2"])
    user = (
        "Select the Output (a) or Output (b) that is better for the given instruction.\n\n"
        f"# Instruction:\n{item['input']}\n\n# Output (a):\n{a}\n\n# Output (b):\n{b}\n\n"
        '# Which is better, Output (a) or Output (b)? Answer "Output (a)" or "Output (b)":'
    )
    return [{"role": "user", "content": user}]


def body(model: str, messages: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": messages, **extra}


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with start_server(ServerConfig(recordings=ALIASES, sets_dir=SETS, timeout_sleep_s=5.0)) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url, api_key="sk-test-secret-key", max_retries=0,
                       timeout=10) as c:
        yield c


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


# --------------------------------------------------------------------------- PandaLM


def test_pandalm_prompt_gets_the_items_recorded_verdict_and_reason(
    client: openai.OpenAI,
) -> None:
    reply = client.chat.completions.create(
        model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
        extra_headers={ITEM_HEADER: "0"},
    )
    text = reply.choices[0].message.content
    assert text == ("1\n\nReason: Response 1 is better because it addresses both questions "
                    "about the rate and changes in project scope.")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "gpt-3.5-turbo"  # echoed, like llama.cpp
    assert reply.system_fingerprint is None
    assert reply.id.startswith("chatcmpl-") and reply.created > 0
    assert reply.usage is not None
    assert reply.usage.completion_tokens == -(-len(text) // 4)
    assert reply.usage.prompt_tokens > 100
    # The same prompt to PandaLM-7B gets that judge's verdict (it disagrees here).
    other = client.chat.completions.create(
        model="pandalm-7b", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
    )
    assert other.choices[0].message.content == (
        "2\n\nReason: " + PANDALM7B["0"]["reason"])


def test_pandalm_recordings_match_the_source_data() -> None:
    source = _jsonl(TEST_DATA / "pandalm" / "items_with_judges.jsonl")
    for row in source:
        rec = GPT35[str(row["idx"])]
        if row["gpt35_verdict"] == "garbage":
            assert rec["verdict"] is None and rec["source_verdict"] == "garbage"
        else:
            assert (rec["verdict"], rec["reason"]) == (row["gpt35_verdict"], row["gpt35_reason"])
        rec7 = PANDALM7B[str(row["idx"])]
        assert (rec7["verdict"], rec7["reason"]) == (row["pandalm7b_verdict"],
                                                     row["pandalm7b_reason"])


def test_garbage_items_get_a_reply_without_a_verdict(client: openai.OpenAI) -> None:
    garbage = [i for i, r in GPT35.items() if r["verdict"] is None]
    assert len(garbage) == 25
    for item_id in garbage[:5]:
        reply = client.chat.completions.create(
            model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM[item_id]),  # type: ignore[arg-type]
            extra_headers={ITEM_HEADER: item_id},
        )
        text = reply.choices[0].message.content or ""
        assert text == NO_VERDICT_REPLY
        assert reply.choices[0].finish_reason == "stop"
    assert not re.search(r"\d|Output \([ab]\)", NO_VERDICT_REPLY)


async def _all_pandalm(url: str, model: str) -> Counter[str]:
    sem = asyncio.Semaphore(32)
    async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=30) as c:

        async def one(item: dict[str, Any]) -> str:
            async with sem:
                reply = await c.chat.completions.create(
                    model=model, messages=pandalm_prompt(item),  # type: ignore[arg-type]
                    extra_headers={ITEM_HEADER: item["id"]},
                )
            return _first_line(reply.choices[0].message.content or "")

        return Counter(await asyncio.gather(*(one(i) for i in PANDALM.values())))


def _first_line(text: str) -> str:
    m = re.match(r"([012])\n", text)
    return m.group(1) if m else "no_verdict"


def test_all_pandalm_items_reproduce_the_published_verdict_counts(server: RunningServer) -> None:
    """999 items through the gpt-3.5 recording with the async openai client, 32 at a time."""
    expected = {"1": 460, "2": 476, "0": 38, "no_verdict": 25}
    assert asyncio.run(_all_pandalm(server.url, "gpt-3.5-turbo")) == expected
    stats = server.stats()
    assert stats["requests"] == stats["replies"] == 999
    assert {v["requests"] for v in stats["items"].values()} == {1}  # no item requested twice
    assert len(stats["items"]) == 999
    assert stats["models"] == {"gpt-3.5-turbo": {"requests": 999, "served": 999}}


def test_pandalm_7b_recording_reproduces_its_verdict_counts(http: httpx.Client) -> None:
    seen: Counter[str] = Counter()
    for item in PANDALM.values():
        r = http.post("/chat/completions", json=body("pandalm-7b", pandalm_prompt(item)),
                      headers={ITEM_HEADER: item["id"]})
        seen[_first_line(r.json()["choices"][0]["message"]["content"])] += 1
    assert seen == {"1": 433, "2": 459, "0": 107}


def test_whitespace_and_content_parts_do_not_matter(http: httpx.Client) -> None:
    item = PANDALM["0"]
    flat = " ".join(pandalm_prompt(item)[1]["content"].split())
    messages = [{"role": "user", "content": [{"type": "text", "text": flat}]}]
    r = http.post("/chat/completions", json=body("gpt-3.5-turbo", messages))
    assert r.status_code == 200
    assert r.headers[ITEM_HEADER] == "0"


def test_pandalm_swapped_prompt_has_no_recorded_verdict(http: httpx.Client) -> None:
    r = http.post("/chat/completions",
                  json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM["0"], swapped=True)),
                  headers={ITEM_HEADER: "0"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_recorded_verdict"


# --------------------------------------------------------------------------- matching


def test_unmatched_prompt_is_an_explicit_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(
            model="gpt-3.5-turbo", messages=[{"role": "user", "content": "Is the sky blue?"}],
        )
    assert exc.value.status_code == 404
    assert exc.value.code == "no_recorded_item"
    assert exc.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def _duplicate_groups() -> tuple[list[list[str]], list[list[str]]]:
    """PandaLM items with identical texts: (groups with differing gpt-3.5 replies, same)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for item_id, item in PANDALM.items():
        key = tuple(str(item[k]) for k in ("instruction", "input", "response1", "response2"))
        groups.setdefault(key, []).append(item_id)
    dups = [g for g in groups.values() if len(g) > 1]
    assert (len(dups), sum(map(len, dups))) == (71, 170)

    def reply(i: str) -> tuple[Any, Any]:
        return GPT35[i]["verdict"], GPT35[i]["reason"]

    conflicting = [g for g in dups if len({reply(i) for i in g}) > 1]
    same = [g for g in dups if len({reply(i) for i in g}) == 1]
    return conflicting, same


def test_ambiguous_prompt_is_409_unless_the_header_names_the_item(http: httpx.Client) -> None:
    conflicting, same = _duplicate_groups()
    assert len(conflicting) == 12
    group = conflicting[0]
    messages = pandalm_prompt(PANDALM[group[0]])
    r = http.post("/chat/completions", json=body("gpt-3.5-turbo", messages))
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "ambiguous_prompt"
    assert error["type"] == "invalid_request_error"
    assert "ambiguous: matches items" in error["message"]
    assert all(f"'{i}'" in error["message"] for i in group)
    for item_id in group:
        r = http.post("/chat/completions", json=body("gpt-3.5-turbo", messages),
                      headers={ITEM_HEADER: item_id})
        assert r.status_code == 200
        assert r.headers[ITEM_HEADER] == item_id
        rec = GPT35[item_id]
        expected = NO_VERDICT_REPLY if rec["verdict"] is None else (
            f"{rec['verdict']}\n\nReason: {rec['reason']}".rstrip())
        assert r.json()["choices"][0]["message"]["content"] == expected
    # Identical texts with identical recorded replies need no header.
    twin = pandalm_prompt(PANDALM[same[0][0]])
    r = http.post("/chat/completions", json=body("gpt-3.5-turbo", twin))
    assert r.status_code == 200


def test_header_naming_an_item_not_in_the_prompt_is_ignored(http: httpx.Client) -> None:
    r = http.post("/chat/completions", json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM["0"])),
                  headers={ITEM_HEADER: "500"})
    assert r.status_code == 200
    assert r.headers[ITEM_HEADER] == "0"


def test_unknown_model_is_model_not_found(http: httpx.Client) -> None:
    r = http.post("/chat/completions", json=body("gpt-5", pandalm_prompt(PANDALM["0"])))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


# --------------------------------------------------------------------------- LLMBar


def _llmbar_expected(row: dict[str, Any], swapped: bool) -> str:
    winner = row["winner_swapped"] if swapped else row["winner"]
    if winner is None:
        return NO_VERDICT_REPLY
    first_won = (winner == 1) != swapped
    return "Output (a)" if first_won else "Output (b)"


def test_llmbar_swapped_prompt_gets_the_swapped_verdict(http: httpx.Client) -> None:
    # Natural#0: GPT-4 picked output_1 in both orders, so the swapped prompt says "(b)".
    biased = next(i for i, r in GPT4_VANILLA.items() if r["winner"] == r["winner_swapped"] == 1)
    for swapped, expected in ((False, "Output (a)"), (True, "Output (b)")):
        r = http.post("/chat/completions",
                      json=body("gpt-4", llmbar_prompt(LLMBAR[biased], swapped)))
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == expected
        assert r.headers["X-Judgecal-Swapped"] == str(int(swapped))


def test_every_llmbar_item_in_both_orders(server: RunningServer, http: httpx.Client) -> None:
    """All 419 items, original and swapped, without the header: the recorded verdicts."""
    inconsistent = 0
    for item_id, item in LLMBAR.items():
        row = GPT4_VANILLA[item_id]
        inconsistent += row["winner"] != row["winner_swapped"]
        for swapped in (False, True):
            r = http.post("/chat/completions", json=body("gpt-4", llmbar_prompt(item, swapped)))
            assert r.status_code == 200, (item_id, r.text)
            assert r.headers[ITEM_HEADER] == item_id
            assert r.json()["choices"][0]["message"]["content"] == _llmbar_expected(row, swapped)
    assert inconsistent > 0  # real position bias is in the data
    assert server.stats()["replies"] == 838


def test_llmbar_rating_strategy_replies_with_scores_in_prompt_order(http: httpx.Client) -> None:
    rating = _recorded("llmbar", "GPT-4/Rating")["Natural#0"]
    s1, s2 = int(rating["score_1"]), int(rating["score_2"])
    item = LLMBAR["Natural#0"]
    r = http.post("/chat/completions", json=body("gpt-4-rating", llmbar_prompt(item)))
    assert r.json()["choices"][0]["message"]["content"] == f"Output (a): {s1}\nOutput (b): {s2}"
    r = http.post("/chat/completions", json=body("gpt-4-rating", llmbar_prompt(item, True)))
    assert r.json()["choices"][0]["message"]["content"] == f"Output (a): {s2}\nOutput (b): {s1}"


def test_llmbar_empty_winner_is_a_reply_without_verdict(http: httpx.Client) -> None:
    palm = _recorded("llmbar", "PaLM2/CoT")
    item_id = next(i for i, r in palm.items() if r["winner"] is None)
    r = http.post("/chat/completions", json=body("palm2-cot", llmbar_prompt(LLMBAR[item_id])))
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == NO_VERDICT_REPLY


# --------------------------------------------------------------------------- protocol


def test_model_id_and_system_fingerprint_are_reported(server: RunningServer) -> None:
    with start_server(recordings="pandalm:gpt-3.5-turbo", sets_dir=SETS,
                      model_id="gpt-3.5-turbo-0125", system_fingerprint="fp_abc123") as srv:
        c = openai.OpenAI(base_url=srv.url, api_key="x", max_retries=0)
        reply = c.chat.completions.create(
            model="any-alias", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
        )
        assert reply.model == "gpt-3.5-turbo-0125"
        assert reply.system_fingerprint == "fp_abc123"
        assert [m.id for m in c.models.list()] == ["gpt-3.5-turbo"]
        c.close()


def test_models_lists_the_aliases(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == list(ALIASES)


def test_streaming_reply_ends_with_finish_reason_and_done(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    stream = client.chat.completions.create(
        model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
        stream=True, stream_options={"include_usage": True},
    )
    parts, finishes, usage = [], [], None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            finishes.append(choice.finish_reason)
    assert "".join(parts).startswith("1\n\nReason: Response 1 is better")
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert usage is not None and usage.completion_tokens > 0
    raw = http.post("/chat/completions",
                    json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM["0"]), stream=True))
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_max_tokens_cuts_the_reply_with_finish_reason_length(http: httpx.Client) -> None:
    for param in ("max_tokens", "max_completion_tokens"):
        r = http.post("/chat/completions",
                      json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM["0"]), **{param: 3}))
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "length"
        assert choice["message"]["content"] == "1\n\nReason: Response 1"[:12]
    r = http.post("/chat/completions",
                  json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM["0"]), max_tokens=256))
    assert r.json()["choices"][0]["finish_reason"] == "stop"


def test_bad_request_bodies(http: httpx.Client) -> None:
    r = http.post("/chat/completions", content=b"{not json",
                  headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = http.post("/chat/completions", json={"model": "gpt-4"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_authorization_header_is_never_logged(
    client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="judgecal.recorded"):
        client.chat.completions.create(
            model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
        )
    assert "POST /v1/chat/completions" in caplog.text
    assert "sk-test-secret-key" not in caplog.text
    assert "Bearer" not in caplog.text


# --------------------------------------------------------------------------- faults

RATES = {
    "429": 0.08, "429-no-retry-after": 0.04, "500": 0.04, "502": 0.04, "503": 0.04,
    "context-length": 0.04, "drop": 0.04, "junk": 0.08, "empty": 0.04,
    "truncated-stream": 0.04,
}


def _observe(http: httpx.Client, item_ids: list[str], stream: bool = False) -> list[str]:
    """Send one request per item id and classify what came back."""
    seen = []
    for item_id in item_ids:
        try:
            r = http.post("/chat/completions",
                          json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM[item_id]),
                                    stream=stream),
                          headers={ITEM_HEADER: item_id})
        except httpx.RemoteProtocolError:
            seen.append("drop")
            continue
        if r.status_code == 429:
            seen.append("429" if "retry-after" in r.headers else "429-no-retry-after")
        elif r.status_code == 400:
            assert r.json()["error"]["code"] == "context_length_exceeded"
            seen.append("context-length")
        elif r.status_code >= 500:
            assert r.json()["error"]["type"] == "server_error"
            seen.append(str(r.status_code))
        else:
            assert r.status_code == 200
            choice = r.json()["choices"][0]
            text = choice["message"]["content"]
            if choice["finish_reason"] is None:
                seen.append("truncated-stream")
            elif text == JUNK_REPLY:
                seen.append("junk")
            elif text == "":
                seen.append("empty")
            else:
                seen.append("ok")
    return seen


def test_each_fault_kind_happens_at_its_rate(server: RunningServer, http: httpx.Client) -> None:
    server.configure(faults=RATES, seed=7, retry_after_s=2)
    ids = list(PANDALM)[:900]
    # Duplicate texts need the header; every id here is sent with it.
    seen = Counter(_observe(http, ids))
    n = len(ids)
    for kind, rate in RATES.items():
        sd = (n * rate * (1 - rate)) ** 0.5
        assert abs(seen[kind] - n * rate) <= 4 * sd, (kind, seen[kind], n * rate)
    assert seen["ok"] + sum(seen[k] for k in RATES) == n
    stats = server.stats()
    assert stats["faults"] == {k: v for k, v in seen.items() if k != "ok"}
    assert stats["replies"] == seen["ok"]
    # Every kind is drawn here but the slow one and the hostile replies (tests/test_unattended.py
    # drives those through the client: they are about how it copes, not about the draw), and
    # the two of a llama.cpp-like server (tests/test_llamacpp_profile.py, likewise).
    hostile = {*MALFORMED_200, "bad-usage", "echo-key", "no-finish-reason", "no-usage"}
    # rescore: a well-formed reply, told apart by its text (its own test below).
    assert set(FAULT_KINDS) - set(RATES) == {"timeout", "rescore", *hostile}


def test_rescore_answers_another_items_recorded_verdict(
    server: RunningServer, http: httpx.Client
) -> None:
    """A judge that does not repeat itself: a rescored reply is a verdict the judge recorded
    for another item, well-formed and served; replays of one item meet it at its rate."""
    ids = list(PANDALM)[:40]

    def replies() -> dict[str, str]:
        out = {}
        for item_id in ids:
            r = http.post("/chat/completions",
                          json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM[item_id])),
                          headers={ITEM_HEADER: item_id})
            assert r.status_code == 200
            out[item_id] = r.json()["choices"][0]["message"]["content"]
        return out

    server.configure(faults={})
    own = replies()
    server.configure(faults={"rescore": 1.0}, seed=5)
    server.reset_stats()
    rescored = replies()
    stats = server.stats()
    assert stats["faults"] == {"rescore": len(ids)} and stats["replies"] == len(ids)
    verdict = re.compile(r"^(1|2|Tie)\n\nReason: \S")  # as the judge recorded them
    assert all(verdict.match(text) for text in own.values())
    for item_id, text in rescored.items():
        assert text != own[item_id] and verdict.match(text), (item_id, text)
    assert len(set(rescored.values())) > len(ids) // 2  # drawn, not one fixed verdict
    server.configure(faults={"rescore": 0.25})
    changed = sum(a != own[k] for k, a in replies().items()) + sum(
        a != own[k] for k, a in replies().items())
    assert 5 <= changed <= 35  # 20 expected of 80 replays


def test_429_carries_retry_after(server: RunningServer, http: httpx.Client) -> None:
    server.configure(faults={"429": 1.0}, retry_after_s=3)
    r = http.post("/chat/completions", json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM["0"])))
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    server.configure(faults={"429-no-retry-after": 1.0})
    r = http.post("/chat/completions", json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM["0"])))
    assert r.status_code == 429 and "retry-after" not in r.headers


def test_fault_draws_are_reproducible_per_item_and_attempt(
    server: RunningServer, http: httpx.Client
) -> None:
    server.configure(faults={"500": 0.3, "junk": 0.2}, seed=11)
    ids = list(PANDALM)[:60]
    first = _observe(http, ids) + _observe(http, ids)  # attempts 1 and 2
    server.reset_stats()  # attempt numbers start again
    # Another order, many at once: the same item and attempt meet the same fault.
    with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=server.url, timeout=10) as h2:
        again = list(pool.map(lambda i: _observe(h2, [i])[0], ids))
    assert again == first[:60]
    server.configure(seed=12)
    server.reset_stats()
    assert _observe(http, ids) != first[:60]


def test_drop_fault_closes_the_connection(server: RunningServer, client: openai.OpenAI) -> None:
    server.configure(faults={"drop": 1.0})
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(
            model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
        )
    server.configure(faults={})
    ok = client.chat.completions.create(
        model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
    )
    assert ok.choices[0].finish_reason == "stop"


def test_truncated_stream_ends_without_finish_reason(
    server: RunningServer, client: openai.OpenAI
) -> None:
    server.configure(faults={"truncated-stream": 1.0})
    stream = client.chat.completions.create(
        model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
        stream=True,
    )
    chunks = list(stream)
    assert chunks and all(c.choices[0].finish_reason is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert 0 < len(text) < len(GPT35["0"]["reason"])
    assert server.stats()["replies"] == 0


def test_empty_and_junk_replies(server: RunningServer, client: openai.OpenAI) -> None:
    for kind, expected in (("empty", ""), ("junk", JUNK_REPLY)):
        server.configure(faults={kind: 1.0})
        reply = client.chat.completions.create(
            model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
        )
        assert reply.choices[0].message.content == expected
        assert reply.choices[0].finish_reason == "stop"
    assert not re.search(r"\d|Output \([ab]\)", JUNK_REPLY)


def test_timeout_fault_outwaits_the_client_then_answers_a_patient_one(
    server: RunningServer,
) -> None:
    server.configure(faults={"timeout": 1.0}, timeout_sleep_s=1.0)
    impatient = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(
            model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
        )
    impatient.close()
    deadline = time.monotonic() + 3
    while server.stats()["client_disconnects"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["client_disconnects"] == 1  # the server noticed and gave up
    patient = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=5)
    started = time.monotonic()
    reply = patient.chat.completions.create(
        model="gpt-3.5-turbo", messages=pandalm_prompt(PANDALM["0"]),  # type: ignore[arg-type]
    )
    assert time.monotonic() - started >= 1.0
    assert reply.choices[0].message.content.startswith("1\n")  # type: ignore[union-attr]
    patient.close()


def test_never_answering_timeout_ends_when_the_server_stops() -> None:
    srv = start_server(recordings="pandalm:gpt-3.5-turbo", sets_dir=SETS,
                       faults={"timeout": 1.0}, timeout_sleep_s=None)
    c = httpx.Client(base_url=srv.url, timeout=10)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(c.post, "/chat/completions",
                              json=body("m", pandalm_prompt(PANDALM["0"])))
        time.sleep(0.3)
        assert not pending.done()
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(httpx.HTTPError):
            pending.result(timeout=5)
    c.close()


def test_64_slow_requests_are_served_concurrently(server: RunningServer) -> None:
    server.configure(latency_ms=400)

    async def go() -> float:
        async with httpx.AsyncClient(base_url=server.url, timeout=10,
                                     limits=httpx.Limits(max_connections=64)) as c:
            started = time.monotonic()
            rs = await asyncio.gather(*(
                c.post("/chat/completions",
                       json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM[str(i)])),
                       headers={ITEM_HEADER: str(i)})
                for i in range(64)
            ))
            assert {r.status_code for r in rs} == {200}
            return time.monotonic() - started

    elapsed = asyncio.run(go())
    assert 0.4 <= elapsed < 2.5


# --------------------------------------------------------------------------- stats, config


def test_stats_count_requests_per_item(server: RunningServer, http: httpx.Client) -> None:
    for item_id in ("1", "1", "2"):
        http.post("/chat/completions",
                  json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM[item_id])),
                  headers={ITEM_HEADER: item_id})
    http.post("/chat/completions", json=body("gpt-3.5-turbo", [{"role": "user", "content": "?"}]))
    stats = http.get(server.base_url + "/_judgecal/stats").json()
    assert stats["items"] == {"1": {"requests": 2, "served": 2}, "2": {"requests": 1, "served": 1}}
    assert stats["requests"] == 4 and stats["replies"] == 3
    assert stats["errors"] == {"no_recorded_item": 1}
    assert stats["by_status"] == {"200": 3, "404": 1}
    assert http.post(server.base_url + "/_judgecal/reset-stats").status_code == 200
    assert server.stats()["items"] == {} and server.stats()["requests"] == 0


def test_runtime_reconfiguration_swaps_the_model_behind_the_alias(
    server: RunningServer, http: httpx.Client
) -> None:
    def ask() -> httpx.Response:
        return http.post("/chat/completions",
                         json=body("gpt-3.5-turbo", pandalm_prompt(PANDALM["0"])),
                         headers={ITEM_HEADER: "0"})

    before = ask().json()
    r = http.post(server.base_url + "/_judgecal/config",
                  json={"recordings": {"gpt-3.5-turbo": "pandalm:pandalm-7b"}})
    assert r.status_code == 200
    assert r.json()["recordings"] == {"gpt-3.5-turbo": "pandalm:pandalm-7b"}
    after = ask().json()
    assert before["choices"][0]["message"]["content"].startswith("1\n")
    assert after["choices"][0]["message"]["content"].startswith("2\n")
    assert after["model"] == before["model"] == "gpt-3.5-turbo"  # a silent swap
    server.configure(model_id="pandalm-7b", latency_ms=50)
    started = time.monotonic()
    assert ask().json()["model"] == "pandalm-7b"
    assert time.monotonic() - started >= 0.05
    assert http.get(server.base_url + "/_judgecal/config").json()["model_id"] == "pandalm-7b"
    for bad in ({"recordings": "pandalm:nope"}, {"faults": {"418": 0.5}},
                {"faults": {"500": 0.8, "429": 0.5}}, {"faults": None}, {"port": 1},
                {"latency_ms": -1}, {"seed": "x"}, {"recordings": {}}):
        r = http.post(server.base_url + "/_judgecal/config", json=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "invalid_config"
    assert server.config.recordings == {"gpt-3.5-turbo": "pandalm:pandalm-7b"}


def test_start_server_rejects_unknown_recordings() -> None:
    from judgecal.errors import InputError

    with pytest.raises(InputError, match="no recording 'pandalm:gpt-9'"):
        start_server(recordings="pandalm:gpt-9", sets_dir=SETS)
    with pytest.raises(InputError, match="unknown fault kind"):
        ServerConfig(faults={"teapot": 0.1})


# --------------------------------------------------------------------------- CLI, build


def test_cli_lists_recordings() -> None:
    result = CliRunner().invoke(cli, ["serve-recorded", "--list", "--sets-dir", str(SETS)],
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert re.search(r"^pandalm:gpt-3\.5-turbo\s+999 items\s+0=38 1=460 2=476 no_verdict=25$",
                     result.output, re.M)
    assert "llmbar:GPT-4/Vanilla " in result.output
    result = CliRunner().invoke(cli, ["serve-recorded", "--list", "--json"],
                                catch_exceptions=False)  # sets dir from $JUDGECAL_SETS_DIR
    specs = {r["spec"] for r in json.loads(result.output)}
    assert len(specs) == 2 + 65  # 6 LLMBar judges, 65 judge × strategy pairs
    assert {"pandalm:pandalm-7b", "llmbar:ChatGPT/CoT", "llmbar:GPT-4/Rating"} <= specs


def test_cli_rejects_bad_options() -> None:
    result = CliRunner().invoke(cli, ["serve-recorded", "--fault", "teapot=0.1"])
    assert result.exit_code == 2 and "unknown fault kind" in result.output
    result = CliRunner().invoke(cli, ["serve-recorded", "--fault", "429=2"])
    assert result.exit_code == 2 and "between 0 and 1" in result.output


def test_build_script_regenerates_the_recordings(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "build_recordings", SETS / "tools" / "build_recordings.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("pandalm", "llmbar"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "items.jsonl").write_bytes((SETS / name / "items.jsonl").read_bytes())
    module.build_pandalm(TEST_DATA, tmp_path)
    module.build_llmbar(TEST_DATA, tmp_path)
    for name in ("pandalm", "llmbar"):
        built = sorted(p.relative_to(tmp_path) for p in (tmp_path / name / "recorded").rglob("*")
                       if p.is_file())
        shipped = sorted(p.relative_to(SETS) for p in (SETS / name / "recorded").rglob("*")
                         if p.is_file() and p.suffix in (".json", ".jsonl"))
        assert built == shipped
        for rel in built:
            assert (tmp_path / rel).read_bytes() == (SETS / rel).read_bytes(), rel


# --------------------------------------------------------------------------- matching rules


def _joined(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def test_no_pandalm_prompt_is_answered_for_another_item_without_the_header() -> None:
    """Without the header each prompt gets its own item, a same-text twin, or a 409."""
    from judgecal.recorded.recordings import AmbiguousPrompt, load_recording

    rec = load_recording("pandalm:gpt-3.5-turbo", SETS)

    def texts(i: str) -> tuple[str, ...]:
        return tuple(" ".join(str(PANDALM[i][k]).split())
                     for k in ("instruction", "input", "response1", "response2"))

    outcomes: Counter[str] = Counter()
    for item_id in PANDALM:
        try:
            served = rec.resolve(_joined(pandalm_prompt(PANDALM[item_id])))
        except AmbiguousPrompt as exc:
            assert item_id in exc.candidates
            outcomes["ambiguous"] += 1
            continue
        assert texts(served.item_id) == texts(item_id)
        outcomes["own" if served.item_id == item_id else "twin"] += 1
    assert outcomes["own"] > 850 and outcomes["ambiguous"] < 60


def test_texts_inside_other_texts_resolve_to_the_right_item() -> None:
    from judgecal.recorded.recordings import AmbiguousPrompt, load_recording

    rec = load_recording("pandalm:gpt-3.5-turbo", SETS)
    # 277: response2 repeats the input; 278: response2 is the input's first sentence.
    assert PANDALM["277"]["response2"] == PANDALM["277"]["input"]
    assert PANDALM["278"]["input"].startswith(PANDALM["278"]["response2"])
    for item_id in ("277", "278"):
        assert rec.resolve(_joined(pandalm_prompt(PANDALM[item_id]))).item_id == item_id
    # 157/159/164 are (True, "True.") and 161 is ("True.", True): the mirror image is not a
    # candidate, the identical triple is (and its replies differ).
    with pytest.raises(AmbiguousPrompt) as exc:
        rec.resolve(_joined(pandalm_prompt(PANDALM["157"])))
    assert exc.value.candidates == ["157", "159", "164"]
    assert rec.resolve(_joined(pandalm_prompt(PANDALM["161"]))).item_id == "161"
    # LLMBar Natural#85: output_1 "5" also occurs inside output_2 and the instruction.
    llm = load_recording("llmbar:GPT-4/Vanilla", SETS)
    for swapped in (False, True):
        got = llm.resolve(_joined(llmbar_prompt(LLMBAR["Natural#85"], swapped)))
        assert (got.item_id, got.swapped) == ("Natural#85", swapped)
