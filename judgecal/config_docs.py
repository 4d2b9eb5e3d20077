"""The config reference, generated from the pydantic models: ``docs/config.md`` and
``judgecal config keys`` (every key with its type, default and description).

The models' attribute docstrings are the descriptions (``use_attribute_docstrings``), so
the reference cannot drift from the code: ``tests/test_config_keys.py`` regenerates
``docs/config.md`` and fails when the checked-in file differs.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from judgecal.config import (
    CostSettings,
    Decoding,
    DriftSettings,
    JudgeConfig,
    NotifySettings,
    ParseRule,
    Price,
    PromptSpec,
    RunConfig,
    RunSettings,
    WebhookSettings,
)

__all__ = ["SECTIONS", "KeyDoc", "config_keys", "config_reference", "json_schema"]

SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("", RunConfig),
    ("run", RunSettings),
    ("drift", DriftSettings),
    ("notify", NotifySettings),
    ("notify.webhook", WebhookSettings),
    ("cost", CostSettings),
    ("cost.prices.MODEL", Price),
    ("judge", JudgeConfig),
    ("judge.decoding", Decoding),
    ("judge.prompts.DIMENSION", PromptSpec),
    ("judge.prompts.DIMENSION.parse", ParseRule),
)
"""Where each model sits in a run config (a judge file holds the ``judge.*`` keys at its
top level)."""

_HEADER = """\
<!-- Generated from the models in judgecal/config/models.py by judgecal.config_docs; do not edit.
     Regenerate: python -m judgecal.config_docs > docs/config.md -->
# Config reference

Every key of a **run config** (e.g. [configs/nightly.yaml](../configs/nightly.yaml)) and of
a **judge** (inline under `judge:` or its own file, e.g.
[configs/judges/pandalm-gpt35.yaml](../configs/judges/pandalm-gpt35.yaml); in a judge file the
`judge.*` keys are at the top level). Unknown keys are errors that name the closest valid key.
`judgecal config schema [--judge]` prints the same as JSON Schema for editors, and
`judgecal config keys [--judge]` lists the keys in the terminal.
"""


@dataclass(frozen=True)
class KeyDoc:
    """One config key: its dotted path, type, default and description."""

    key: str
    type: str
    default: str
    description: str


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation is Any:
        return "any"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type):
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]"
    return str(annotation)


_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "max_length": "length ≤",
           "pattern": "matching"}


def _constraints(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, sign in _BOUNDS.items():
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} `{value}`" if attr == "pattern" else f"{sign} {value}")
    return f" ({', '.join(parts)})" if parts else ""


def _default(info: Any) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
        if isinstance(value, BaseModel):
            return "(defaults of its keys)"
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value)}`"


def _markdown(text: str) -> str:
    """Docstring markup (reStructuredText) as Markdown, safe inside a table cell."""
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", text).replace("``", "`")
    return text.replace("|", "\\|")


def _keys(prefix: str, model: type[BaseModel]) -> Iterator[KeyDoc]:
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        description = _markdown(" ".join((info.description or "").split()))
        yield KeyDoc(
            key=f"{prefix}.{name}" if prefix else name,
            type=_type_name(info.annotation) + _constraints(info.metadata),
            default=_default(info),
            description=description,
        )


def config_keys(judge_only: bool = False) -> list[KeyDoc]:
    """Every key of a run config, depth first (``judge_only``: of a judge file, without the
    ``judge.`` prefix)."""
    out: list[KeyDoc] = []
    for prefix, model in SECTIONS:
        if judge_only:
            if prefix != "judge" and not prefix.startswith("judge."):
                continue
            prefix = prefix.removeprefix("judge").lstrip(".")
        out.extend(_keys(prefix, model))
    return out


def json_schema(judge_only: bool = False) -> dict[str, Any]:
    """The JSON Schema of a run config (or a judge file), descriptions included."""
    model: type[BaseModel] = JudgeConfig if judge_only else RunConfig
    schema = model.model_json_schema()
    if not judge_only:  # `judge:` may also be the path of a judge file; `source` is no key
        schema["properties"].pop("source", None)
        judge = schema["properties"]["judge"]
        schema["properties"]["judge"] = {
            "anyOf": [judge, {"type": "string", "description": "Path of a judge file."}],
            "description": RunConfig.model_fields["judge"].description,
        }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def config_reference() -> str:
    """The Markdown of ``docs/config.md``: one table per section."""
    lines = [_HEADER]
    for prefix, model in SECTIONS:
        title = f"`{prefix}.*`" if prefix else "Run config: top level"
        summary = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        lines += [f"## {title}", "", summary, "",
                  "| key | type | default | description |", "|---|---|---|---|"]
        for doc in _keys(prefix, model):
            lines.append(f"| `{doc.key}` | {doc.type} | {doc.default} | {doc.description} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - `python -m judgecal.config_docs > docs/config.md`
    import sys

    sys.stdout.write(config_reference())
