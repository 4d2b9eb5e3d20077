"""Fault injection for the recorded judge: which request fails, and how.

Every fault kind has a rate (the probability that an answerable request gets it); rates
add up to at most 1. The draw for a request is made from a random generator seeded with
``(seed, requested model, item id, attempt number of that item)``, so with a fixed seed
the same item's n-th request meets the same fault however many requests run at once and
in whatever order they arrive. Over many requests each kind happens at its rate.

Kinds (see :data:`FAULT_KINDS`):

============================  ==========================================================
``429``                       HTTP 429 ``rate_limit_exceeded`` with ``Retry-After``,
                              answered at once (no ``latency``: a rate limiter turns a
                              request away before any model runs)
``429-no-retry-after``        the same without ``Retry-After``
``500`` ``502`` ``503``       HTTP 5xx with an OpenAI-style ``server_error`` body
``context-length``            HTTP 400 ``context_length_exceeded`` (final, not retryable)
``timeout``                   wait ``timeout_sleep_s`` (or forever) before answering
``drop``                      close the connection without sending any response
``junk``                      HTTP 200 whose text contains no verdict
``empty``                     HTTP 200 with empty content
``truncated-stream``          a stream that ends with ``[DONE]`` but no finish reason;
                              for a non-streaming request, ``finish_reason: null`` and
                              half of the text
``html``                      HTTP 200 with an HTML error page (a gateway's)
``broken-json``               HTTP 200 with a JSON body cut in the middle
``wrong-shape``               HTTP 200, ``choices: ["oops"]``
``no-message``                HTTP 200, a choice without ``message``
``content-number``            HTTP 200, the message content is a number
``content-list``              HTTP 200, the message content is a list
``bad-usage``                 the real reply, with token counts ``"lots"`` and ``-5``
``echo-key``                  the real reply, whose model id, ``system_fingerprint`` and
                              text repeat the request's ``Authorization`` header
``no-finish-reason``          the whole reply without a finish reason: the key is left
                              out of the choice (a stream ends with ``[DONE]`` and no
                              finish chunk); a failure, not a reply
``no-usage``                  the real reply without ``usage`` (a stream gets no usage
                              chunk even when it asks for one): token counts unknown
``rescore``                   a well-formed reply with the verdict the judge recorded for
                              another item, drawn at random (same orientation; it may
                              equal the item's own): a judge that re-scores items from one
                              replay to the next, with nothing in its fingerprint
============================  ==========================================================

New kinds are added at the end of :data:`FAULT_KINDS`, so that the draws of a seeded
configuration that does not use them stay the same.

The hostile kinds (``html`` to ``echo-key``) are what a broken gateway or a hostile endpoint
sends; a client must keep each reply unscored or retry it, never crash, never store a key.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from judgecal.errors import InputError

__all__ = [
    "FAULT_KINDS",
    "JUNK_REPLY",
    "MALFORMED_200",
    "draw_fault",
    "parse_fault",
    "validate_faults",
]

FAULT_KINDS: tuple[str, ...] = (
    "429",
    "429-no-retry-after",
    "500",
    "502",
    "503",
    "context-length",
    "timeout",
    "drop",
    "junk",
    "empty",
    "truncated-stream",
    "html",
    "broken-json",
    "wrong-shape",
    "no-message",
    "content-number",
    "content-list",
    "bad-usage",
    "echo-key",
    "no-finish-reason",
    "no-usage",
    "rescore",
)

MALFORMED_200: dict[str, bytes] = {
    "html": b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1></body></html>",
    "broken-json": b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"ind',
    "wrong-shape": b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": ["oops"]}',
    "no-message": b'{"id": "chatcmpl-x", "choices": [{"index": 0, "finish_reason": "stop"}]}',
    "content-number": b'{"id": "chatcmpl-x", "choices": [{"index": 0, "finish_reason": "stop",'
    b' "message": {"role": "assistant", "content": 42}}]}',
    "content-list": b'{"id": "chatcmpl-x", "choices": [{"index": 0, "finish_reason": "stop",'
    b' "message": {"role": "assistant", "content": ["Output (a)"]}}]}',
}
"""The HTTP 200 bodies of the malformed-reply kinds."""

JUNK_REPLY = (
    "I'm sorry, but I can't help with comparing these texts. Could you share more "
    "details about what you are looking for?"
)
"""The ``junk`` fault's reply: fluent, and free of digits and of "Output (a)/(b)"."""


def validate_faults(rates: Mapping[str, Any]) -> dict[str, float]:
    """Check kinds and rates; return them as a plain dict (zero rates dropped)."""
    if not isinstance(rates, Mapping):
        raise InputError(f"faults must map fault kinds to rates, got {rates!r}")
    out: dict[str, float] = {}
    for kind, rate in rates.items():
        if kind not in FAULT_KINDS:
            raise InputError(f"unknown fault kind '{kind}' (known: {', '.join(FAULT_KINDS)})")
        try:
            value = float(rate)
        except (TypeError, ValueError):
            raise InputError(f"fault '{kind}': rate must be a number, got {rate!r}") from None
        if not 0.0 <= value <= 1.0:
            raise InputError(f"fault '{kind}': rate must be between 0 and 1, got {value}")
        if value:
            out[kind] = value
    total = sum(out.values())
    if total > 1.0 + 1e-9:
        raise InputError(f"fault rates add up to {total:g}; they must add up to at most 1")
    return out


def parse_fault(text: str) -> tuple[str, float]:
    """Parse a ``KIND=RATE`` option, e.g. ``429=0.05``."""
    kind, sep, rate = text.partition("=")
    if not sep:
        raise InputError(f"fault '{text}': expected KIND=RATE, e.g. 429=0.05")
    kind = kind.strip()
    checked = validate_faults({kind: rate.strip()})
    return kind, checked.get(kind, 0.0)


def draw_fault(rates: Mapping[str, float], seed: int, key: str) -> tuple[str | None, random.Random]:
    """The fault (or None) for the request identified by ``key``, and the request's
    generator (for further draws such as latency jitter)."""
    rng = random.Random(f"{seed}\x00{key}")
    u = rng.random()
    edge = 0.0
    for kind in FAULT_KINDS:
        edge += rates.get(kind, 0.0)
        if u < edge:
            return kind, rng
    return None, rng
