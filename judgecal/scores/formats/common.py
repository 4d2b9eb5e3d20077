"""What the score-format adapters share: options, skipped records, rows, JSON documents.

An adapter reads one export (a Langfuse score list, MLflow assessments, OTLP JSON) and
hands the ingest the canonical columns (:data:`judgecal.scores.source.CANONICAL`) in
chunks, each row with the line of the file it came from. Three outcomes per record:

* a **row**: added with :meth:`Rows.add`; :func:`judgecal.scores.rows.validate` checks it
  like any other row (and the ingest stores it, idempotently by ``score_id``);
* a **bad row**: a record meant as a judge score that cannot be one (no value, a category
  without a numeric value): a :class:`~judgecal.errors.Problem` naming the file, line and
  source field, counted with the ingest's bad rows;
* a **skipped record**: not a judge score by design (another source, free text, an
  expectation, a failed evaluation): counted by reason in :class:`Skips`, never dropped
  silently.

JSON documents are read whole (:func:`json_documents`), or line by line when the file
holds one document a line (JSON Lines, the OpenTelemetry collector's file exporter);
:func:`located` gives the items at a path of a document with the line each starts on.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from judgecal.errors import InputError, Problem
from judgecal.messages import excerpt
from judgecal.scores.source import CANONICAL, parse_instant

__all__ = [
    "MAX_SKIPS_SHOWN",
    "FormatOptions",
    "Mapper",
    "Rows",
    "Skips",
    "as_number",
    "as_text",
    "get_field",
    "instant_text",
    "iso_from_micros",
    "join_where",
    "json_documents",
    "label_value",
    "located",
    "located_at",
    "quoted",
]

MAX_SKIPS_SHOWN = 20
"""Skipped records kept in detail (all are counted, by reason)."""


@dataclass(frozen=True)
class FormatOptions:
    """How an export's records become judgecal score rows (see docs/score-formats.md).

    ``*_field`` options name a field of the record: a top-level key (``configId``), a
    path into a nested object (``metadata.judge``, ``trace.userId``) or, for OpenTelemetry,
    an attribute key (``gen_ai.conversation.id``; record attributes first, then the
    resource's).
    """

    judge: str | None = None
    """The judge name of every row (wins over ``judge_field``)."""
    judge_field: str | None = None
    fingerprint_field: str | None = None
    customer_field: str | None = None
    segment_field: str | None = None
    trace_field: str | None = None
    """Where ``trace_id`` comes from instead of the format's trace id (e.g. ``sessionId``)."""
    include_sources: frozenset[str] | None = None
    """Sources kept (upper case); None: the format's default (its LLM-judge source)."""
    value_map: Mapping[str, float] = field(default_factory=dict)
    """Category label → number, for scores that carry a label only."""

    def sources(self, default: frozenset[str]) -> frozenset[str]:
        return default if self.include_sources is None else self.include_sources


@dataclass
class Skips:
    """Records that are not judge scores by design: counted by reason, the first shown."""

    count: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    shown: list[Problem] = field(default_factory=list)

    def add(self, file: str, line: int | None, reason: str, detail: str | None = None,
            where: str | None = None) -> None:
        """One skipped record; ``reason`` is the counted category, ``detail`` the message."""
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if len(self.shown) < MAX_SKIPS_SHOWN:
            self.shown.append(Problem(file=file, line=line, field=where,
                                      message=f"skipped: {detail or reason}"))


class Rows:
    """Canonical rows collected record by record and handed out as pyarrow tables."""

    def __init__(self, chunk_rows: int) -> None:
        self.chunk_rows = chunk_rows
        self._reset()

    def _reset(self) -> None:
        self.lines: list[int] = []
        self.cols: dict[str, list[Any]] = {name: [] for name in CANONICAL}

    def add(self, line: int, *, score_id: str, scored_at: str | None, judge: str | None,
            dimension: str | None, score: float | None, fingerprint: str | None = None,
            customer: str | None = None, segment: str | None = None,
            trace_id: str | None = None) -> None:
        values = {"score_id": score_id, "scored_at": scored_at, "judge": judge,
                  "fingerprint": fingerprint, "dimension": dimension, "score": score,
                  "customer": customer, "segment": segment, "trace_id": trace_id}
        for name in CANONICAL:
            self.cols[name].append(values[name])
        self.lines.append(line)

    @property
    def full(self) -> bool:
        return len(self.lines) >= self.chunk_rows

    def take(self) -> tuple[pa.Table, np.ndarray]:
        """The rows collected so far (text columns as strings, the score as float64)."""
        arrays = {name: pa.array(values, pa.float64() if name == "score" else pa.string())
                  for name, values in self.cols.items()}
        out = pa.table(arrays), np.array(self.lines, dtype=np.int64)
        self._reset()
        return out


# -- values ------------------------------------------------------------------------------------
def as_text(value: Any) -> str | None:
    """A field value as text for a name column (None when missing or empty)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def as_number(value: Any) -> float | None:
    """A finite number from a JSON number or numeric text, else None (booleans included:
    callers decide what a boolean means)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def get_field(record: Mapping[str, Any], spec: str, normalise: bool = False) -> Any:
    """The value at ``spec`` in ``record``: the key itself, else a dotted path through
    nested objects (an object held as JSON text, like a CSV's metadata column, is parsed).

    ``normalise``: top-level keys match ignoring case and underscores (``traceId`` =
    ``trace_id``), for exports that write the same fields in either spelling.
    """
    top = _norm(record) if normalise else record
    key = _key(spec) if normalise else spec
    if key in top:
        return top[key]
    head, dot, rest = spec.partition(".")
    while dot:
        node = top.get(_key(head) if normalise else head)
        if isinstance(node, str) and node.strip().startswith("{"):
            try:
                node = json.loads(node)
            except (ValueError, RecursionError):
                node = None
        if isinstance(node, Mapping):
            return get_field(node, rest)
        more_head, dot, rest = rest.partition(".")
        head = f"{head}.{more_head}"
    return None


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def _norm(record: Mapping[str, Any]) -> dict[str, Any]:
    return {_key(str(k)): v for k, v in record.items()}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant_text(value: Any) -> str | None:
    """An ISO-8601 instant (text) as UTC ISO text; None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_instant(value).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError):
        return None


def label_value(value_map: Mapping[str, float], label: str) -> float | None:
    """The number a category label maps to: the label as written, else ignoring case."""
    if label in value_map:
        return value_map[label]
    folded = label.casefold()
    for key, number in value_map.items():
        if key.casefold() == folded:
            return number
    return None


def join_where(outer: str, inner: str) -> str:
    """``data[3]`` + ``value`` → ``data[3].value`` (either may be empty)."""
    if not outer:
        return inner
    if not inner:
        return outer
    return outer + inner if inner.startswith("[") else f"{outer}.{inner}"


def iso_from_micros(micros: int) -> str | None:
    """Microseconds since the epoch as ISO-8601 UTC text (None outside years 1-9999)."""
    try:
        return (_EPOCH + timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return None


# -- JSON documents ---------------------------------------------------------------------------
_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def json_documents(path: Path, problems: list[Problem]) -> Iterator[tuple[int, Any, str, int]]:
    """``(line, value, text, offset)`` for every JSON document of ``path``.

    A ``.jsonl``/``.ndjson`` file, or a ``.json`` file whose first document ends with its
    first line, is read a line at a time: a line that is not UTF-8 or not JSON is a bad row
    of its own and reading goes on. Any other file is one document (several documents one
    after the other are read in turn), checked whole before the first record is used: broken
    JSON raises :class:`InputError` naming the line, and nothing is ingested.
    ``text`` and ``offset`` locate the document for :func:`located`.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(Problem(file=str(path), message=f"cannot read the file: "
                                 f"{exc.strerror or exc}")) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        raise InputError(Problem(file=str(path), message="the file is empty"))
    if path.suffix.lower() in (".jsonl", ".ndjson") or _one_per_line(raw):
        yield from _json_lines(path, raw, problems)
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(Problem(file=str(path), line=line,
                                 message="not valid UTF-8; judgecal reads UTF-8 files only")
                         ) from None
    docs: list[tuple[int, Any]] = []
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    try:
        while pos < len(text):
            value, end = _DECODER.raw_decode(text, pos)
            docs.append((pos, value))
            pos = _WS.match(text, end).end()  # type: ignore[union-attr]
    except json.JSONDecodeError as exc:
        raise InputError(Problem(file=str(path), line=exc.lineno,
                                 message=f"not valid JSON: {exc.msg} (column {exc.colno})")
                         ) from None
    except RecursionError:
        raise InputError(Problem(file=str(path), message="not valid JSON: nested too deeply")
                         ) from None
    for offset, value in docs:
        yield text.count("\n", 0, offset) + 1, value, text, offset
    _NEWLINES.clear()  # the file's text is not kept once it is read


def _one_per_line(raw: bytes) -> bool:
    """Whether the first document of a .json file is its first line, with more after it."""
    first, newline, rest = raw.lstrip().partition(b"\n")
    if not newline or not rest.strip():
        return False
    try:
        json.loads(first)
    except (ValueError, RecursionError):
        return False
    return True


def _json_lines(path: Path, raw: bytes, problems: list[Problem]
                ) -> Iterator[tuple[int, Any, str, int]]:
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        if not chunk.strip():
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(file=str(path), line=number,
                                    message=f"not valid UTF-8 (byte {exc.start + 1} of the "
                                    "line); judgecal reads UTF-8 files only"))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(Problem(file=str(path), line=number,
                                    message=f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        except RecursionError:
            problems.append(Problem(file=str(path), line=number,
                                    message="not valid JSON: nested too deeply"))
            continue
        yield number, value, "", 0


Step = str
"""A path step: an object key, or ``*`` for every item of an array."""


def located(value: Any, path: tuple[Step, ...], line: int, text: str, offset: int
            ) -> Iterator[tuple[int, str, Any, list[Any]]]:
    """``(line, where, item, parents)`` for every item at ``path`` in a parsed document.

    ``where`` names the item (``data[3]``), ``parents`` are the objects and arrays passed on
    the way (outermost first). ``line`` is the line the item starts on when the document
    spans several lines (``text``/``offset`` from :func:`json_documents`), else the
    document's line.
    """
    for at, where, item, parents, _ in located_at(value, path, line, text, offset):
        yield at, where, item, parents


def located_at(value: Any, path: tuple[Step, ...], line: int, text: str, offset: int
               ) -> Iterator[tuple[int, str, Any, list[Any], int]]:
    """:func:`located` with each item's offset in ``text`` (to locate items inside it)."""
    items = list(_walk(value, path, "", []))
    lines, starts = [line] * len(items), [offset] * len(items)
    if text and "\n" in text:
        found = _offsets(text, offset, path)
        if len(found) == len(items):
            newlines = _newlines(text)
            starts = found
            lines = [bisect.bisect_right(newlines, s) + 1 for s in found]
    for (where, item, parents), at, start in zip(items, lines, starts, strict=True):
        yield at, where, item, parents, start


def _walk(value: Any, path: tuple[Step, ...], where: str, parents: list[Any]
          ) -> Iterator[tuple[str, Any, list[Any]]]:
    if not path:
        yield where, value, parents
        return
    step, rest = path[0], path[1:]
    if step == "*":
        if isinstance(value, list):
            for k, item in enumerate(value):
                yield from _walk(item, rest, f"{where}[{k}]", [*parents, value])
    elif isinstance(value, dict) and step in value:
        yield from _walk(value[step], rest, f"{where}.{step}" if where else step,
                         [*parents, value])


_NEWLINES: list[tuple[str, list[int]]] = []


def _newlines(text: str) -> list[int]:
    """Offsets of the newlines of ``text`` (kept for the document being read: the cache
    holds the text itself, so it is never mistaken for another one)."""
    if not _NEWLINES or _NEWLINES[0][0] is not text:
        _NEWLINES[:] = [(text, [m.start() for m in re.finditer("\n", text)])]
    return _NEWLINES[0][1]


def _offsets(text: str, pos: int, path: tuple[Step, ...]) -> list[int]:
    """Where each item at ``path`` starts in ``text``, in document order (a key given
    twice counts once, at its last occurrence, as for the parsed value)."""
    out: list[int] = []

    def ws(p: int) -> int:
        return _WS.match(text, p).end()  # type: ignore[union-attr]

    def walk(p: int, depth: int) -> None:
        p = ws(p)
        if depth == len(path):
            out.append(p)
            return
        step = path[depth]
        opener, closer = ("[", "]") if step == "*" else ("{", "}")
        if p >= len(text) or text[p] != opener:
            return
        p = ws(p + 1)
        if text[p] == closer:
            return
        target = None
        while True:
            if step != "*":
                key, p = _DECODER.raw_decode(text, p)
                p = ws(ws(p) + 1)  # past the colon
            _, end = _DECODER.raw_decode(text, p)
            if step == "*":
                walk(p, depth + 1)
            elif key == step:
                target = p
            p = ws(end)
            closing = text[p] == closer
            p = ws(p + 1)
            if closing:
                break
        if target is not None:
            walk(target, depth + 1)

    try:
        walk(pos, 0)
    except (ValueError, IndexError, RecursionError):
        return []
    return out


def quoted(value: Any, limit: int = 40) -> str:
    """A value of the file quoted for a message (short, escaped)."""
    return excerpt(value, limit)


class Mapper:
    """What every adapter's record mapper holds: the file, the options, the rows being
    filled, the problems and skips being reported, and the sources kept (the adapter's
    defaults unless ``--include-sources`` says otherwise)."""

    default_sources: frozenset[str] = frozenset()

    def __init__(self, file: str, options: FormatOptions, rows: Rows,
                 problems: list[Problem], skips: Skips) -> None:
        self.file, self.options, self.rows = file, options, rows
        self.problems, self.skips = problems, skips
        self.sources = options.sources(self.default_sources)
