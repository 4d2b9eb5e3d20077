"""`judgecal validate`: the summary on success, one line per problem and exit 2 on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from judgecal.cli.main import cli
from tests.helpers import run_main
from tests.test_calibration import BROKEN, REFERENCE_ALPHA, SETS, labels_csv, write_set

ROOT = Path(__file__).resolve().parent.parent


def test_validate_prints_a_readable_summary() -> None:
    result = CliRunner().invoke(cli, ["validate", str(SETS / "pandalm")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "pandalm: valid calibration set" in out
    assert "items    999" in out
    assert "preference — pairwise (1, 2, 0=tie)" in out
    assert "3 raters (annotator1, annotator2, annotator3)" in out
    assert "distribution tie 326" in out
    assert "human α (nominal) 0.864" in out
    assert "license  Apache-2.0" in out


def test_validate_json_summary() -> None:
    result = CliRunner().invoke(cli, ["validate", str(SETS / "newsroom"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["name"] == "newsroom"
    assert summary["items"] == 420
    assert summary["version"].startswith("sha256:")
    for dimension, info in summary["dimensions"].items():
        assert info["raters"] == 3
        assert info["labels"] == 1260
        assert info["human_alpha"]["level"] == "ordinal"
        assert info["human_alpha"]["value"] == pytest.approx(
            REFERENCE_ALPHA[("newsroom", dimension)], abs=1e-3)


def test_validate_accepts_the_set_yaml_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["validate", str(SETS / "llmbar" / "set.yaml")], capsys)
    assert code == 0
    assert "undefined — only one rater" in out


def test_validate_reports_unlabelled_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [{"id": "a", "topic": "x"}, {"id": "b", "topic": "x"}]
    root = write_set(tmp_path / "s", items=items,
                     labels=labels_csv([("a", "r1", "quality", "3")]))
    code, out, _ = run_main(["validate", str(root)], capsys)
    assert code == 0
    assert "1 without any label: b" in out


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_set_exits_2_naming_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    spec = BROKEN[case]
    root = write_set(tmp_path / "broken", spec=spec.get("spec"), items=spec.get("items"),
                     labels=spec.get("labels"))
    file, line, field, message = spec["expect"]
    code, out, err = run_main(["validate", str(root)], capsys)
    assert code == 2
    assert out == ""
    where = str(root / file) + (f":{line}" if line is not None else "")
    assert where in err
    if field:
        assert f"field '{field}'" in err
    assert message in err


def test_every_problem_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = labels_csv([("a", "r1", "quality", "9"), ("zz", "r1", "quality", "3"),
                         ("a", "r1", "colour", "3")])
    root = write_set(tmp_path / "s", labels=labels)
    code, _, err = run_main(["validate", str(root)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 3
    labels_file = str(root / "labels.csv")
    assert lines[0].startswith(f"Error: {labels_file}:2: field 'label': ")
    assert lines[1].startswith(f"{labels_file}:3: field 'item_id': ")
    assert lines[2].startswith(f"{labels_file}:4: field 'dimension': ")


def test_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["validate", str(tmp_path / "nowhere")], capsys)
    assert code == 2
    assert "no such file or directory" in err


def test_python_dash_m_exit_codes(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ok = subprocess.run([sys.executable, "-m", "judgecal", "validate", str(SETS / "llmbar")],
                        capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "llmbar: valid calibration set" in ok.stdout
    root = write_set(tmp_path / "s",
                     labels=labels_csv([("a", "r1", "quality", "3"), ("a", "r1", "quality", "4")]))
    bad = subprocess.run([sys.executable, "-m", "judgecal", "validate", str(root)],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert bad.returncode == 2
    assert f"{root / 'labels.csv'}:3: field 'rater_id': duplicate label" in bad.stderr
    assert bad.stdout == ""


@pytest.mark.parametrize("case", ["dot-dot", "absolute", "symlink", "labels dot-dot"])
def test_set_files_outside_the_set_folder_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    outside = write_set(tmp_path / "elsewhere")  # real, valid files outside the set
    root = write_set(tmp_path / "s")
    key, line = ("labels", 4) if case.startswith("labels") else ("items", 3)
    name = {
        "dot-dot": "../../../../../../../../etc/passwd",
        "absolute": str(outside / "items.jsonl"),
        "symlink": "link.jsonl",
        "labels dot-dot": "../elsewhere/labels.csv",
    }[case]
    if case == "symlink":
        (root / "link.jsonl").symlink_to(outside / "items.jsonl")
    text = (root / "set.yaml").read_text(encoding="utf-8")
    (root / "set.yaml").write_text(text.replace(f"{key}: {key}.", f"{key}: '{name}' #"),
                                   encoding="utf-8")
    code, out, err = run_main(["validate", str(root)], capsys)
    assert code == 2, err
    assert out == ""
    assert f"{root / 'set.yaml'}:{line}: field '{key}': " in err
    assert "leads outside the set's folder" in err
    assert "root:" not in err  # nothing of /etc/passwd is read


def test_set_files_in_a_subfolder_or_linked_inside_are_fine(tmp_path: Path) -> None:
    root = write_set(tmp_path / "s")
    (root / "data").mkdir()
    (root / "items.jsonl").rename(root / "data" / "items.jsonl")
    (root / "labels.csv").rename(root / "data" / "labels.csv")
    (root / "labels.csv").symlink_to(root / "data" / "labels.csv")
    text = (root / "set.yaml").read_text(encoding="utf-8")
    (root / "set.yaml").write_text(text.replace("items: items.jsonl",
                                                "items: ./data/../data/items.jsonl"),
                                   encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(root)])
    assert result.exit_code == 0, result.output


def test_a_huge_label_is_quoted_as_a_short_escaped_excerpt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = "9\x07" + "9" * 5_000_000
    root = write_set(tmp_path / "s", labels=labels_csv([("a", "r1", "quality", huge)]))
    code, _out, err = run_main(["validate", str(root)], capsys)
    assert code == 2
    assert len(err) < 400, err[:400]
    assert f"{root / 'labels.csv'}:2: field 'label': label '9\\x0799999" in err
    assert "…' (5,000,002 characters) is not a number" in err
