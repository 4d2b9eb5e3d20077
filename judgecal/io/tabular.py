"""One row reader for the tabular files judgecal reads: CSV, JSONL and Parquet.

Every reader yields ``(line, row)`` pairs so that a problem with a row can name where
it is. ``line`` is

* **JSONL** — the physical line number (1-based); blank lines are skipped;
* **CSV/TSV** — the physical line on which the record starts (the header is line 1,
  so the first record is usually line 2; a quoted field may span several lines);
* **Parquet** — the 1-based row number (Parquet has no lines).

Values come back as the format stores them: CSV cells are always strings (an empty
cell is ``""``), JSONL and Parquet keep their types (numbers, ``None``, lists).

Files must be UTF-8 (a leading byte-order mark is accepted). The format is chosen by
the file extension (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, ``.parquet``/``.pq``)
unless ``fmt`` says otherwise.

Malformed input raises :class:`~judgecal.errors.InputError` naming the file and the
line — or, when the caller passes a ``problems`` list, is recorded there and the bad
row is skipped, so that a validator can report every problem at once. A bad row never
ends the reading of the rows after it: a line that is not UTF-8 or a malformed CSV
record is reported and skipped, and reading goes on with the next line. A CSV field may
hold up to :data:`MAX_FIELD_CHARS` characters (Python's default limit is 128 KiB).
Messages quote file content only as a short escaped excerpt.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from judgecal.errors import InputError, Problem
from judgecal.messages import excerpt, field_text

__all__ = [
    "EXTENSIONS",
    "MAX_FIELD_CHARS",
    "Format",
    "Report",
    "detect_format",
    "read_all",
    "read_rows",
]

Format = Literal["csv", "tsv", "jsonl", "parquet"]

EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
"""File extension (lower case) -> format."""

_BOM = b"\xef\xbb\xbf"

MAX_FIELD_CHARS = 64 * 1024 * 1024
"""Largest CSV field read (a longer one makes its row bad). Python's ``csv`` refuses fields
over 128 KiB by default; its limit is process-wide, so it is only ever raised here."""
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))


class _Stop(Exception):
    """Internal: a problem after which the file cannot be read any further."""


class Report(Protocol):
    """Records (or raises) one problem of the file being read."""

    def __call__(self, message: str, line: int | None = None, field: str | None = None) -> None:
        ...


def detect_format(path: str | Path) -> Format:
    """Return the format of ``path`` from its extension.

    Raises :class:`InputError` for an extension judgecal does not read.
    """
    suffix = Path(path).suffix.lower()
    fmt = EXTENSIONS.get(suffix)
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise InputError(
            Problem(
                file=str(path),
                message=f"unknown file type {suffix or '(no extension)'!r}; "
                f"judgecal reads {known}",
            )
        )
    return fmt


def read_rows(
    path: str | Path,
    *,
    fmt: Format | None = None,
    problems: list[Problem] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)`` for every row of a CSV, TSV, JSONL or Parquet file.

    Parameters
    ----------
    path:
        The file to read.
    fmt:
        Force a format instead of detecting it from the extension.
    problems:
        When given, problems are appended to this list instead of raised: a malformed
        row is skipped and reading goes on; a problem that makes the rest of the file
        unreadable (missing file, bad encoding, empty file) ends the iteration.
        When ``None`` (the default) the first problem raises :class:`InputError`.

    Raises
    ------
    InputError
        When ``problems`` is None: the file is missing or unreadable, is not UTF-8,
        is empty, has a malformed JSON line or a ragged CSV row.
    """
    path = Path(path)
    sink: list[Problem] = [] if problems is None else problems

    def report(message: str, line: int | None = None, field: str | None = None) -> None:
        problem = Problem(file=str(path), message=message, line=line, field=field)
        if problems is None:
            raise InputError(problem)
        sink.append(problem)

    try:
        kind = fmt or detect_format(path)
    except InputError as exc:
        if problems is None:
            raise
        problems.extend(exc.problems)
        return
    if not path.exists():
        report("file not found")
        return
    if not path.is_file():
        report("not a file")
        return
    try:
        if kind == "parquet":
            yield from _parquet_rows(path, report)
        elif kind == "jsonl":
            yield from _jsonl_rows(path, report)
        else:
            yield from _csv_rows(path, report, delimiter="\t" if kind == "tsv" else ",")
    except _Stop:
        return
    except OSError as exc:
        report(f"cannot read the file: {exc.strerror or exc}")


def read_all(
    path: str | Path, *, fmt: Format | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """Read every row (see :func:`read_rows`); raise :class:`InputError` on the first problem."""
    return list(read_rows(path, fmt=fmt))


def _text_lines(path: Path, report: Report) -> Iterator[tuple[int, str, bool]]:
    """Decode the file line by line so that an encoding error names its line.

    Yields ``(line, text, ok)``: a line that is not UTF-8 is reported and comes with
    ``ok`` False, decoded with replacement characters (its ASCII bytes, and so the CSV
    structure of quotes, separators and line ends, are kept), so that reading goes on.
    """
    with path.open("rb") as f:
        seen_content = False
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            ok = True
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report(
                    f"not valid UTF-8 (byte {exc.start + 1} of the line); "
                    "judgecal reads UTF-8 files only — re-save the file as UTF-8",
                    number,
                )
                text, ok = raw.decode("utf-8", errors="replace"), False
            if text.strip():
                seen_content = True
            yield number, text, ok
        if not seen_content:
            report("the file is empty")
            raise _Stop


def _jsonl_rows(path: Path, report: Report) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text, ok in _text_lines(path, report):
        if not ok or not text.strip():
            continue  # a line that is not UTF-8 is reported already
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            report(f"malformed JSON: {exc.msg} (column {exc.colno})", number)
            continue
        except RecursionError:
            report("malformed JSON: nested too deeply", number)
            continue
        if not isinstance(value, dict):
            report(f"expected a JSON object, found {type(value).__name__}", number)
            continue
        yield number, value


def _csv_rows(
    path: Path, report: Report, *, delimiter: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    state = {"line": 0, "bad": 0}  # the current line; the last line that is not UTF-8

    def physical_lines() -> Iterable[str]:
        for number, text, ok in _text_lines(path, report):
            state["line"] = number
            if not ok:
                state["bad"] = number
            yield text

    reader = csv.reader(physical_lines(), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    header_line = 0
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # The rest of the physical line is dropped: reading goes on at the next one.
            line, start = start, state["line"] + 1
            if "unexpected end of data" in str(exc):
                report("malformed CSV: a quoted field in this record is not closed before "
                       f"the end of the file (line {state['line']})", line)
            else:
                at = f" (on line {state['line']})" if state["line"] != line else ""
                report(f"malformed CSV: {exc}{at}", line)
            if header is None:
                raise _Stop from None
            continue
        line, start = start, state["line"] + 1
        if state["bad"] >= line:
            if header is None:
                raise _Stop  # the header is not UTF-8 (reported): its columns are unknown
            continue  # a record on a line that is not UTF-8 (reported)
        if not record or all(cell.strip() == "" for cell in record):
            continue  # a blank line
        if header is None:
            header = [name.strip() for name in record]
            header_line = line
            seen: set[str] = set()
            for name in header:
                if name == "":
                    report("the header has an empty column name", line)
                    raise _Stop
                if name in seen:
                    report(f"the header names column {excerpt(name)} twice", line,
                           field_text(name))
                    raise _Stop
                seen.add(name)
            continue
        if len(record) != len(header):
            report(
                f"ragged row: {len(record)} fields where the header (line {header_line}) "
                f"has {len(header)}",
                line,
            )
            continue
        yield line, dict(zip(header, record, strict=True))
    if header is None:
        report("the file is empty")
    # A header without rows is a valid, empty table.


def _parquet_rows(path: Path, report: Report) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        report("the file is empty")
        raise _Stop
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        report(f"not a readable Parquet file: {_short(exc)}")
        raise _Stop from None
    if parquet.metadata.num_rows == 0 and parquet.metadata.num_columns == 0:
        report("the file is empty")
        raise _Stop
    number = 0
    try:
        for batch in parquet.iter_batches():
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except pa.ArrowException as exc:
        report(f"cannot read the Parquet data: {_short(exc)}", number + 1)
        raise _Stop from None


def _short(exc: BaseException, limit: int = 200) -> str:
    """An exception's message (which may quote the file), cut to ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
