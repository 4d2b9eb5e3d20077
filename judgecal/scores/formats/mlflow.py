"""MLflow 3 GenAI assessments: the feedback an LLM judge (a scorer) left on a trace.

Accepted files (JSON, or JSON Lines with one item a line), each item one of:

* an assessment as ``Assessment.to_dictionary()`` writes it (MLflow 3: the protobuf
  message with its field names: ``assessment_id, assessment_name, trace_id, span_id,
  source {source_type, source_id}, create_time, last_update_time, feedback {value,
  error}, rationale, metadata, overrides, valid``); the older ``name`` and
  ``create_time_ms`` spellings are read too;
* a trace as ``Trace.to_dict()`` writes it (``{"info": {"trace_id", "assessments": […]},
  "data": …}``), or a trace info (``{"trace_id", "assessments": […]}``);
* a list of either, or ``{"traces": […]}`` / ``{"assessments": […]}``.

Mapping (docs/score-formats.md has the table): ``score_id`` = ``assessment_id``,
``scored_at`` = ``create_time``, ``dimension`` = the assessment's name, ``score`` =
``feedback.value`` (true/false as 1/0, numbers, numeric text; a label such as ``yes``
through the value map, else a bad row), ``trace_id`` = the assessment's (or its trace's)
``trace_id``, ``judge`` = ``--judge``, else ``judge_field``, else the
``mlflow.assessment.scorerName`` metadata (registered scorers), else the assessment's
name (a scorer logs its feedback under its own name); ``fingerprint`` = the scorer's
version (``mlflow.assessment.scorerVersion``) and the judge model (``source.source_id``,
e.g. ``openai:/gpt-4o-mini``) as ``v3/openai:/gpt-4o-mini``. Only ``LLM_JUDGE`` sources
are kept by default (``AI_JUDGE``, the deprecated name, counts as one); expectations and
feedback that holds only an error are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from judgecal.errors import Problem
from judgecal.scores.formats.common import (
    FormatOptions,
    Mapper,
    Rows,
    Skips,
    as_number,
    as_text,
    get_field,
    instant_text,
    iso_from_micros,
    join_where,
    json_documents,
    label_value,
    located,
    located_at,
    quoted,
)

__all__ = ["DEFAULT_SOURCES", "SCORER_NAME", "SCORER_VERSION", "SOURCES", "read"]

SOURCES = ("LLM_JUDGE", "HUMAN", "CODE")
DEFAULT_SOURCES = frozenset({"LLM_JUDGE"})
SCORER_NAME = "mlflow.assessment.scorerName"
SCORER_VERSION = "mlflow.assessment.scorerVersion"
_ALIASES = {"AI_JUDGE": "LLM_JUDGE"}


def read(path: Path, options: FormatOptions, chunk_rows: int, problems: list[Problem],
         skips: Skips) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Canonical rows of MLflow assessments, ``chunk_rows`` at a time (module doc)."""
    rows = Rows(chunk_rows)
    mapper = _Mapper(str(path), options, rows, problems, skips)
    for line, doc, text, offset in json_documents(path, problems):
        for at, where, item, trace_id in _expand(doc, line, "", text, offset, None):
            mapper.add(at, where, item, trace_id)
            if rows.full:
                yield rows.take()
    if rows.lines:
        yield rows.take()


def _expand(value: Any, line: int, where: str, text: str, offset: int,
            trace_id: str | None) -> Iterator[tuple[int, str, Any, str | None]]:
    """``(line, where, assessment, trace id of its trace)`` for the assessments in
    ``value`` (anything else comes back as itself, for the mapper to report)."""
    if isinstance(value, list):
        for at, inner, item, _, start in located_at(value, ("*",), line, text, offset):
            yield from _expand(item, at, join_where(where, inner), text, start, trace_id)
        return
    if not isinstance(value, dict) or _is_assessment(value):
        yield line, where, value, trace_id
        return
    for key in ("traces", "assessments"):
        if isinstance(value.get(key), list):
            own = as_text(value.get("trace_id")) or trace_id
            for at, inner, item, _, start in located_at(value, (key, "*"), line, text, offset):
                yield from _expand(item, at, join_where(where, inner), text, start, own)
            return
    info = value.get("info")
    if isinstance(info, dict) and isinstance(info.get("assessments"), list):
        own = as_text(info.get("trace_id")) or as_text(info.get("request_id")) or trace_id
        for at, inner, item, _ in located(value, ("info", "assessments", "*"), line, text,
                                          offset):
            yield at, join_where(where, inner), item, own
        return
    yield line, where, value, trace_id


def _is_assessment(value: dict[str, Any]) -> bool:
    return ("assessment_name" in value or "assessment_id" in value
            or ("name" in value and ("feedback" in value or "expectation" in value)))


class _Mapper(Mapper):
    """One assessment → a row, a bad row or a skipped record."""

    default_sources = DEFAULT_SOURCES

    def add(self, line: int, where: str, record: Any, trace_id: str | None) -> None:
        def bad(name: str, message: str) -> None:
            self.problems.append(Problem(file=self.file, line=line,
                                         field=join_where(where, name), message=message))

        def skip(reason: str, detail: str) -> None:
            self.skips.add(self.file, line, reason, detail, where or None)

        if not isinstance(record, dict) or not _is_assessment(record):
            found = (f"an object with keys {', '.join(sorted(map(str, record))[:8])}"
                     if isinstance(record, dict) else quoted(record))
            bad("", f"expected an MLflow assessment or trace, found {found}")
            return
        feedback = record.get("feedback")
        if not isinstance(feedback, dict):
            if record.get("expectation") is not None:
                skip("expectation", "an expectation (a ground-truth label), not feedback")
            else:
                bad("feedback", "feedback is missing")
            return
        source = record.get("source")
        source = source if isinstance(source, dict) else {}
        kind = (as_text(source.get("source_type")) or "").upper()
        kind = _ALIASES.get(kind, kind)
        if kind not in self.sources:
            kept = ", ".join(sorted(self.sources))
            skip(f"source_type {kind or '(none)'}",
                 f"source_type {kind or '(none)'} (kept: {kept}; --include-sources to keep "
                 "others)")
            return
        value = feedback.get("value")
        error = feedback.get("error") or record.get("error")
        if value is None and isinstance(error, dict):
            code = as_text(error.get("error_code")) or "error"
            message = as_text(error.get("error_message")) or ""
            skip("judge error", f"the judge failed ({code}{': ' if message else ''}"
                 f"{quoted(message) if message else ''}), no value")
            return
        score_id = as_text(record.get("assessment_id"))
        if score_id is None:
            bad("assessment_id", "assessment_id is missing")
            return
        name = as_text(record.get("assessment_name") or record.get("name"))
        if name is None:
            bad("assessment_name", "assessment_name is missing")
            return
        scored_at = self._time(record, bad)
        if scored_at is None:
            return
        score = self._score(value, bad)
        if score is None:
            return
        metadata = record.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        options = self.options
        judge = (options.judge
                 or (as_text(get_field(record, options.judge_field))
                     if options.judge_field else None)
                 or as_text(metadata.get(SCORER_NAME)) or name)
        if options.fingerprint_field:
            fingerprint = as_text(get_field(record, options.fingerprint_field))
        else:
            version = as_text(metadata.get(SCORER_VERSION))
            parts = [f"v{version}" if version else None, as_text(source.get("source_id"))]
            fingerprint = "/".join(p for p in parts if p) or None
        trace = (as_text(get_field(record, options.trace_field)) if options.trace_field
                 else as_text(record.get("trace_id")) or trace_id)
        self.rows.add(
            line, score_id=score_id, scored_at=scored_at, judge=judge, dimension=name,
            score=score, fingerprint=fingerprint, trace_id=trace,
            customer=as_text(get_field(record, options.customer_field or "metadata.customer")),
            segment=as_text(get_field(record, options.segment_field or "metadata.segment")),
        )

    @staticmethod
    def _time(record: dict[str, Any], bad: Any) -> str | None:
        raw = record.get("create_time")
        if raw is not None:
            scored_at = instant_text(raw)
            if scored_at is None:
                bad("create_time", f"create_time {quoted(raw)} is not an ISO-8601 instant")
            return scored_at
        millis = record.get("create_time_ms")
        number = as_number(millis)
        if number is None:
            bad("create_time", "create_time is missing" if millis is None else
                f"create_time_ms {quoted(millis)} is not a number of milliseconds")
            return None
        scored_at = iso_from_micros(int(number) * 1000)
        if scored_at is None:
            bad("create_time_ms", f"create_time_ms {quoted(millis)} is out of range")
        return scored_at

    def _score(self, value: Any, bad: Any) -> float | None:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        number = as_number(value)
        if number is not None:
            return number
        if isinstance(value, str) and value.strip():
            mapped = label_value(self.options.value_map, value.strip())
            if mapped is not None:
                return mapped
            bad("feedback.value", f"feedback value {quoted(value)} is a label, not a number: "
                f"map it with --value-map {value.strip()}=NUMBER")
            return None
        if isinstance(value, list | dict):
            bad("feedback.value", f"feedback value {quoted(as_text(value))} is a "
                f"{'list' if isinstance(value, list) else 'object'}, not one score")
            return None
        if isinstance(value, int | float):
            bad("feedback.value", f"feedback value {value} is not a finite number")
            return None
        bad("feedback.value", "feedback value is missing")
        return None
