"""A replay through the judge's batch API (``judge.batch: true``): submit, wait, read, store.

:func:`replay_batch` is what :func:`judgecal.runs.replay.execute_run` does instead of sending
one request per reply. The requests still to answer go, as JSONL lines carrying exactly the
live request bodies, into one batch (several, one after the other, past
``judge.batch_max_requests``), through :class:`judgecal.judge.batch.BatchAPI`.

Never paid twice:

* The input file's id is stored (``run_batches``) as soon as it is uploaded, and the batch's
  id the moment the batch is created. A killed run, started again, finds its unread batch
  and waits for it instead of submitting another; a kill between the upload and the store of
  the batch id is covered too: the batches are searched for that input file before one is
  created from it.
* A batch only ever holds requests without a stored reply; reading its results stores each
  reply as its line is read, skipping what is already stored (a download that broke off, or
  a kill in the middle of reading, reads the same file again — for free).

Each reply is what a live reply would be: the body is read by
:func:`judgecal.judge.completion.read_completion`, parsed by the dimension's parse rule, and
stored with the same fields (tokens, served model, ``system_fingerprint``, finish reason;
no latency: a batch has none per request). In a batch that **completed**:

* an unparseable reply is re-asked **live**, as the live path would re-ask it (re-ask 1 is
  the first request sent, never the identical one; ``parse_retries`` in all). A few
  requests, and the night does not wait another batch window for them;
* a request the batch answered with a transient error (429, 5xx, a broken body, no finish
  reason, a line missing from both files) is asked live, with the client's retries;
* a final error (a 400 such as ``context_length_exceeded``) is unscored with its reason.

Never half-judged: a batch that **expired**, **failed** or was **cancelled** keeps what it
answered (an expired batch still returns its finished part; unparseable replies in it are
stored unscored, nothing more is asked live) and the run ends inconclusive with the reason.
So does a batch still running when ``run.deadline_s`` has passed: it is cancelled (so that
it stops costing), its finished part is read if the cancel is done by the next look, and
the run is inconclusive. A budget (``cost.budget_per_night``) reserves each line's worst
case before it goes into a batch, as the live path does before each request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from judgecal.judge.batch import (
    BatchAPI,
    BatchStatus,
    BatchUnavailable,
    ResultLine,
    custom_id,
    input_line,
)
from judgecal.judge.client import TRUNCATED, JudgeClient, Outcome, chat_body
from judgecal.judge.prompt import Parsed, parse_reply
from judgecal.records import FAILED, ReplyRecord
from judgecal.redact import Redactor, stored_url
from judgecal.runs.cost import BudgetGate, price_of

if TYPE_CHECKING:
    from judgecal.calibration import CalibrationSet
    from judgecal.config import RunConfig
    from judgecal.store import Store

__all__ = ["BatchJob", "BatchReport", "Work", "replay_batch"]

Work = tuple[str, str, str, list[dict[str, str]]]
"""(item id, dimension, variant, messages) of one reply wanted."""

_FLUSH = 100
"""Replies stored per transaction while a result file is read."""


@dataclass
class BatchJob:
    """What :func:`replay_batch` needs from the run."""

    run_id: str
    config: RunConfig
    cs: CalibrationSet
    todo: list[Work]
    """The replies still wanted (none of them stored)."""
    store: Store
    redactor: Redactor
    to_record: Callable[[Work, Outcome], ReplyRecord]
    """The stored record of a reply (the same as the live path's)."""
    on_reply: Callable[[ReplyRecord], None] | None = None
    http_client: Any = None
    """For the live re-asks (an ``httpx.AsyncClient``, as the live path takes)."""
    gate: BudgetGate | None = None
    reserved: dict[str, tuple[float, int]] = field(default_factory=dict)
    """Budget held per line (custom id -> reservation, prompt characters) until stored."""


@dataclass
class BatchReport:
    """How the batch replay went."""

    stopped: str | None = None
    """Why the run cannot conclude (the batch expired, failed, was cancelled, the deadline
    passed, the budget), or None."""
    requested: int = 0
    """Requests this invocation paid for: batch lines submitted plus live requests."""
    batches: list[dict[str, Any]] = field(default_factory=list)
    """One entry per batch read by this invocation (for the run's summary)."""


def replay_batch(job: BatchJob) -> BatchReport:
    """Answer ``job.todo`` through the batch API; see the module docstring."""
    judge = job.config.judge
    deadline_s = job.config.run.deadline_s
    deadline = time.monotonic() + deadline_s
    index = {custom_id(w[0], w[1], w[2]): w for w in job.todo}
    report = BatchReport()
    tried: set[str] = set()
    with BatchAPI(judge, job.redactor, deadline=deadline, seed=job.config.run.seed) as api:
        while True:
            api.deadline = deadline
            row = next((r for r in job.store.run_batches(job.run_id) if r["state"] != "read"),
                       None)
            lines: list[str] | None = None
            if row is None:
                chunk = _next_chunk(job, index, tried)
                if not chunk:
                    break
                lines = [cid for cid, _ in chunk]
                content = b"".join(input_line(cid, chat_body(judge, w[3])) for cid, w in chunk)
                try:
                    file_id = api.upload(content, f"judgecal-{job.run_id}.jsonl")
                except BatchUnavailable as exc:
                    _release(job, lines)
                    report.stopped = f"{exc}; the batch was not submitted"
                    break
                job.store.save_batch(job.run_id, file_id, len(chunk),
                                     endpoint=stored_url(judge.base_url))
                report.requested += len(chunk)
                row = {"input_file_id": file_id, "batch_id": None, "requests": len(chunk),
                       "state": "uploaded"}
                tried.update(lines)
            status = _submitted(job, api, row, resumed=lines is None)
            if isinstance(status, str):
                _release(job, list(job.reserved))
                report.stopped = status
                break
            status, timed_out = _wait(api, status, deadline, judge.batch_poll_s)
            before = status.status
            if timed_out:
                status = _cancel(api, status)
            read = _read(job, api, status, index, lines, report)
            tried.update(read.seen)
            outcome = {"status": status.status, "request_counts": status.request_counts,
                       "errors": status.errors, **read.counts}
            if timed_out:
                outcome["cancelled_by"] = "run.deadline_s"
            job.store.update_batch(job.run_id, row["input_file_id"], state="read",
                                   status=status.status, outcome=outcome)
            report.batches.append({"batch_id": status.id, "input_file_id": row["input_file_id"],
                                   "requests": row["requests"], "resumed": lines is None,
                                   **outcome})
            unanswered = max(int(row["requests"]) - read.answered, 0)
            if timed_out:
                report.stopped = (
                    f"the run's deadline of {deadline_s:g} s (run.deadline_s) passed while the "
                    f"batch {status.id} was {before}: it was "
                    f"cancelled with {unanswered:,} of {row['requests']:,} requests unanswered")
                break
            if status.status != "completed":
                report.stopped = _why_not_completed(status, unanswered, int(row["requests"]),
                                                    read.counts.get("stored", 0))
                break
    if report.stopped is None and job.gate is not None and job.gate.refused:
        report.stopped = job.gate.why_stopped(job.config.cost.currency)
    return report


# -- submitting ------------------------------------------------------------------------------

def _next_chunk(job: BatchJob, index: dict[str, Work],
                tried: set[str]) -> list[tuple[str, Work]]:
    """The next batch's lines: requests not stored, not tried by this invocation, that fit
    the budget; at most ``batch_max_requests``."""
    done = job.store.done_keys(job.run_id)
    chunk: list[tuple[str, Work]] = []
    for cid, w in index.items():
        if len(chunk) >= job.config.judge.batch_max_requests:
            break
        if cid in tried or (w[0], w[1], w[2]) in done:
            continue
        if job.gate is not None:
            chars = sum(len(m.get("content") or "") for m in w[3])
            held = job.gate.reserve(chars)
            if held is None:
                tried.add(cid)  # not sent: it would take the night past its budget
                continue
            job.reserved[cid] = (held, chars)
        chunk.append((cid, w))
    return chunk


def _release(job: BatchJob, lines: list[str]) -> None:
    """Free the budget held for lines that were not submitted after all."""
    for cid in lines:
        held = job.reserved.pop(cid, None)
        if held is not None and job.gate is not None:
            job.gate.release(held[0])


def _submitted(job: BatchJob, api: BatchAPI, row: dict[str, Any],
               resumed: bool) -> BatchStatus | str:
    """The batch of ``row``, created now if it was not yet (or why it could not be)."""
    file_id = row["input_file_id"]
    try:
        if row.get("batch_id"):
            return api.retrieve(str(row["batch_id"]))
        # A kill between creating the batch and storing its id: look for it first.
        status = api.find(file_id) if resumed else None
        if status is None:
            status = api.create(file_id, {"judgecal_run": job.run_id})
    except BatchUnavailable as exc:
        if row.get("batch_id"):  # it runs all the same: keep looking until the deadline
            return BatchStatus(id=str(row["batch_id"]), status="unknown")
        job.store.update_batch(job.run_id, file_id, state="read",
                               outcome={"not_created": str(exc)})
        return f"{exc}; the batch was not submitted"
    job.store.update_batch(job.run_id, file_id, batch_id=status.id, state="submitted",
                           status=status.status)
    return status


def _wait(api: BatchAPI, status: BatchStatus, deadline: float,
          poll_s: float) -> tuple[BatchStatus, bool]:
    """Look at the batch every ``poll_s`` seconds until it ends; (its status, whether the
    deadline came first). A look that fails is simply tried again at the next one."""
    while not status.done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return status, True
        time.sleep(min(poll_s, remaining))
        if time.monotonic() >= deadline:
            return status, True
        try:
            status = api.retrieve(status.id)
        except BatchUnavailable:
            continue
    return status, False


def _cancel(api: BatchAPI, status: BatchStatus) -> BatchStatus:
    """Cancel a batch the run will not wait for, and look once more (a cancelled batch has
    the output of what it finished). Best effort: the run is inconclusive either way."""
    api.deadline = time.monotonic() + 30.0
    try:
        status = api.cancel(status.id)
        if not status.done:
            status = api.retrieve(status.id)
    except BatchUnavailable:
        pass
    return status


def _why_not_completed(status: BatchStatus, unanswered: int, requests: int, kept: int) -> str:
    if status.status == "failed":
        return (f"the batch {status.id} failed: "
                f"{'; '.join(status.errors[:3]) or 'the endpoint gave no reason'}")
    how = "expired before it finished" if status.status == "expired" else (
        "was cancelled before it finished" if status.status in ("cancelled", "cancelling")
        else f"ended {status.status}")
    return (f"the batch {status.id} {how}: {unanswered:,} of {requests:,} requests were not "
            f"answered ({kept:,} replies it returned are kept)")


# -- reading ---------------------------------------------------------------------------------


@dataclass
class _Read:
    seen: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    answered: int = 0
    """Lines the batch answered (a reply or a final error), stored now or before."""


def _read(job: BatchJob, api: BatchAPI, status: BatchStatus, index: dict[str, Work],
          lines: list[str] | None, report: BatchReport) -> _Read:
    """Store the batch's replies as they are read; ask live what a completed batch left to
    ask (see the module docstring)."""
    judge = job.config.judge
    completed = status.status == "completed"
    read = _Read()
    done = {custom_id(*k) for k in job.store.done_keys(job.run_id)}
    live: list[tuple[str, int]] = []  # (custom id, re-asks already made)
    buffer: list[tuple[str, ReplyRecord]] = []
    if completed:
        api.deadline = None  # its results are there and paid for: read them all
    for file_id in (status.output_file_id, status.error_file_id):
        if file_id is None:
            continue
        for line in api.lines(file_id):
            cid = line.custom_id
            if cid is None or cid not in index:
                read.counts["unknown_lines"] += 1
                continue
            if cid in read.seen:
                continue  # a download read again after it broke off
            read.seen.add(cid)
            if line.completion is not None or not (line.transient or line.not_run):
                read.answered += 1
            if cid in done:
                continue
            w = index[cid]
            if line.not_run:
                read.counts["not_run"] += 1
                continue
            if line.completion is None and line.transient:
                if completed:
                    live.append((cid, 0))
                else:
                    read.counts["unanswered_errors"] += 1
                continue
            if line.reason == "model_not_found":
                from judgecal.errors import JudgeError

                raise JudgeError(f"the judge endpoint does not serve the model "
                                 f"'{judge.model}' (in the batch {status.id})")
            outcome = _outcome(line)
            if outcome.kind == "reply":
                outcome.parsed = _parse(job, w, outcome.text)
                if outcome.parsed.score is None and completed and judge.parse_retries > 0:
                    live.append((cid, 1))
                    continue
                if outcome.parsed.score is None and outcome.finish_reason == "length":
                    outcome.parsed = dataclasses.replace(outcome.parsed, reason=TRUNCATED)
            buffer.append((cid, job.to_record(w, outcome)))
            if len(buffer) >= _FLUSH:
                _flush(job, buffer, read)
        _flush(job, buffer, read)
    if completed and lines is not None:
        for cid in lines:
            if cid not in read.seen and cid not in done:
                read.counts["missing_lines"] += 1
                read.seen.add(cid)
                live.append((cid, 0))
    if live:
        read.counts["asked_live"] += len(live)
        asyncio.run(_ask_live(job, index, live, read))
        report.requested += read.counts["live_requests"]
    return read


def _outcome(line: ResultLine) -> Outcome:
    c = line.completion
    if c is None:
        return Outcome(kind="unscored", reason=line.reason, error=line.error, attempts=1)
    return Outcome(kind="reply", text=c.text, prompt_tokens=c.prompt_tokens,
                   completion_tokens=c.completion_tokens, served_model=c.served_model,
                   system_fingerprint=c.system_fingerprint, finish_reason=c.finish_reason,
                   attempts=1)


def _parse(job: BatchJob, w: Work, text: str | None) -> Parsed:
    rule = job.config.judge.prompts[w[1]].parse
    scale = job.cs.dimensions[w[1]].scale
    return parse_reply(job.redactor(text), rule, scale, w[2])


def _flush(job: BatchJob, buffer: list[tuple[str, ReplyRecord]], read: _Read) -> None:
    """Store the buffered replies in one transaction, then settle their budget."""
    if not buffer:
        return
    records = [r for _, r in buffer]
    job.store.save_reply_batch(job.run_id, records)
    read.counts["stored"] += len(records)
    judge = job.config.judge
    for cid, record in buffer:
        held, chars = job.reserved.pop(cid, (0.0, 0))
        if job.gate is not None:
            if record.status == FAILED:
                job.gate.release(held)
            else:
                job.gate.settle(held, chars, record.prompt_tokens, record.completion_tokens,
                                price_of(job.config.cost, record.served_model, judge.model))
        if job.on_reply is not None:
            job.on_reply(record)
    buffer.clear()


async def _ask_live(job: BatchJob, index: dict[str, Work], live: list[tuple[str, int]],
                    read: _Read) -> None:
    """Ask ``live`` through the live client, concurrently; store each reply on arrival."""
    judge = job.config.judge
    async with JudgeClient(judge, http_client=job.http_client, seed=job.config.run.seed,
                           parse_retries=judge.parse_retries, redactor=job.redactor) as client:

        async def one(cid: str, reasked: int) -> None:
            w = index[cid]
            outcome = await client.complete(
                w[3], item_id=w[0], parse=lambda text: _parse(job, w, text),
                reasked=reasked, attempts=1)
            read.counts["live_requests"] += max(outcome.attempts - 1, 0)
            _flush(job, [(cid, job.to_record(w, outcome))], read)

        tasks = [asyncio.create_task(one(cid, n)) for cid, n in live]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
