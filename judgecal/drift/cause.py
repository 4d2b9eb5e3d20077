"""The root cause of a drift, in plain words, from the fingerprint diff.

Precedence: calibration-set change (not comparable), planned model migration (requested model
changed), rubric/prompt change (prompt text, rubric or parse rule), decoding change, silent
provider update (requested model unchanged, served model ids or system fingerprint changed),
unexplained provider-side change (nothing visible changed).
"""

from __future__ import annotations

from typing import Any

from judgecal.drift.verdicts import (
    CALIBRATION_SET_CHANGE,
    CAUSE_FAMILY,
    CAUSE_TITLES,
    DECODING_CHANGE,
    JUDGE_STABLE,
    PLANNED_MODEL_MIGRATION,
    RUBRIC_PROMPT_CHANGE,
    SILENT_PROVIDER_UPDATE,
    UNEXPLAINED_PROVIDER_CHANGE,
)
from judgecal.judge.fingerprint import FieldChange, FingerprintDiff, describe_change

__all__ = [
    "describe_field",
    "edited_lines",
    "judge_changed",
    "root_cause",
]

_TEXT_FIELDS = ("configured.prompt", "configured.rubric")


def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def edited_lines(detail: Any) -> str:
    """A text diff's size in words: ``1 line changed``, ``2 lines changed, 1 line added``.

    A line replaced shows in the diff as one line removed and one added: it is counted as
    changed. A diff with no line (the stored texts are equal line by line: the edit is in
    whitespace at a line's end or the final newline, in the swapped fields, or in a text
    that is not stored, such as an imported run's prompt file) says so instead of "0 lines".
    """
    added = int((detail or {}).get("lines_added") or 0)
    removed = int((detail or {}).get("lines_removed") or 0)
    changed = min(added, removed)
    parts = []
    if changed:
        parts.append(_n(changed, "line") + " changed")
    if added > changed:
        parts.append(_n(added - changed, "line") + " added")
    if removed > changed:
        parts.append(_n(removed - changed, "line") + " removed")
    return ", ".join(parts) or "no line differs in the stored text"


def describe_field(change: FieldChange) -> str:
    """One changed fingerprint field in plain words (:func:`describe_change`, with a prompt
    or rubric edit counted by :func:`edited_lines`)."""
    if change.field in _TEXT_FIELDS and isinstance(change.detail, dict):
        return f"{change.label} edited: {edited_lines(change.detail)}"
    return describe_change(change)


def root_cause(diff: FingerprintDiff | None, *, moved: bool) -> dict[str, Any]:
    """The root cause in plain words, from the fingerprint diff and whether agreement moved.

    Returns ``{"code", "title", "summary", "cause_family", "factors": [{"code", "words"}]}``.
    """
    factors: list[dict[str, str]] = []

    def add(code: str, words: str) -> None:
        factors.append({"code": code, "words": words})

    if diff is not None:
        set_v = diff.get("context.set_version")
        if set_v is not None and set_v.changed:
            add(CALIBRATION_SET_CHANGE,
                f"the calibration set changed (version {str(set_v.before)[:19]} → "
                f"{str(set_v.after)[:19]}): the two runs answered different questions and "
                "cannot be compared")
        model = diff.get("configured.model")
        if model is not None and model.changed:
            add(PLANNED_MODEL_MIGRATION,
                f"the judge's configuration now requests the model '{model.after}' instead of "
                f"'{model.before}'")
        for name in ("configured.prompt", "configured.rubric", "configured.parser"):
            change = diff.get(name)
            if change is not None and change.changed:
                what = {"configured.prompt": "the judge's prompt text was edited",
                        "configured.rubric": "the judge's rubric was edited",
                        "configured.parser": "the rule that reads the judge's verdict changed"}
                extra = ""
                if isinstance(change.detail, dict) and "lines_added" in change.detail:
                    extra = f" ({edited_lines(change.detail)})"
                add(RUBRIC_PROMPT_CHANGE, what[name] + extra)
        decoding = diff.get("configured.decoding")
        if decoding is not None and decoding.changed:
            add(DECODING_CHANGE, "the judge's decoding settings changed: "
                + describe_change(decoding).split(": ", 1)[-1])
        served = diff.get("observed.served_models")
        sysfp = diff.get("observed.system_fingerprints")
        observed_bits = [c for c in (served, sysfp) if c is not None and c.changed]
        if observed_bits and not (model is not None and model.changed):
            requested = model.after if model is not None else "?"
            words = [describe_change(c) for c in observed_bits]
            add(SILENT_PROVIDER_UPDATE,
                f"the judge still requests '{requested}', but the provider now reports "
                + "; ".join(words))
        version = diff.get("configured.judgecal_version")
        if version is not None and version.changed and not factors:
            add("tool_upgrade", f"judgecal was upgraded ({version.before} → {version.after}); "
                "the requests sent to the judge are otherwise unchanged")
    codes = [f["code"] for f in factors if f["code"] != "tool_upgrade"]
    if codes:
        code = codes[0]
    elif moved:
        code = UNEXPLAINED_PROVIDER_CHANGE
    else:
        code = JUDGE_STABLE
    if code == CALIBRATION_SET_CHANGE:
        summary = (factors[0]["words"][0].upper() + factors[0]["words"][1:]
                   + ". Accept a baseline on the new version.")
        family = CAUSE_FAMILY
    elif moved:
        lead = {
            PLANNED_MODEL_MIGRATION: "The judge was moved to another model on purpose",
            RUBRIC_PROMPT_CHANGE: "The judge's instructions were changed",
            DECODING_CHANGE: "The judge's sampling settings were changed",
            SILENT_PROVIDER_UPDATE: "The provider changed the model behind the judge without "
                                    "any change on our side",
            UNEXPLAINED_PROVIDER_CHANGE: "The judge's verdicts changed although nothing "
                                         "visible changed: same configuration, same reported "
                                         "model",
        }[code]
        detail = "; ".join(f["words"] for f in factors)
        summary = f"{lead}" + (f": {detail}." if detail else ".")
        summary += " This is judge drift: the grader itself changed, so scores given before and "
        summary += "after the change are not comparable."
        family = CAUSE_FAMILY
    elif code == JUDGE_STABLE:
        summary = ("The judge is stable: its agreement with the humans did not move beyond "
                   "what chance explains, and its fingerprint is unchanged. If production "
                   "scores moved, the judge is not the cause: look at a model migration or a "
                   "prompt change of the system being judged, or a shift in its inputs.")
        family = "not judge drift"
    else:
        detail = "; ".join(f["words"] for f in factors)
        summary = (f"The judge changed ({detail}), but its agreement with the humans did not "
                   "move beyond what chance explains on this set. Review it and accept this "
                   "run as the new baseline; scores before and after may still differ.")
        family = CAUSE_FAMILY
    return {
        "code": code,
        "title": CAUSE_TITLES.get(code, code),
        "summary": summary,
        "cause_family": family,
        "factors": factors,
    }



def judge_changed(diff: FingerprintDiff) -> bool:
    """Whether the judge itself differs from the baseline's: its configuration (model, prompt,
    rubric, decoding, parse rule) or what the provider says served it. A new judgecal
    version alone is not a judge change."""
    return diff.observed_changed or any(
        f.changed for f in diff.fields
        if f.half == "configured" and f.field != "configured.judgecal_version"
    )
