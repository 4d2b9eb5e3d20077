"""Putting untrusted text (item fields, judge replies, rater ids) into Markdown safely.

Item text and judge replies come from users, datasets and models; in a Markdown report they
must read as text, never as markup: no heading, list, table, link, image, emphasis or raw
HTML may come out of them, and nothing may execute once the Markdown is turned into HTML.

The helpers use CommonMark backslash escapes (any ASCII punctuation may be escaped, and a
renderer shows the character itself):

* everywhere: ``\\ ` * _ [ ] < > & | ~`` — code spans, emphasis, links and images, raw HTML
  and entities (``&lt;`` stays the four characters), table cells, strikethrough and fences;
* at the start of a line (after the indentation is removed, so no line becomes an indented
  code block): ``# + - = >`` and an ordered-list marker (``1.`` / ``1)``) — headings, list
  items, setext underlines, thematic breaks and block quotes.

:func:`markdown_fence` is the alternative for verbatim text (a judge's raw reply): a fenced
code block whose fence is longer than any backtick run inside, so the text cannot close it.

The escapes belong in ``.md`` files only. :func:`for_terminal` turns such Markdown into what
a terminal should show: the backslash escapes undone (outside fenced blocks, whose text is
verbatim) and control characters removed (no escape sequence from data reaches the
terminal), everything else as written.

All functions are pure and use the standard library only (cheap to import).
"""

from __future__ import annotations

import re

__all__ = [
    "escape_markdown",
    "escape_markdown_cell",
    "escape_markdown_inline",
    "for_terminal",
    "markdown_fence",
    "truncate",
]

_INLINE = re.compile(r"([\\`*_\[\]<>&|~])")
_LINE_START = re.compile(r"^([#+\-=>])")
_ORDERED = re.compile(r"^(\d{1,9})([.)])")
_WS = re.compile(r"\s+")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline
_FENCE = re.compile(r"^(`{3,}|~{3,})")


def _escape_line(line: str) -> str:
    line = line.strip()
    line = _INLINE.sub(r"\\\1", line)
    line = _ORDERED.sub(r"\1\\\2", line)
    return _LINE_START.sub(r"\\\1", line)


def escape_markdown_inline(text: str) -> str:
    r"""Escape ``text`` for one line of Markdown (a list item, a heading, a sentence).

    Newlines and runs of whitespace become one space.

    >>> print(escape_markdown_inline("<script>alert(1)</script> *bold* [x](javascript:y)"))
    \<script\>alert(1)\</script\> \*bold\* \[x\](javascript:y)
    >>> print(escape_markdown_inline("# not a heading"))
    \# not a heading
    """
    return _escape_line(_WS.sub(" ", str(text)))


def escape_markdown_cell(text: str) -> str:
    """Escape ``text`` for a Markdown table cell (``|`` escaped, newlines shown as ``↵``)."""
    return _escape_line(_WS.sub(" ", str(text).replace("\r\n", "\n").replace("\n", " ↵ ")))


def escape_markdown(text: str) -> str:
    """Escape multi-line ``text`` for a Markdown block; its line breaks are kept.

    Each line is escaped as by :func:`escape_markdown_inline` and ends with a hard line break;
    runs of blank lines become one paragraph break.
    """
    out: list[str] = []
    blank = False
    for raw in str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _escape_line(raw)
        if not line:
            blank = bool(out)
            continue
        if blank:
            out.append("")
            blank = False
        elif out:
            out[-1] += "  "  # hard line break inside the paragraph
        out.append(line)
    return "\n".join(out)


def markdown_fence(text: str, info: str = "text") -> str:
    """Verbatim ``text`` in a fenced code block the text cannot close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = str(text).replace("\r\n", "\n").rstrip("\n")
    return f"{fence}{info}\n{body}\n{fence}"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if limit <= 0 or len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()}… ({len(text) - limit} more characters)"


def for_terminal(markdown: str) -> str:
    r"""Markdown from these helpers as a terminal should show it: no backslash escapes
    (except inside fenced blocks, which are verbatim) and no control characters.

    >>> print(for_terminal(escape_markdown_inline("blast_radius: 3 * 4 & <b>")))
    blast_radius: 3 * 4 & <b>
    >>> print(for_terminal("a\x1b[31mred"))
    a[31mred
    """
    out: list[str] = []
    fence: str | None = None
    for line in _CONTROL.sub("", markdown.replace("\r\n", "\n")).split("\n"):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            line = _ESCAPED.sub(r"\1", line)
        out.append(line)
    return "\n".join(out)
