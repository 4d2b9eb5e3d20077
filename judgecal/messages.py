"""Quoting file content in messages: short, escaped, never the whole value."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

__all__ = [
    "EXCERPT_CHARS",
    "excerpt",
    "field_text",
    "model_keys",
    "unknown_key_text",
    "validator_text",
]

EXCERPT_CHARS = 80
"""Most characters of file content a message quotes."""


def _escaped(text: str, limit: int) -> tuple[str, bool]:
    """``text`` escaped like the inside of a ``repr`` (quote ``'``), cut to ``limit``
    characters; and whether it was cut. Only the part shown is looked at."""
    parts: list[str] = []
    used = 0
    for ch in text:
        if ch == "'":
            piece = "\\'"
        elif ch.isprintable() and ch != "\\":
            piece = ch
        else:
            piece = repr(ch)[1:-1]
        if used + len(piece) > limit:
            return "".join(parts) + "…", True
        parts.append(piece)
        used += len(piece)
    return "".join(parts), False


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``value`` quoted like :func:`repr` (control characters escaped), at most ``limit``
    characters of it; a longer value is cut with ``…`` and its full length given.

    >>> excerpt("ok\\x00")
    "'ok\\\\x00'"
    >>> excerpt("x" * 1000, limit=3)
    "'xxx…' (1,000 characters)"
    """
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="backslashreplace")
    else:
        text = str(value)
    shown, cut = _escaped(text, limit)
    return f"'{shown}' ({len(text):,} characters)" if cut else f"'{shown}'"


def field_text(name: str, limit: int = EXCERPT_CHARS) -> str:
    """A field name taken from a file (a key, a column), as a problem's ``field``: itself
    when short and printable, else escaped and cut like :func:`excerpt`, without quotes."""
    if len(name) <= limit and name.isprintable():
        return name
    return _escaped(name, limit)[0]


_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def validator_text(message: str) -> str:
    """A pydantic error message as a user reads it: without the ``Value error, `` (or
    ``Assertion failed, ``) pydantic puts before the text of a validator's exception."""
    for prefix in _PYDANTIC_PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def model_keys(model: Any, loc: Sequence[Any]) -> list[str] | None:
    """The keys a pydantic model accepts at ``loc`` (the path to a mapping inside it, e.g.
    ``("judge", "decoding")``); None when ``loc`` does not lead to a model. Follows nested
    models, optional ones, ``dict[str, Model]`` (a key) and ``list[Model]`` (an index).
    Fields excluded from dumps (set by the loader, not read from the file) are left out."""
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if fields is None:
            # Inside a dict or list of models: the part is a key or an index.
            model = _model_in(model)
            if model is None:
                return None
            continue
        info = fields.get(part)
        if info is None:
            return None
        model = _model_in(info.annotation, shallow=True) or info.annotation
    fields = getattr(model, "model_fields", None)
    if fields is None:
        return None
    return [name for name, info in fields.items() if not info.exclude]


def _model_in(annotation: Any, shallow: bool = False) -> Any:
    """The model class inside ``annotation``: itself, the model of ``X | None``, or (unless
    ``shallow``) the value of ``dict[str, X]`` / item of ``list[X]``."""
    if hasattr(annotation, "model_fields"):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if hasattr(a, "model_fields")]
        if len(models) == 1:
            return models[0]
        if shallow:
            return None
        inner = [a for a in args if a is not type(None)]
        return _model_in(inner[0]) if len(inner) == 1 else None
    if shallow or not args:
        return None
    return _model_in(args[-1])


def unknown_key_text(key: object, valid: Sequence[str] | None, noun: str = "key") -> str:
    """The message for a key no model field takes: the closest valid key as a suggestion,
    then every valid key.

    >>> unknown_key_text("temprature", ["temperature", "top_p"])
    "unknown key 'temprature' — did you mean 'temperature'? valid keys: temperature, top_p"
    """
    text = f"unknown {noun} {excerpt(key, limit=40)}"  # the field shows it too
    if not valid:
        return text
    name = str(key)
    close = difflib.get_close_matches(name, list(valid), n=1) if len(name) <= 100 else []
    if close:
        text += f" — did you mean '{close[0]}'?"
    return f"{text} valid {noun}s: {', '.join(valid)}"
