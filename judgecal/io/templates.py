"""Prompt templates: the one sandboxed Jinja2 environment judge prompts are rendered in.

A sandboxed environment with ``StrictUndefined``: a template that names a field the item does
not have is an error, and item text is data — inserted, never evaluated as a template.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

__all__ = ["template_environment", "template_syntax_error"]


@functools.cache
def template_environment() -> SandboxedEnvironment:
    """The one Jinja2 environment prompts are compiled in: sandboxed, strict, no escaping."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def template_syntax_error(text: str) -> tuple[str, int | None] | None:
    """``(message, line in the template)`` when ``text`` does not compile, else None."""
    from jinja2 import TemplateSyntaxError

    try:
        template_environment().from_string(text)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}", exc.lineno
    return None
