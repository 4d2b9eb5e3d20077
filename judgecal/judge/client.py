"""The judge client: async OpenAI-compatible requests with concurrency, rate limit and retries.

Built on the ``openai`` package with its own retries switched off, so judgecal decides
what is retried and how long to wait:

* 429, 5xx, timeouts, dropped connections, streams that end without a finish reason and
  HTTP 200 bodies that are not a well-formed chat completion (an HTML page, broken JSON,
  a number where the text belongs; see :mod:`judgecal.judge.completion`) are retried with
  exponential backoff and full jitter; a ``Retry-After`` (or ``retry-after-ms``) header is
  honoured up to ``retry_after_max_s``.
* An endpoint that cannot be reached at all (connection refused, no such host, connect
  timeout) before any reply arrived aborts the run within seconds, naming its URL (without
  credentials): a misconfigured URL is not a flaky judge.
* A prompt that is too long (400 ``context_length_exceeded``) and other 4xx replies are
  final: the item is *unscored* with that reason, never retried.
* 401/403 and an unknown model abort the run (every request would fail the same way).
* A reply that cannot be parsed is asked again up to ``parse_retries`` times (a judge
  that sometimes answers junk slows the run down instead of skewing it); if it stays
  unparseable it is unscored with the reason. A re-ask is never the identical request:
  at temperature 0 the same question gets the same answer, paid for again. Re-ask *n*
  appends :data:`REASK_NOTE` (with *n*) to the last user message and, when the decoding
  pins a ``seed``, sends ``seed + n``. The stored prompt hash stays the configured
  prompt's; the reply's ``attempts`` shows that it took more than one request.
* A reply cut by ``max_tokens`` (``finish_reason`` ``"length"``) is kept with that finish
  reason: if a verdict can still be read from it, it is scored (the run's summary counts
  these replies as ``truncated``); if not, it is re-asked as above and, still cut and
  unparseable, unscored with the reason ``truncated``.
* A reply or stream without a finish reason (cut off on the way) is a transient failure,
  never a reply: retried, and after ``max_retries`` *failed* with the reason.

Every request carries an ``X-Judgecal-Item-Id`` header. Real providers ignore it; the
recorded judge uses it to tell apart items whose texts are identical.

Everything an endpoint sends back is passed through the job's :class:`~judgecal.redact.Redactor`
before it leaves the client, so an endpoint that echoes the key cannot get it stored.

Set ``JUDGECAL_DEBUG_HTTP=1`` to log each request to the ``judgecal.http`` logger: URL,
item, re-ask number, the decoding parameters sent (model, ``max_tokens``,
``max_completion_tokens``, temperature, seed, stream), then the outcome, finish reason,
token counts and latency (``judgecal`` shows these lines on stderr). Headers and message
texts are never logged, so the key cannot leak.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import email.utils
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgecal.config import JudgeConfig
from judgecal.errors import JudgeError
from judgecal.judge.completion import MalformedReply, read_completion, token_count
from judgecal.redact import Redactor, safe_url

if TYPE_CHECKING:
    import openai

    from judgecal.judge.prompt import Parsed

__all__ = [
    "ITEM_HEADER",
    "REASK_NOTE",
    "TRUNCATED",
    "UNREACHABLE_AFTER",
    "JudgeClient",
    "Outcome",
    "chat_body",
    "request_kwargs",
]

log = logging.getLogger("judgecal.http")

ITEM_HEADER = "X-Judgecal-Item-Id"

REASK_NOTE = (
    "\n\n(Asked again, request {n}: an earlier reply had no verdict in the format asked "
    "for above. Reply in exactly that format.)"
)
"""Appended to the last user message of re-ask ``n`` (1, 2, ...) after an unparseable reply."""

TRUNCATED = "truncated"
"""The unscored reason of a reply cut by ``max_tokens`` from which no verdict could be read."""

_LOGGED_PARAMS = ("model", "max_tokens", "max_completion_tokens", "temperature", "seed")


@dataclass
class Outcome:
    """What one request finally produced."""

    kind: str
    """``reply`` (a text arrived), ``unscored`` (final, no text worth parsing) or ``failed``."""
    text: str | None = None
    parsed: Parsed | None = None
    reason: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    served_model: str | None = None
    system_fingerprint: str | None = None
    finish_reason: str | None = None
    attempts: int = 0
    error: str | None = None


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


class _RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class _Slots:
    """At most ``n`` requests in flight; a verdict already begun gets the next free slot.

    A verdict is *begun* once one of its requests has been sent: a retry after a 429 or a
    backoff, and a re-ask after an unparseable reply. Serving those before verdicts not yet
    started finishes what is under way first, so a verdict's reply is stored sooner and the
    run does not end on a retry that waited behind the whole queue (with first-come order a
    throttled item's retry queued behind every fresh request then waiting, about
    ``queued / concurrency`` latencies). Requests of the same kind are served in order.
    """

    def __init__(self, n: int):
        self._free = n
        # Invariant: a waiter that is not done exists only while no slot is free.
        self._waiters: tuple[collections.deque[asyncio.Future[None]], ...] = (
            collections.deque(), collections.deque())

    async def acquire(self, begun: bool) -> None:
        if self._free > 0:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[0 if begun else 1].append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot as it was cancelled: pass it on
            raise

    def release(self) -> None:
        for waiters in self._waiters:
            while waiters:
                future = waiters.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self._free += 1

    @contextlib.asynccontextmanager
    async def slot(self, begun: bool) -> Any:
        await self.acquire(begun)
        try:
            yield
        finally:
            self.release()


UNREACHABLE_AFTER = 3
"""Connection failures, before any reply arrived, after which the endpoint is unreachable."""

_CONNECT_FAILURES = ("ConnectError", "ConnectTimeout")


class JudgeClient:
    """Sends chat requests for one judge. Use as an async context manager."""

    def __init__(
        self,
        judge: JudgeConfig,
        *,
        http_client: Any = None,
        seed: int | None = None,
        parse_retries: int = 2,
        redactor: Redactor | None = None,
    ):
        self.judge = judge
        self.parse_retries = parse_retries
        self._http_client = http_client
        self._client: openai.AsyncOpenAI | None = None
        self._slots = _Slots(judge.concurrency)
        self._limiter = _RateLimiter(judge.requests_per_second)
        self._rng = random.Random(seed)
        self._debug = bool(os.environ.get("JUDGECAL_DEBUG_HTTP"))
        self._redactor = redactor
        self._url = safe_url(judge.base_url)
        self._replies = 0
        self._connect_failures = 0

    async def __aenter__(self) -> JudgeClient:
        import openai

        # openai's own HTTP client (its connection pool allows far more connections than any
        # sane concurrency); the timeout applies per request, and retries are ours. Connecting
        # gets its own short timeout: a host that does not answer is not a slow judge.
        key = self.judge.api_key()
        if self._redactor is None:
            self._redactor = Redactor([key])
        # openai's own Timeout class: the SDK has changed its HTTP library (httpx, then
        # httpx2) and accepts only its own library's Timeout.
        timeout = openai.Timeout(self.judge.timeout_s, connect=min(self.judge.timeout_s, 15.0))
        self._client = openai.AsyncOpenAI(
            base_url=self.judge.base_url,
            api_key=key,
            max_retries=0,
            timeout=timeout,
            http_client=self._http_client,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()

    def _redact(self, text: str | None) -> str | None:
        """The text without the job's secrets: an endpoint may echo them back (gateways put
        the Authorization header into error messages), and what it sends is stored."""
        return self._redactor(text) if self._redactor is not None else text

    def _log(self, item_id: str, kwargs: dict[str, Any], reask: int, status: str,
             started: float, outcome: Outcome | None = None) -> None:
        if not self._debug:
            return
        sent = " ".join(f"{k}={kwargs[k]}" for k in _LOGGED_PARAMS if k in kwargs)
        got = ""
        if outcome is not None:
            prompt, completion = outcome.prompt_tokens, outcome.completion_tokens
            got = (f" finish={outcome.finish_reason} "
                   f"tokens={_or_unknown(prompt)}+{_or_unknown(completion)}")
        log.debug(
            "POST %s/chat/completions item=%s reask=%d %s stream=%s -> %s%s (%.0f ms)",
            self._url,
            item_id,
            reask,
            sent,
            self.judge.stream,
            status,
            got,
            (time.perf_counter() - started) * 1000,
        )

    def _unreachable(self, reason: str) -> None:
        """Abort the run when the endpoint was never reached and keeps refusing."""
        if self._replies or not reason.startswith("connection_error: "):
            return
        if reason.split(": ", 1)[1] not in _CONNECT_FAILURES:
            return
        self._connect_failures += 1
        if self._connect_failures >= UNREACHABLE_AFTER:
            raise JudgeError(
                f"cannot reach the judge endpoint {self._url} "
                f"({reason.split(': ', 1)[1]}): check base_url and that the server is up"
            )

    def _request_kwargs(self, messages: list[dict[str, str]], item_id: str) -> dict[str, Any]:
        return request_kwargs(self.judge, messages, item_id)

    def _reask_kwargs(self, kwargs: dict[str, Any], n: int) -> dict[str, Any]:
        """Re-ask ``n`` of the request ``kwargs``: never the identical request (see the
        module docstring)."""
        messages = [dict(m) for m in kwargs["messages"]]
        last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
        note = REASK_NOTE.format(n=n)
        if last is None:
            messages.append({"role": "user", "content": note.strip()})
        else:
            messages[last]["content"] = f"{messages[last].get('content') or ''}{note}"
        out = {**kwargs, "messages": messages}
        if isinstance(kwargs.get("seed"), int):
            out["seed"] = kwargs["seed"] + n
        return out

    def _backoff(self, attempt: int) -> float:
        cap = min(self.judge.backoff_max_s, self.judge.backoff_base_s * (2**attempt))
        return self._rng.uniform(0, cap)

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        item_id: str,
        parse: Callable[[str | None], Parsed],
        reasked: int = 0,
        attempts: int = 0,
    ) -> Outcome:
        """Request one verdict, retrying transient failures, and parse it.

        ``attempts`` counts requests for this verdict already made elsewhere (a batch), and
        ``reasked`` how many of their replies had no parseable verdict: the first request
        sent is then re-ask ``reasked`` (never the identical request), and at most
        ``parse_retries`` re-asks are made in all.

        ``concurrency`` bounds the requests in flight, not the verdicts being worked on: a
        request waiting out a backoff or a ``Retry-After`` holds no slot, so a throttled
        reply does not idle a connection the other requests could use. When it is ready
        again, it (like a re-ask) takes the next free slot before verdicts not yet begun.
        """
        return await self._complete(messages, item_id, parse, reasked, attempts)

    async def _complete(
        self, messages: list[dict[str, str]], item_id: str, parse: Callable[[str | None], Parsed],
        reasked: int = 0, attempts: int = 0,
    ) -> Outcome:
        import openai

        assert self._client is not None, "use JudgeClient as an async context manager"
        first = self._request_kwargs(messages, item_id)
        kwargs = self._reask_kwargs(first, reasked) if reasked else first
        transient_failures = 0
        parse_failures = reasked
        last_reason = ""
        while True:
            attempts += 1
            started = time.perf_counter()
            try:
                # Released before any backoff below; a verdict already begun goes first.
                async with self._slots.slot(begun=attempts > 1):
                    await self._limiter.wait()
                    started = time.perf_counter()
                    outcome = await self._once(kwargs)
            except _Retryable as exc:
                self._log(item_id, kwargs, parse_failures, exc.reason, started)
                self._unreachable(exc.reason)
                last_reason = exc.reason
                transient_failures += 1
                if transient_failures > self.judge.max_retries:
                    return Outcome(
                        kind="failed",
                        reason=self._redact(f"transient_failure: {last_reason}"),
                        attempts=attempts,
                        error=self._redact(
                            f"gave up after {attempts} attempts; last: {last_reason}"
                        ),
                    )
                backoff = self._backoff(transient_failures - 1)
                wait = backoff if exc.retry_after is None else exc.retry_after
                # A Retry-After of an hour must not hold the night: capped (the per-run
                # deadline bounds the rest).
                await asyncio.sleep(min(wait, self.judge.retry_after_max_s))
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise JudgeError(
                    f"the judge endpoint {self._url} refused the credentials "
                    f"(HTTP {exc.status_code}); check the variable {self.judge.api_key_env}"
                ) from None
            except openai.APIStatusError as exc:
                code = _error_code(exc)
                if code == "model_not_found":
                    raise JudgeError(
                        self._redact(
                            f"the judge endpoint {self._url} does not serve the model "
                            f"'{self.judge.model}'"
                        )
                    ) from None
                reason = self._redact((code or f"http_{exc.status_code}")[:80])
                return Outcome(
                    kind="unscored",
                    reason=reason,
                    attempts=attempts,
                    error=self._redact(f"HTTP {exc.status_code}: {_error_message(exc)}"),
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            self._log(item_id, kwargs, parse_failures, "reply", started, outcome)
            self._replies += 1
            outcome.served_model = self._redact(outcome.served_model)
            outcome.system_fingerprint = self._redact(outcome.system_fingerprint)
            outcome.finish_reason = self._redact(outcome.finish_reason)
            outcome.latency_ms = (time.perf_counter() - started) * 1000
            outcome.attempts = attempts
            outcome.text = self._redact(outcome.text)
            outcome.parsed = parse(outcome.text)
            if outcome.parsed.score is None and parse_failures < self.parse_retries:
                parse_failures += 1
                kwargs = self._reask_kwargs(first, parse_failures)
                continue
            if outcome.parsed.score is None and outcome.finish_reason == "length":
                outcome.parsed = dataclasses.replace(outcome.parsed, reason=TRUNCATED)
            return outcome

    async def _once(self, kwargs: dict[str, Any]) -> Outcome:
        import openai

        assert self._client is not None
        try:
            if self.judge.stream:
                return await self._stream(kwargs)
            # The raw body, read by judgecal.judge.completion: the SDK's own parsing turns an HTML
            # page or a wrong type into an object without choices, or an exception of its own.
            raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
            body = raw.http_response.content
        except openai.APITimeoutError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else ""
            if cause == "ConnectTimeout":
                raise _Retryable("connection_error: ConnectTimeout") from None
            raise _Retryable("timeout") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection_error: {_root_cause(exc)}") from None
        except openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500 or exc.status_code == 408:
                raise _Retryable(
                    f"http_{exc.status_code}", _retry_after(exc.response.headers)
                ) from None
            raise
        try:
            completion = read_completion(body)
        except MalformedReply as exc:
            raise _Retryable(exc.reason) from None
        if completion.finish_reason is None:
            # A reply without a finish reason was cut off on the way: a failure, not a verdict.
            raise _Retryable("no_finish_reason")
        return Outcome(
            kind="reply",
            text=completion.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            served_model=completion.served_model,
            system_fingerprint=completion.system_fingerprint,
            finish_reason=completion.finish_reason,
        )

    async def _stream(self, kwargs: dict[str, Any]) -> Outcome:
        import openai

        try:
            return await self._stream_inner(kwargs)
        except (openai.APIError, _Retryable):
            raise
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # A chunk that is not JSON or not shaped like one: the stream is broken.
            raise _Retryable(f"malformed_reply: broken stream ({type(exc).__name__})") from None

    async def _stream_inner(self, kwargs: dict[str, Any]) -> Outcome:
        assert self._client is not None
        parts: list[str] = []
        finish: str | None = None
        model: str | None = None
        fingerprint: str | None = None
        usage = None
        stream = await self._client.chat.completions.create(stream=True, **kwargs)
        async for chunk in stream:
            model = chunk.model or model
            fingerprint = getattr(chunk, "system_fingerprint", None) or fingerprint
            if getattr(chunk, "usage", None):
                usage = chunk.usage
            for choice in chunk.choices or []:
                content = choice.delta.content if choice.delta else None
                if content:
                    if not isinstance(content, str):
                        raise _Retryable("malformed_reply: stream content is not text")
                    parts.append(content)
                if choice.finish_reason:
                    finish = str(choice.finish_reason)
        if finish is None:
            raise _Retryable("stream_ended_without_finish_reason")
        return Outcome(
            kind="reply",
            text="".join(parts),
            prompt_tokens=token_count(getattr(usage, "prompt_tokens", None)),
            completion_tokens=token_count(getattr(usage, "completion_tokens", None)),
            served_model=model if isinstance(model, str) else None,
            system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
            finish_reason=finish,
        )


def request_kwargs(judge: JudgeConfig, messages: list[dict[str, str]],
                   item_id: str) -> dict[str, Any]:
    """The keyword arguments of the live request for ``messages`` (the SDK's ``create``)."""
    d = judge.decoding
    kwargs: dict[str, Any] = {"model": judge.model, "messages": messages}
    if d.temperature is not None:
        kwargs["temperature"] = d.temperature
    if d.top_p is not None:
        kwargs["top_p"] = d.top_p
    if d.max_tokens is not None:
        if d.max_tokens_param in ("both", "max_tokens"):
            kwargs["max_tokens"] = d.max_tokens
        if d.max_tokens_param in ("both", "max_completion_tokens"):
            kwargs["max_completion_tokens"] = d.max_tokens
    for name in ("seed", "stop", "presence_penalty", "frequency_penalty"):
        value = getattr(d, name)
        if value is not None:
            kwargs[name] = value
    if d.extra_body:
        kwargs["extra_body"] = dict(d.extra_body)
    kwargs["extra_headers"] = {ITEM_HEADER: item_id}
    return kwargs


def chat_body(judge: JudgeConfig, messages: list[dict[str, str]]) -> dict[str, Any]:
    """The JSON body the live path sends for ``messages`` (``extra_body`` merged in, as the
    SDK does), without streaming: the ``body`` of a batch line."""
    kwargs = request_kwargs(judge, messages, "")
    kwargs.pop("extra_headers")
    extra = kwargs.pop("extra_body", {})
    return {**kwargs, **extra}


def _or_unknown(count: int | None) -> str:
    return "?" if count is None else str(count)


def _root_cause(exc: BaseException) -> str:
    """The name of the HTTP library's error behind a connection error (``ConnectError``...)."""
    return type(exc.__cause__ or exc).__name__


def _error_body(exc: Any) -> dict[str, Any]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner
    return {}


def _error_code(exc: Any) -> str | None:
    code = getattr(exc, "code", None) or _error_body(exc).get("code")
    return str(code) if code else None


def _error_message(exc: Any) -> str:
    msg = _error_body(exc).get("message") or getattr(exc, "message", "") or str(exc)
    return str(msg)[:500]
