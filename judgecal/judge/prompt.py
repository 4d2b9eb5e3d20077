"""A judge: prompts rendered from item fields, replies parsed into scores, its fingerprint.

Rendering uses a sandboxed Jinja2 environment with ``StrictUndefined``: a template
that names a field the item lacks is an error before anything is sent, and item
text is only ever inserted as data (``{{ "{{" }}`` inside an item stays literal text).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgecal import __version__
from judgecal.config import JudgeConfig, ParseRule, PromptSpec
from judgecal.errors import ConfigError
from judgecal.io.templates import template_environment
from judgecal.scales import Scale

if TYPE_CHECKING:
    from jinja2.environment import Template

__all__ = [
    "ORIGINAL",
    "SWAPPED",
    "Parsed",
    "PromptRenderer",
    "configured_fingerprint",
    "parse_reply",
]

ORIGINAL = "original"
SWAPPED = "swapped"


@dataclass(frozen=True)
class Parsed:
    """Outcome of parsing one reply: a score code, or the reason there is none."""

    score: float | None
    label: str | None = None
    reason: str | None = None


def _sha(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def configured_fingerprint(judge: JudgeConfig) -> dict[str, Any]:
    """The configured half of the judge fingerprint.

    One hash per component (so a diff can say *what* changed) and one over all of them.
    The base URL and the key variable are deliberately not part of it: moving the same
    model to another gateway is not a judge change; the observed half catches it if it is.
    """
    prompts = {
        dim: {"template": p.template, "system": p.system, "swap_fields": p.swap_fields}
        for dim, p in sorted(judge.prompts.items())
    }
    parse = {dim: p.parse.model_dump(mode="json") for dim, p in sorted(judge.prompts.items())}
    decoding = judge.decoding.model_dump(mode="json")
    parts = {
        "model": judge.model,
        "prompt": _sha(prompts),
        "rubric": _sha(judge.rubric),
        "decoding": _sha(decoding),
        "parser": _sha(parse),
        "judgecal_version": __version__,
    }
    return {"hash": _sha(parts), "parts": parts, "decoding": decoding}


class PromptRenderer:
    """Renders the messages for one (item, dimension, variant)."""

    def __init__(self, judge: JudgeConfig):
        from jinja2 import TemplateSyntaxError

        self.judge = judge
        env = template_environment()
        self._templates: dict[str, tuple[Template, Template | None]] = {}
        for dim, spec in judge.prompts.items():
            part = "template"
            try:
                user = env.from_string(spec.template)
                part = "system"
                system = env.from_string(spec.system) if spec.system else None
            except TemplateSyntaxError as exc:
                raise ConfigError(judge.problem(("prompts", dim, part),
                                                f"template syntax error: {exc.message}",
                                                text_line=exc.lineno)) from None
            self._templates[dim] = (user, system)

    def messages(
        self, dimension: str, fields: dict[str, Any], variant: str = ORIGINAL
    ) -> list[dict[str, str]]:
        """Chat messages for one request. Raises ConfigError naming a missing field."""
        from jinja2 import UndefinedError

        spec: PromptSpec = self.judge.prompts[dimension]
        context = {k: ("" if v is None else v) for k, v in fields.items()}
        if variant == SWAPPED:
            for a, b in spec.swap_fields or []:
                context[a], context[b] = fields.get(b, ""), fields.get(a, "")
        context.setdefault("rubric", self.judge.rubric)
        context.setdefault("dimension", dimension)
        user_t, system_t = self._templates[dimension]
        part = "system"
        try:
            out = []
            if system_t is not None:
                out.append({"role": "system", "content": system_t.render(context)})
            part = "template"
            out.append({"role": "user", "content": user_t.render(context)})
        except UndefinedError as exc:
            raise ConfigError(self.judge.problem(
                ("prompts", dimension, part),
                f"{exc.message} (the template names a field the items do not have)",
            )) from None
        except Exception as exc:  # the sandbox refused it, or an expression failed (1/0 …)
            raise ConfigError(self.judge.problem(
                ("prompts", dimension, part),
                f"the template cannot be rendered for item {fields.get('id', '?')!r}: "
                f"{type(exc).__name__}: {exc}",
            )) from None
        return out


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    start = text.find("{")
    end = text.rfind("}")
    if start >= 0 and end > start:
        try:
            return json.loads(text[start : end + 1])
        except ValueError:
            return None
    return None


def parse_reply(text: str | None, rule: ParseRule, scale: Scale, variant: str = ORIGINAL) -> Parsed:
    """Turn a reply into a score code, or say why it cannot be scored.

    A reply that cannot be parsed is *unscored* (``score`` None with a reason), never a
    wrong answer. For a swapped-order pairwise request the verdict is mapped back to the
    original order (1 <-> 2) so both variants are comparable.
    """
    if text is None or not text.strip():
        return Parsed(None, reason="empty_reply")
    raw_label: Any
    if rule.type == "regex":
        assert rule.pattern is not None
        flags = re.IGNORECASE if rule.ignore_case else 0
        matches = list(re.finditer(rule.pattern, text, flags))
        if not matches:
            return Parsed(None, reason="no_verdict_found")
        m = matches[-1] if rule.match == "last" else matches[0]
        raw_label = m.group(rule.group)
    else:
        obj = _json_object(text)
        if obj is None:
            return Parsed(None, reason="invalid_json")
        raw_label = obj
        assert rule.field is not None
        for key in rule.field.split("."):
            if isinstance(raw_label, dict) and key in raw_label:
                raw_label = raw_label[key]
            else:
                return Parsed(None, reason=f"json_field_missing:{rule.field}")
    if raw_label is None:
        return Parsed(None, reason="no_verdict_found")
    label = str(raw_label).strip()
    if rule.map is not None:
        mapped = rule.map.get(label)
        if mapped is None and rule.ignore_case:
            lowered = {k.lower(): v for k, v in rule.map.items()}
            mapped = lowered.get(label.lower())
        if mapped is None:
            return Parsed(None, label=label, reason="verdict_not_in_map")
        label = str(mapped)
    try:
        code = scale.code(label)
    except ValueError as exc:
        return Parsed(None, label=label, reason=f"off_scale: {exc}")
    if variant == SWAPPED and scale.kind == "pairwise" and code in (1.0, 2.0):
        code = 3.0 - code
    return Parsed(code, label=label)
