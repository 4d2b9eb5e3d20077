"""Loading a calibration set: read ``set.yaml``, the items and the labels, collect *every*
problem (file, line, field, message) and raise them together; nothing half-valid comes back.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judgecal.calibration.model import (
    LABEL_COLUMNS,
    MAX_KEY_LENGTH,
    MAX_PROBLEMS_PER_FILE,
    SET_FILE,
    CalibrationSet,
    Item,
    SetSpec,
)
from judgecal.calibration.version import set_version
from judgecal.errors import CalibrationSetError, InputError, Problem
from judgecal.io import YamlDocument, excerpt, field_text, load_yaml, validator_text
from judgecal.io.tabular import detect_format, read_rows
from judgecal.messages import model_keys, unknown_key_text
from judgecal.scales import Dimension

__all__ = [
    "load_set",
]


class _Problems:
    """Collects problems, listing at most MAX_PROBLEMS_PER_FILE per file."""

    def __init__(self) -> None:
        self.listed: list[Problem] = []
        self.per_file: Counter[str] = Counter()

    def add(self, problem: Problem) -> None:
        self.per_file[problem.file] += 1
        if self.per_file[problem.file] <= MAX_PROBLEMS_PER_FILE:
            self.listed.append(problem)

    def extend(self, problems: list[Problem]) -> None:
        for problem in problems:
            self.add(problem)

    def __len__(self) -> int:
        return sum(self.per_file.values())

    def result(self) -> list[Problem]:
        out = list(self.listed)
        for file, count in self.per_file.items():
            if count > MAX_PROBLEMS_PER_FILE:
                out.append(Problem(
                    file=file,
                    message=f"... and {count - MAX_PROBLEMS_PER_FILE} more problems in this "
                    f"file (first {MAX_PROBLEMS_PER_FILE} listed)",
                ))
        return out


def load_set(path: str | Path) -> CalibrationSet:
    """Load and validate a calibration set.

    ``path`` is the set's directory or its ``set.yaml``. Every problem found is collected
    and raised together as one :class:`CalibrationSetError` whose ``problems`` name the
    file, line and field: missing or unreadable files, invalid ``set.yaml``, malformed
    rows, missing or duplicate item ids, segment fields missing from an item, labels for
    unknown items or dimensions, labels off the dimension's scale, and a rater labelling
    the same item on the same dimension twice. Items without any label are allowed
    (:func:`summarize` reports them). Label item ids are checked against the items only
    when every item row could be read, so that one broken item row does not also show up
    as many "unknown item" labels.
    """
    set_file = _locate(Path(path))
    problems = _Problems()
    spec, doc = _read_spec(set_file, problems)
    if spec is None or doc is None:
        raise CalibrationSetError(problems.result())
    directory = set_file.parent
    dimensions = _check_spec(spec, set_file, doc, problems)

    items_path = _set_file(directory, "items", spec.items, doc, problems)
    labels_path = _set_file(directory, "labels", spec.labels, doc, problems)
    items: list[Item] = []
    items_complete = False
    if items_path is not None:
        items, items_complete = _read_items(items_path, spec, problems)
    labels: dict[str, dict[str, dict[str, float]]] = {name: {} for name in dimensions}
    if labels_path is not None:
        known_ids = {item.id for item in items} if items_complete else None
        _read_labels(labels_path, dimensions, known_ids, labels, problems)
    if len(problems):
        raise CalibrationSetError(problems.result())
    return CalibrationSet(
        name=spec.name,
        path=directory,
        description=spec.description,
        version=set_version(dimensions, items, labels),
        dimensions=dimensions,
        items=items,
        segment_fields=list(spec.segments),
        labels=labels,
        license=spec.license,
    )


def _locate(path: Path) -> Path:
    if path.is_dir():
        for name in (SET_FILE, "set.yml"):
            if (path / name).is_file():
                return path / name
        raise CalibrationSetError(Problem(
            file=str(path / SET_FILE),
            message=f"not a calibration set: {path} has no {SET_FILE}",
        ))
    if not path.exists():
        raise CalibrationSetError(Problem(file=str(path), message="no such file or directory"))
    return path


def _set_file(
    directory: Path, key: str, name: str, doc: YamlDocument, problems: _Problems
) -> Path | None:
    """The items or labels file ``name`` of set.yaml's ``key``, when it is a file inside the
    set's folder (after following ``..`` and symbolic links); else a problem and None."""
    path = directory / name
    try:
        inside = path.resolve().is_relative_to(directory.resolve())
        found = path.is_file()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symbolic link loop
        inside, found = True, False
    if not inside:
        message = (f"{excerpt(name)} leads outside the set's folder {directory}; a set names "
                   "only files inside its folder (no '..', absolute path or symbolic link "
                   "leading out)")
    elif not found:
        message = f"file not found: {field_text(str(path), 300)}"
    else:
        return path
    problems.add(Problem(file=str(doc.path), line=doc.line_of((key,)), field=key,
                         message=message))
    return None


def _read_spec(
    set_file: Path, problems: _Problems
) -> tuple[SetSpec | None, YamlDocument | None]:
    try:
        doc = load_yaml(set_file, error=CalibrationSetError)
    except InputError as exc:
        problems.extend(exc.problems)
        return None, None
    try:
        return SetSpec.model_validate(doc.data), doc
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            problems.add(Problem(
                file=str(set_file), line=doc.line_of(loc),
                field=field_text(_dotted(loc)) or None, message=_pydantic_message(error),
            ))
        return None, doc


def _check_spec(
    spec: SetSpec, set_file: Path, doc: YamlDocument, problems: _Problems
) -> dict[str, Dimension]:
    dimensions: dict[str, Dimension] = {}
    for i, dimension in enumerate(spec.dimensions):
        if dimension.name in dimensions:
            loc: tuple[Any, ...] = ("dimensions", i, "name")
            problems.add(Problem(
                file=str(set_file), line=doc.line_of(loc), field=_dotted(loc),
                message=f"dimension {dimension.name!r} is declared twice",
            ))
            continue
        dimensions[dimension.name] = dimension
    seen: set[str] = set()
    for i, segment in enumerate(spec.segments):
        if segment in seen:
            loc = ("segments", i)
            problems.add(Problem(
                file=str(set_file), line=doc.line_of(loc), field=_dotted(loc),
                message=f"segment field {segment!r} is listed twice",
            ))
        seen.add(segment)
    return dimensions


def _read_items(path: Path, spec: SetSpec, problems: _Problems) -> tuple[list[Item], bool]:
    """Read the items; the flag says whether every row was read and had a valid id."""
    where = str(path)
    before = len(problems)
    file_problems: list[Problem] = []
    items: list[Item] = []
    first_line: dict[str, int] = {}
    id_field = spec.id_field
    complete = True
    for line, row in read_rows(path, problems=file_problems):
        problems.extend(file_problems)
        file_problems.clear()
        try:
            item_id = _as_key(row.get(id_field))
        except ValueError as exc:
            problems.add(Problem(file=where, line=line, field=id_field, message=f"id {exc}"))
            complete = False
            continue
        if item_id is None:
            message = "the item has no id" if id_field not in row else "the item id is empty"
            problems.add(Problem(file=where, line=line, field=id_field, message=message))
            complete = False
            continue
        if len(item_id) > MAX_KEY_LENGTH:
            problems.add(Problem(
                file=where, line=line, field=id_field,
                message=f"the item id is {len(item_id)} characters long; at most "
                f"{MAX_KEY_LENGTH} are allowed",
            ))
            complete = False
            continue
        if item_id in first_line:
            problems.add(Problem(
                file=where, line=line, field=id_field,
                message=f"duplicate item id {item_id!r} (first on line {first_line[item_id]})",
            ))
            continue
        first_line[item_id] = line
        segments: dict[str, str] = {}
        for name in spec.segments:
            try:
                value = _as_key(row.get(name))
            except ValueError as exc:
                problems.add(Problem(
                    file=where, line=line, field=name, message=f"segment value {exc}",
                ))
                continue
            if value is None:
                problems.add(Problem(
                    file=where, line=line, field=name,
                    message="segment field is missing" if name not in row
                    else "segment field is empty",
                ))
                continue
            segments[name] = value
        fields = {str(key): _json_safe(value) for key, value in row.items()}
        items.append(Item(id=item_id, fields=fields, segments=segments))
    problems.extend(file_problems)
    if file_problems:
        complete = False
    if not items and len(problems) == before:
        problems.add(Problem(file=where, message="the items file has no items"))
    return items, complete


def _read_labels(
    path: Path,
    dimensions: dict[str, Dimension],
    known_ids: set[str] | None,
    labels: dict[str, dict[str, dict[str, float]]],
    problems: _Problems,
) -> None:
    """Read long-form labels into ``labels``; ``known_ids`` None skips the unknown-item check."""
    where = str(path)
    try:
        columnar = detect_format(path) != "jsonl"
    except InputError as exc:
        problems.extend(exc.problems)
        return
    first_line: dict[tuple[str, str, str], int] = {}
    reported_columns: set[str] = set()
    file_problems: list[Problem] = []
    count = 0
    for line, row in read_rows(path, problems=file_problems):
        problems.extend(file_problems)
        file_problems.clear()
        count += 1
        missing = [c for c in LABEL_COLUMNS if c not in row]
        if missing:
            if columnar:
                # One header, so one message for the whole file.
                new = [c for c in missing if c not in reported_columns]
                reported_columns.update(new)
                if new:
                    problems.add(Problem(
                        file=where, line=1, field=new[0],
                        message=f"missing column(s) {', '.join(new)}; a labels file has "
                        f"columns {', '.join(LABEL_COLUMNS)}",
                    ))
            else:
                problems.add(Problem(
                    file=where, line=line, field=missing[0],
                    message=f"missing field(s) {', '.join(missing)}",
                ))
            continue
        keys: dict[str, str] = {}
        for column in ("item_id", "rater_id", "dimension"):
            try:
                value = _as_key(row[column])
            except ValueError as exc:
                problems.add(Problem(file=where, line=line, field=column, message=str(exc)))
                break
            if value is None:
                problems.add(Problem(file=where, line=line, field=column, message="is empty"))
                break
            if len(value) > MAX_KEY_LENGTH:
                problems.add(Problem(
                    file=where, line=line, field=column,
                    message=f"is {len(value)} characters long; at most {MAX_KEY_LENGTH} are "
                    "allowed",
                ))
                break
            keys[column] = value
        else:
            _add_label(where, line, row["label"], keys, dimensions, known_ids, labels,
                       first_line, problems)
    problems.extend(file_problems)
    if count == 0 and not file_problems:
        problems.add(Problem(file=where, message="the labels file has no labels"))


def _add_label(
    where: str,
    line: int,
    raw: object,
    keys: dict[str, str],
    dimensions: dict[str, Dimension],
    known_ids: set[str] | None,
    labels: dict[str, dict[str, dict[str, float]]],
    first_line: dict[tuple[str, str, str], int],
    problems: _Problems,
) -> None:
    item_id, rater, name = keys["item_id"], keys["rater_id"], keys["dimension"]
    ok = True
    dimension = dimensions.get(name)
    if dimension is None:
        hint = difflib.get_close_matches(name, list(dimensions), n=1)
        problems.add(Problem(
            file=where, line=line, field="dimension",
            message=f"unknown dimension {name!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; set.yaml declares {', '.join(dimensions) or 'none'}",
        ))
        ok = False
    if known_ids is not None and item_id not in known_ids:
        problems.add(Problem(
            file=where, line=line, field="item_id",
            message=f"label for unknown item {item_id!r} (not in the items file)",
        ))
        ok = False
    if dimension is None:
        return
    try:
        code = dimension.scale.code(raw)
    except ValueError as exc:
        problems.add(Problem(
            file=where, line=line, field="label",
            message=f"{exc} (dimension {name!r}: {dimension.scale.describe()})",
        ))
        return
    key = (item_id, rater, name)
    if key in first_line:
        problems.add(Problem(
            file=where, line=line, field="rater_id",
            message=f"duplicate label: rater {rater!r} already labelled item {item_id!r} on "
            f"{name!r} (line {first_line[key]})",
        ))
        return
    first_line[key] = line
    if ok:
        labels[name].setdefault(item_id, {})[rater] = code


def _as_key(value: object) -> str | None:
    """An id-like value as text: 7, 7.0 and "7" are all "7"; None/""/NaN are None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, (list, dict, tuple)):
        raise ValueError(f"must be a string or a number, not a {type(value).__name__}")
    return str(value)


def _json_safe(value: Any) -> Any:
    """Field values as JSON can hold them (Parquet may give NaN, dates, decimals, bytes)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return str(value)


# --------------------------------------------------------------------------- set.yaml helpers


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _pydantic_message(error: Any) -> str:
    kind = error.get("type", "")
    loc = error.get("loc", ())
    if kind == "extra_forbidden":
        if not loc:
            return "unknown setting"
        return unknown_key_text(loc[-1], model_keys(SetSpec, loc[:-1]), noun="setting")
    if kind == "missing":
        return "required setting is missing"
    return validator_text(str(error.get("msg", "invalid")))
