"""OpenTelemetry ``gen_ai.evaluation.result`` events in OTLP JSON.

The GenAI semantic conventions record an evaluation (an LLM judge's verdict on a GenAI
operation) as the event ``gen_ai.evaluation.result``, parented to the span of the
operation it evaluates, with the attributes ``gen_ai.evaluation.name`` (required),
``gen_ai.evaluation.score.value`` (a double), ``gen_ai.evaluation.score.label``,
``gen_ai.evaluation.explanation``, ``gen_ai.response.id`` and ``error.type`` (when the
evaluation failed).

Accepted files: OTLP/JSON as the collector's file exporter writes it, one export request
a line (or one request in the whole file):

* logs: ``resourceLogs → scopeLogs → logRecords``; a record is the event when its
  ``eventName`` (OTLP 1.5) or its ``event.name`` attribute (older SDKs) says so;
* traces: ``resourceSpans → scopeSpans → spans → events`` named ``gen_ai.evaluation.result``
  (SDKs that still record events on the span), and spans of that name (instrumentations
  that record the event as a zero-length span).

Attribute values are OTLP ``AnyValue`` objects (``stringValue``, ``doubleValue``,
``intValue`` — a decimal string in JSON —, ``boolValue``, ``arrayValue``,
``kvlistValue``); ``traceId``/``spanId`` are hex; times are nanoseconds since the epoch
as strings (floored to the microsecond the store keeps; ``observedTimeUnixNano`` when
``timeUnixNano`` is 0 or absent).

Mapping (docs/score-formats.md has the table): ``dimension`` = ``gen_ai.evaluation.name``,
``score`` = ``gen_ai.evaluation.score.value`` (else the label through the value map),
``trace_id`` = ``traceId``, ``scored_at`` = the event's time, ``score_id`` = ``otel-`` and
a hash of trace, span, time, evaluation name and response id (the same event gets the
same id, so ingesting twice stores it once), ``judge`` = ``--judge`` or ``judge_field``
(required: the conventions name no evaluator). Other records are skipped and counted.
"""

from __future__ import annotations

import hashlib
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
    iso_from_micros,
    join_where,
    json_documents,
    label_value,
    located,
    quoted,
)

__all__ = ["EVENT", "any_value", "attributes", "read"]

EVENT = "gen_ai.evaluation.result"
NAME = "gen_ai.evaluation.name"
VALUE = "gen_ai.evaluation.score.value"
LABEL = "gen_ai.evaluation.score.label"
RESPONSE = "gen_ai.response.id"
ERROR = "error.type"

_LOGS = ("resourceLogs", "*", "scopeLogs", "*", "logRecords", "*")
_SPANS = ("resourceSpans", "*", "scopeSpans", "*", "spans", "*")


def read(path: Path, options: FormatOptions, chunk_rows: int, problems: list[Problem],
         skips: Skips) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Canonical rows of the evaluation events of an OTLP JSON file (module doc)."""
    if not options.judge and not options.judge_field:
        raise InputError(Problem(
            file=str(path),
            message="gen_ai.evaluation.result events do not name the judge: give --judge "
            "NAME, or --judge-field ATTRIBUTE to read it from each event's attributes"))
    rows = Rows(chunk_rows)
    mapper = _Mapper(str(path), options, rows, problems, skips)
    for line, doc, text, offset in json_documents(path, problems):
        if not isinstance(doc, dict) or not ({"resourceLogs", "resourceSpans"} & set(doc)):
            problems.append(Problem(file=str(path), line=line,
                                    message="expected an OTLP JSON export request (an object "
                                    "with resourceLogs or resourceSpans)"))
            continue
        for at, where, record, parents in located(doc, _LOGS, line, text, offset):
            mapper.log_record(at, where, record, _resource(parents[2]))
            if rows.full:
                yield rows.take()
        for at, where, span, parents in located(doc, _SPANS, line, text, offset):
            mapper.span(at, where, span, _resource(parents[2]))
            if rows.full:
                yield rows.take()
    if rows.lines:
        yield rows.take()


def _resource(holder: Any) -> dict[str, Any]:
    resource = holder.get("resource") if isinstance(holder, dict) else None
    return attributes(resource.get("attributes")) if isinstance(resource, dict) else {}


def any_value(value: Any) -> Any:
    """An OTLP/JSON ``AnyValue`` as a Python value (``intValue`` text → int)."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        raw = value["intValue"]
        try:
            return int(raw)
        except (TypeError, ValueError):
            return raw
    if "doubleValue" in value:
        raw = value["doubleValue"]
        try:
            return float(raw)
        except (TypeError, ValueError):
            return raw
    if "arrayValue" in value:
        inner = value["arrayValue"]
        items = inner.get("values") if isinstance(inner, dict) else None
        return [any_value(v) for v in items] if isinstance(items, list) else []
    if "kvlistValue" in value:
        inner = value["kvlistValue"]
        return attributes(inner.get("values") if isinstance(inner, dict) else None)
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    """An OTLP ``KeyValue`` list as a dict."""
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for kv in items:
            if isinstance(kv, dict) and "key" in kv:
                out[str(kv["key"])] = any_value(kv.get("value"))
    return out


def _nanos(value: Any) -> int | None:
    """Nanoseconds since the epoch from an OTLP time (a decimal string or a number)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 1e30 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class _Mapper(Mapper):
    """One log record, span event or span → a row, a bad row or a skipped record."""

    def log_record(self, line: int, where: str, record: Any, resource: dict[str, Any]) -> None:
        if not isinstance(record, dict):
            self._bad(line, where, "", f"expected a log record, found {quoted(record)}")
            return
        attrs = attributes(record.get("attributes"))
        event = as_text(record.get("eventName")) or as_text(attrs.get("event.name"))
        if event != EVENT:
            self._other(line, where, event)
            return
        self._event(line, where, attrs, resource, record.get("traceId"),
                    record.get("spanId"), record.get("timeUnixNano"),
                    record.get("observedTimeUnixNano"), "timeUnixNano")

    def span(self, line: int, where: str, span: Any, resource: dict[str, Any]) -> None:
        if not isinstance(span, dict):
            self._bad(line, where, "", f"expected a span, found {quoted(span)}")
            return
        if as_text(span.get("name")) == EVENT:
            self._event(line, where, attributes(span.get("attributes")), resource,
                        span.get("traceId"), span.get("spanId"),
                        span.get("startTimeUnixNano"), span.get("endTimeUnixNano"),
                        "startTimeUnixNano")
        events = span.get("events")
        if not isinstance(events, list):
            return
        for k, event in enumerate(events):
            at = join_where(where, f"events[{k}]")
            if not isinstance(event, dict):
                self._bad(line, at, "", f"expected a span event, found {quoted(event)}")
                continue
            name = as_text(event.get("name"))
            if name != EVENT:
                self._other(line, at, name)
                continue
            self._event(line, at, attributes(event.get("attributes")), resource,
                        span.get("traceId"), span.get("spanId"), event.get("timeUnixNano"),
                        None, "timeUnixNano")

    def _other(self, line: int, where: str, name: str | None) -> None:
        self.skips.add(self.file, line, "not an evaluation event",
                       f"{quoted(name, 80) if name else 'a record without an event name'} is not "
                       f"a {EVENT} event", where or None)

    def _bad(self, line: int, where: str, name: str, message: str) -> None:
        self.problems.append(Problem(file=self.file, line=line,
                                     field=join_where(where, name), message=message))

    def _event(self, line: int, where: str, attrs: dict[str, Any], resource: dict[str, Any],
               trace_id: Any, span_id: Any, time: Any, fallback_time: Any,
               time_field: str) -> None:
        def bad(name: str, message: str) -> None:
            self._bad(line, where, name, message)

        name = as_text(attrs.get(NAME))
        if name is None:
            bad(f"attributes.{NAME}", f"{NAME} is missing")
            return
        nanos = _nanos(time)
        if not nanos:
            nanos = _nanos(fallback_time) or nanos
        if nanos is None:
            bad(time_field, f"{time_field} is missing" if time is None else
                f"{time_field} {quoted(time)} is not a number of nanoseconds")
            return
        if nanos == 0:
            bad(time_field, f"{time_field} is 0 (no time recorded)")
            return
        scored_at = iso_from_micros(nanos // 1000)
        if scored_at is None:
            bad(time_field, f"{time_field} {quoted(time)} is out of range")
            return
        score = self._score(attrs, bad, line, where)
        if score is None:
            return
        everything = {**resource, **attrs}
        options = self.options
        judge = options.judge or as_text(everything.get(options.judge_field or ""))
        if judge is None:
            bad(f"attributes.{options.judge_field}", f"{options.judge_field} (the judge) is "
                "missing; give --judge NAME for events that do not carry it")
            return
        trace = as_text(trace_id)
        if trace is not None and not trace.strip("0"):
            trace = None  # an all-zero id means no trace
        span = as_text(span_id) or ""
        key = "\x1f".join([trace or "", span, str(nanos), name,
                           as_text(attrs.get(RESPONSE)) or ""])
        score_id = "otel-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

        def pick(spec: str | None) -> str | None:
            return as_text(everything.get(spec)) if spec else None

        self.rows.add(
            line, score_id=score_id, scored_at=scored_at, judge=judge, dimension=name,
            score=score, fingerprint=pick(options.fingerprint_field),
            customer=pick(options.customer_field), segment=pick(options.segment_field),
            trace_id=pick(options.trace_field) if options.trace_field else trace,
        )

    def _score(self, attrs: dict[str, Any], bad: Any, line: int, where: str) -> float | None:
        raw = attrs.get(VALUE)
        if isinstance(raw, bool):
            return 1.0 if raw else 0.0
        number = as_number(raw)
        if number is not None:
            return number
        if raw is not None:
            bad(f"attributes.{VALUE}", f"{VALUE} {quoted(raw)} is not a finite number")
            return None
        label = as_text(attrs.get(LABEL))
        if label is not None:
            mapped = label_value(self.options.value_map, label)
            if mapped is not None:
                return mapped
        if ERROR in attrs:
            self.skips.add(self.file, line, "evaluation failed",
                           f"the evaluation failed ({ERROR} {quoted(attrs[ERROR])}), no score",
                           where or None)
            return None
        if label is not None:
            bad(f"attributes.{LABEL}", f"no {VALUE}, and the label {quoted(label)} has no "
                f"numeric value: map it with --value-map {label}=NUMBER")
        else:
            bad(f"attributes.{VALUE}", f"{VALUE} is missing (and there is no {LABEL})")
        return None
