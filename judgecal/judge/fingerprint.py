"""The deep judge fingerprint: what was configured, what the provider says it served, and
a field-by-field diff between two runs.

Two halves
----------
*Configured* (:func:`judgecal.judge.configured_fingerprint`, stored with every run): one
hash per component — requested model, prompt text, rubric, decoding parameters, parse
rule, judgecal version — and one over all of them.

*Observed* (taken from every reply, summarised in the run's ``observed_fingerprint``): the
model ids the provider reported serving, with their shares, and the ``system_fingerprint``
values. Not every endpoint makes this half informative: many OpenAI-compatible servers
(llama.cpp, vLLM, gateways) simply echo the requested model name, and many omit
``system_fingerprint``. :func:`served_half` decides, :func:`deep_fingerprint` says so
(``observed.informative`` and ``observed.note``) instead of trusting an echo, and a run
stores the same two fields in its summary's ``observed_fingerprint`` (shown by
``judgecal run`` and ``judgecal runs show``): a silent provider update behind an echoing
endpoint is invisible here and shows up only as an *unexplained* change of agreement.

Production tag
--------------
:func:`production_tag` is the short string a production system stores next to every score
it produced, so that the scores of a drifted judge can be found later::

    cfg:6bd1dddc07f2/served:gpt-3.5-turbo-0613

``cfg:`` is followed by the first 12 hex digits of the configured hash (SHA-256 over the
configured parts), ``served:`` by the *dominant* served model id (most replies; ties broken
by name) or ``unknown`` when the endpoint reported none. Two runs get the same tag exactly
when their configuration is identical and the provider reported the same dominant model.
:func:`parse_production_tag` splits a tag back into its two parts.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "CONFIGURED_PARTS",
    "MIN_SHARE",
    "TAG_HASH_DIGITS",
    "FieldChange",
    "FingerprintDiff",
    "deep_fingerprint",
    "describe_change",
    "diff_runs",
    "dominant_model",
    "parse_production_tag",
    "production_tag",
    "served_half",
]

CONFIGURED_PARTS: tuple[tuple[str, str], ...] = (
    ("model", "requested model"),
    ("prompt", "prompt text"),
    ("rubric", "rubric"),
    ("decoding", "decoding parameters"),
    ("parser", "parse rule"),
    ("judgecal_version", "judgecal version"),
)
"""Configured parts in diff order, with their names in plain words."""

MIN_SHARE = 0.01
"""A served model id counts as present when it served at least this share of the replies
(one stray reply from a load balancer is not a model change)."""

TAG_HASH_DIGITS = 12


@dataclass(frozen=True)
class FieldChange:
    """One field of the fingerprint compared between a baseline (before) and a run (after)."""

    field: str
    """Dotted name, e.g. ``configured.prompt`` or ``observed.served_models``."""
    half: str
    """``configured``, ``observed`` or ``context`` (judge name, calibration-set version)."""
    label: str
    """The field in plain words."""
    before: Any
    after: Any
    changed: bool
    detail: Any = None
    """Extra evidence: changed decoding keys, a short prompt diff, model shares."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FingerprintDiff:
    """Every fingerprint field of two runs, changed or not, plus what it means."""

    fields: list[FieldChange]
    notes: list[str] = field(default_factory=list)
    """Caveats, e.g. that the endpoint echoes the requested model name."""
    before_tag: str = ""
    after_tag: str = ""

    def get(self, name: str) -> FieldChange | None:
        return next((f for f in self.fields if f.field == name), None)

    def changed(self, name: str) -> bool:
        f = self.get(name)
        return bool(f and f.changed)

    @property
    def changed_fields(self) -> list[FieldChange]:
        return [f for f in self.fields if f.changed]

    @property
    def configured_changed(self) -> bool:
        return any(f.changed for f in self.fields if f.half == "configured")

    @property
    def observed_changed(self) -> bool:
        return any(f.changed for f in self.fields if f.half == "observed")

    @property
    def signature(self) -> str:
        """A stable key of *what* differs (used to tell a new change from one already seen)."""
        parts = []
        for f in self.changed_fields:
            if f.field.startswith("observed."):
                parts.append(f"{f.field}={sorted(_present(f.after))}")
            else:
                parts.append(f"{f.field}={f.after}")
        return ";".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": [f.field for f in self.changed_fields],
            "fields": [f.to_json() for f in self.fields],
            "notes": list(self.notes),
            "before_tag": self.before_tag,
            "after_tag": self.after_tag,
            "signature": self.signature,
        }


def _hex(hash_value: str) -> str:
    return hash_value.split(":", 1)[-1]


def _present(shares: Any) -> set[str]:
    if not isinstance(shares, Mapping):
        return set()
    out = set()
    for key, value in shares.items():
        share = value.get("share") if isinstance(value, Mapping) else value
        if share is None or float(share) >= MIN_SHARE:
            out.add(str(key))
    return out


def dominant_model(observed: Mapping[str, Any] | None) -> str | None:
    """The served model id with the most replies (ties broken by name), or None."""
    served = (observed or {}).get("served_models") or {}
    if not served:
        return None
    best = sorted(served.items(), key=lambda kv: (-int(kv[1].get("count", 0)), str(kv[0])))
    return str(best[0][0])


def _observed(run: Mapping[str, Any]) -> dict[str, Any]:
    summary = run.get("summary") or {}
    observed = dict(summary.get("observed_fingerprint") or {})
    observed.setdefault("served_models", {})
    observed.setdefault("system_fingerprints", {})
    return observed


def deep_fingerprint(run: Mapping[str, Any]) -> dict[str, Any]:
    """Both halves of a stored run's fingerprint (a row of ``runs``, as the store returns it).

    Returns ``{"configured": {"hash", "parts", ...}, "observed": {"served_models": {id:
    {"count", "share"}}, "system_fingerprints": {fp: count}, "dominant_served_model",
    "requested_model", "informative", "note"}, "tag"}``.
    """
    configured = dict(run.get("fingerprint") or {})
    requested = (run.get("judge_config") or {}).get("model") or (configured.get("parts") or {}).get(
        "model"
    )
    observed = _observed(run)
    informative, note = served_half(observed, requested)
    observed.update(
        dominant_served_model=dominant_model(observed),
        requested_model=requested,
        informative=informative,
        note=note,
    )
    out: dict[str, Any] = {"configured": configured, "observed": observed}
    out["tag"] = production_tag(out)
    return out


def served_half(
    observed: Mapping[str, Any] | None, requested: str | None
) -> tuple[bool, str | None]:
    """Whether the observed half can show a change of the model behind the endpoint, and
    a note in plain words when it cannot (or only partly can).

    Uninformative: no served model id other than the requested name (none at all, or an
    echo, as llama.cpp and many gateways send) *and* no ``system_fingerprint``. An echoed
    name with a ``system_fingerprint`` is informative, with a note that only the
    fingerprint can show a change.

    >>> served_half({"served_models": {"m": {"count": 3}}}, "m")[0]
    False
    >>> served_half({"served_models": {"m-0613": {"count": 3}}}, "m")
    (True, None)
    """
    observed = observed or {}
    served = {str(k) for k in (observed.get("served_models") or {})}
    has_fp = bool(observed.get("system_fingerprints"))
    if served and served != {requested}:
        return True, None
    said = (
        "the endpoint reported no served model id" if not served
        else f"the endpoint only echoed the requested name '{requested}'"
    )
    if has_fp:
        return True, f"{said}: only its system_fingerprint can show a change of model"
    return False, (
        f"{said} and sent no system_fingerprint: it does not say which model actually "
        "served the replies (a model swapped behind it would not show in the fingerprint)"
    )


def production_tag(run_or_fingerprint: Mapping[str, Any]) -> str:
    """Short, stable fingerprint string for tagging production scores.

    Accepts a stored run (a ``runs`` row), a :func:`deep_fingerprint`, or a bare configured
    fingerprint (``{"hash": ...}``; its served part is then ``unknown``). See the module
    docstring for the format: ``cfg:<12 hex>/served:<dominant served model id>``.
    """
    if "configured" in run_or_fingerprint:
        configured = run_or_fingerprint["configured"] or {}
        observed = run_or_fingerprint.get("observed") or {}
    elif "fingerprint" in run_or_fingerprint:
        configured = run_or_fingerprint["fingerprint"] or {}
        observed = _observed(run_or_fingerprint)
    else:
        configured, observed = run_or_fingerprint, {}
    digest = _hex(str(configured.get("hash", "")))[:TAG_HASH_DIGITS] or "unknown"
    served = dominant_model(observed) or "unknown"
    return f"cfg:{digest}/served:{served}"


def parse_production_tag(tag: str) -> tuple[str, str]:
    """``"cfg:6bd1…/served:gpt-4"`` -> ``("6bd1…", "gpt-4")``. Raises ValueError otherwise."""
    if not tag.startswith("cfg:") or "/served:" not in tag:
        raise ValueError(f"not a judgecal production tag: {tag!r}")
    cfg, served = tag[len("cfg:") :].split("/served:", 1)
    return cfg, served


def _prompt_texts(judge_config: Mapping[str, Any] | None) -> str:
    prompts = (judge_config or {}).get("prompts") or {}
    lines = []
    for dim in sorted(prompts):
        spec = prompts[dim] or {}
        if spec.get("system"):
            lines.append(f"[{dim} system]")
            lines.extend(str(spec["system"]).splitlines())
        lines.append(f"[{dim} template]")
        lines.extend(str(spec.get("template", "")).splitlines())
    return "\n".join(lines)


def _text_diff(before: str, after: str, max_lines: int = 40) -> dict[str, Any]:
    diff = list(
        difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", n=1,
                             lineterm="")
    )
    added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    return {
        "lines_added": added,
        "lines_removed": removed,
        "diff": diff[:max_lines],
        "truncated": len(diff) > max_lines,
    }


def _decoding_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


def diff_runs(before: Mapping[str, Any], after: Mapping[str, Any]) -> FingerprintDiff:
    """Field-by-field diff of two stored runs' fingerprints (``before`` = the baseline)."""
    fa, fb = deep_fingerprint(before), deep_fingerprint(after)
    pa = fa["configured"].get("parts") or {}
    pb = fb["configured"].get("parts") or {}
    fields: list[FieldChange] = [
        FieldChange("context.judge", "context", "judge name", before.get("judge_name"),
                    after.get("judge_name"), before.get("judge_name") != after.get("judge_name")),
        FieldChange("context.set_version", "context", "calibration-set version",
                    before.get("set_version"), after.get("set_version"),
                    before.get("set_version") != after.get("set_version")),
    ]
    for key, label in CONFIGURED_PARTS:
        va, vb = pa.get(key), pb.get(key)
        detail: Any = None
        if va != vb and key == "prompt":
            detail = _text_diff(_prompt_texts(before.get("judge_config")),
                                _prompt_texts(after.get("judge_config")))
        elif va != vb and key == "rubric":
            detail = _text_diff(str((before.get("judge_config") or {}).get("rubric", "")),
                                str((after.get("judge_config") or {}).get("rubric", "")))
        elif va != vb and key == "decoding":
            detail = _decoding_changes(fa["configured"].get("decoding") or {},
                                       fb["configured"].get("decoding") or {})
        fields.append(FieldChange(f"configured.{key}", "configured", label, va, vb, va != vb,
                                  detail))
    oa, ob = fa["observed"], fb["observed"]
    for key, label in (("served_models", "served model ids"),
                       ("system_fingerprints", "system fingerprints")):
        va, vb = oa.get(key) or {}, ob.get(key) or {}
        changed = _present(va) != _present(vb)
        if key == "system_fingerprints":
            # Absent on one side only (e.g. an endpoint that stopped sending it) is not evidence
            # of a different backend; a different non-empty set is.
            changed = bool(va) and bool(vb) and changed
        fields.append(FieldChange(f"observed.{key}", "observed", label, va, vb, changed))
    notes = []
    for side, fp in (("baseline", oa), ("run", ob)):
        if fp.get("note"):
            notes.append(f"{side}: {fp['note']}")
    return FingerprintDiff(fields=fields, notes=notes, before_tag=fa["tag"], after_tag=fb["tag"])


def describe_change(change: FieldChange) -> str:
    """One line in plain words: ``requested model: gpt-4 → gpt-4o``."""
    if change.field == "observed.served_models":
        return f"{change.label}: {_shares(change.before)} → {_shares(change.after)}"
    if change.field == "observed.system_fingerprints":
        return (f"{change.label}: {', '.join(sorted(change.before)) or 'none'} → "
                f"{', '.join(sorted(change.after)) or 'none'}")
    if change.field == "configured.decoding" and change.detail:
        keys = ", ".join(f"{k} {v[0]} → {v[1]}" for k, v in change.detail.items())
        return f"{change.label}: {keys}"
    if change.field in ("configured.prompt", "configured.rubric") and change.detail:
        d = change.detail
        return (f"{change.label} edited: {d['lines_added']} line(s) added, "
                f"{d['lines_removed']} removed")
    if isinstance(change.before, str) and change.before.startswith("sha256:"):
        return f"{change.label}: {_hex(change.before)[:12]} → {_hex(str(change.after))[:12]}"
    return f"{change.label}: {change.before} → {change.after}"


def _shares(served: Any) -> str:
    if not served:
        return "none reported"
    return ", ".join(f"{k} ({float(v.get('share', 0)):.0%})" for k, v in served.items())
