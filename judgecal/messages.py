"""Quoting file content in messages: short, escaped, never the whole value."""

from __future__ import annotations

__all__ = ["EXCERPT_CHARS", "excerpt", "field_text", "validator_text"]

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
