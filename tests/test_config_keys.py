"""Every config key documented: unknown keys suggest the valid ones, docs/config.md is
generated from the models, `judgecal config schema`, and the ordinal example judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from judgecal.calibration import load_set
from judgecal.config import load_config, load_judge
from judgecal.errors import CalibrationSetError, ConfigError
from tests.conftest import ROOT

JUDGE = """\
name: j
base_url: http://127.0.0.1:1/v1
model: m
decoding: {temprature: 0.2}
prompts:
  preference:
    template: "{{ instruction }}"
    parse: {type: regex, pattern: '([12])', grup: 1}
timout_s: 3
"""


def test_unknown_judge_key_suggests_the_closest_and_lists_the_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(JUDGE)
    with pytest.raises(ConfigError) as err:
        load_judge(path)
    by_field = {p.field: p for p in err.value.problems}
    temp = by_field["decoding.temprature"]
    assert temp.line == 4
    assert temp.message.startswith(
        "unknown key 'temprature' — did you mean 'temperature'? valid keys: temperature, top_p,"
    )
    assert "did you mean 'group'?" in by_field["prompts.preference.parse.grup"].message
    top = by_field["timout_s"].message
    assert "did you mean 'timeout_s'?" in top
    assert "api_key_required" in top and "swap_order" in top


def test_unknown_run_config_key_suggests_at_every_level(tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text(
        f"calibration_set: {ROOT / 'calibration_sets' / 'pandalm'}\n"
        "judge: {name: j, base_url: 'http://x/v1', model: m, prompts: {}, decodng: {}}\n"
        "drift: {sev2_point: 3}\n"
        "notify: {webhook: {url: 'http://x', evnts: []}}\n"
        "run: {min_item: 3}\n"
        "stor: x.db\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    messages = {p.field: p.message for p in err.value.problems}
    assert "did you mean 'decoding'?" in messages["judge.decodng"]
    assert "did you mean 'sev2_points'?" in messages["drift.sev2_point"]
    assert "did you mean 'events'?" in messages["notify.webhook.evnts"]
    assert "did you mean 'min_items'?" in messages["run.min_item"]
    assert "did you mean 'store'?" in messages["stor"]
    # `source` is set by the loader, not a YAML key.
    assert "source" not in messages["stor"].split("valid keys: ")[1].split(", ")


def test_unknown_key_without_a_close_match_still_lists_the_valid_keys(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(JUDGE.replace("{temprature: 0.2}", "{zzz: 1}"))
    with pytest.raises(ConfigError) as err:
        load_judge(path)
    message = next(p.message for p in err.value.problems if p.field == "decoding.zzz")
    assert "did you mean" not in message
    assert message.startswith("unknown key 'zzz' valid keys: temperature")


def test_set_yaml_unknown_setting_suggests(tmp_path: Path) -> None:
    (tmp_path / "set.yaml").write_text(
        "name: small\nitems: items.jsonl\nlabels: labels.csv\nsegmnts: [topic]\n"
        "dimensions:\n  - name: quality\n    scale: {kind: ordinal, min: 1, max: 5, tie: x}\n"
    )
    with pytest.raises(CalibrationSetError) as err:
        load_set(tmp_path)
    messages = {p.field: p.message for p in err.value.problems}
    assert messages["segmnts"].startswith("unknown setting 'segmnts' — did you mean 'segments'?")
    assert "valid settings: name, description," in messages["segmnts"]
    scale = messages["dimensions[0].scale.tie"]
    assert "did you mean 'ties'?" in scale and "categories" in scale
