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


def test_docs_config_md_is_generated_from_the_models() -> None:
    """Like `cog --check`: regenerate with `python -m judgecal.config_docs > docs/config.md`."""
    from judgecal.config_docs import config_reference

    assert (ROOT / "docs" / "config.md").read_text(encoding="utf-8") == config_reference(), (
        "docs/config.md is out of date: python -m judgecal.config_docs > docs/config.md"
    )


def test_every_key_is_documented_with_type_and_default() -> None:
    from judgecal.config_docs import config_keys

    docs = config_keys()
    keys = {d.key for d in docs}
    for key in ("judge.timeout_s", "judge.concurrency", "judge.decoding.max_tokens",
                "run.min_items", "run.max_unscored_rate", "judge.api_key_required",
                "judge.backoff_base_s", "judge.backoff_max_s",
                "judge.prompts.DIMENSION.swap_fields", "notify.webhook.url",
                "drift.sev2_points", "judge.prompts.DIMENSION.parse.pattern"):
        assert key in keys
    assert "source" not in keys
    undocumented = [d.key for d in docs if not d.description]
    assert undocumented == []
    by_key = {d.key: d for d in docs}
    assert by_key["judge.timeout_s"].default == "`300.0`"
    assert by_key["judge.model"].default == "required"
    assert by_key["run.min_items"].type == "int (≥ 1)"
    judge_keys = {d.key for d in config_keys(judge_only=True)}
    assert "decoding.temperature" in judge_keys and "run.min_items" not in judge_keys


def test_cli_config_schema_prints_json_schema_with_descriptions() -> None:
    import json

    from click.testing import CliRunner

    from judgecal.cli.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["config", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) >= {"store", "calibration_set", "judge", "run", "drift"}
    assert "source" not in schema["properties"]
    assert {"type": "string", "description": "Path of a judge file."} in (
        schema["properties"]["judge"]["anyOf"])
    decoding = schema["$defs"]["Decoding"]["properties"]["temperature"]
    assert decoding["description"].startswith("Sampling temperature")
    judge = json.loads(runner.invoke(cli, ["config", "schema", "--judge"]).output)
    assert judge["title"] == "JudgeConfig" and "timeout_s" in judge["properties"]
    assert judge["additionalProperties"] is False

    keys = runner.invoke(cli, ["config", "keys", "--judge"])
    assert keys.exit_code == 0
    assert "timeout_s  float (> 0)  default `300.0`" in keys.output
    assert "decoding.max_tokens_param" in keys.output


def test_ordinal_example_judge_fits_its_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/judges/newsroom-ordinal.yaml: a 1–5 rating judge beside the pairwise ones."""
    from judgecal.judge.prompt import PromptRenderer, parse_reply
    from judgecal.runs import check_compatible

    judge = load_judge(ROOT / "configs" / "judges" / "newsroom-ordinal.yaml")
    cs = load_set(ROOT / "calibration_sets" / "newsroom")
    check_compatible(judge, cs, "newsroom-ordinal.yaml")
    assert set(judge.prompts) == set(cs.dimensions)
    assert {d.scale.kind for d in cs.dimensions.values()} == {"ordinal"}
    renderer = PromptRenderer(judge)
    item = cs.items[0]
    for dim, spec in judge.prompts.items():
        user = renderer.messages(dim, item.fields)[-1]["content"]
        assert cs.dimensions[dim].description.split("?")[0] in user  # the raters' question
        assert item.fields["summary"] in user
        scale = cs.dimensions[dim].scale
        assert parse_reply("Concise and faithful.\n**Score: 4**", spec.parse, scale).score == 4
        assert parse_reply("Score: 6", spec.parse, scale).score is None
    # No recorded verdicts ship for this set: it is a real provider, key required up front.
    assert judge.api_key_required and judge.base_url.startswith("https://")
    monkeypatch.delenv(judge.api_key_env or "", raising=False)
    with pytest.raises(ConfigError, match="needs an API key"):
        judge.api_key()
