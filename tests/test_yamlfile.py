"""The one YAML loader (judgecal.io.yamlfile): bounded, strict, and naming file and line.

Every YAML file judgecal reads goes through it: run and judge configs, a set's set.yaml,
a score_source block. Hostile files are refused with exit 2 and one short message.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from judgecal.calibration import load_set
from judgecal.config import load_config, load_judge
from judgecal.errors import CalibrationSetError, ConfigError
from judgecal.io import MAX_DEPTH, excerpt, field_text, load_yaml
from judgecal.scores.source import load_source_config
from tests.conftest import ROOT
from tests.helpers import run_main

JUDGE = (ROOT / "configs" / "judges" / "pandalm-gpt35.yaml").read_text(encoding="utf-8")

SET_YAML = """\
name: tiny
items: items.jsonl
labels: labels.csv
dimensions:
  - name: quality
    scale: {kind: ordinal, min: 1, max: 5}
"""


def tiny_set(root: Path, set_yaml: str = SET_YAML) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "set.yaml").write_text(set_yaml, encoding="utf-8")
    (root / "items.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n', encoding="utf-8")
    (root / "labels.csv").write_text("item_id,rater_id,dimension,label\na,r1,quality,3\n"
                                     "b,r1,quality,4\n", encoding="utf-8")
    return root


def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs": 9 levels of 9 aliases each expand to 9**9 strings."""
    return 'l0: &l0 ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"l{k}: &l{k} [{','.join([f'*l{k - 1}'] * 9)}]\n" for k in range(1, levels))


def test_an_alias_bomb_in_set_yaml_is_refused_in_well_under_a_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tiny_set(tmp_path / "s", SET_YAML.replace("dimensions:", alias_bomb() + "dimensions:"))
    started = time.perf_counter()
    code, out, err = run_main(["validate", str(root)], capsys)
    elapsed = time.perf_counter() - started
    assert code == 2, err
    assert elapsed < 1.0, elapsed
    assert out == ""
    # refused at the first level whose expansion passes the bound (l5), naming its line
    assert f"{root / 'set.yaml'}:9: " in err and "alias" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("opener, closer", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_a_clean_error_never_a_recursion_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opener: str, closer: str
) -> None:
    deep = opener * 5_000 + "1" + closer * 5_000 + "\n"
    root = tiny_set(tmp_path / "s", SET_YAML + "extra: " + deep)
    started = time.perf_counter()
    code, _out, err = run_main(["validate", str(root)], capsys)
    assert code == 2, err
    assert time.perf_counter() - started < 1.0
    assert f"{root / 'set.yaml'}:7: nested deeper than {MAX_DEPTH} levels" in err
    assert "RecursionError" not in err
    config = tmp_path / "run.yaml"
    config.write_text(f"calibration_set: {root}\njudge: {deep}", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"run\.yaml:2: nested deeper than {MAX_DEPTH}"):
        load_config(config)


def test_nesting_up_to_the_bound_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    depth = MAX_DEPTH - 2  # the top-level mapping and the scalar are levels too
    path.write_text("a: " + "[" * depth + "1" + "]" * depth + "\n", encoding="utf-8")
    value = load_yaml(path).data["a"]
    for _ in range(depth - 1):
        value = value[0]
    assert value == [1]


def test_a_few_aliases_are_fine_and_a_recursive_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text("rubric2: &d {temperature: 0}\n" + JUDGE.replace(
        "decoding:\n  temperature: 0\n", "decoding:\n  <<: *d\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match="rubric2"):  # loaded fine; then an unknown key
        load_judge(path)
    path.write_text("a: &a [1, *a]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"judge\.yaml:1: the alias 'a' is used inside"):
        load_yaml(path)


def test_duplicate_keys_in_a_config_are_refused_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(JUDGE.replace("model: gpt-3.5-turbo\n",
                                  "model: gpt-3.5-turbo\nmodel: gpt-4o\n")
                    .replace("  temperature: 0\n", "  temperature: 0\n  temperature: 1\n"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_judge(path)
    assert [(p.line, p.field) for p in exc.value.problems] == [
        (7, "model"), (10, "decoding.temperature")]
    assert "given twice" in exc.value.problems[0].message


def test_duplicate_keys_in_a_score_source_block(tmp_path: Path) -> None:
    path = tmp_path / "source.yaml"
    path.write_text("score_source:\n  url: sqlite:///x.db\n  table: t\n  table: u\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"source\.yaml:4: field 'score_source\.table'"):
        load_source_config(path)


def test_non_utf8_and_unreadable_files_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_bytes(JUDGE.encode("utf-8").replace(b"model: gpt", b"model: \xe9gpt"))
    with pytest.raises(ConfigError, match=r"judge\.yaml:6: not valid UTF-8"):
        load_judge(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_judge(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_judge(tmp_path)
    root = tiny_set(tmp_path / "s")
    (root / "set.yaml").write_bytes(b"name: tiny\nitems: \xff\n")
    with pytest.raises(CalibrationSetError, match=r"set\.yaml:2: not valid UTF-8"):
        load_set(root)


def test_bad_values_and_characters_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: 2026-13-40\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml:2: invalid YAML value: month must be"):
        load_yaml(path)
    path.write_text("a: 1\nb: x\x01y\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml:2: invalid YAML: character U\+0001"):
        load_yaml(path)
    path.write_text("a: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml:1: invalid YAML: could not determine"):
        load_yaml(path)


def test_messages_quote_only_a_short_escaped_excerpt(tmp_path: Path) -> None:
    huge = "k" * 5_000_000
    path = tmp_path / "judge.yaml"
    path.write_text(JUDGE + f'? "{huge}\\x01"\n: 1\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_judge(path)
    quoted = str(exc.value).split(" valid keys: ")[0]  # then the judge's keys, listed
    assert len(quoted) < 250
    assert "unknown key" in str(exc.value)
    path.write_text(f"a: *{huge}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="undefined alias") as exc:
        load_yaml(path)
    assert len(str(exc.value)) < 250
    path.write_text(f"a: !{huge} 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="tag") as exc:
        load_yaml(path)
    assert len(str(exc.value)) < 250
    assert excerpt("a\x00'b") == "'a\\x00\\'b'"
    assert excerpt("x" * 100, limit=5) == "'xxxxx…' (100 characters)"
    assert field_text("ok") == "ok" and field_text("a\tb") == "a\\tb"


def test_lines_come_from_the_node_tree_not_a_text_search(tmp_path: Path) -> None:
    """The old regex took the first line that looked like the key, anywhere in the file."""
    path = tmp_path / "judge.yaml"
    text = JUDGE.replace("rubric: >-\n", "rubric: |-\n  temperature: is not a setting here\n")
    text = text.replace("  temperature: 0\n", "  temperature: 7\n")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_judge(path)
    problem = exc.value.problems[0]
    assert problem.field == "decoding.temperature"
    assert problem.line == text.splitlines().index("  temperature: 7") + 1


def test_the_shipped_yaml_files_load() -> None:
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        assert load_yaml(path).data
    for path in sorted((ROOT / "calibration_sets").glob("*/set.yaml")):
        assert load_yaml(path).data["name"]
