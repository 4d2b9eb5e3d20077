"""Langfuse score exports: the public API's JSON and the UI's CSV export.

Accepted files:

* JSON as the public API returns it (``GET /api/public/v2/scores`` and the older
  ``/api/public/scores``): ``{"data": [score, …], "meta": {…}}``; also a bare list of
  scores, one score object, or several pages one after the other (one a line);
* JSON Lines, one score a line (blob-storage exports write the same fields in
  ``snake_case``: keys match ignoring case and underscores);
* the UI's CSV export of the scores table (``id, traceId, sessionId, datasetRunId,
  timestamp, source, name, dataType, value, stringValue, comment, metadata, …``; the
  ``metadata`` column holds JSON text).

Mapping (docs/score-formats.md has the table): ``score_id`` = ``id``, ``scored_at`` =
``timestamp``, ``dimension`` = ``name``, ``score`` = ``value`` (BOOLEAN as 0/1;
CATEGORICAL through the value map, else the numeric value of its score config when
``configId`` is set, else a bad row), ``trace_id`` = ``traceId`` (or ``trace_field``, e.g.
``sessionId``), ``judge`` = ``--judge`` or ``judge_field`` (required: a Langfuse score
does not name the model that produced it), ``fingerprint``/``customer``/``segment`` from
``metadata.fingerprint``/``metadata.customer``/``metadata.segment`` unless other fields
are named. Only ``source`` EVAL (Langfuse's LLM-as-a-judge evaluators) is kept unless
``include_sources`` says otherwise; TEXT and CORRECTION scores are skipped (free text).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from judgecal.errors import InputError, Problem
from judgecal.scores.formats.common import (
    FormatOptions,
    Mapper,
    Rows,
    Skips,
    as_number,
    as_text,
    get_field,
    instant_text,
    join_where,
    json_documents,
    label_value,
    located,
    quoted,
)

__all__ = ["DEFAULT_SOURCES", "SOURCES", "read"]

SOURCES = ("API", "EVAL", "ANNOTATION")
DEFAULT_SOURCES = frozenset({"EVAL"})
"""EVAL: scores written by Langfuse's LLM-as-a-judge evaluators."""

_NOT_SCORES = {
    "TEXT": "free text, not a score",
    "CORRECTION": "a corrected output text, not a score",
}
_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def read(path: Path, options: FormatOptions, chunk_rows: int, problems: list[Problem],
         skips: Skips) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Canonical rows of a Langfuse export, ``chunk_rows`` at a time (see the module doc)."""
    if not options.judge and not options.judge_field:
        raise InputError(Problem(
            file=str(path),
            message="Langfuse scores do not name the judge model: give --judge NAME, or "
            "--judge-field FIELD to read it from each score (e.g. configId, metadata.judge)"))
    rows = Rows(chunk_rows)
    mapper = _Mapper(str(path), options, rows, problems, skips)
    for line, where, record in _records(path, problems):
        mapper.add(line, where, record)
        if rows.full:
            yield rows.take()
    if rows.lines:
        yield rows.take()


def _records(path: Path, problems: list[Problem]) -> Iterator[tuple[int, str, Any]]:
    if path.suffix.lower() in (".csv", ".tsv"):
        from judgecal.io.tabular import read_rows

        tsv = path.suffix.lower() == ".tsv"
        for line, row in read_rows(path, fmt="tsv" if tsv else "csv", problems=problems):
            yield line, "", row
        return
    for line, doc, text, offset in json_documents(path, problems):
        if isinstance(doc, dict) and isinstance(doc.get("data"), list):
            for at, where, item, _ in located(doc, ("data", "*"), line, text, offset):
                yield at, where, item
        elif isinstance(doc, list):
            for at, where, item, _ in located(doc, ("*",), line, text, offset):
                yield at, where, item
        else:
            yield line, "", doc


class _Mapper(Mapper):
    """One Langfuse score → a row, a bad row or a skipped record."""

    default_sources = DEFAULT_SOURCES

    def add(self, line: int, where: str, record: Any) -> None:
        def bad(name: str, message: str) -> None:
            self.problems.append(Problem(file=self.file, line=line,
                                         field=join_where(where, name), message=message))

        if not isinstance(record, dict):
            bad("", f"expected a Langfuse score (a JSON object), found {quoted(record)}")
            return

        def get(name: str) -> Any:
            return get_field(record, name, normalise=True)

        source = (as_text(get("source")) or "").upper()
        if source not in self.sources:
            kept = ", ".join(sorted(self.sources))
            self.skips.add(self.file, line, f"source {source or '(none)'}",
                           f"source {source or '(none)'} (kept: {kept}; --include-sources "
                           "to keep others)", where or None)
            return
        data_type = (as_text(get("dataType")) or "NUMERIC").upper()
        if data_type in _NOT_SCORES:
            self.skips.add(self.file, line, f"dataType {data_type}",
                           f"dataType {data_type}: {_NOT_SCORES[data_type]}", where or None)
            return
        score_id = as_text(get("id"))
        if score_id is None:
            bad("id", "id is missing")
            return
        name = as_text(get("name"))
        if name is None:
            bad("name", "name (the score's name, judgecal's dimension) is missing")
            return
        raw_time = get("timestamp")
        scored_at = instant_text(raw_time)
        if scored_at is None:
            bad("timestamp", "timestamp is missing" if as_text(raw_time) is None else
                f"timestamp {quoted(raw_time)} is not an ISO-8601 instant")
            return
        score = self._score(data_type, get, bad)
        if score is None:
            return
        options = self.options
        judge = options.judge or as_text(get(options.judge_field or ""))
        if judge is None:
            bad(options.judge_field or "", f"{options.judge_field} (the judge) is missing; "
                "give --judge NAME for scores that do not carry it")
            return
        trace = as_text(get(options.trace_field or "traceId"))
        self.rows.add(
            line, score_id=score_id, scored_at=scored_at, judge=judge, dimension=name,
            score=score, trace_id=trace,
            fingerprint=as_text(get(options.fingerprint_field or "metadata.fingerprint")),
            customer=as_text(get(options.customer_field or "metadata.customer")),
            segment=as_text(get(options.segment_field or "metadata.segment")),
        )

    def _score(self, data_type: str, get: Any, bad: Any) -> float | None:
        value = get("value")
        label = as_text(get("stringValue"))
        if data_type == "NUMERIC":
            number = as_number(value)
            if number is None:
                bad("value", "value is missing" if as_text(value) is None else
                    f"value {quoted(value)} is not a finite number")
            return number
        if data_type == "BOOLEAN":
            if isinstance(value, bool):
                return 1.0 if value else 0.0
            number = as_number(value)
            if number in (0.0, 1.0):
                return number
            text = (label or "").strip().lower()
            if text in _TRUE or text in _FALSE:
                return 1.0 if text in _TRUE else 0.0
            bad("value", f"BOOLEAN score with value {quoted(value)} and stringValue "
                f"{quoted(label)}: neither is true/false or 1/0")
            return None
        if data_type == "CATEGORICAL":
            if label is not None:
                mapped = label_value(self.options.value_map, label)
                if mapped is not None:
                    return mapped
            number = as_number(value)
            if number is not None and as_text(get("configId")) is not None:
                return number  # the numeric value of the category in its score config
            if label is None:
                bad("stringValue", "CATEGORICAL score without a stringValue or a value")
            else:
                bad("stringValue", f"CATEGORICAL score {quoted(label)} has no numeric value: "
                    f"map it with --value-map {label}=NUMBER (or link the score to a "
                    "Langfuse score config)")
            return None
        bad("dataType", f"dataType {quoted(data_type)} is not NUMERIC, BOOLEAN or CATEGORICAL")
        return None
