"""Reading a chat-completion reply defensively: whatever an endpoint sends, a clear answer.

An OpenAI-compatible endpoint is not always OpenAI. A gateway in front of it may answer
HTTP 200 with an HTML error page, a proxy may cut the body in half, a homemade server may
put a number where the text belongs or a string where the token counts belong. None of it
may crash a run or reach the store as something it is not. :func:`read_completion` turns a
body into a :class:`Completion` or raises :class:`MalformedReply` naming what was wrong (the
client retries it as a transient failure and, if it persists, keeps the request *failed*
with that reason); :func:`token_count` accepts only what a token count can be.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_TOKEN_COUNT", "Completion", "MalformedReply", "read_completion", "token_count"]

MAX_TOKEN_COUNT = 2**31 - 1
"""Token counts above this are not believed (and would not fit the store's integer column)."""


class MalformedReply(ValueError):
    """An HTTP 200 body that is not a well-formed chat completion."""

    def __init__(self, what: str):
        super().__init__(what)
        self.reason = f"malformed_reply: {what}"


@dataclass
class Completion:
    """The parts of a chat completion judgecal keeps."""

    text: str | None
    finish_reason: str | None
    served_model: str | None
    system_fingerprint: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


def token_count(value: Any) -> int | None:
    """``value`` if it is a plausible token count (a non-negative integer), else None.

    ``True``, ``-5``, ``"lots"``, ``3.5`` and ``1e30`` are not token counts; an integral
    float such as ``12.0`` (some servers send them) is.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def read_completion(body: bytes | str) -> Completion:
    """The completion in ``body`` (a non-streamed reply), or :class:`MalformedReply`.

    >>> body = b'{"choices": [{"message": {"content": "A"}, "finish_reason": "stop"}]}'
    >>> read_completion(body).text
    'A'
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        start = body[:40] if isinstance(body, str) else body[:40].decode("utf-8", "replace")
        raise MalformedReply(f"the body is not JSON (starts {start!r})") from None
    if not isinstance(data, dict):
        raise MalformedReply(f"the body is a JSON {type(data).__name__}, not an object")
    if "error" in data and "choices" not in data:
        raise MalformedReply("an error object sent with HTTP 200")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise MalformedReply("'choices' is missing or not a list")
    if not choices:
        raise MalformedReply("'choices' is empty")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise MalformedReply(f"choices[0] is a {type(choice).__name__}, not an object")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise MalformedReply("choices[0].message is missing or not an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise MalformedReply(f"the message content is a {type(content).__name__}, not text")
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise MalformedReply("finish_reason is not text")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        text=content,
        finish_reason=finish or None,
        served_model=_text_or_none(data.get("model")),
        system_fingerprint=_text_or_none(data.get("system_fingerprint")),
        prompt_tokens=token_count(usage.get("prompt_tokens")),
        completion_tokens=token_count(usage.get("completion_tokens")),
    )
