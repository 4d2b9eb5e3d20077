"""Import adapters: score exports of other tools read as judgecal production scores.

``judgecal scores ingest FILE --format langfuse|mlflow|otel`` reads a Langfuse score
export (:mod:`.langfuse`), MLflow 3 assessments (:mod:`.mlflow`) or OpenTelemetry
``gen_ai.evaluation.result`` events in OTLP JSON (:mod:`.otel`). Each adapter turns the
file into the canonical columns, chunk by chunk, with the line of every row, and the
ingest validates and stores them like any score file (idempotent by ``score_id``, bad
rows by file, line and field, rollups, ``--atomic``). Records that are not judge scores
by design are counted by reason in :class:`Skips`. The mappings: docs/score-formats.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from judgecal.errors import InputError, Problem
from judgecal.scores.formats import langfuse, mlflow, otel
from judgecal.scores.formats.common import MAX_SKIPS_SHOWN, FormatOptions, Skips

__all__ = [
    "FORMATS",
    "MAX_SKIPS_SHOWN",
    "SOURCES",
    "FormatOptions",
    "Skips",
    "check_options",
    "detect",
    "read_chunks",
    "sniff",
]

_Reader = Callable[[Path, FormatOptions, int, list[Problem], Skips],
                   Iterator[tuple[pa.Table, np.ndarray]]]

_READERS: dict[str, _Reader] = {
    "langfuse": langfuse.read,
    "mlflow": mlflow.read,
    "otel": otel.read,
}
FORMATS: tuple[str, ...] = tuple(_READERS)
"""The formats read through an adapter (the others are judgecal's own columns)."""

SOURCES: dict[str, tuple[str, ...]] = {
    "langfuse": langfuse.SOURCES,
    "mlflow": mlflow.SOURCES,
}


def read_chunks(path: Path, kind: str, options: FormatOptions, chunk_rows: int,
                problems: list[Problem], skips: Skips) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """``(table of the canonical columns, line of each row)`` of an export of ``kind``.

    Bad rows go to ``problems`` (with file, line and field), skipped records to ``skips``;
    a file that cannot be read at all raises :class:`~judgecal.errors.InputError`.
    """
    return _READERS[kind](path, options, chunk_rows, problems, skips)


def check_options(path: Path, kind: str, options: FormatOptions | None) -> None:
    """Refuse adapter options for a file that is not read through an adapter (they would
    be ignored silently)."""
    if kind in _READERS or options is None or options == FormatOptions():
        return
    raise InputError(Problem(file=str(path), message=f"this {kind} file holds judgecal's own "
                             "columns: --judge, --*-field, --include-sources and --value-map "
                             "apply to --format langfuse|mlflow|otel only"))


def detect(path: Path) -> str | None:
    """The adapter of a ``.json`` file, from its content (None for other extensions).

    Raises :class:`~judgecal.errors.InputError` for a ``.json`` file that looks like none
    of the exports read here.
    """
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    kind = sniff(path)
    if kind is None:
        raise InputError(Problem(file=str(path), message="a .json file is read as a Langfuse, "
                                 "MLflow or OpenTelemetry export, and this one looks like "
                                 "none of them: give --format langfuse|mlflow|otel"))
    return kind


def sniff(path: Path) -> str | None:
    """The adapter a ``.json``/``.csv`` file looks like it needs, from its first 64 KiB
    (None when it looks like none of them)."""
    try:
        with path.open("rb") as f:
            head = f.read(65536).decode("utf-8", errors="replace")
    except OSError:
        return None
    if '"resourceLogs"' in head or '"resourceSpans"' in head:
        return "otel"
    if '"assessment_name"' in head or '"assessment_id"' in head:
        return "mlflow"
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    if ('"dataType"' in head and '"traceId"' in head) or (
            "dataType" in first and "stringValue" in first):
        return "langfuse"
    return None
