"""A run: one replay of a calibration set through a judge, every reply persisted as it arrives.

The runner is resumable by construction. Before sending anything it asks the store
which (item, dimension, variant) already have a final reply in the unfinished run of
the same judge configuration and set version, and requests only the rest. A killed
run, started again with the same command, therefore never pays for a reply twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import queue
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from judgecal.config import JudgeConfig, RunConfig
from judgecal.errors import ConfigError, Problem
from judgecal.judge.client import JudgeClient, Outcome
from judgecal.judge.completion import token_count
from judgecal.judge.prompt import (
    ORIGINAL,
    SWAPPED,
    PromptRenderer,
    configured_fingerprint,
    parse_reply,
)
from judgecal.records import (
    FAILED,
    SCORED,
    UNSCORED,
    ReplyRecord,
    now,
)
from judgecal.redact import Redactor, install_log_filter, stored_url
from judgecal.runs.batch import BatchJob, replay_batch
from judgecal.runs.cost import UNSET_MAX_TOKENS, BudgetGate, price_of, run_cost
from judgecal.runs.summary import summarize_replies, unusable_replies
from judgecal.store import Store, run_lock

if TYPE_CHECKING:
    from judgecal.calibration import CalibrationSet

__all__ = [
    "ReplyCallback",
    "RunResult",
    "check_compatible",
    "execute_run",
    "lock_key",
    "new_run_id",
]


@dataclass
class RunResult:
    """What a run did and how it ended."""

    run_id: str
    status: str
    resumed: bool
    requested: int
    """Requests sent by this invocation (0 when everything was already answered)."""
    summary: dict[str, Any] = field(default_factory=dict)


ReplyCallback = Callable[[ReplyRecord], None]


def new_run_id() -> str:
    stamp = now().strftime("%Y%m%dT%H%M%S")
    return f"r{stamp}-{secrets.token_hex(3)}"


def lock_key(judge: JudgeConfig, cs: CalibrationSet) -> str:
    return f"{judge.name}@{cs.name}"


def check_compatible(judge: JudgeConfig, cs: CalibrationSet, source: str) -> None:
    """Every judged dimension must exist in the set (and swap only on pairwise ones)."""
    problems = []
    for dim, spec in judge.prompts.items():
        if dim not in cs.dimensions:
            problems.append(
                Problem(
                    file=source,
                    field=f"judge.prompts.{dim}",
                    message=f"unknown dimension '{dim}': the set '{cs.name}' has "
                    f"{', '.join(cs.dimensions)}",
                )
            )
        elif (
            judge.swap_order
            and cs.dimensions[dim].scale.kind == "pairwise"
            and not spec.swap_fields
        ):
            problems.append(
                Problem(
                    file=source,
                    field=f"judge.prompts.{dim}.swap_fields",
                    message="swap_order needs the pairs of fields to exchange",
                )
            )
    if problems:
        raise ConfigError(problems)


def _prompt_hash(messages: list[dict[str, str]]) -> str:
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def _clip(text: str | None, n: int) -> str | None:
    return text if text is None or len(text) <= n else text[: n - 1] + "…"


def _record(
    item_id: str, dim: str, variant: str, prompt_sha: str, out: Outcome, redact: Redactor
) -> ReplyRecord:
    parsed = out.parsed
    if out.kind == "failed":
        status, score, reason = FAILED, None, out.reason
    elif out.kind == "unscored":
        status, score, reason = UNSCORED, None, out.reason
    elif parsed is not None and parsed.score is not None:
        status, score, reason = SCORED, parsed.score, None
    else:
        status, score = UNSCORED, None
        reason = parsed.reason if parsed is not None else "no_reply"
    # What the endpoint reports is stored as it came, without the job's secrets and cut to
    # the store's column sizes: a broken or hostile endpoint must not be able to fail the
    # run's writes, nor get a secret into the store and the audit chain.
    return ReplyRecord(
        item_id=item_id,
        dimension=dim,
        variant=variant,
        status=status,
        score=score,
        label=_clip(redact(parsed.label), 200) if parsed is not None else None,
        raw_text=redact(out.text),
        unscored_reason=_clip(redact(reason), 200),
        latency_ms=out.latency_ms,
        prompt_tokens=token_count(out.prompt_tokens),
        completion_tokens=token_count(out.completion_tokens),
        served_model=_clip(redact(out.served_model), 200),
        system_fingerprint=_clip(redact(out.system_fingerprint), 200),
        finish_reason=_clip(redact(out.finish_reason), 40),
        attempts=out.attempts,
        error=redact(out.error),
        prompt_sha256=prompt_sha,
    )


def _judge_config_record(judge: JudgeConfig) -> dict[str, Any]:
    """The judge config as stored with the run. Holds the key's variable name, never the key,
    and the endpoint without a password or query values that may carry one."""
    record = judge.model_dump(mode="json")
    record["base_url"] = stored_url(judge.base_url)
    return record


def execute_run(
    config: RunConfig,
    store: Store,
    cs: CalibrationSet,
    *,
    on_reply: ReplyCallback | None = None,
    on_start: Callable[[int, int], None] | None = None,
    http_client: Any = None,
    finish: bool = True,
    hold_lock: bool = True,
    origin: str = "live",
    only: Mapping[str, Collection[str]] | None = None,
    save_set: bool = True,
    spent_tonight: float = 0.0,
) -> RunResult:
    """Replay ``cs`` through ``config.judge``, resuming an unfinished run of the same config.

    With ``finish=False`` the run stays *running* after its last reply, so that a caller
    (:func:`judgecal.nightly.run_nightly`) can store the metric report and the drift check
    first and close the run last: a kill in between resumes this run instead of paying for
    a new one. ``hold_lock=False`` is for a caller that already holds :func:`lock_key`.

    The replay is bounded by ``run.deadline_s``; requests not answered by then are not sent
    and the run is inconclusive. An unfinished run whose stored replies are unusable
    (:func:`unusable_replies`) is closed as ``failed`` with the reason, and a new run starts.

    ``on_start(total, already_done)`` and ``on_reply(record)`` let a caller show progress;
    the library itself never prints.

    ``origin`` is stored with the run (``live``; ``rejudge`` for a remedy's re-judge, which
    the watch, the report and ``latest`` leave out); ``only`` limits each item to the listed
    dimensions (item id → dimensions); ``save_set=False`` does not store the set (a
    re-judge's items are production inputs, not a calibration set). ``spent_tonight``:
    what other runs of the same night already cost (the reference runs of a replicated
    baseline), counted against ``cost.budget_per_night`` with this run's own replies.
    """
    judge = config.judge
    source = str(config.source or "<config>")
    check_compatible(judge, cs, source)
    judge.api_key()  # a missing key is bad input (exit 2): found before anything is written
    redactor = Redactor(config.secrets())
    install_log_filter(redactor)
    renderer = PromptRenderer(judge)
    fingerprint = configured_fingerprint(judge)
    items = cs.items[: config.run.limit] if config.run.limit else cs.items

    # Render every prompt before sending anything: a template error costs nothing.
    work: list[tuple[str, str, str, list[dict[str, str]]]] = []
    for item in items:
        for dim in judge.prompts:
            if only is not None and dim not in only.get(item.id, ()):
                continue
            variants = [ORIGINAL]
            if judge.swap_order and cs.dimensions[dim].scale.kind == "pairwise":
                variants.append(SWAPPED)
            for variant in variants:
                work.append((item.id, dim, variant, renderer.messages(dim, item.fields, variant)))

    if save_set:
        store.save_set(cs)
    lock = run_lock(store.engine, lock_key(judge, cs)) if hold_lock else contextlib.nullcontext()
    with lock:
        run_id = store.find_resumable_run(judge.name, cs.version, fingerprint["hash"])
        if run_id is not None:
            broken = unusable_replies(store.replies(run_id))
            if broken is not None:
                store.finish_run(
                    run_id, FAILED, {"failed_because": f"cannot resume this run: {broken}"}
                )
                run_id = None
        resumed = run_id is not None
        if run_id is None:
            run_id = store.create_run(
                run_id=new_run_id(),
                judge_name=judge.name,
                set_name=cs.name,
                set_version=cs.version,
                config_hash=fingerprint["hash"],
                fingerprint=fingerprint,
                judge_config=_judge_config_record(judge),
                origin=origin,
                n_expected=len(work),
                config_path=str(config.source) if config.source else None,
            )
        done = store.done_keys(run_id)
        todo = [w for w in work if (w[0], w[1], w[2]) not in done]
        if on_start is not None:
            on_start(len(work), len(work) - len(todo))
        started = time.perf_counter()
        stopped = None
        gate = _budget_gate(config, store.replies(run_id) if resumed else [], spent_tonight)
        requested, batches = len(todo), None
        if judge.batch:  # the batch API (judgecal.runs.batch); also finds a killed run's batch
            batches = replay_batch(BatchJob(
                run_id, config, cs, todo, store, redactor,
                lambda w, out: _record(w[0], w[1], w[2], _prompt_hash(w[3]), out, redactor),
                on_reply, http_client, gate))
            stopped, requested = batches.stopped, batches.requested
        elif todo:
            stopped = asyncio.run(
                _replay(
                    run_id, config, cs, todo, store, on_reply, http_client, redactor, gate
                )
            )
        elapsed = time.perf_counter() - started
        status, summary = summarize_replies(
            store.replies(run_id),
            len(work),
            config.run.max_unscored_rate,
            config.run.min_items,
            stopped,
            requested_model=judge.model,
        )
        summary["elapsed_s"] = elapsed
        cost = run_cost(store.replies(run_id), config.cost, judge.model)
        if cost is not None:
            if gate is not None:
                cost["budget_per_night"] = gate.limit
                cost["requests_refused"] = gate.refused
            summary["cost"] = cost
        summary["requested_now"] = requested
        if batches is not None:
            summary["batches"] = batches.batches
        summary["stale_after_hours"] = config.run.stale_after_hours
        summary["max_unscored_rate"] = config.run.max_unscored_rate
        if stopped:
            summary["stopped_because"] = stopped
        if finish:
            store.finish_run(run_id, status, summary)
    return RunResult(
        run_id=run_id, status=status, resumed=resumed, requested=requested, summary=summary
    )


class _Writer:
    """Persists replies from a dedicated thread so the event loop never waits on the disk.

    Each reply is queued the moment it arrives; the thread commits whatever is queued in
    one transaction (group commit), typically within milliseconds. ``on_reply`` is called
    after the commit, so progress shows only what is safely stored.
    """

    def __init__(self, store: Store, run_id: str, on_reply: ReplyCallback | None):
        self.store = store
        self.run_id = run_id
        self.on_reply = on_reply
        self.queue: queue.Queue[ReplyRecord | None] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="judgecal-writer", daemon=True)
        self.thread.start()

    def put(self, record: ReplyRecord) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(record)

    def _loop(self) -> None:
        done = False
        while not done:
            batch: list[ReplyRecord] = []
            item = self.queue.get()
            while True:
                if item is None:
                    done = True
                else:
                    batch.append(item)
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if not batch or self.error is not None:
                continue
            try:
                self.store.save_reply_batch(self.run_id, batch)
            except BaseException as exc:  # surfaced to the run by put() / close()
                self.error = exc
                continue
            if self.on_reply is not None:
                for record in batch:
                    self.on_reply(record)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _budget_gate(config: RunConfig, stored: list[dict[str, Any]],
                 spent_tonight: float = 0.0) -> BudgetGate | None:
    """The night's budget gate (None without ``cost.budget_per_night``), with what the
    replies already stored in this run cost, and ``spent_tonight`` by other runs of the same
    night (reference runs of a replicated baseline), counted as spent."""
    limit = config.cost.budget_per_night
    if limit is None:
        return None
    judge = config.judge
    price = config.cost.prices[judge.model]  # checked when the config is read
    spent = run_cost(stored, config.cost, judge.model) or {}
    max_completion = judge.decoding.max_tokens or UNSET_MAX_TOKENS
    return BudgetGate(limit, price, max_completion,
                      spent=float(spent.get("total") or 0.0) + spent_tonight,
                      attempts=1 + judge.parse_retries)


async def _replay(
    run_id: str,
    config: RunConfig,
    cs: CalibrationSet,
    todo: list[tuple[str, str, str, list[dict[str, str]]]],
    store: Store,
    on_reply: ReplyCallback | None,
    http_client: Any,
    redactor: Redactor,
    gate: BudgetGate | None = None,
) -> str | None:
    """Send ``todo``; returns why the replay stopped early, or None when it did not."""
    writer = _Writer(store, run_id, on_reply)
    deadline = config.run.deadline_s
    try:
        async with asyncio.timeout(deadline):
            return await _fan_out(config, cs, todo, writer, http_client, redactor, gate)
    except TimeoutError:
        return (
            f"the run's deadline of {deadline:g} s (run.deadline_s) passed before every "
            "request was answered"
        )
    finally:
        writer.close()


async def _fan_out(
    config: RunConfig,
    cs: CalibrationSet,
    todo: list[tuple[str, str, str, list[dict[str, str]]]],
    writer: _Writer,
    http_client: Any,
    redactor: Redactor,
    gate: BudgetGate | None = None,
) -> str | None:
    judge = config.judge
    # An endpoint that fails every request (an HTML error page for everything, 503s all
    # night) stops the run after this many final failures with no reply in between.
    give_up_after = max(20, 2 * judge.concurrency)
    failures_in_a_row = 0
    last_failure = ""
    async with JudgeClient(
        judge,
        http_client=http_client,
        seed=config.run.seed,
        parse_retries=judge.parse_retries,
        redactor=redactor,
    ) as client:

        budget_freed = asyncio.Condition()

        async def one(item_id: str, dim: str, variant: str, messages: list[dict[str, str]]) -> None:
            nonlocal failures_in_a_row, last_failure
            reservation, chars = 0.0, 0
            if gate is not None:
                chars = sum(len(m.get("content") or "") for m in messages)
                async with budget_freed:
                    # Reservations are worst cases and most come back: wait for them rather
                    # than refuse a request that fits once they are settled.
                    await budget_freed.wait_for(lambda: gate.fits(chars) or gate.held == 0)
                    held = gate.reserve(chars)
                if held is None:
                    return  # not sent: it would take the night past its budget
                reservation = held
            scale = cs.dimensions[dim].scale
            rule = judge.prompts[dim].parse
            outcome = await client.complete(
                messages,
                item_id=item_id,
                parse=lambda text: parse_reply(text, rule, scale, variant),
            )
            record = _record(item_id, dim, variant, _prompt_hash(messages), outcome, redactor)
            writer.put(record)  # persisted the moment it arrives (see _Writer)
            if gate is not None:
                if record.status == FAILED:
                    gate.release(reservation)
                else:
                    gate.settle(reservation, chars, record.prompt_tokens,
                                record.completion_tokens,
                                price_of(config.cost, record.served_model, judge.model))
                async with budget_freed:
                    budget_freed.notify_all()
            if record.status == FAILED:
                failures_in_a_row += 1
                last_failure = record.unscored_reason or ""
            else:
                failures_in_a_row = 0

        # Bounded fan-out: the client's semaphore limits requests in flight; creating
        # tasks in windows keeps memory flat for very large sets.
        window = max(64, judge.concurrency * 4)
        pending: set[asyncio.Task[None]] = set()
        try:
            for w in todo:
                if failures_in_a_row >= give_up_after:
                    break
                pending.add(asyncio.create_task(one(*w)))
                if len(pending) >= window:
                    finished, pending = await asyncio.wait(
                        pending, return_when=asyncio.FIRST_COMPLETED
                    )
                    _settle(finished)
            while pending and failures_in_a_row < give_up_after:
                finished, pending = await asyncio.wait(
                    pending, return_when=asyncio.FIRST_COMPLETED
                )
                _settle(finished)
        finally:
            # Whatever ends the replay (an error, the deadline, Ctrl-C, giving up), every
            # request still in flight is cancelled and awaited: nothing is left running and
            # no "Task exception was never retrieved" is printed.
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
    if failures_in_a_row >= give_up_after:
        return (
            f"the endpoint failed {failures_in_a_row} requests in a row "
            f"(last: {last_failure}); the rest were not sent"
        )
    if gate is not None and gate.refused:
        return gate.why_stopped(config.cost.currency)
    return None


def _settle(finished: set[asyncio.Task[None]]) -> None:
    """Retrieve every finished task's outcome, then raise the first error among them."""
    errors = [exc for task in finished if (exc := task.exception()) is not None]
    if errors:
        raise errors[0]
