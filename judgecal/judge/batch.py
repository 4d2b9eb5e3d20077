"""The OpenAI-compatible batch API, from the judge's side: files, batches, result lines.

A batch is a JSONL file of chat requests (one line per reply wanted)::

    {"custom_id": "…", "method": "POST", "url": "/v1/chat/completions", "body": {…}}

uploaded with ``POST /v1/files`` (multipart, ``purpose=batch``), submitted with
``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window: "24h"``) and
watched with ``GET /v1/batches/{id}`` (``validating``, ``in_progress``, ``finalizing``,
then ``completed``, ``failed``, ``expired`` or — after ``POST /v1/batches/{id}/cancel`` —
``cancelling`` and ``cancelled``). Its results are JSONL too, in any order, read with
``GET /v1/files/{id}/content``: the output file (``output_file_id``) and the error file
(``error_file_id``) hold lines ``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}``; a request the batch never ran (it expired, was
cancelled) has ``response: null`` and ``error.code`` ``batch_expired`` /
``batch_cancelled``. An expired or cancelled batch still has the output of what it finished.

Each line's ``body`` is exactly the live request's (:func:`judgecal.judge.client.chat_body`);
its ``custom_id`` (:func:`custom_id`) is a digest of (item, dimension, variant) followed by
``~`` and the item id (cut to OpenAI's 64 characters), which the recorded judge reads as the
item hint the live path sends in a header. A reply body is read by
:func:`judgecal.judge.completion.read_completion`, as a live one is.

Why httpx directly and not the openai SDK's ``files`` and ``batches`` resources: judgecal
reads every object an endpoint sends defensively (a gateway's HTML page, a batch object
without ``request_counts``, a result line cut in half must each have a clear answer, never
an SDK model with fields silently missing), streams the result file line by line so each
reply is stored as it is read, and keeps its own retry policy bounded by the run's deadline
(the SDK's retries are off on the live path for the same reasons, see
``docs/architecture.md``). The SDK would add nothing here but a second way to parse; httpx
is what it is built on, and is imported only when a batch runs.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from judgecal.config import JudgeConfig
from judgecal.errors import JudgeError
from judgecal.judge.client import UNREACHABLE_AFTER
from judgecal.judge.completion import Completion, MalformedReply, read_completion
from judgecal.redact import Redactor, safe_url

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BATCH_ENDPOINT",
    "NOT_RUN",
    "TERMINAL",
    "BatchAPI",
    "BatchStatus",
    "BatchUnavailable",
    "ResultLine",
    "custom_id",
    "input_line",
    "read_result_line",
]

BATCH_ENDPOINT = "/v1/chat/completions"
"""The ``url`` of every line and the batch's ``endpoint``."""

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
"""Batch statuses after which nothing changes."""

NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})
"""Error codes of a line the batch never ran: nothing was paid and nothing answered."""

_CUSTOM_ID_MAX = 64


def custom_id(item_id: str, dimension: str, variant: str) -> str:
    """The line's ``custom_id``: unique per (item, dimension, variant), at most 64 characters.

    >>> custom_id("12", "preference", "original").split("~", 1)[1]
    '12'
    >>> len(custom_id("x" * 100, "preference", "original"))
    64
    """
    key = json.dumps([item_id, dimension, variant], ensure_ascii=False)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{digest}~{item_id}"[:_CUSTOM_ID_MAX]


def input_line(cid: str, body: dict[str, Any]) -> bytes:
    """One JSONL line of the batch's input file."""
    line = {"custom_id": cid, "method": "POST", "url": BATCH_ENDPOINT, "body": body}
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"


@dataclass
class ResultLine:
    """One line of a batch's output or error file, read defensively."""

    custom_id: str | None
    status_code: int | None = None
    """The HTTP status the request got inside the batch (None: it never got one)."""
    completion: Completion | None = None
    """The reply, when ``status_code`` is 200 and the body is a well-formed completion."""
    reason: str | None = None
    """Why there is no completion: ``malformed_reply: …``, an error code (``http_500``,
    ``context_length_exceeded``, ``batch_expired``), ``bad_line: …``."""
    error: str | None = None
    """The endpoint's message, for the store."""

    @property
    def not_run(self) -> bool:
        """The batch never ran this request (it expired or was cancelled first)."""
        return self.reason in NOT_RUN

    @property
    def transient(self) -> bool:
        """A failure worth asking again (429, 5xx, 408, a broken body, a server error)."""
        if self.completion is not None or self.not_run:
            return False
        code = self.status_code
        if code is None or code == 200:
            return True  # malformed line or body, an error object with no HTTP status
        return code in (408, 429) or code >= 500


def read_result_line(raw: bytes | str) -> ResultLine:
    """A result line as a :class:`ResultLine` (never raises: a bad line says why)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return ResultLine(None, reason="bad_line: not JSON")
    if not isinstance(data, dict):
        return ResultLine(None, reason="bad_line: not an object")
    cid = data.get("custom_id")
    cid = cid if isinstance(cid, str) else None
    response = data.get("response")
    error = data.get("error")
    if isinstance(response, dict):
        code = response.get("status_code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        body = response.get("body")
        if code == 200:
            try:
                completion = read_completion(json.dumps(body))
            except MalformedReply as exc:
                return ResultLine(cid, 200, reason=exc.reason)
            if completion.finish_reason is None:
                return ResultLine(cid, 200, reason="no_finish_reason")
            return ResultLine(cid, 200, completion=completion)
        inner = body.get("error") if isinstance(body, dict) else None
        inner = inner if isinstance(inner, dict) else {}
        reason = inner.get("code") if isinstance(inner.get("code"), str) else None
        message = inner.get("message") if isinstance(inner.get("message"), str) else ""
        return ResultLine(cid, code, reason=(reason or f"http_{code}")[:80],
                          error=f"HTTP {code}: {message}"[:500])
    if isinstance(error, dict):
        code_text = error.get("code")
        reason = code_text if isinstance(code_text, str) and code_text else "batch_error"
        message = error.get("message")
        return ResultLine(cid, reason=reason[:80],
                          error=str(message)[:500] if message is not None else None)
    return ResultLine(cid, reason="bad_line: neither a response nor an error")


@dataclass
class BatchStatus:
    """What ``GET /v1/batches/{id}`` said, read defensively."""

    id: str
    status: str
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """Messages of a batch that failed as a whole (its validation)."""

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def read(cls, data: Any) -> BatchStatus:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise _Transient("malformed_reply: not a batch object")
        status = data.get("status")
        counts = data.get("request_counts")
        errors = data.get("errors")
        messages: list[str] = []
        if isinstance(errors, dict) and isinstance(errors.get("data"), list):
            for e in errors["data"]:
                if isinstance(e, dict):
                    where = f" (line {e['line']})" if isinstance(e.get("line"), int) else ""
                    messages.append(f"{e.get('code') or 'error'}: {e.get('message') or ''}{where}")

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(
            id=data["id"],
            status=status if isinstance(status, str) else "unknown",
            input_file_id=text("input_file_id"),
            output_file_id=text("output_file_id"),
            error_file_id=text("error_file_id"),
            request_counts={k: v for k, v in counts.items() if isinstance(v, int)}
            if isinstance(counts, dict) else {},
            errors=messages,
        )


class BatchUnavailable(JudgeError):
    """A batch call that kept failing (after its retries, or the run's deadline came)."""


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class BatchAPI:
    """Synchronous calls of one judge's batch API, with judgecal's retries. A context manager.

    Every call retries 429, 5xx, 408, timeouts, dropped connections and bodies that are not
    the object asked for, with the judge's backoff (``max_retries``, ``backoff_*``,
    ``retry_after_max_s``), and never waits past ``deadline`` (a ``time.monotonic()``
    instant): then :class:`BatchUnavailable`. Credentials refused, or an endpoint without a
    batch API, are a :class:`~judgecal.errors.JudgeError` at once. What the endpoint says is
    passed through ``redactor`` before it leaves this class.
    """

    def __init__(self, judge: JudgeConfig, redactor: Redactor, *, deadline: float | None = None,
                 seed: int | None = None):
        self.judge = judge
        self.deadline = deadline
        self._redact = redactor
        self._rng = random.Random(seed)
        self._url = safe_url(judge.base_url)
        self._http: httpx.Client | None = None
        self._reached = False
        self._connect_failures = 0

    def __enter__(self) -> BatchAPI:
        import httpx

        timeout = httpx.Timeout(self.judge.timeout_s, connect=min(self.judge.timeout_s, 15.0))
        self._http = httpx.Client(
            base_url=self.judge.base_url + "/",
            headers={"Authorization": f"Bearer {self.judge.api_key()}"},
            timeout=timeout,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.close()

    # -- the calls ----------------------------------------------------------------------
    def upload(self, content: bytes, filename: str) -> str:
        """Upload a batch input file; its file id."""
        data = self._json("POST", "files", data={"purpose": "batch"},
                          files={"file": (filename, content, "application/jsonl")})
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise BatchUnavailable(f"the judge endpoint {self._url} answered the upload of "
                                   "the batch file without a file id")
        return str(data["id"])

    def create(self, input_file_id: str, metadata: dict[str, str]) -> BatchStatus:
        """Submit the batch of an uploaded file. Never submits it twice: a request that got
        no clear answer (a timeout, a dropped connection, a 5xx) may have created the batch
        all the same, so before trying again the batches are searched for this file."""
        body = {"input_file_id": input_file_id, "endpoint": BATCH_ENDPOINT,
                "completion_window": "24h", "metadata": metadata}
        for attempt in range(self.judge.max_retries + 1):
            try:
                return BatchStatus.read(self._json("POST", "batches", _retry=False, json=body))
            except _Transient as exc:
                try:
                    found = self.find(input_file_id)
                except (_Transient, BatchUnavailable):
                    found = None
                if found is not None:
                    return found
                self._pause(attempt, exc, "create the batch")
        raise AssertionError("unreachable")  # pragma: no cover

    def retrieve(self, batch_id: str) -> BatchStatus:
        return self._batch("GET", f"batches/{batch_id}")

    def cancel(self, batch_id: str) -> BatchStatus:
        return self._batch("POST", f"batches/{batch_id}/cancel")

    def find(self, input_file_id: str) -> BatchStatus | None:
        """The batch created from ``input_file_id``, among the newest 100 (None if none)."""
        data = self._json("GET", "batches", params={"limit": 100})
        rows = data.get("data") if isinstance(data, dict) else None
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("input_file_id") == input_file_id:
                return BatchStatus.read(row)
        return None

    def lines(self, file_id: str) -> Iterator[ResultLine]:
        """The lines of a result file, read as they arrive. The download is retried from the
        start when it breaks off (the caller skips what it already stored)."""
        import httpx

        assert self._http is not None, "use BatchAPI as a context manager"
        for attempt in range(self.judge.max_retries + 1):
            try:
                with self._http.stream("GET", f"files/{file_id}/content") as response:
                    self._check(response, f"files/{file_id}/content")
                    for raw in response.iter_lines():
                        if raw.strip():
                            yield read_result_line(raw)
                    return
            except _Transient as exc:
                self._pause(attempt, exc, "download the batch results")
            except httpx.TransportError as exc:
                self._pause(attempt, _Transient(f"connection_error: {type(exc).__name__}"),
                            "download the batch results")
        raise AssertionError("unreachable")  # pragma: no cover

    # -- plumbing -------------------------------------------------------------------------
    def _batch(self, method: str, path: str, **kwargs: Any) -> BatchStatus:
        for attempt in range(self.judge.max_retries + 1):
            try:
                return BatchStatus.read(self._json(method, path, _retry=False, **kwargs))
            except _Transient as exc:
                self._pause(attempt, exc, f"{method} {path}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, *, _retry: bool = True, **kwargs: Any) -> Any:
        import httpx

        assert self._http is not None, "use BatchAPI as a context manager"
        tries = self.judge.max_retries + 1 if _retry else 1
        for attempt in range(tries):
            try:
                response = self._http.request(method, path, **kwargs)
                self._check(response, path)
                try:
                    return response.json()
                except ValueError:
                    raise _Transient("malformed_reply: the body is not JSON") from None
            except httpx.TransportError as exc:
                failure = _Transient(f"connection_error: {type(exc).__name__}")
                self._unreachable(exc)
                if not _retry:
                    raise failure from None
                self._pause(attempt, failure, f"{method} {path}")
            except _Transient as exc:
                if not _retry:
                    raise
                self._pause(attempt, exc, f"{method} {path}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, exc: Exception) -> None:
        """Stop at once when the endpoint was never reached and keeps refusing (a wrong
        ``base_url`` is not a flaky judge), as the live client does."""
        if self._reached or type(exc).__name__ not in ("ConnectError", "ConnectTimeout"):
            return
        self._connect_failures += 1
        if self._connect_failures >= UNREACHABLE_AFTER:
            raise JudgeError(f"cannot reach the judge endpoint {self._url} "
                             f"({type(exc).__name__}): check base_url and that the server is up")

    def _check(self, response: httpx.Response, path: str) -> None:
        self._reached = True
        code = response.status_code
        if code < 400:
            return
        if code in (408, 429) or code >= 500:
            raise _Transient(f"http_{code}", _retry_after(response.headers))
        if code in (401, 403):
            raise JudgeError(
                f"the judge endpoint {self._url} refused the credentials "
                f"(HTTP {code}); check the variable {self.judge.api_key_env}")
        response.read()
        message = self._redact(_error_message(response)) or ""
        if code in (404, 405) and path in ("files", "batches"):
            raise JudgeError(
                f"the judge endpoint {self._url} has no batch API (POST /{path} answered "
                f"HTTP {code}); set judge.batch: false to send live requests")
        raise JudgeError(f"the judge endpoint {self._url} refused {path} "
                         f"(HTTP {code}: {message[:300]})")

    def _pause(self, attempt: int, exc: _Transient, what: str) -> None:
        """Wait before retry ``attempt + 1``, or give up (retries spent, deadline)."""
        reason = self._redact(exc.reason) or exc.reason
        if attempt >= self.judge.max_retries:
            raise BatchUnavailable(
                f"the judge endpoint {self._url} failed to {what} "
                f"{attempt + 1} times (last: {reason})")
        cap = min(self.judge.backoff_max_s, self.judge.backoff_base_s * (2**attempt))
        wait = self._rng.uniform(0, cap) if exc.retry_after is None else exc.retry_after
        wait = min(wait, self.judge.retry_after_max_s)
        if self.deadline is not None and time.monotonic() + wait >= self.deadline:
            raise BatchUnavailable(
                f"the run's deadline came while the judge endpoint {self._url} failed to "
                f"{what} (last: {reason})")
        time.sleep(wait)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    inner = data.get("error") if isinstance(data, dict) else None
    if isinstance(inner, dict) and inner.get("message"):
        return str(inner["message"])
    return str(data)[:300]
