"""Helpers shared by the commands: opening the store, printing JSON and tables."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from judgecal.records import json_safe

if TYPE_CHECKING:
    from judgecal.store import Store


def store_url(ctx: click.Context, configured: str | None = None) -> str | None:
    """``--store`` / ``JUDGECAL_STORE`` first, then the config's ``store``, then the default."""
    root = ctx.find_root()
    explicit = (root.obj or {}).get("store") if root.obj else None
    return explicit or configured


def open_store(ctx: click.Context, configured: str | None = None) -> Store:
    from judgecal.store import open_store as _open

    store = _open(store_url(ctx, configured))
    ctx.call_on_close(store.close)
    return store


def emit_json(data: Any) -> None:
    """Print strict JSON (NaN/inf become null: bare NaN is not JSON)."""
    text = json.dumps(json_safe(data), indent=2, ensure_ascii=False, allow_nan=False, default=str)
    click.echo(text)


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_metric(m: dict[str, Any]) -> str:
    """``0.493 [0.447, 0.538]`` or ``undefined (reason)``."""
    if m.get("value") is None:
        return f"undefined ({m.get('undefined', 'no value')})"
    text = fmt(m["value"])
    if m.get("ci_low") is not None and m.get("ci_high") is not None:
        text += f" [{fmt(m['ci_low'])}, {fmt(m['ci_high'])}]"
    return text


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)))
    return "\n".join(lines)
