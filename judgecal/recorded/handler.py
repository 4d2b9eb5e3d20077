"""The recorded judge's HTTP handler: the OpenAI-compatible routes, fault injection, streaming.

One :class:`Handler` per connection (HTTP/1.1 keep-alive). Waits (latency, ``timeout``
faults) watch the connection and give up as soon as the client hangs up or the server stops.
Request lines go to the ``judgecal.recorded`` logger at DEBUG level, never headers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import select
import socket
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from judgecal.errors import InputError, JudgecalError
from judgecal.recorded.faults import JUNK_REPLY, MALFORMED_200, draw_fault
from judgecal.recorded.recordings import MatchError, Recording, Resolved
from judgecal.recorded.state import ANY_MODEL, IDLE_TIMEOUT_S, ITEM_HEADER, ServerConfig

if TYPE_CHECKING:
    from judgecal.recorded.server import Server

__all__ = ["Handler"]

log = logging.getLogger("judgecal.recorded")



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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "judgecal-recorded"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    server: Server

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
            elif self.server.batches.handles(route):
                self._batch_api("GET", route, b"")
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
            elif self.server.batches.handles(route):
                self._batch_api("POST", route, self._read_body())
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

    def _batch_api(self, method: str, route: str, body: bytes) -> None:
        """The batch API's routes (:mod:`judgecal.recorded.batch`)."""
        query = self.path.partition("?")[2]
        reply = self.server.batches.handle(method, route, query, body,
                                           self.headers.get("Content-Type"))
        self._send(reply.status, reply.body, content_type=reply.content_type)

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
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with stats.lock:
            stats.item_requests[item] += 1
            stats.model_requests[model] += 1
            attempt = stats.attempts[(model, item)] = stats.attempts[(model, item)] + 1
            seen = stats.bodies[(model, item)]
            if digest in seen:
                stats.repeated[item] += 1
            seen.add(digest)
        if config.profile != "llamacpp":
            self._answer(body, model, prompt, recording, resolved, attempt, config)
            return
        # llama.cpp with one slot: requests wait their turn; one that gives up while
        # waiting (the client hung up) is dropped without an answer.
        while not state.slot.acquire(blocking=False):
            if not self._wait(0.05):
                return
        try:
            self._answer(body, model, prompt, recording, resolved, attempt, config)
        finally:
            state.slot.release()

    def _answer(self, body: Mapping[str, Any], model: str, prompt: str, recording: Recording,
                resolved: Resolved, attempt: int, config: ServerConfig) -> None:
        stats = self.server.state.stats
        with stats.lock:
            stats.active += 1
            stats.max_active = max(stats.max_active, stats.active)
        try:
            self._answer_inner(body, model, prompt, recording, resolved, attempt, config)
        finally:
            with stats.lock:
                stats.active -= 1

    def _answer_inner(self, body: Mapping[str, Any], model: str, prompt: str,
                      recording: Recording,
                      resolved: Resolved, attempt: int, config: ServerConfig) -> None:
        state = self.server.state
        stats = state.stats
        item = resolved.item_id
        fault, rng = draw_fault(config.faults, config.seed, f"{model}\x00{item}\x00{attempt}")
        delay = config.latency_ms + rng.uniform(0, config.latency_jitter_ms)
        if fault and fault.startswith("429"):
            delay = 0.0  # a rate limiter turns a request away before any model runs
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
        elif fault == "rescore":
            text = recording.rescored(resolved, rng)
        elif fault == "empty":
            text = ""
        elif fault == "truncated-stream":
            text, finish = text[: len(text) // 2], ""
        elif fault == "no-finish-reason":
            finish = ""
        llamacpp = config.profile == "llamacpp"
        # llama.cpp reads only max_tokens (and its own n_predict); max_completion_tokens
        # is ignored, so a client sending only that gets the whole reply.
        params = ("max_tokens",) if llamacpp else ("max_tokens", "max_completion_tokens")
        limit = [v for k in params if isinstance(v := body.get(k), int) and v > 0]
        if limit and _tokens(text) > min(limit):
            text, finish = text[: 4 * min(limit)], finish and "length"
        served = fault in (None, "timeout", "bad-usage", "echo-key", "no-usage", "rescore")
        usage: dict[str, Any] | None = {
            "prompt_tokens": _tokens(prompt),
            "completion_tokens": _tokens(text),
            "total_tokens": _tokens(prompt) + _tokens(text),
        }
        served_id = model if llamacpp else (config.model_id or model)
        fingerprint = None
        if fault == "no-usage":
            usage = None
        elif fault == "bad-usage":
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
            "finish_key": fault != "no-finish-reason",
            "report_fingerprint": not llamacpp,
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
            "timeout", "junk", "empty", "truncated-stream", "bad-usage", "echo-key",
            "no-finish-reason", "no-usage", "rescore",
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
        }
        if not c["finish_key"]:  # the no-finish-reason fault: the key is missing altogether
            del body["choices"][0]["finish_reason"]
        if c["usage"] is not None:
            body["usage"] = c["usage"]
        fingerprint = c.get("system_fingerprint") or (
            config.system_fingerprint if c["report_fingerprint"] else None
        )
        if fingerprint:
            body["system_fingerprint"] = fingerprint
        return self._send(200, json.dumps(body).encode(), headers)

    def _stream(self, c: Mapping[str, Any], config: ServerConfig, headers: Mapping[str, str],
                include_usage: bool) -> bool:
        base: dict[str, Any] = {
            "id": c["id"], "object": "chat.completion.chunk", "created": c["created"],
            "model": c["model"],
        }
        fingerprint = c.get("system_fingerprint") or (
            config.system_fingerprint if c["report_fingerprint"] else None
        )
        if fingerprint:
            base["system_fingerprint"] = fingerprint

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
        if include_usage and c["usage"] is not None:
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
