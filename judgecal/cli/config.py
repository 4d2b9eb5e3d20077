"""`judgecal config` — the config reference: JSON Schema for editors, and every key."""

from __future__ import annotations

import click

__all__ = ["config"]

_JUDGE = click.option("--judge", "judge_only", is_flag=True,
                      help="A judge file instead of a run config.")


@click.group()
def config() -> None:
    """The keys of run configs and judge files (also in docs/config.md).

    \b
    Examples:
        judgecal config schema > judgecal.schema.json
        judgecal config keys --judge
    """


@config.command()
@_JUDGE
def schema(judge_only: bool) -> None:
    """Print the JSON Schema of a run config (or, with --judge, of a judge file).

    Point an editor's YAML support at it, e.g. a first line
    `# yaml-language-server: $schema=judgecal.schema.json` for the YAML language server.
    """
    from judgecal.cli.common import emit_json
    from judgecal.config_docs import json_schema

    emit_json(json_schema(judge_only))


@config.command()
@_JUDGE
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
def keys(judge_only: bool, as_json: bool) -> None:
    """Every key with its type, default and description."""
    from dataclasses import asdict

    from judgecal.cli.common import emit_json
    from judgecal.config_docs import config_keys

    docs = config_keys(judge_only)
    if as_json:
        emit_json([{k: _plain(v) for k, v in asdict(d).items()} for d in docs])
        return
    for doc in docs:
        click.echo(f"{doc.key}  {_plain(doc.type)}  default {doc.default}")
        if doc.description:
            click.echo(f"    {_plain(doc.description)}")


def _plain(cell: str) -> str:
    """A Markdown table cell as terminal text."""
    return cell.replace("\\|", "|")
