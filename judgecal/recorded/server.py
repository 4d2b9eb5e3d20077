"""The recorded judge's HTTP server: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive.

One thread per connection (a judge client keeps one connection per concurrent request),
so slow replies, injected timeouts and many concurrent clients do not block each other.
Waits (latency, ``timeout`` faults) watch the connection and give up as soon as the client
hangs up or the server stops, so threads never pile up behind a client that left.

Python API::

    from judgecal.recorded.server import ServerConfig, start_server

    with start_server(ServerConfig(recordings={"gpt-3.5-turbo": "pandalm:gpt-3.5-turbo"})) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="unused")
        ...
        srv.configure(recordings={"gpt-3.5-turbo": "pandalm:pandalm-7b"})  # silent swap
        srv.stats()["items"]["12"]["requests"]

Nothing here prints; request lines go to the ``judgecal.recorded`` logger at DEBUG level
(never headers, so an ``Authorization`` header cannot leak).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import logging
import math
import select
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from judgecal.errors import InputError, JudgecalError
from judgecal.recorded.faults import JUNK_REPLY, MALFORMED_200, draw_fault, validate_faults
from judgecal.recorded.recordings import (
    MatchError,
    Recording,
    find_recording,
    load_recording,
    resolve_sets_dir,
)

__all__ = [
    "DEFAULT_RECORDING",
    "ITEM_HEADER",
    "RunningServer",
    "ServerConfig",
    "parse_recording_option",
    "start_server",
]

log = logging.getLogger("judgecal.recorded")

DEFAULT_RECORDING = "pandalm:gpt-3.5-turbo"
ITEM_HEADER = "X-Judgecal-Item-Id"
ANY_MODEL = "*"
IDLE_TIMEOUT_S = 120.0
"""A keep-alive connection idle this long is closed by the server."""

_RUNTIME_FIELDS = (
    "recordings",
    "sets_dir",
    "model_id",
    "system_fingerprint",
    "faults",
    "seed",
    "latency_ms",
    "latency_jitter_ms",
    "retry_after_s",
    "timeout_sleep_s",
)


def parse_recording_option(text: str) -> tuple[str, str]:
    """``ALIAS=SPEC`` -> (alias, spec); a bare ``SPEC`` serves every model name (``*``)."""
    alias, sep, spec = text.partition("=")
    if not sep:
        return ANY_MODEL, text.strip()
    alias, spec = alias.strip(), spec.strip()
    if not alias or not spec:
        raise InputError(f"recording '{text}': expected ALIAS=SET:NAME or SET:NAME")
    return alias, spec


@dataclass(frozen=True)
class ServerConfig:
    """Everything the recorded judge can be told. All but ``host``/``port`` can change at
    runtime (:meth:`RunningServer.configure`, ``POST /_judgecal/config``)."""

    recordings: Mapping[str, str] = field(default_factory=lambda: {ANY_MODEL: DEFAULT_RECORDING})
    """Requested model alias -> recording spec (``<set>:<name>``); alias ``*`` answers
    every model name not listed. A plain string is one spec served under ``*``."""
    sets_dir: Path | None = None
    """Calibration-sets root; None: ``$JUDGECAL_SETS_DIR`` or ``./calibration_sets``."""
    model_id: str | None = None
    """Model id reported in replies; None echoes the requested model (as llama.cpp does)."""
    system_fingerprint: str | None = None
    """Reported ``system_fingerprint``; None leaves the field out."""
    faults: Mapping[str, float] = field(default_factory=dict)
    """Fault kind -> rate, see :mod:`judgecal.recorded.faults`."""
    seed: int = 0
    latency_ms: float = 0.0
    """Added to every chat-completion response."""
    latency_jitter_ms: float = 0.0
    """Uniform extra latency in ``[0, latency_jitter_ms]``, drawn per request."""
    retry_after_s: float = 1.0
    """``Retry-After`` of the ``429`` fault."""
    timeout_sleep_s: float | None = 30.0
    """How long a ``timeout`` fault waits before answering; None: never answer."""
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""

    def __post_init__(self) -> None:
        recordings = self.recordings
        if isinstance(recordings, str):
            recordings = {ANY_MODEL: recordings}
        if not recordings:
            raise InputError("the recorded judge needs at least one recording")
        object.__setattr__(self, "recordings", dict(recordings))
        object.__setattr__(self, "faults", validate_faults(self.faults))
        if self.sets_dir is not None and not isinstance(self.sets_dir, Path):
            object.__setattr__(self, "sets_dir", Path(self.sets_dir))
        for name in ("latency_ms", "latency_jitter_ms", "retry_after_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise InputError(f"{name} must be a number >= 0, got {value!r}")
        if self.timeout_sleep_s is not None and (
            not isinstance(self.timeout_sleep_s, int | float) or self.timeout_sleep_s < 0
        ):
            raise InputError(f"timeout_sleep_s must be >= 0 or None, got {self.timeout_sleep_s!r}")
        if not isinstance(self.seed, int):
            raise InputError(f"seed must be an integer, got {self.seed!r}")

    def replace(self, **changes: Any) -> ServerConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputError(f"unknown server setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def check_recordings(self) -> None:
        """Fail early (:class:`InputError`) if a recording spec does not exist."""
        for spec in self.recordings.values():
            find_recording(spec, self.sets_dir)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sets_dir"] = str(resolve_sets_dir(self.sets_dir))
        return d


# --------------------------------------------------------------------------- state


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.requests = 0
        self.replies = 0
        self.by_status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.item_requests: Counter[str] = Counter()
        self.item_served: Counter[str] = Counter()
        self.model_requests: Counter[str] = Counter()
        self.model_served: Counter[str] = Counter()
        self.attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.client_disconnects = 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "since": self.since,
                "requests": self.requests,
                "replies": self.replies,
                "by_status": dict(sorted(self.by_status.items())),
                "faults": dict(sorted(self.faults.items())),
                "errors": dict(sorted(self.errors.items())),
                "items": {
                    k: {"requests": n, "served": self.item_served.get(k, 0)}
                    for k, n in self.item_requests.items()
                },
                "models": {
                    k: {"requests": n, "served": self.model_served.get(k, 0)}
                    for k, n in self.model_requests.items()
                },
                "client_disconnects": self.client_disconnects,
            }


class _State:
    def __init__(self, config: ServerConfig):
        self.lock = threading.Lock()
        self.config = config
        self.stats = _Stats()
        self.stop = threading.Event()
        self.ids = itertools.count(1)
        self.conn_lock = threading.Lock()
        self.loaded: dict[tuple[Path | None, str], Recording] = {}
        self.connections: set[socket.socket] = set()

    def configure(self, **changes: Any) -> ServerConfig:
        bad = set(changes) - set(_RUNTIME_FIELDS)
        if bad:
            raise InputError(
                f"cannot change {', '.join(sorted(bad))} at runtime "
                f"(changeable: {', '.join(_RUNTIME_FIELDS)})"
            )
        with self.lock:
            new = self.config.replace(**changes)
            new.check_recordings()
            self.config = new
            return new

    def recording_for(self, config: ServerConfig, model: str) -> Recording | None:
        spec = config.recordings.get(model) or config.recordings.get(ANY_MODEL)
        if spec is None:
            return None
        key = (config.sets_dir, spec)
        recording = self.loaded.get(key)
        if recording is None:  # first use: read the files (cached process-wide too)
            recording = self.loaded[key] = load_recording(spec, config.sets_dir)
        return recording


# --------------------------------------------------------------------------- HTTP


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(body).encode()


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


def _tokens(text: str) -> int:
    """Token estimate: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str | None = None,
                 type_: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.type = type_
        self.param = param


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "judgecal-recorded"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    server: _Server

    # ----------------------------------------------------------------- plumbing

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.state.conn_lock:
            self.server.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.state.conn_lock:
            self.server.state.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        # Only the request line and status reach here; headers are never logged.
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None,
              content_type: str = "application/json") -> bool:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        all_headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            "Server": self.server_version,
            **(headers or {}),
        }
        if self.close_connection:
            all_headers["Connection"] = "close"
        lines += [f"{k}: {v}" for k, v in all_headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(status)
        return self._write(head + body)

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            return True
        except OSError:
            self.close_connection = True
            with self.server.state.stats.lock:
                self.server.state.stats.client_disconnects += 1
            return False

    def _send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise _BadRequest("invalid Content-Length header") from None
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self) -> Any:
        raw = self._read_body()
        try:
            return json.loads(raw) if raw else {}
        except ValueError as exc:
            raise _BadRequest(f"request body is not valid JSON: {exc}") from None

    def _wait(self, seconds: float | None) -> bool:
        """Wait, watching the client and the server; False if either went away."""
        state = self.server.state
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            if state.stop.is_set():
                self.close_connection = True
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return True
            step = 0.1 if remaining is None else min(remaining, 0.1)
            try:
                readable, _, _ = select.select([self.connection], [], [], step)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    self.close_connection = True
                    with state.stats.lock:
                        state.stats.client_disconnects += 1
                    return False
            except (OSError, ValueError):
                self.close_connection = True
                return False
            if readable:  # a pipelined request is waiting; do not spin on it
                state.stop.wait(step)

    def _route(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path.removeprefix("/v1") if path.startswith("/v1/") else path

    # ----------------------------------------------------------------- routes

    def do_GET(self) -> None:
        route = self._route()
        state = self.server.state
        try:
            if route == "/models":
                self._send_json(200, {"object": "list", "data": self._models()})
            elif route.startswith("/models/"):
                name = route.removeprefix("/models/")
                found = [m for m in self._models() if m["id"] == name]
                if not found and ANY_MODEL not in state.config.recordings:
                    raise _BadRequest(f"The model '{name}' does not exist", 404, "model_not_found")
                self._send_json(200, found[0] if found else self._model_entry(name))
            elif route == "/_judgecal/stats":
                self._send_json(200, state.stats.snapshot())
            elif route == "/_judgecal/config":
                self._send_json(200, state.config.to_dict())
            elif route in ("/health", "/_judgecal/health"):
                self._send_json(200, {"status": "ok"})
            else:
                raise _BadRequest(f"no route GET {self.path}", 404, "not_found")
        except _BadRequest as exc:
            self._send(exc.status, _error_body(str(exc), exc.type, exc.code, exc.param))

    def do_POST(self) -> None:
        route = self._route()
        try:
            if route == "/chat/completions":
                self._chat()
            elif route == "/_judgecal/config":
                body = self._json_body()
                if not isinstance(body, dict):
                    raise _BadRequest("config body must be a JSON object")
                try:
                    config = self.server.state.configure(**body)
                except (InputError, TypeError, ValueError) as exc:
                    raise _BadRequest(str(exc), code="invalid_config") from None
                self._send_json(200, config.to_dict())
            elif route == "/_judgecal/reset-stats":
                self._read_body()
                with self.server.state.stats.lock:
                    self.server.state.stats.reset()
                self._send_json(200, {"status": "ok"})
            else:
                self._read_body()
                raise _BadRequest(f"no route POST {self.path}", 404, "not_found")
        except _BadRequest as exc:
            self._send(exc.status, _error_body(str(exc), exc.type, exc.code, exc.param))

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "judgecal-recorded"}

    def _models(self) -> list[dict[str, Any]]:
        config = self.server.state.config
        names = []
        for alias, spec in config.recordings.items():
            names.append(spec.partition(":")[2] if alias == ANY_MODEL else alias)
        return [self._model_entry(n) for n in dict.fromkeys(names)]

    # ----------------------------------------------------------------- chat

    def _chat(self) -> None:
        state = self.server.state
        stats = state.stats
        with stats.lock:
            stats.requests += 1
        try:
            self._chat_inner()
        except _BadRequest as exc:
            with stats.lock:
                stats.by_status[str(exc.status)] += 1
                stats.errors[exc.code or exc.type] += 1
            self._send(exc.status, _error_body(str(exc), exc.type, exc.code, exc.param))

    def _chat_inner(self) -> None:
        state = self.server.state
        stats = state.stats
        config = state.config  # one consistent view for this request
        body = self._json_body()
        if not isinstance(body, dict):
            raise _BadRequest("request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty array", param="messages")
        try:
            recording = state.recording_for(config, model)
        except JudgecalError as exc:
            raise _BadRequest(str(exc), 500, "recording_unavailable", "server_error") from None
        if recording is None:
            raise _BadRequest(
                f"The model '{model}' does not exist or you do not have access to it. "
                f"This recorded judge serves: {', '.join(sorted(config.recordings))}",
                404, "model_not_found", param="model",
            )
        prompt = "\n".join(
            _content_text(m.get("content")) for m in messages if isinstance(m, Mapping)
        )
        hint = self.headers.get(ITEM_HEADER)
        try:
            resolved = recording.resolve(prompt, hint.strip() if hint else None)
        except MatchError as exc:
            raise _BadRequest(str(exc), exc.status, exc.code) from None

        item = resolved.item_id
        with stats.lock:
            stats.item_requests[item] += 1
            stats.model_requests[model] += 1
            attempt = stats.attempts[(model, item)] = stats.attempts[(model, item)] + 1
        fault, rng = draw_fault(config.faults, config.seed, f"{model}\x00{item}\x00{attempt}")
        delay = config.latency_ms + rng.uniform(0, config.latency_jitter_ms)
        if fault:
            with stats.lock:
                stats.faults[fault] += 1
        if delay > 0 and not self._wait(delay / 1000):
            return
        if fault == "timeout" and not self._wait(config.timeout_sleep_s):
            return

        headers = {
            ITEM_HEADER: item,
            "X-Judgecal-Swapped": "1" if resolved.swapped else "0",
            "X-Judgecal-Recording": recording.spec,
        }
        if fault and fault != "timeout":
            headers["X-Judgecal-Fault"] = fault
        if self._fault_reply(fault, headers, config):
            return

        text, finish = resolved.text, "stop"
        if fault == "junk":
            text = JUNK_REPLY
        elif fault == "empty":
            text = ""
        elif fault == "truncated-stream":
            text, finish = text[: len(text) // 2], ""
        limit = [v for k in ("max_tokens", "max_completion_tokens")
                 if isinstance(v := body.get(k), int) and v > 0]
        if limit and _tokens(text) > min(limit):
            text, finish = text[: 4 * min(limit)], finish and "length"
        served = fault in (None, "timeout", "bad-usage", "echo-key")
        usage: dict[str, Any] = {
            "prompt_tokens": _tokens(prompt),
            "completion_tokens": _tokens(text),
            "total_tokens": _tokens(prompt) + _tokens(text),
        }
        served_id = config.model_id or model
        fingerprint = None
        if fault == "bad-usage":
            usage = {"prompt_tokens": "lots", "completion_tokens": -5, "total_tokens": None}
        elif fault == "echo-key":
            # What a gateway that reflects the request's headers sends back.
            echoed = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            served_id = f"{served_id}-{echoed}"
            fingerprint = f"fp_{echoed}"
            text = f"{text}\n(request authorised with {echoed})"
        completion = {
            "id": f"chatcmpl-judgecal-{next(state.ids):08x}",
            "created": int(time.time()),
            "model": served_id,
            "text": text,
            "finish": finish or None,
            "usage": usage,
            "system_fingerprint": fingerprint,
        }
        stream_options = body.get("stream_options")
        # Count before sending: a client may read the stats as soon as it has the reply.
        self._count_reply(item, model, served, +1)
        if body.get("stream"):
            include_usage = isinstance(stream_options, Mapping) and bool(
                stream_options.get("include_usage")
            )
            ok = self._stream(completion, config, headers, include_usage)
        else:
            ok = self._reply(completion, config, headers)
        if not ok:
            self._count_reply(item, model, served, -1)

    def _count_reply(self, item: str, model: str, served: bool, step: int) -> None:
        stats = self.server.state.stats
        with stats.lock:
            stats.by_status["200"] += step
            if served:
                stats.replies += step
                stats.item_served[item] += step
                stats.model_served[model] += step

    def _fault_reply(self, fault: str | None, headers: dict[str, str],
                     config: ServerConfig) -> bool:
        """Send the response of an HTTP-level fault; False if the fault is not one."""
        stats = self.server.state.stats
        if fault is None or fault in (
            "timeout", "junk", "empty", "truncated-stream", "bad-usage", "echo-key"
        ):
            return False
        if fault in MALFORMED_200:
            with stats.lock:
                stats.by_status["200"] += 1
            kind = "text/html" if fault == "html" else "application/json"
            self._send(200, MALFORMED_200[fault], headers, content_type=kind)
            return True
        if fault == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            with stats.lock:
                stats.by_status["dropped"] += 1
            return True
        if fault.startswith("429"):
            status, type_, code = 429, "requests", "rate_limit_exceeded"
            message = "Rate limit reached for requests (injected by the recorded judge)."
            if fault == "429":
                secs = config.retry_after_s
                headers["Retry-After"] = str(int(secs)) if float(secs).is_integer() else str(secs)
        elif fault == "context-length":
            status, type_, code = 400, "invalid_request_error", "context_length_exceeded"
            message = ("This model's maximum context length is 4096 tokens. However, your "
                       "messages resulted in more tokens (injected by the recorded judge).")
        else:
            status, type_, code = int(fault), "server_error", None
            message = f"The server had an error while processing your request (injected {fault})."
        with stats.lock:
            stats.by_status[str(status)] += 1
        self._send(status, _error_body(message, type_, code), headers)
        return True

    def _reply(
        self, c: Mapping[str, Any], config: ServerConfig, headers: Mapping[str, str]
    ) -> bool:
        body: dict[str, Any] = {
            "id": c["id"],
            "object": "chat.completion",
            "created": c["created"],
            "model": c["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": c["text"], "refusal": None},
                "logprobs": None,
                "finish_reason": c["finish"],
            }],
            "usage": c["usage"],
        }
        if c.get("system_fingerprint") or config.system_fingerprint:
            body["system_fingerprint"] = c.get("system_fingerprint") or config.system_fingerprint
        return self._send(200, json.dumps(body).encode(), headers)

    def _stream(self, c: Mapping[str, Any], config: ServerConfig, headers: Mapping[str, str],
                include_usage: bool) -> bool:
        base: dict[str, Any] = {
            "id": c["id"], "object": "chat.completion.chunk", "created": c["created"],
            "model": c["model"],
        }
        if c.get("system_fingerprint") or config.system_fingerprint:
            base["system_fingerprint"] = c.get("system_fingerprint") or config.system_fingerprint

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = json.dumps({**base, "choices": choices, **extra})
            return f"data: {data}\n\n".encode()

        def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}

        text: str = c["text"]
        events = [event([delta({"role": "assistant", "content": ""})])]
        events += [event([delta({"content": text[i:i + 24]})]) for i in range(0, len(text), 24)]
        if c["finish"]:
            events.append(event([delta({}, c["finish"])]))
        if include_usage:
            events.append(event([], usage=c["usage"]))
        events.append(b"data: [DONE]\n\n")

        lines = [
            "HTTP/1.1 200 OK",
            "Content-Type: text/event-stream; charset=utf-8",
            "Cache-Control: no-cache",
            "Transfer-Encoding: chunked",
            f"Server: {self.server_version}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.log_request(200)
        out = [("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")]
        out += [f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events]
        out.append(b"0\r\n\r\n")
        return self._write(b"".join(out))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: _State):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error while serving %s", client_address, exc_info=True)


# --------------------------------------------------------------------------- API


class RunningServer:
    """A recorded judge serving in a background thread. Use as a context manager."""

    def __init__(self, server: _Server, state: _State, thread: threading.Thread):
        self._server = server
        self._state = state
        self._thread = thread
        host, port = server.server_address[:2]
        self.host: str = str(host)
        self.port: int = int(port)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{shown}:{self.port}"
        """Root URL, e.g. ``http://127.0.0.1:8123``."""
        self.url = self.base_url + "/v1"
        """OpenAI base URL, e.g. ``http://127.0.0.1:8123/v1``."""

    @property
    def config(self) -> ServerConfig:
        return self._state.config

    def configure(self, **changes: Any) -> ServerConfig:
        """Change settings at runtime (see ``ServerConfig``); returns the new config."""
        return self._state.configure(**changes)

    def stats(self) -> dict[str, Any]:
        """Counters since start or the last reset (same JSON as ``GET /_judgecal/stats``)."""
        return self._state.stats.snapshot()

    def reset_stats(self) -> None:
        with self._state.stats.lock:
            self._state.stats.reset()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._state.stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True if it has stopped."""
        return self._state.stop.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, hang up on every open connection and wait for the threads."""
        if self._state.stop.is_set() and not self._thread.is_alive():
            return
        self._state.stop.set()
        self._server.shutdown()
        self._server.server_close()
        with self._state.conn_lock:
            connections = list(self._state.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url} {dict(self.config.recordings)}>"


def start_server(config: ServerConfig | None = None, **changes: Any) -> RunningServer:
    """Start a recorded judge in a background thread and return at once.

    ``changes`` override fields of ``config`` (or of the default config). Recording specs
    are checked against the manifests here (:class:`~judgecal.errors.InputError` if one
    does not exist); the recording files themselves load on first use. Raises
    ``OSError`` if the address cannot be bound.
    """
    config = config or ServerConfig()
    if changes:
        config = config.replace(**changes)
    config.check_recordings()
    state = _State(config)
    server = _Server((config.host, config.port), state)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05},
        name=f"judgecal-recorded:{server.server_address[1]}", daemon=True,
    )
    thread.start()
    return RunningServer(server, state, thread)
