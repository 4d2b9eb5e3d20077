"""`judgecal validate PATH` — check a calibration set and summarise it."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def validate(path: Path, as_json: bool) -> None:
    """Check the calibration set at PATH (its directory or its set.yaml) and summarise it.

    Prints the items, raters, dimensions with their scales, the label distribution and
    the agreement among the human raters (Krippendorff's α). An invalid set is reported
    one problem per line (file:line: field 'name': message), with exit code 2.

    \b
    Example:
        judgecal validate calibration_sets/pandalm
    """
    from judgecal.calibration import format_summary, load_set, summarize
    from judgecal.cli.common import emit_json

    summary = summarize(load_set(path))
    if as_json:
        emit_json(summary)
    else:
        click.echo(format_summary(summary))
