"""Prompt rendering and reply parsing."""

from __future__ import annotations

import pytest

from judgecal.config import JudgeConfig, ParseRule
from judgecal.errors import ConfigError
from judgecal.judge import SWAPPED, PromptRenderer, configured_fingerprint, parse_reply
from judgecal.scales import Scale

PAIRWISE = Scale(kind="pairwise", ties=True)
ORDINAL = Scale(kind="ordinal", min=1, max=5)


def _judge(**over: object) -> JudgeConfig:
    data: dict[str, object] = {
        "name": "j",
        "base_url": "http://127.0.0.1:1/v1",
        "model": "m",
        "prompts": {
            "preference": {
                "template": "A: {{ response1 }} B: {{ response2 }}",
                "parse": {"pattern": r"^\s*([012])\b"},
                "swap_fields": [["response1", "response2"]],
            }
        },
    }
    data.update(over)
    return JudgeConfig.model_validate(data)


def test_item_text_is_data_not_template() -> None:
    r = PromptRenderer(_judge())
    msgs = r.messages("preference", {"response1": "{{ 7*7 }}", "response2": "{% raw %}x"})
    assert msgs[-1]["content"] == "A: {{ 7*7 }} B: {% raw %}x"


def test_missing_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="response2"):
        PromptRenderer(_judge()).messages("preference", {"response1": "a"})


def test_swapped_prompt_and_verdict_mapping() -> None:
    r = PromptRenderer(_judge())
    msgs = r.messages("preference", {"response1": "x", "response2": "y"}, SWAPPED)
    assert msgs[-1]["content"] == "A: y B: x"
    rule = ParseRule(pattern=r"^\s*([012])\b")
    assert parse_reply("1\n\nReason: first", rule, PAIRWISE, SWAPPED).score == 2.0
    assert parse_reply("0", rule, PAIRWISE, SWAPPED).score == 0.0


@pytest.mark.parametrize(
    ("text", "score", "reason"),
    [
        ("2\n\nReason: shorter", 2.0, None),
        ("Response 1 is better", None, "no_verdict_found"),
        ("", None, "empty_reply"),
        (None, None, "empty_reply"),
    ],
)
def test_regex_parse(text: str | None, score: float | None, reason: str | None) -> None:
    parsed = parse_reply(text, ParseRule(pattern=r"^\s*([012])\b"), PAIRWISE)
    assert parsed.score == score
    assert parsed.reason == reason


def test_json_parse_and_off_scale() -> None:
    rule = ParseRule(type="json", field="verdict.score")
    assert parse_reply('Sure! {"verdict": {"score": 4}}', rule, ORDINAL).score == 4.0
    off = parse_reply('{"verdict": {"score": 9}}', rule, ORDINAL)
    assert off.score is None and off.reason is not None and off.reason.startswith("off_scale")
    assert parse_reply("{not json", rule, ORDINAL).reason == "invalid_json"


def test_map_and_last_match() -> None:
    rule = ParseRule(pattern=r"Output \((a|b)\)", match="last", map={"a": 1, "b": 2})
    assert parse_reply("Output (a) vs Output (b)... Output (b)", rule, PAIRWISE).score == 2.0
    assert (
        parse_reply(
            "Output (c)", ParseRule(pattern=r"Output \((\w)\)", map={"a": 1}), PAIRWISE
        ).reason
        == "verdict_not_in_map"
    )


def test_fingerprint_changes_with_each_part() -> None:
    base = configured_fingerprint(_judge())
    assert configured_fingerprint(_judge()) == base
    assert configured_fingerprint(_judge(model="m2"))["parts"]["model"] == "m2"
    changed_prompt = _judge()
    changed_prompt.prompts["preference"].template += " "
    fp = configured_fingerprint(changed_prompt)
    assert fp["parts"]["prompt"] != base["parts"]["prompt"]
    assert fp["hash"] != base["hash"]
    fp2 = configured_fingerprint(_judge(decoding={"temperature": 0.5}))
    assert fp2["parts"]["decoding"] != base["parts"]["decoding"]
    # Moving the same judge to another gateway is not a judge change.
    assert configured_fingerprint(_judge(base_url="http://other:1/v1"))["hash"] == base["hash"]
