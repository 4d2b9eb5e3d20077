"""Deep fingerprint: both halves, the field-by-field diff, the production tag."""

from __future__ import annotations

from typing import Any

import pytest

from judgecal import drift
from judgecal.config import load_judge
from judgecal.judge import configured_fingerprint
from judgecal.judge.fingerprint import (
    deep_fingerprint,
    describe_change,
    diff_runs,
    dominant_model,
    parse_production_tag,
    production_tag,
)
from tests.conftest import ROOT

JUDGES = ROOT / "configs" / "judges"


def _run(judge_file: str = "llmbar-gpt4-vanilla.yaml", served: dict[str, int] | None = None,
         system: dict[str, int] | None = None, set_version: str = "sha256:aaa",
         **judge_changes: Any) -> dict[str, Any]:
    judge = load_judge(JUDGES / judge_file)
    if judge_changes:
        judge = judge.model_copy(update=judge_changes)
    served = {"gpt-4": 419} if served is None else served
    total = sum(served.values())
    return {
        "run_id": "r1",
        "judge_name": judge.name,
        "set_version": set_version,
        "fingerprint": configured_fingerprint(judge),
        "judge_config": judge.model_dump(mode="json"),
        "summary": {"observed_fingerprint": {
            "served_models": {k: {"count": v, "share": v / total} for k, v in served.items()},
            "system_fingerprints": system or {},
        }},
    }


def test_configured_half_hashes_each_part_and_cot_prompt_differs() -> None:
    vanilla = configured_fingerprint(load_judge(JUDGES / "llmbar-gpt4-vanilla.yaml"))
    cot = configured_fingerprint(load_judge(JUDGES / "llmbar-gpt4-cot.yaml"))
    assert set(vanilla["parts"]) == {"model", "prompt", "rubric", "decoding", "parser",
                                     "judgecal_version"}
    assert vanilla["parts"]["prompt"] != cot["parts"]["prompt"]
    assert {k for k in vanilla["parts"] if vanilla["parts"][k] != cot["parts"][k]} == {"prompt"}
    gpt35 = configured_fingerprint(load_judge(JUDGES / "pandalm-gpt35.yaml"))
    p7b = configured_fingerprint(load_judge(JUDGES / "pandalm-7b.yaml"))
    assert {k for k in gpt35["parts"] if gpt35["parts"][k] != p7b["parts"][k]} == {"model"}


def test_observed_half_says_when_the_endpoint_only_echoes() -> None:
    echo = deep_fingerprint(_run())
    assert echo["observed"]["informative"] is False
    assert "echoed the requested name 'gpt-4'" in echo["observed"]["note"]
    real = deep_fingerprint(_run(served={"gpt-4-0613": 400, "gpt-4-0314": 19}))
    assert real["observed"]["informative"] is True and real["observed"]["note"] is None
    assert real["observed"]["dominant_served_model"] == "gpt-4-0613"
    none = deep_fingerprint(_run(served={}))
    assert none["observed"]["dominant_served_model"] is None
    assert "no served model" in none["observed"]["note"]


def test_production_tag_is_short_stable_and_parseable() -> None:
    run = _run(served={"gpt-3.5-turbo-0613": 10, "gpt-3.5-turbo-0125": 3})
    tag = production_tag(run)
    digest = run["fingerprint"]["hash"].split(":", 1)[1][:12]
    assert tag == f"cfg:{digest}/served:gpt-3.5-turbo-0613"
    assert production_tag(deep_fingerprint(run)) == tag
    assert production_tag(run["fingerprint"]) == f"cfg:{digest}/served:unknown"
    assert parse_production_tag(tag) == (digest, "gpt-3.5-turbo-0613")
    with pytest.raises(ValueError):
        parse_production_tag("gpt-4")
    # Ties between served models are broken by name, so the tag never flickers.
    assert dominant_model({"served_models": {"b": {"count": 2}, "a": {"count": 2}}}) == "a"
    # Same configuration and dominant model -> same tag, whatever the counts.
    assert production_tag(_run(served={"gpt-3.5-turbo-0613": 999})) == tag


def test_diff_is_field_by_field() -> None:
    before = _run()
    after = _run(served={"gpt-3.5-turbo-0613": 419}, system={"fp_44709d6fcb": 419})
    diff = diff_runs(before, after)
    names = [f.field for f in diff.fields]
    assert names == ["context.judge", "context.set_version", "configured.model",
                     "configured.prompt", "configured.rubric", "configured.decoding",
                     "configured.parser", "configured.judgecal_version",
                     "observed.served_models", "observed.system_fingerprints"]
    # A system fingerprint appearing where there was none is not evidence by itself.
    assert [f.field for f in diff.changed_fields] == ["observed.served_models"]
    assert diff.observed_changed and not diff.configured_changed
    assert describe_change(diff.changed_fields[0]) == (
        "served model ids: gpt-4 (100%) → gpt-3.5-turbo-0613 (100%)")
    assert diff.to_json()["changed"] == ["observed.served_models"]


def test_diff_details_prompt_and_decoding() -> None:
    cot = _run("llmbar-gpt4-cot.yaml")
    diff = diff_runs(_run(), cot)
    prompt = diff.get("configured.prompt")
    assert prompt is not None and prompt.changed
    assert prompt.detail["lines_added"] >= 1 and prompt.detail["lines_removed"] >= 1
    assert any(line.startswith("+") and "explanation" in line for line in prompt.detail["diff"])
    judge = load_judge(JUDGES / "llmbar-gpt4-vanilla.yaml")
    hot = _run(decoding=judge.decoding.model_copy(update={"temperature": 0.7}))
    d = diff_runs(_run(), hot).get("configured.decoding")
    assert d is not None and d.changed and d.detail == {"temperature": [0.0, 0.7]}
    assert describe_change(d) == "decoding parameters: temperature 0.0 → 0.7"


def test_a_stray_reply_from_another_model_is_not_a_change() -> None:
    before = _run(served={"gpt-4-0613": 1000})
    after = _run(served={"gpt-4-0613": 999, "gpt-4-0314": 1})
    assert not diff_runs(before, after).changed("observed.served_models")
    assert diff_runs(before, _run(served={"gpt-4-0613": 900, "gpt-4-0314": 100})).changed(
        "observed.served_models")


@pytest.mark.parametrize(
    ("after", "moved", "code"),
    [
        ({"model": "gpt-4o"}, True, drift.PLANNED_MODEL_MIGRATION),
        ({"served": {"gpt-4-0125": 419}}, True, drift.SILENT_PROVIDER_UPDATE),
        ({"system": {"fp_b": 419}}, True, drift.SILENT_PROVIDER_UPDATE),
        ({"judge_file": "llmbar-gpt4-cot.yaml"}, False, drift.RUBRIC_PROMPT_CHANGE),
        ({"rubric": "Be strict."}, True, drift.RUBRIC_PROMPT_CHANGE),
        ({}, True, drift.UNEXPLAINED_PROVIDER_CHANGE),
        ({}, False, drift.JUDGE_STABLE),
        ({"set_version": "sha256:bbb"}, False, drift.CALIBRATION_SET_CHANGE),
        # A model migration explains a changed served model: it is not a silent update.
        ({"model": "gpt-4o", "served": {"gpt-4o-2024-08-06": 419}}, True,
         drift.PLANNED_MODEL_MIGRATION),
    ],
)
def test_root_cause_from_the_diff(after: dict[str, Any], moved: bool, code: str) -> None:
    before = _run(served={"gpt-4-0613": 419}, system={"fp_a": 419})
    kwargs: dict[str, Any] = {"served": {"gpt-4-0613": 419}, "system": {"fp_a": 419}}
    kwargs.update(after)
    rc = drift.root_cause(diff_runs(before, _run(**kwargs)), moved=moved)
    assert rc["code"] == code
    assert rc["title"] == drift.CAUSE_TITLES[code]
    if code == drift.JUDGE_STABLE:
        assert rc["cause_family"] == "not judge drift"
        assert "input" in rc["summary"] and "judge is not the cause" in rc["summary"]
    else:
        assert rc["cause_family"] == "judge drift"
