"""The root cause names a prompt or rubric edit by its size in words, never "0 line(s) added,
0 removed" (judgecal.drift.cause)."""

from __future__ import annotations

from typing import Any

from judgecal import drift
from judgecal.config import load_judge
from judgecal.drift.cause import edited_lines
from judgecal.judge.fingerprint import diff_runs
from judgecal.judge.prompt import configured_fingerprint
from judgecal.runs.imported import imported_fingerprint
from tests.conftest import ROOT

JUDGE = ROOT / "configs" / "judges" / "llmbar-gpt4-vanilla.yaml"
SERVED = {"observed_fingerprint": {"served_models": {"gpt-4": {"count": 9, "share": 1.0}},
                                   "system_fingerprints": {}}}


def _live(edit: bool) -> dict[str, Any]:
    judge = load_judge(JUDGE)
    if edit:
        dim, spec = next(iter(judge.prompts.items()))
        lines = spec.template.splitlines()
        lines[1] += " Be strict."
        judge = judge.model_copy(update={"prompts": {
            **judge.prompts, dim: spec.model_copy(update={"template": "\n".join(lines)})}})
    return {"run_id": "r", "judge_name": judge.name, "set_version": "v",
            "fingerprint": configured_fingerprint(judge),
            "judge_config": judge.model_dump(mode="json"), "summary": SERVED}


def _imported(prompt: str) -> dict[str, Any]:
    return {"run_id": "r", "judge_name": "j", "set_version": "v",
            "fingerprint": imported_fingerprint("j", "gpt-4", prompt),
            "judge_config": {"name": "j", "model": "gpt-4", "prompt_text": prompt},
            "summary": SERVED}


def _words(diff: Any) -> str:
    rc = drift.root_cause(diff, moved=True)
    assert rc["code"] == "rubric_prompt_change"
    return str(rc["summary"])


def test_a_one_line_edit_is_one_line_changed() -> None:
    diff = diff_runs(_live(False), _live(True))
    assert "prompt text was edited (1 line changed)" in _words(diff)
    (prompt,) = [f for f in diff.changed_fields if f.field == "configured.prompt"]
    assert drift.describe_field(prompt) == "prompt text edited: 1 line changed"


def test_an_edit_the_stored_text_does_not_show_is_not_zero_lines() -> None:
    """An imported run keeps its prompt file's text where the line diff does not look, and a
    trailing newline is no line of its own: the fingerprint changed, the diff is empty."""
    diff = diff_runs(_imported("Which answer is better?\nAnswer 1 or 2."),
                     _imported("Which answer is better?\nAnswer 1 or 2, nothing else."))
    words = _words(diff)
    assert "0 line" not in words
    (prompt,) = [f for f in diff.changed_fields if f.field == "configured.prompt"]
    assert "0 line" not in drift.describe_field(prompt)
    judge = load_judge(JUDGE)
    dim, spec = next(iter(judge.prompts.items()))
    newline = judge.model_copy(update={"prompts": {
        **judge.prompts, dim: spec.model_copy(update={"template": spec.template + "\n"})}})
    after = {**_live(False), "fingerprint": configured_fingerprint(newline),
             "judge_config": newline.model_dump(mode="json")}
    assert "no line differs in the stored text" in _words(diff_runs(_live(False), after))


def test_edited_lines_in_words() -> None:
    assert edited_lines({"lines_added": 1, "lines_removed": 1}) == "1 line changed"
    assert edited_lines({"lines_added": 3, "lines_removed": 1}) == (
        "1 line changed, 2 lines added")
    assert edited_lines({"lines_added": 0, "lines_removed": 2}) == "2 lines removed"
    assert edited_lines({"lines_added": 0, "lines_removed": 0}) == (
        "no line differs in the stored text")
