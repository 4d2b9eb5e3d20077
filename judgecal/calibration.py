"""Calibration sets: human-labelled items, loaded, validated strictly and hashed.

A calibration set is a directory with a ``set.yaml`` that names an items file and a
long-form labels file (``item_id, rater_id, dimension, label``) and declares each
dimension with its :class:`~judgecal.scales.Scale`. :func:`load_set` reads all of it,
collects *every* problem it finds (file, line, field, message) and raises them together
as one :class:`~judgecal.errors.CalibrationSetError`; nothing half-valid comes back.

The **version** of a set is a content hash of what a run is measured against — the
dimensions (name and scale), every item field, and every label as its code. It does not
depend on the file format (CSV, JSONL or Parquet), on the order of the label rows, or on
documentation (set name, descriptions, README). Item order does count: it fixes the row
order of the human matrix and thus which items a seeded bootstrap draws.

numpy and krippendorff are imported inside the functions that need them, so that
``import judgecal.calibration`` stays cheap for the CLI.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from judgecal.errors import CalibrationSetError, InputError, Problem
from judgecal.io import YamlDocument, excerpt, field_text, load_yaml, validator_text
from judgecal.io.tabular import detect_format, read_rows
from judgecal.scales import Dimension

if TYPE_CHECKING:
    import numpy

__all__ = [
    "LABEL_COLUMNS",
    "CalibrationSet",
    "Item",
    "SetSpec",
    "format_summary",
    "human_alpha",
    "load_set",
    "summarize",
]

LABEL_COLUMNS = ("item_id", "rater_id", "dimension", "label")
"""Columns of a long-form labels file (further columns are ignored)."""

SET_FILE = "set.yaml"
MAX_PROBLEMS_PER_FILE = 100
"""Problems listed per file; the rest are counted in one closing problem."""

_NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"

MAX_KEY_LENGTH = 200
"""Longest item id, rater id or dimension name: what the store's key columns hold
(PostgreSQL would refuse a longer one half-way through a run)."""


class SetSpec(BaseModel):
    """The contents of ``set.yaml`` (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN, max_length=200)
    """Short identifier of the set (letters, digits, ``_ . -``)."""
    description: str = ""
    """What the set is, in a sentence or two."""
    license: str | None = None
    """License of the data (SPDX identifier), shown by ``judgecal validate``."""
    items: str = Field(min_length=1)
    """Items file, relative to the set directory: CSV, JSONL or Parquet."""
    labels: str = Field(min_length=1)
    """Long-form labels file (item_id, rater_id, dimension, label), relative to the directory."""
    id_field: str = Field(default="id", min_length=1)
    """Column of the items file holding the item id."""
    segments: list[str] = Field(default_factory=list)
    """Item fields whose values split the set into segments (reported separately)."""
    dimensions: list[Dimension] = Field(min_length=1)
    """The quality axes the items are labelled on, each with its scale."""


@dataclass(frozen=True)
class Item:
    """One calibration item."""

    id: str
    fields: dict[str, Any]
    """Every field of the item's row (the id field included), JSON-safe: values as read,
    except that NaN becomes None and dates, decimals and bytes become text."""
    segments: dict[str, str]
    """Values of the set's segment fields, as text."""


@dataclass
class CalibrationSet:
    """A validated calibration set (build it with :func:`load_set`)."""

    name: str
    path: Path
    """The set's directory."""
    description: str
    version: str
    """``"sha256:<hex>"`` content hash (see the module docstring)."""
    dimensions: dict[str, Dimension]
    """In declared order."""
    items: list[Item]
    """In file order."""
    segment_fields: list[str]
    labels: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict, repr=False)
    """dimension -> item id -> rater id -> label code."""
    license: str | None = None

    def item_index(self) -> dict[str, int]:
        """Item id -> row position (in :attr:`items` order)."""
        return {item.id: i for i, item in enumerate(self.items)}

    def raters(self, dimension: str) -> list[str]:
        """Distinct raters who labelled ``dimension``, in natural order (rater2 < rater10)."""
        by_item = self._dimension_labels(dimension)
        names = {rater for labels in by_item.values() for rater in labels}
        return sorted(names, key=_natural_key)

    def human_matrix(self, dimension: str) -> numpy.ndarray:
        """Label codes as an array of shape (items, raters); NaN where a rater gave no label.

        Rows follow :attr:`items`, columns follow :meth:`raters`.
        """
        import numpy as np

        by_item = self._dimension_labels(dimension)
        raters = self.raters(dimension)
        column = {rater: j for j, rater in enumerate(raters)}
        matrix = np.full((len(self.items), len(raters)), np.nan, dtype=float)
        for i, item in enumerate(self.items):
            for rater, code in by_item.get(item.id, {}).items():
                matrix[i, column[rater]] = code
        return matrix

    def labels_for(self, item_id: str, dimension: str) -> dict[str, float]:
        """Rater -> label code for one item on one dimension (empty if unlabelled).

        Raises KeyError for an unknown dimension or item id.
        """
        by_item = self._dimension_labels(dimension)
        if item_id not in by_item and all(item.id != item_id for item in self.items):
            raise KeyError(f"no item {item_id!r} in calibration set {self.name!r}")
        return dict(by_item.get(item_id, {}))

    def _dimension_labels(self, dimension: str) -> dict[str, dict[str, float]]:
        if dimension not in self.dimensions:
            known = ", ".join(self.dimensions)
            raise KeyError(f"calibration set {self.name!r} has no dimension {dimension!r} "
                           f"(it has: {known})")
        return self.labels.get(dimension, {})


# --------------------------------------------------------------------------- loading


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
        version=_version(dimensions, items, labels),
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


def _natural_key(text: str) -> tuple[tuple[Any, ...], str]:
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), text


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
        return f"unknown setting {excerpt(loc[-1])}" if loc else "unknown setting"
    if kind == "missing":
        return "required setting is missing"
    return validator_text(str(error.get("msg", "invalid")))


# --------------------------------------------------------------------------- version


def _canonical_value(value: Any) -> Any:
    """Item field values as text, so CSV, JSONL and Parquet copies hash alike."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def _version(
    dimensions: dict[str, Dimension],
    items: list[Item],
    labels: dict[str, dict[str, dict[str, float]]],
) -> str:
    payload = {
        "dimensions": [
            {"name": d.name, "scale": d.scale.model_dump(mode="json")}
            for d in dimensions.values()
        ],
        "items": [
            {key: _canonical_value(value) for key, value in item.fields.items()}
            for item in items
        ],
        "labels": sorted(
            [name, item_id, rater, code]
            for name, by_item in labels.items()
            for item_id, by_rater in by_item.items()
            for rater, code in by_rater.items()
        ),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- summary


def human_alpha(cs: CalibrationSet, dimension: str) -> dict[str, Any]:
    """Krippendorff's α among the human raters of one dimension.

    Computed with the ``krippendorff`` package at the scale's level of measurement
    (nominal for binary, nominal and pairwise scales; ordinal; interval), passing the
    scale's full value domain for nominal and ordinal scales.

    Returns ``{"value", "level", "pairable_items", "reason"}``. ``value`` is None, with
    the ``reason`` in words, when α is undefined: fewer than two raters, no item with
    two or more labels, or no variation at all among the labels.
    """
    import warnings

    import krippendorff
    import numpy as np

    matrix = cs.human_matrix(dimension)  # KeyError for an unknown dimension
    scale = cs.dimensions[dimension].scale
    result: dict[str, Any] = {"value": None, "level": scale.level, "pairable_items": 0,
                              "reason": None}
    if matrix.shape[1] < 2:
        result["reason"] = (
            "only one rater: there is no human-human agreement to measure"
            if matrix.shape[1] == 1 else "no labels"
        )
        return result
    per_item = np.sum(~np.isnan(matrix), axis=1)
    pairable = matrix[per_item >= 2]
    result["pairable_items"] = int(pairable.shape[0])
    if pairable.shape[0] == 0:
        result["reason"] = "no item has labels from two or more raters"
        return result
    values = np.unique(pairable[~np.isnan(pairable)])
    if values.size < 2:
        result["reason"] = (
            f"every label is {scale.name(float(values[0]))!r}: with no variation α is undefined"
        )
        return result
    kwargs: dict[str, Any] = {"level_of_measurement": scale.level}
    domain = scale.domain()
    if domain is not None and scale.level != "interval":
        kwargs["value_domain"] = domain
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            value = float(krippendorff.alpha(reliability_data=matrix.T, **kwargs))
    except (ValueError, ZeroDivisionError) as exc:
        result["reason"] = f"krippendorff could not compute α: {exc}"
        return result
    if not math.isfinite(value):
        result["reason"] = "α is undefined for these labels (zero expected disagreement)"
        return result
    result["value"] = value
    return result


def summarize(cs: CalibrationSet) -> dict[str, Any]:
    """A JSON-able summary of a set: size, raters, label distributions, human α, segments."""
    labelled_any: set[str] = set()
    dimensions: dict[str, Any] = {}
    for name, dimension in cs.dimensions.items():
        scale = dimension.scale
        by_item = cs.labels.get(name, {})
        raters = cs.raters(name)
        counts = [len(by_item.get(item.id, {})) for item in cs.items]
        labelled_any.update(item_id for item_id, labels in by_item.items() if labels)
        codes = Counter(code for labels in by_item.values() for code in labels.values())
        domain = scale.domain()
        if domain is not None:
            distribution = {scale.name(code): codes.get(code, 0) for code in domain}
        else:
            distribution = _interval_distribution(codes)
        unlabelled = [item.id for item, n in zip(cs.items, counts, strict=True) if n == 0]
        dimensions[name] = {
            "description": dimension.description,
            "scale": scale.describe(),
            "kind": scale.kind,
            "level": scale.level,
            "raters": len(raters),
            "rater_ids": raters,
            "labels": sum(counts),
            "raters_per_item": {
                "min": min(counts, default=0),
                "mean": (sum(counts) / len(counts)) if counts else 0.0,
                "max": max(counts, default=0),
            },
            "distribution": distribution,
            "items_without_labels": len(unlabelled),
            "unlabelled_examples": unlabelled[:10],
            "human_alpha": human_alpha(cs, name),
        }
    segments: dict[str, dict[str, int]] = {}
    for segment in cs.segment_fields:
        values = Counter(item.segments[segment] for item in cs.items)
        segments[segment] = dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))
    unlabelled_ids = [item.id for item in cs.items if item.id not in labelled_any]
    return {
        "name": cs.name,
        "description": cs.description,
        "license": cs.license,
        "path": str(cs.path),
        "version": cs.version,
        "items": len(cs.items),
        "items_without_labels": len(unlabelled_ids),
        "unlabelled_examples": unlabelled_ids[:10],
        "dimensions": dimensions,
        "segments": segments,
    }


def _interval_distribution(codes: Counter[float], max_values: int = 20) -> dict[str, int]:
    """Counts per value, or per one of ten equal-width bins when values are many."""
    values = sorted(codes)
    if len(values) <= max_values:
        return {f"{v:g}": codes[v] for v in values}
    low, high = values[0], values[-1]
    width = (high - low) / 10
    bins: dict[str, int] = {}
    for k in range(10):
        start, end = low + k * width, low + (k + 1) * width
        last = k == 9
        bins[f"{start:g}..{end:g}"] = sum(
            n for v, n in codes.items() if start <= v and (v < end or (last and v <= high))
        )
    return bins


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`summarize` output as readable text (what ``judgecal validate`` prints)."""
    lines = [f"{summary['name']}: valid calibration set", f"  version  {summary['version']}"]
    if summary.get("license"):
        lines.append(f"  license  {summary['license']}")
    n_dims = len(summary["dimensions"])
    lines.append(f"  items    {summary['items']}"
                 + (f" ({summary['items_without_labels']} without any label: "
                    f"{', '.join(summary['unlabelled_examples'])}"
                    + (", ..." if summary["items_without_labels"] > 10 else "") + ")"
                    if summary["items_without_labels"] else ""))
    for segment, values in summary["segments"].items():
        shown = ", ".join(f"{value} {count}" for value, count in list(values.items())[:8])
        more = f", ... ({len(values)} values)" if len(values) > 8 else ""
        lines.append(f"  segment  {segment}: {shown}{more}")
    lines.append(f"  {n_dims} dimension{'s' if n_dims != 1 else ''}:")
    for name, dim in summary["dimensions"].items():
        lines.append(f"    {name} — {dim['scale']}")
        raters = dim["rater_ids"]
        who = f" ({', '.join(raters)})" if len(raters) <= 6 else ""
        per = dim["raters_per_item"]
        lines.append(f"      labels {dim['labels']} from {dim['raters']} rater"
                     f"{'s' if dim['raters'] != 1 else ''}{who}; per item "
                     f"min {per['min']} / mean {per['mean']:.2f} / max {per['max']}")
        total = sum(dim["distribution"].values()) or 1
        dist = ", ".join(f"{label} {count} ({100 * count / total:.0f}%)"
                         for label, count in dim["distribution"].items())
        lines.append(f"      distribution {dist}")
        alpha = dim["human_alpha"]
        if alpha["value"] is None:
            lines.append(f"      human α ({alpha['level']}): undefined — {alpha['reason']}")
        else:
            lines.append(f"      human α ({alpha['level']}) {alpha['value']:.3f} over "
                         f"{alpha['pairable_items']} items with 2+ labels")
        if dim["items_without_labels"]:
            lines.append(f"      items without labels: {dim['items_without_labels']}")
    return "\n".join(lines)
