"""`judgecal explain RUN [--vs BASELINE]` — the items behind the numbers."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json, open_store


@click.command()
@click.argument("run_id")
@click.option("--vs", "baseline", default=None, metavar="BASELINE",
              help="Compare with this run: list the items whose verdict flipped.")
@click.option("--dimension", default=None, help="Only this dimension.")
@click.option("--segment", "segments", multiple=True, metavar="FIELD=VALUE",
              help="Only items of this segment (repeat to combine).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0),
              help="Items per dimension (0: all).")
@click.option("--json", "as_json", is_flag=True, help="JSON with the full texts.")
@click.pass_context
def explain(
    ctx: click.Context, run_id: str, baseline: str | None, dimension: str | None,
    segments: tuple[str, ...], limit: int, as_json: bool,
) -> None:
    """Where the judge disagrees with the humans, or what flipped between two runs.

    Without --vs: the items of RUN where the judge disagrees most with the human
    consensus (ordinal: largest |judge − consensus|; binary, nominal, pairwise:
    judge ≠ consensus, the most unanimous human panels first).

    With --vs BASELINE: the items whose verdict changed, both replies side by side
    with the human labels, the ones that broke first.

    \b
    Output is Markdown as a terminal shows it (no backslash escapes); --json
    gives the full texts.
        judgecal explain latest --segment motivation_app=Grammarly
        judgecal explain RUN --vs BASELINE --dimension preference --json
    """
    from judgecal import explain as lib

    store = open_store(ctx)
    chosen = lib.parse_segments(segments)
    n = None if limit <= 0 else limit
    if baseline:
        result = lib.flips(store, run_id, baseline, dimension=dimension, segments=chosen, limit=n)
    else:
        result = lib.disagreements(store, run_id, dimension=dimension, segments=chosen, limit=n)
    if as_json:
        emit_json(result)
    else:
        from judgecal.io.markdown import for_terminal

        click.echo(for_terminal(lib.to_markdown(result)), nl=False)
