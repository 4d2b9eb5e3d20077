"""Calibration sets: the shipped sets, their versions, human α, and every kind of broken set."""

from __future__ import annotations

import csv
import importlib
import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
import yaml

from judgecal.calibration import (
    MAX_PROBLEMS_PER_FILE,
    CalibrationSet,
    format_summary,
    human_alpha,
    load_set,
    summarize,
)
from judgecal.errors import CalibrationSetError, Problem
from tests.conftest import TEST_DATA

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "calibration_sets"

# Pinned content hashes of the shipped sets: a change here means the set changed (or the
# hashing did) and every stored baseline of that set stops being comparable.
SHIPPED_VERSIONS = {
    "pandalm": "sha256:5bdc1697c28f3db77c67a70f10b931d2c414f96c97d02e27ee13154771d2b5a2",
    "llmbar": "sha256:506e8f3aff84d4cc1ededd003a2b64057bfdf41b7f0c3f5aff6ab67ba5548474",
    "newsroom": "sha256:eb858f0615bfbd0c16a8ca49fd819ca8b7c037030fe163661d3cfa0a5b9b21a4",
    "hanna": "sha256:66d0ebae2835e49daed1d50b7df8b266e49dce31746125ce2ffa3c38c0c6241e",
    "dices350": "sha256:ce14e0cf15bf325cbb67caf5b971ecfd0a0a11c738c6403481d71d043fa4e290",
}

# name -> (items, {dimension: (raters, labels)})
SHIPPED_SHAPES: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {
    "pandalm": (999, {"preference": (3, 2997)}),
    "llmbar": (419, {"preference": (1, 419)}),
    "newsroom": (420, {d: (3, 1260) for d in
                       ("informativeness", "relevance", "fluency", "coherence")}),
    "hanna": (1056, {d: (3, 3168) for d in ("relevance", "coherence", "empathy", "surprise",
                                            "engagement", "complexity")}),
    "dices350": (350, {"safety": (123, 43050)}),
}

# Reference values computed from the public source files (PandaLM, Newsroom, HANNA, DICES-350;
# listed in tests/data/README.md).
REFERENCE_ALPHA = {
    ("pandalm", "preference"): 0.864,
    ("newsroom", "informativeness"): 0.285,
    ("newsroom", "relevance"): 0.115,
    ("newsroom", "fluency"): -0.016,
    ("newsroom", "coherence"): 0.065,
    ("hanna", "relevance"): 0.165,
    ("hanna", "coherence"): -0.054,
    ("hanna", "empathy"): 0.117,
    ("hanna", "surprise"): 0.015,
    ("hanna", "engagement"): 0.167,
    ("hanna", "complexity"): 0.266,
    ("dices350", "safety"): 0.161,
}

_loaded: dict[str, CalibrationSet] = {}


def shipped(name: str) -> CalibrationSet:
    """Load a shipped set once per test session (they are read-only)."""
    if name not in _loaded:
        _loaded[name] = load_set(SETS / name)
    return _loaded[name]


# --------------------------------------------------------------------------- helpers


SMALL_SPEC: dict[str, Any] = {
    "name": "small",
    "description": "a tiny set for tests",
    "items": "items.jsonl",
    "labels": "labels.csv",
    "segments": ["topic"],
    "dimensions": [
        {"name": "quality", "scale": {"kind": "ordinal", "min": 1, "max": 5}},
        {"name": "safe", "scale": {"kind": "nominal", "categories": ["no", "yes", "unsure"]}},
    ],
}
SMALL_ITEMS: list[dict[str, Any]] = [
    {"id": "a", "text": "first", "topic": "x", "n": 1},
    {"id": "b", "text": "second", "topic": "y", "n": 2},
    {"id": "c", "text": "third", "topic": "x", "n": 3},
]
SMALL_LABELS: list[dict[str, Any]] = [
    {"item_id": "a", "rater_id": "r1", "dimension": "quality", "label": 4},
    {"item_id": "a", "rater_id": "r2", "dimension": "quality", "label": 5},
    {"item_id": "b", "rater_id": "r1", "dimension": "quality", "label": 2},
    {"item_id": "b", "rater_id": "r2", "dimension": "quality", "label": 1},
    {"item_id": "c", "rater_id": "r10", "dimension": "quality", "label": 3},
    {"item_id": "a", "rater_id": "r1", "dimension": "safe", "label": "yes"},
    {"item_id": "a", "rater_id": "r2", "dimension": "safe", "label": "yes"},
    {"item_id": "b", "rater_id": "r1", "dimension": "safe", "label": "no"},
    {"item_id": "b", "rater_id": "r2", "dimension": "safe", "label": "unsure"},
]


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as CSV, JSONL or Parquet, chosen by the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    elif path.suffix == ".csv":
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:  # pragma: no cover - test helper misuse
        raise ValueError(path)


def write_set(
    root: Path,
    *,
    spec: dict[str, Any] | str | None = None,
    items: list[dict[str, Any]] | str | None = None,
    labels: list[dict[str, Any]] | str | None = None,
    items_name: str = "items.jsonl",
    labels_name: str = "labels.csv",
) -> Path:
    """Write a calibration set directory; strings are written verbatim."""
    root.mkdir(parents=True, exist_ok=True)
    if spec is None:
        spec = dict(SMALL_SPEC, items=items_name, labels=labels_name)
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    (root / "set.yaml").write_text(text, encoding="utf-8")
    for name, rows, default in ((items_name, items, SMALL_ITEMS),
                                (labels_name, labels, SMALL_LABELS)):
        rows = default if rows is None else rows
        if isinstance(rows, str):
            (root / name).write_text(rows, encoding="utf-8")
        else:
            write_table(root / name, rows)
    return root


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(CalibrationSetError) as exc:
        load_set(path)
    return exc.value.problems


def the_problem(path: Path) -> Problem:
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


def labels_csv(rows: list[tuple[str, str, str, str]]) -> str:
    return "item_id,rater_id,dimension,label\n" + "".join(",".join(r) + "\n" for r in rows)


# --------------------------------------------------------------------------- shipped sets


@pytest.mark.parametrize("name", sorted(SHIPPED_VERSIONS))
def test_shipped_set_loads_with_the_expected_shape(name: str) -> None:
    cs = shipped(name)
    n_items, dims = SHIPPED_SHAPES[name]
    assert cs.name == name
    assert cs.path == SETS / name
    assert len(cs.items) == n_items
    assert list(cs.dimensions) == list(dims)
    for dim, (n_raters, n_labels) in dims.items():
        matrix = cs.human_matrix(dim)
        assert matrix.shape == (n_items, n_raters)
        assert int(np.sum(~np.isnan(matrix))) == n_labels
    assert (SETS / name / "README.md").is_file()


@pytest.mark.parametrize("name", sorted(SHIPPED_VERSIONS))
def test_shipped_set_version_is_pinned(name: str) -> None:
    assert shipped(name).version == SHIPPED_VERSIONS[name]


def test_version_is_stable_across_loads() -> None:
    assert load_set(SETS / "llmbar" / "set.yaml").version == shipped("llmbar").version


@pytest.mark.parametrize(("name", "dimension"), sorted(REFERENCE_ALPHA))
def test_human_alpha_matches_the_reference(name: str, dimension: str) -> None:
    alpha = human_alpha(shipped(name), dimension)
    assert alpha["value"] == pytest.approx(REFERENCE_ALPHA[(name, dimension)], abs=1e-3)
    assert alpha["reason"] is None


@pytest.mark.parametrize(("name", "dimension"), sorted(REFERENCE_ALPHA))
def test_human_alpha_equals_krippendorff_on_the_label_file(name: str, dimension: str) -> None:
    """Rebuild the matrix from labels.csv without the loader and ask krippendorff."""
    cs = shipped(name)
    scale = cs.dimensions[dimension].scale
    cells: dict[tuple[str, str], float] = {}
    with (SETS / name / "labels.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["dimension"] == dimension:
                cells[(row["item_id"], row["rater_id"])] = scale.code(row["label"])
    item_ids = sorted({i for i, _ in cells})
    raters = sorted({r for _, r in cells})
    data = np.full((len(raters), len(item_ids)), np.nan)
    for (item_id, rater), code in cells.items():
        data[raters.index(rater), item_ids.index(item_id)] = code
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=scale.level,
                                  value_domain=scale.domain())
    assert human_alpha(cs, dimension)["value"] == pytest.approx(expected, abs=1e-12)


def test_single_rater_set_has_no_human_alpha() -> None:
    alpha = human_alpha(shipped("llmbar"), "preference")
    assert alpha["value"] is None
    assert "only one rater" in alpha["reason"]


def test_shipped_item_schemas_are_kept() -> None:
    """The recorded judge server and prompt templates rely on these field names."""
    pandalm = shipped("pandalm").items[0]
    assert pandalm.id == "0"
    assert set(pandalm.fields) == {"id", "instruction", "input", "response1", "response2",
                                   "motivation_app", "cmp_key"}
    llmbar = shipped("llmbar").items[0]
    assert llmbar.id == "Natural#0"
    assert set(llmbar.fields) == {"id", "input", "output_1", "output_2", "subset"}
    assert llmbar.segments == {"subset": "Natural"}
    newsroom = shipped("newsroom").items[0]
    assert newsroom.fields["text"] == ("### Generated Summary\n\n" + newsroom.fields["summary"]
                                       + "\n\n### Source Article\n\n"
                                       + newsroom.fields["article"])
    assert shipped("dices350").raters("safety")[:2] == ["crowd001", "crowd002"]
    assert shipped("hanna").items[5].segments == {"system": "Human"}


def test_build_script_regenerates_the_shipped_files(tmp_path: Path) -> None:
    tools = str(SETS / "tools")
    sys.path.insert(0, tools)
    try:
        build_sets = importlib.import_module("build_sets")
        build_items = importlib.import_module("build_items")
    finally:
        sys.path.remove(tools)
    build_items.build_pandalm(TEST_DATA, tmp_path)
    build_items.build_llmbar(TEST_DATA, tmp_path)
    build_sets.pandalm_labels(TEST_DATA, tmp_path)
    build_sets.llmbar_labels(TEST_DATA, tmp_path)
    build_sets.build_newsroom(TEST_DATA, tmp_path)
    build_sets.build_hanna(TEST_DATA, tmp_path)
    build_sets.build_dices(TEST_DATA, tmp_path)
    for name in SHIPPED_VERSIONS:
        for file in ("items.jsonl", "labels.csv"):
            assert (tmp_path / name / file).read_bytes() == (SETS / name / file).read_bytes()


# --------------------------------------------------------------------------- version


def _copy_set(name: str, target: Path) -> Path:
    target.mkdir(parents=True)
    for file in ("set.yaml", "items.jsonl", "labels.csv"):
        shutil.copy(SETS / name / file, target / file)
    return target


def test_version_changes_when_one_label_changes(tmp_path: Path) -> None:
    path = _copy_set("pandalm", tmp_path / "p")
    lines = (path / "labels.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[500].endswith(",2\n") or lines[500].endswith(",1\n") or lines[500].endswith(
        ",0\n")
    old = lines[500].rstrip("\n").rsplit(",", 1)
    lines[500] = f"{old[0]},{'1' if old[1] != '1' else '2'}\n"
    (path / "labels.csv").write_text("".join(lines), encoding="utf-8")
    assert load_set(path).version != shipped("pandalm").version


def test_version_changes_when_one_item_text_changes(tmp_path: Path) -> None:
    path = _copy_set("llmbar", tmp_path / "l")
    lines = (path / "items.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[7])
    row["output_2"] += " "
    lines[7] = json.dumps(row) + "\n"
    (path / "items.jsonl").write_text("".join(lines), encoding="utf-8")
    assert load_set(path).version != shipped("llmbar").version


def test_version_ignores_label_row_order_and_documentation(tmp_path: Path) -> None:
    path = _copy_set("newsroom", tmp_path / "n")
    lines = (path / "labels.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    body = lines[1:]
    random.Random(7).shuffle(body)
    (path / "labels.csv").write_text(lines[0] + "".join(body), encoding="utf-8")
    spec = yaml.safe_load((path / "set.yaml").read_text(encoding="utf-8"))
    spec["description"] = "edited"
    spec["dimensions"][0]["description"] = "edited too"
    (path / "set.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert load_set(path).version == shipped("newsroom").version


def test_version_depends_on_the_scale(tmp_path: Path) -> None:
    path = _copy_set("hanna", tmp_path / "h")
    spec = yaml.safe_load((path / "set.yaml").read_text(encoding="utf-8"))
    spec["dimensions"][0]["scale"] = {"kind": "interval", "min": 1, "max": 5}
    (path / "set.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert load_set(path).version != shipped("hanna").version


@pytest.mark.parametrize("name", ["hanna", "llmbar"])
def test_same_set_as_csv_jsonl_parquet_has_the_same_version(tmp_path: Path, name: str) -> None:
    original = shipped(name)
    items = [item.fields for item in original.items]
    labels = [
        {"item_id": item_id, "rater_id": rater, "dimension": dim,
         "label": original.dimensions[dim].scale.name(code)}
        for dim, by_item in original.labels.items()
        for item_id, by_rater in by_item.items()
        for rater, code in by_rater.items()
    ]
    spec = yaml.safe_load((SETS / name / "set.yaml").read_text(encoding="utf-8"))
    versions = set()
    for items_fmt, labels_fmt in (("csv", "jsonl"), ("jsonl", "parquet"), ("parquet", "csv")):
        root = tmp_path / f"{items_fmt}-{labels_fmt}"
        items_name, labels_name = f"items.{items_fmt}", f"labels.{labels_fmt}"
        write_set(root, spec=dict(spec, items=items_name, labels=labels_name), items=items,
                  labels=labels, items_name=items_name, labels_name=labels_name)
        versions.add(load_set(root).version)
    assert versions == {original.version}


# --------------------------------------------------------------------------- the API


def test_small_set_api(tmp_path: Path) -> None:
    cs = load_set(write_set(tmp_path / "s"))
    assert cs.name == "small"
    assert [item.id for item in cs.items] == ["a", "b", "c"]
    assert cs.items[1].fields == {"id": "b", "text": "second", "topic": "y", "n": 2}
    assert cs.items[1].segments == {"topic": "y"}
    assert cs.segment_fields == ["topic"]
    assert cs.item_index() == {"a": 0, "b": 1, "c": 2}
    assert cs.raters("quality") == ["r1", "r2", "r10"]  # natural order
    matrix = cs.human_matrix("quality")
    np.testing.assert_array_equal(
        matrix, [[4, 5, np.nan], [2, 1, np.nan], [np.nan, np.nan, 3]])
    assert cs.labels_for("b", "safe") == {"r1": 0.0, "r2": 2.0}
    assert cs.labels_for("c", "safe") == {}
    with pytest.raises(KeyError, match="no dimension 'nope'"):
        cs.raters("nope")
    with pytest.raises(KeyError, match="no item 'zz'"):
        cs.labels_for("zz", "safe")


def test_summary_reports_unlabelled_items_and_distribution(tmp_path: Path) -> None:
    items = [*SMALL_ITEMS, {"id": "d", "text": "fourth", "topic": "y", "n": 4}]
    cs = load_set(write_set(tmp_path / "s", items=items))
    summary = summarize(cs)
    json.dumps(summary, allow_nan=False)  # strict JSON
    assert summary["items"] == 4
    assert summary["items_without_labels"] == 1
    assert summary["unlabelled_examples"] == ["d"]
    quality = summary["dimensions"]["quality"]
    assert quality["labels"] == 5
    assert quality["raters"] == 3
    assert quality["raters_per_item"] == {"min": 0, "mean": 1.25, "max": 2}
    assert quality["distribution"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1}
    assert quality["items_without_labels"] == 1
    assert summary["dimensions"]["safe"]["items_without_labels"] == 2
    assert summary["dimensions"]["safe"]["distribution"] == {"no": 1, "yes": 2, "unsure": 1}
    assert summary["segments"] == {"topic": {"x": 2, "y": 2}}
    assert quality["human_alpha"]["pairable_items"] == 2
    text = format_summary(summary)
    assert "quality — ordinal 1..5" in text
    assert "without any label: d" in text


def test_alpha_undefined_without_variation(tmp_path: Path) -> None:
    labels = [dict(r, label=3) for r in SMALL_LABELS if r["dimension"] == "quality"]
    cs = load_set(write_set(tmp_path / "s", labels=labels))
    alpha = human_alpha(cs, "quality")
    assert alpha["value"] is None
    assert "no variation" in alpha["reason"]
    safe = human_alpha(cs, "safe")
    assert safe["value"] is None and safe["reason"] == "no labels"


def test_alpha_undefined_without_pairable_items(tmp_path: Path) -> None:
    labels = [{"item_id": i, "rater_id": r, "dimension": "quality", "label": v}
              for i, r, v in (("a", "r1", 1), ("b", "r2", 5))]
    alpha = human_alpha(load_set(write_set(tmp_path / "s", labels=labels)), "quality")
    assert alpha["value"] is None
    assert "two or more raters" in alpha["reason"]


def test_numeric_ids_match_across_files(tmp_path: Path) -> None:
    # JSONL ints, and floats as pandas writes an id column with gaps, match CSV text.
    items = [{"id": 1, "text": "x", "topic": "t"}, {"id": 2.0, "text": "y", "topic": "t"}]
    labels = labels_csv([("1", "r1", "quality", "3"), ("2", "r1", "quality", "4")])
    cs = load_set(write_set(tmp_path / "s", items=items, labels=labels))
    assert [item.id for item in cs.items] == ["1", "2"]
    assert cs.labels_for("2", "quality") == {"r1": 4.0}


def test_set_yaml_path_and_custom_id_field(tmp_path: Path) -> None:
    items = [{"key": "k1", "topic": "t"}]
    labels = labels_csv([("k1", "r1", "quality", "2")])
    spec = dict(SMALL_SPEC, id_field="key")
    path = write_set(tmp_path / "s", spec=spec, items=items, labels=labels)
    assert load_set(path / "set.yaml").items[0].id == "k1"


def test_parquet_nan_fields_become_none(tmp_path: Path) -> None:
    items = [{"id": "a", "topic": "t", "score": float("nan")}, {"id": "b", "topic": "t",
                                                                  "score": 1.5}]
    labels = labels_csv([("a", "r1", "quality", "2")])
    spec = dict(SMALL_SPEC, items="items.parquet")
    cs = load_set(write_set(tmp_path / "s", spec=spec, items=items, labels=labels,
                            items_name="items.parquet"))
    assert cs.items[0].fields["score"] is None
    json.dumps([item.fields for item in cs.items], allow_nan=False)


# --------------------------------------------------------------------------- broken sets
# Each case writes a broken set and names the file, line and field of the problem.


def _set_yaml_with(**changes: Any) -> dict[str, Any]:
    return dict(SMALL_SPEC, **changes)


BROKEN: dict[str, dict[str, Any]] = {
    "unknown setting": {
        "spec": "name: small\nitems: items.jsonl\nlabels: labels.csv\nsegmnts: [topic]\n"
                "dimensions:\n  - name: quality\n    scale: {kind: ordinal, min: 1, max: 5}\n",
        "expect": ("set.yaml", 4, "segmnts", "unknown setting"),
    },
    "setting given twice": {
        "spec": "name: small\nitems: items.jsonl\nlabels: labels.csv\nitems: other.jsonl\n"
                "dimensions:\n  - name: quality\n    scale: {kind: ordinal, min: 1, max: 5}\n",
        "labels": labels_csv([("a", "r1", "quality", "3")]),
        "expect": ("set.yaml", 4, "items", "given twice"),
    },
    "missing dimensions": {
        "spec": "name: small\nitems: items.jsonl\nlabels: labels.csv\n",
        "expect": ("set.yaml", 1, "dimensions", "required setting is missing"),
    },
    "bad scale kind": {
        "spec": "name: small\nitems: items.jsonl\nlabels: labels.csv\n"
                "dimensions:\n  - name: quality\n    scale:\n      kind: likert\n",
        "expect": ("set.yaml", 7, "dimensions[0].scale.kind", "Input should be"),
    },
    "nominal without categories": {
        "spec": "name: small\nitems: items.jsonl\nlabels: labels.csv\n"
                "dimensions:\n  - name: quality\n    scale: {kind: nominal}\n",
        "expect": ("set.yaml", 6, "dimensions[0].scale", "needs 'categories'"),
    },
    "duplicate dimension": {
        "spec": _set_yaml_with(dimensions=[dict(SMALL_SPEC["dimensions"][0]),
                                           dict(SMALL_SPEC["dimensions"][0])]),
        "labels": labels_csv([("a", "r1", "quality", "3")]),
        "expect": ("set.yaml", None, "dimensions[1].name", "declared twice"),
    },
    "invalid yaml": {
        "spec": "name: small\nitems: [items.jsonl\nlabels: labels.csv\n",
        "expect": ("set.yaml", None, None, "invalid YAML"),
    },
    "items file missing": {
        "spec": _set_yaml_with(items="nope.jsonl"),
        "expect": ("set.yaml", 3, "items", "file not found"),
    },
    "malformed items row": {
        "items": '{"id": "a", "topic": "x"}\n{"id": "b", "topic": \n{"id": "c", "topic": "x"}\n',
        "labels": labels_csv([("a", "r1", "quality", "3")]),
        "expect": ("items.jsonl", 2, None, "malformed JSON"),
    },
    "missing id": {
        "items": [{"id": "a", "topic": "x"}, {"text": "no id", "topic": "x"}],
        "labels": labels_csv([("a", "r1", "quality", "3")]),
        "expect": ("items.jsonl", 2, "id", "the item has no id"),
    },
    "duplicate item id": {
        "items": [{"id": "a", "topic": "x"}, {"id": "b", "topic": "x"}, {"id": "a", "topic": "y"}],
        "labels": labels_csv([("a", "r1", "quality", "3")]),
        "expect": ("items.jsonl", 3, "id", "duplicate item id 'a' (first on line 1)"),
    },
    "segment missing": {
        "items": [{"id": "a", "topic": "x"}, {"id": "b"}],
        "labels": labels_csv([("a", "r1", "quality", "3")]),
        "expect": ("items.jsonl", 2, "topic", "segment field is missing"),
    },
    "unknown item": {
        "labels": labels_csv([("a", "r1", "quality", "3"), ("zz", "r1", "quality", "3")]),
        "expect": ("labels.csv", 3, "item_id", "unknown item 'zz'"),
    },
    "unknown dimension": {
        "labels": labels_csv([("a", "r1", "quality", "3"), ("a", "r1", "Quality", "3")]),
        "expect": ("labels.csv", 3, "dimension", "did you mean 'quality'"),
    },
    "label off-scale": {
        "labels": labels_csv([("a", "r1", "quality", "3"), ("b", "r1", "quality", "6")]),
        "expect": ("labels.csv", 3, "label", "outside the scale 1..5"),
    },
    "label not a category": {
        "labels": labels_csv([("a", "r1", "safe", "maybe")]),
        "expect": ("labels.csv", 2, "label", "not one of"),
    },
    "duplicate label": {
        "labels": labels_csv([("a", "r1", "quality", "3"), ("b", "r1", "quality", "3"),
                              ("a", "r1", "quality", "4")]),
        "expect": ("labels.csv", 4, "rater_id", "already labelled item 'a' on 'quality' (line 2)"),
    },
    "ragged labels row": {
        "labels": "item_id,rater_id,dimension,label\na,r1,quality,3\nb,r1,quality\n",
        "expect": ("labels.csv", 3, None, "ragged row"),
    },
    "missing label column": {
        "labels": "item_id,rater,dimension,label\na,r1,quality,3\n",
        "expect": ("labels.csv", 1, "rater_id", "missing column(s) rater_id"),
    },
    "empty labels file": {
        "labels": "",
        "expect": ("labels.csv", None, None, "the file is empty"),
    },
    "empty rater": {
        "labels": labels_csv([("a", "", "quality", "3")]),
        "expect": ("labels.csv", 2, "rater_id", "is empty"),
    },
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_set_names_file_line_and_field(tmp_path: Path, case: str) -> None:
    spec = BROKEN[case]
    root = write_set(tmp_path / "broken", spec=spec.get("spec"), items=spec.get("items"),
                     labels=spec.get("labels"))
    file, line, field, message = spec["expect"]
    problem = the_problem(root)
    assert problem.file == str(root / file)
    if line is not None:
        assert problem.line == line
    else:
        assert case in ("duplicate dimension", "invalid yaml", "empty labels file")
    assert problem.field == field
    assert message in problem.message
    if case == "invalid yaml":
        assert problem.line == 3
    if case == "duplicate dimension":
        assert problem.line is not None
        lines = (root / "set.yaml").read_text(encoding="utf-8").splitlines()
        second = [n for n, text in enumerate(lines, start=1) if "name: quality" in text][1]
        assert problem.line == second


def test_bad_encoding_in_labels(tmp_path: Path) -> None:
    root = write_set(tmp_path / "s")
    (root / "labels.csv").write_bytes(b"item_id,rater_id,dimension,label\na,r\xe9,quality,3\n")
    problem = the_problem(root)
    assert (problem.file, problem.line) == (str(root / "labels.csv"), 2)
    assert "UTF-8" in problem.message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    items = [{"id": "a", "topic": "x"}, {"id": "a", "topic": "x"}, {"id": "b"}]
    labels = labels_csv([
        ("a", "r1", "quality", "9"),
        ("a", "r1", "colour", "3"),
        ("b", "r1", "safe", "yes"),
        ("b", "r1", "safe", "no"),
    ])
    root = write_set(tmp_path / "s", items=items, labels=labels)
    problems = problems_of(root)
    where = {(Path(p.file).name, p.line, p.field) for p in problems}
    assert where == {
        ("items.jsonl", 2, "id"),
        ("items.jsonl", 3, "topic"),
        ("labels.csv", 2, "label"),
        ("labels.csv", 3, "dimension"),
        ("labels.csv", 5, "rater_id"),
    }


def test_problems_are_capped_per_file(tmp_path: Path) -> None:
    rows = [("a", f"r{i}", "quality", "99") for i in range(MAX_PROBLEMS_PER_FILE + 50)]
    problems = problems_of(write_set(tmp_path / "s", labels=labels_csv(rows)))
    assert len(problems) == MAX_PROBLEMS_PER_FILE + 1
    assert "50 more problems" in problems[-1].message


def test_missing_directory_and_set_file(tmp_path: Path) -> None:
    assert "no such file" in the_problem(tmp_path / "nowhere").message
    (tmp_path / "empty").mkdir()
    problem = the_problem(tmp_path / "empty")
    assert problem.file == str(tmp_path / "empty" / "set.yaml")
    assert "has no set.yaml" in problem.message


def test_set_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    root = write_set(tmp_path / "s", spec="- just\n- a list\n")
    assert "expected a mapping" in the_problem(root).message


def test_interval_distribution_is_binned_when_values_are_many(tmp_path: Path) -> None:
    spec = dict(SMALL_SPEC, segments=[], dimensions=[
        {"name": "score", "scale": {"kind": "interval", "min": 0, "max": 1}}])
    items = [{"id": f"i{k}"} for k in range(30)]
    labels = [{"item_id": f"i{k}", "rater_id": r, "dimension": "score",
               "label": round(k / 29 if r == "r1" else (k + 0.5) / 30, 4)}
              for k in range(30) for r in ("r1", "r2")]
    summary = summarize(load_set(write_set(tmp_path / "s", spec=spec, items=items,
                                           labels=labels)))
    score = summary["dimensions"]["score"]
    assert len(score["distribution"]) == 10
    assert sum(score["distribution"].values()) == 60
    assert score["human_alpha"]["level"] == "interval"
    assert score["human_alpha"]["value"] > 0.9


def test_binary_scale_labels(tmp_path: Path) -> None:
    spec = dict(SMALL_SPEC, segments=[], dimensions=[
        {"name": "ok", "scale": {"kind": "binary"}}])
    labels = labels_csv([("a", "r1", "ok", "yes"), ("a", "r2", "ok", "1"),
                         ("b", "r1", "ok", "false"), ("b", "r2", "ok", "0")])
    cs = load_set(write_set(tmp_path / "s", spec=spec, labels=labels))
    assert cs.labels_for("a", "ok") == {"r1": 1.0, "r2": 1.0}
    assert summarize(cs)["dimensions"]["ok"]["distribution"] == {"0": 2, "1": 2}
    assert human_alpha(cs, "ok")["value"] == pytest.approx(1.0)


def test_importing_the_loader_stays_light() -> None:
    import subprocess

    code = ("import sys, judgecal.calibration, judgecal.io.tabular; "
            "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'krippendorff') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
