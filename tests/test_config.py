"""Config files are strict: unknown keys and bad values name the file, line and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from judgecal.config import load_config, load_judge
from judgecal.errors import ConfigError
from tests.conftest import ROOT


def test_shipped_configs_load() -> None:
    demo = load_config(ROOT / "configs" / "demo.yaml")
    assert demo.judge.name == "pandalm-judge"
    assert demo.calibration_set.resolve() == (ROOT / "calibration_sets" / "pandalm").resolve()
    nightly = load_config(ROOT / "configs" / "nightly.yaml")
    assert nightly.judge.api_key_required


JUDGE = """\
name: j
base_url: http://127.0.0.1:1/v1
model: m
prompts:
  preference:
    template: "{{ instruction }}"
    parse: {type: regex, pattern: '([12])'}
"""


def test_unknown_key_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(JUDGE + "temprature: 0.2\n")
    with pytest.raises(ConfigError) as err:
        load_judge(path)
    problem = err.value.problems[0]
    assert problem.file == str(path)
    assert problem.field == "temprature"
    assert problem.line == 8
    assert "unknown key" in problem.message


def test_nested_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(JUDGE.replace("model: m", "model: m\ndecoding: {temperature: 7}"))
    with pytest.raises(ConfigError) as err:
        load_judge(path)
    assert err.value.problems[0].field == "decoding.temperature"


def test_regex_without_group_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(JUDGE.replace("'([12])'", "'[12]'"))
    with pytest.raises(ConfigError, match="capturing group"):
        load_judge(path)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text("name: j\nmodel: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_judge(path)
    assert err.value.problems[0].line is not None


def test_cli_bad_config_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "nightly.yaml"
    cfg.write_text(
        f"calibration_set: {ROOT / 'calibration_sets' / 'pandalm'}\n"
        "judge:\n" + "".join(f"  {line}\n" for line in JUDGE.splitlines()) + "  colour: blue\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "judgecal", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert str(cfg) in proc.stderr
    assert "judge.colour" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / ".judgecal").exists(), "nothing is written for a bad config"
