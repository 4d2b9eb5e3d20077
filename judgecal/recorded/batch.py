"""The recorded judge's batch API: files, batches, and their results from the recordings.

The OpenAI-compatible endpoints a batch client uses, kept in memory for the server's life:

========================================  ===============================================
``POST /v1/files``                        multipart upload (``purpose=batch``, ``file``)
``GET /v1/files/{id}``                    the file object
``GET /v1/files/{id}/content``            the file's bytes (an output or error file: JSONL)
``POST /v1/batches``                      ``input_file_id``, ``endpoint``
                                          (``/v1/chat/completions``), ``completion_window``
                                          (``24h``), optional ``metadata``
``GET /v1/batches``                       the batches, newest first (``limit``)
``GET /v1/batches/{id}``                  the batch object
``POST /v1/batches/{id}/cancel``          ``cancelling``, then ``cancelled`` at the next look
========================================  ===============================================

A new batch is ``validating``; its input is checked then (every line JSON with a unique
``custom_id``, ``method`` ``POST``, the batch's ``url`` and a ``body`` object; otherwise the
batch is ``failed`` with ``errors.data`` naming the line). Each ``GET`` of a running batch is
one look: it is ``in_progress`` for ``batch_polls`` looks, and at the next one every line is
answered exactly as the live ``POST /v1/chat/completions`` answers that body (same recording,
same item matching, same fault draws per item and attempt, the same token estimates and
model id), and the batch is ``completed``. A line's ``custom_id`` of the form
``<anything>~<item id>`` gives the item hint the live path sends in a header.

Results are in ``batch_order`` (``shuffled`` by default, seeded: a client must match lines by
``custom_id``; ``input`` or ``reversed``). Replies with HTTP 200 go to the output file; the
others to the error file: an injected 429/5xx/``timeout``/``drop`` fault is a line with that
status (``timeout`` and ``drop`` as 500), ``context-length`` a 400, a request without a
recorded item the live 404 or 409; the malformed-reply faults are lines whose ``body`` is
the malformed body (as JSON if it is JSON, else as a string).

Fault injection for batches (:class:`~judgecal.recorded.state.ServerConfig`):
``batch_polls`` (a slow batch), ``batch_expire`` (the share of lines answered, in input
order, before the batch *expires*: the rest are error lines ``batch_expired``, and the
output file holds the finished part), ``batch_order``. A cancelled batch answers the lines
its looks so far had reached (share looks / (``batch_polls`` + 1)); the rest are
``batch_cancelled``. Under the ``llamacpp`` profile there is no batch API (404), as on a
llama.cpp server. ``GET /_judgecal/stats`` counts under ``batches`` the files uploaded,
batches created, looks, cancels and lines answered; each line also counts as a request of
its item (``items``), like a live request.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import itertools
import json
import math
import random
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from judgecal.errors import JudgecalError
from judgecal.recorded.faults import JUNK_REPLY, MALFORMED_200, draw_fault
from judgecal.recorded.recordings import MatchError
from judgecal.recorded.state import ServerConfig, State

__all__ = ["BATCH_ORDERS", "BatchService", "Reply"]

BATCH_ORDERS = ("shuffled", "input", "reversed")
"""How a finished batch orders its result lines (``batch_order``)."""

_ENDPOINT = "/v1/chat/completions"


@dataclass
class Reply:
    """An HTTP response of the batch API."""

    status: int
    body: bytes
    content_type: str = "application/json"


def _json(status: int, obj: Any) -> Reply:
    return Reply(status, json.dumps(obj).encode())


def _error(status: int, message: str, code: str | None = None,
           type_: str = "invalid_request_error") -> Reply:
    return _json(status, {"error": {"message": message, "type": type_, "param": None,
                                    "code": code}})


@dataclass
class _File:
    id: str
    purpose: str
    filename: str
    content: bytes
    created_at: int

    def obj(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content),
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed"}


@dataclass
class _Batch:
    id: str
    input_file_id: str
    metadata: Any
    created_at: int
    lines: list[dict[str, Any]]
    status: str = "validating"
    errors: list[dict[str, Any]] = field(default_factory=list)
    looks: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    stamps: dict[str, int] = field(default_factory=dict)

    def obj(self) -> dict[str, Any]:
        total = len(self.lines)
        return {
            "id": self.id, "object": "batch", "endpoint": _ENDPOINT,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id, "completion_window": "24h",
            "status": self.status, "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id, "created_at": self.created_at,
            "expires_at": self.created_at + 24 * 3600,
            **{f"{k}_at": self.stamps.get(k) for k in (
                "in_progress", "finalizing", "completed", "failed", "expired", "cancelling",
                "cancelled")},
            "request_counts": self.counts or {"total": total, "completed": 0, "failed": 0},
            "metadata": self.metadata,
        }


class BatchService:
    """The batch API of one recorded judge (thread-safe)."""

    def __init__(self, state: State):
        self.state = state
        self.lock = threading.Lock()
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self.ids = itertools.count(1)
        self.tag = secrets.token_hex(3)
        """Part of every id: a restarted server does not hand out the ids it gave before."""

    def handles(self, route: str) -> bool:
        return route in ("/files", "/batches") or route.startswith(("/files/", "/batches/"))

    def handle(self, method: str, route: str, query: str, body: bytes,
               content_type: str | None) -> Reply:
        """Answer one request of the batch API (``route`` without ``/v1``)."""
        config = self.state.config
        if config.profile == "llamacpp":
            return _error(404, f"no route {method} {route}: this server has no batch API",
                          "not_found")
        parts = route.strip("/").split("/")
        with self.lock:
            if method == "POST" and parts == ["files"]:
                return self._upload(body, content_type)
            if method == "GET" and len(parts) == 2 and parts[0] == "files":
                found = self.files.get(parts[1])
                return _json(200, found.obj()) if found else self._missing("file", parts[1])
            if method == "GET" and len(parts) == 3 and parts[0] == "files" and \
                    parts[2] == "content":
                found = self.files.get(parts[1])
                if found is None:
                    return self._missing("file", parts[1])
                return Reply(200, found.content, "application/octet-stream")
            if method == "POST" and parts == ["batches"]:
                return self._create(body)
            if method == "GET" and parts == ["batches"]:
                limit = parse_qs(query).get("limit", ["20"])[0]
                newest = sorted(self.batches.values(), key=lambda b: -int(b.id.split("_")[-1]))
                data = [b.obj() for b in newest[: max(1, int(limit) if limit.isdigit() else 20)]]
                return _json(200, {"object": "list", "data": data, "has_more": False})
            if len(parts) >= 2 and parts[0] == "batches":
                batch = self.batches.get(parts[1])
                if batch is None:
                    return self._missing("batch", parts[1])
                if method == "GET" and len(parts) == 2:
                    self._look(batch, config)
                    return _json(200, batch.obj())
                if method == "POST" and parts[2:] == ["cancel"]:
                    return self._cancel(batch)
        return _error(404, f"no route {method} /v1{route}", "not_found")

    # -- files and batches ------------------------------------------------------------------
    def _count(self, what: str, n: int = 1) -> None:
        stats = self.state.stats
        with stats.lock:
            stats.batch[what] += n

    def _missing(self, what: str, name: str) -> Reply:
        return _error(404, f"No such {what}: {name}", "not_found")

    def _new_file(self, purpose: str, filename: str, content: bytes) -> _File:
        f = _File(f"file-judgecal{self.tag}{next(self.ids):06d}", purpose, filename, content,
                  int(time.time()))
        self.files[f.id] = f
        return f

    def _upload(self, body: bytes, content_type: str | None) -> Reply:
        if not content_type or not content_type.startswith("multipart/form-data"):
            return _error(400, "the upload must be multipart/form-data")
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = (part.get_filename(), payload)
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if "file" not in fields:
            return _error(400, "missing the 'file' field")
        if purpose != "batch":
            return _error(400, f"purpose must be 'batch' here, got {purpose!r}")
        filename, content = fields["file"]
        self._count("files_uploaded")
        return _json(200, self._new_file("batch", filename or "upload.jsonl", content).obj())

    def _create(self, raw: bytes) -> Reply:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        source = self.files.get(str(body.get("input_file_id")))
        if source is None:
            return _error(400, f"no file {body.get('input_file_id')!r} to make a batch of",
                          "invalid_file")
        if body.get("endpoint") != _ENDPOINT:
            return _error(400, f"this server batches only {_ENDPOINT}", "invalid_endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "completion_window must be '24h'", "invalid_completion_window")
        lines, errors = _input_lines(source.content)
        batch = _Batch(f"batch_judgecal{self.tag}_{next(self.ids):06d}", source.id,
                       body.get("metadata"), int(time.time()), lines)
        if errors:
            batch.status, batch.errors = "failed", errors
            batch.stamps["failed"] = batch.created_at
        self.batches[batch.id] = batch
        self._count("created")
        return _json(200, batch.obj())

    def _look(self, batch: _Batch, config: ServerConfig) -> None:
        """One ``GET``: the batch moves on (see the module docstring)."""
        self._count("looks")
        now = int(time.time())
        if batch.status == "validating":
            batch.status = "in_progress"
            batch.stamps["in_progress"] = now
        elif batch.status == "cancelling":
            progress = batch.looks / (config.batch_polls + 1)
            self._finish(batch, config, "cancelled", progress, "batch_cancelled")
            return
        if batch.status != "in_progress":
            return
        batch.looks += 1
        if batch.looks <= config.batch_polls:
            return
        if config.batch_expire is not None:
            self._finish(batch, config, "expired", config.batch_expire, "batch_expired")
        else:
            self._finish(batch, config, "completed", 1.0, "")

    def _cancel(self, batch: _Batch) -> Reply:
        self._count("cancelled")
        if batch.status in ("validating", "in_progress"):
            batch.status = "cancelling"
            batch.stamps["cancelling"] = int(time.time())
        return _json(200, batch.obj())

    def _finish(self, batch: _Batch, config: ServerConfig, status: str, share: float,
                not_run_code: str) -> None:
        n_run = min(len(batch.lines), math.floor(len(batch.lines) * max(share, 0.0) + 1e-9))
        out: list[dict[str, Any]] = []
        err: list[dict[str, Any]] = []
        for i, line in enumerate(batch.lines):
            row: dict[str, Any] = {"id": f"batch_req_{batch.id}_{i}",
                                   "custom_id": line["custom_id"]}
            if i < n_run:
                code, reply = self._answer(config, line["body"], line["custom_id"])
                row["response"] = {"status_code": code, "request_id": f"req_{batch.id}_{i}",
                                   "body": reply}
                row["error"] = None
                (out if code == 200 else err).append(row)
            else:
                row["response"] = None
                row["error"] = {"code": not_run_code, "message": (
                    "This request could not be executed before the completion window "
                    "expired." if not_run_code == "batch_expired" else
                    "This request was not executed: the batch was cancelled.")}
                err.append(row)
        rng = random.Random(f"{config.seed}\x00{batch.id}")
        for rows in (out, err):
            if config.batch_order == "reversed":
                rows.reverse()
            elif config.batch_order == "shuffled":
                rng.shuffle(rows)
        if out:
            batch.output_file_id = self._new_file("batch_output", f"{batch.id}_output.jsonl",
                                                  _jsonl(out)).id
        if err:
            batch.error_file_id = self._new_file("batch_output", f"{batch.id}_error.jsonl",
                                                 _jsonl(err)).id
        batch.counts = {"total": len(batch.lines), "completed": len(out), "failed": len(err)}
        batch.status = status
        batch.stamps["finalizing"] = batch.stamps[status] = int(time.time())
        self._count("lines_answered", n_run)

    # -- one line, as the live path answers it ---------------------------------------------
    def _answer(self, config: ServerConfig, body: Mapping[str, Any],
                cid: str) -> tuple[int, Any]:
        state = self.state
        stats = state.stats
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list) or not messages:
            return 400, _err_body("a request needs 'model' and 'messages'", None)
        try:
            recording = state.recording_for(config, model)
        except JudgecalError as exc:
            return 500, _err_body(str(exc), "recording_unavailable", "server_error")
        if recording is None:
            return 404, _err_body(f"The model '{model}' does not exist or you do not have "
                                  f"access to it", "model_not_found")
        prompt = "\n".join(_text(m.get("content")) for m in messages if isinstance(m, Mapping))
        hint = cid.partition("~")[2] or None
        try:
            resolved = recording.resolve(prompt, hint)
        except MatchError as exc:
            return exc.status, _err_body(str(exc), exc.code)
        item = resolved.item_id
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with stats.lock:
            stats.item_requests[item] += 1
            stats.model_requests[model] += 1
            attempt = stats.attempts[(model, item)] = stats.attempts[(model, item)] + 1
            if digest in stats.bodies[(model, item)]:
                stats.repeated[item] += 1
            stats.bodies[(model, item)].add(digest)
        fault, rng = draw_fault(config.faults, config.seed, f"{model}\x00{item}\x00{attempt}")
        if fault:
            with stats.lock:
                stats.faults[fault] += 1
        if fault in MALFORMED_200:
            raw = MALFORMED_200[fault].decode()
            try:
                return 200, json.loads(raw)
            except ValueError:
                return 200, raw
        if fault and (fault.startswith(("429", "5")) or fault in ("timeout", "drop")):
            code = int(fault[:3]) if fault[:3].isdigit() else 500
            kind = "requests" if code == 429 else "server_error"
            return code, _err_body(f"injected {fault} by the recorded judge",
                                   "rate_limit_exceeded" if code == 429 else None, kind)
        if fault == "context-length":
            return 400, _err_body("This model's maximum context length is 4096 tokens "
                                  "(injected by the recorded judge).", "context_length_exceeded")
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
        limit = [v for k in ("max_tokens", "max_completion_tokens")
                 if isinstance(v := body.get(k), int) and v > 0]
        if limit and _tokens(text) > min(limit):
            text, finish = text[: 4 * min(limit)], finish and "length"
        usage: Any = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(text),
                      "total_tokens": _tokens(prompt) + _tokens(text)}
        if fault == "no-usage":
            usage = None
        elif fault == "bad-usage":
            usage = {"prompt_tokens": "lots", "completion_tokens": -5, "total_tokens": None}
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish or None,
                                  "message": {"role": "assistant", "content": text,
                                              "refusal": None}}
        if fault == "no-finish-reason":
            del choice["finish_reason"]
        reply: dict[str, Any] = {
            "id": f"chatcmpl-judgecal-{next(state.ids):08x}", "object": "chat.completion",
            "created": int(time.time()), "model": config.model_id or model, "choices": [choice],
        }
        if usage is not None:
            reply["usage"] = usage
        if config.system_fingerprint:
            reply["system_fingerprint"] = config.system_fingerprint
        served = fault in (None, "bad-usage", "no-usage", "rescore")
        with stats.lock:
            if served:
                stats.replies += 1
                stats.item_served[item] += 1
                stats.model_served[model] += 1
        return 200, reply


def _input_lines(content: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input file's requests, or the validation errors naming their lines."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            errors.append({"code": "invalid_json_line", "line": n,
                           "message": "This line is not parseable as valid JSON."})
            continue
        cid = line.get("custom_id") if isinstance(line, dict) else None
        problem = None
        if not isinstance(cid, str) or not cid:
            problem = ("missing_custom_id", "custom_id is missing")
        elif cid in seen:
            problem = ("duplicate_custom_id", f"custom_id {cid!r} is not unique")
        elif line.get("method") != "POST" or line.get("url") != _ENDPOINT:
            problem = ("invalid_url", f"every line must POST to {_ENDPOINT}")
        elif not isinstance(line.get("body"), dict):
            problem = ("invalid_body", "body must be a JSON object")
        if problem is not None:
            errors.append({"code": problem[0], "line": n, "message": problem[1]})
            continue
        seen.add(str(cid))
        lines.append(line)
    if not lines and not errors:
        errors.append({"code": "empty_file", "line": None, "message": "the file has no requests"})
    return lines, errors


def _err_body(message: str, code: str | None, type_: str = "invalid_request_error") -> Any:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p if isinstance(p, str) else str(p.get("text", ""))
                         for p in content if isinstance(p, str | Mapping))
    return "" if content is None else str(content)


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)

