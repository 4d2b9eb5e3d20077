"""`judgecal incidents correct|sample|labels` — what the affected scores should have been."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json, open_store

__all__ = ["correct", "labels", "sample"]


@click.command()
@click.argument("incident_id")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1),
              help="How many customers to correct, most affected first.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Also write the stored figures to a .csv, .jsonl or .parquet file.")
@click.option("--no-record", is_flag=True, help="Do not store the figures (a dry run).")
@click.option("--actor", default=None, help="Who corrected (recorded with the version).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the shift-robust bootstrap.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def correct(ctx: click.Context, incident_id: str, top: int, out: str | None, no_record: bool,
            actor: str | None, seed: int, as_json: bool) -> None:
    """Corrected figures for an incident's affected window, with 95% intervals.

    Per dimension, segment and customer, side by side: the raw figure as shown, PPI++ from
    the calibration items' (human, drifted judge) pairs, a shift-robust estimate
    (Rogan-Gladen / confusion-matrix inversion; refused when near-singular) and, once
    labels of a window sample are imported, the window-sample PPI++. Says when the
    estimators disagree, when the estimate rests on the calibration set alone, whether the
    calibration set looks like production (representativeness) and runs a placebo on the
    window before the onset. Stored as a new version linked to the incident (never
    overwriting anything); --out exports it.
    """
    from judgecal.remedy import (
        correct_incident,
        export_correction,
        export_format,
        get_correction,
        save_correction,
    )
    from judgecal.remedy.text import render_correction

    if out and no_record:
        raise click.UsageError("--out exports the stored figures: drop --no-record")
    if out:
        export_format(out)  # a wrong extension is refused before anything is stored
    store = open_store(ctx)
    result = correct_incident(store, incident_id, top=top, seed=seed)
    stored = None
    if not no_record:
        stored = save_correction(store, result, actor=actor)
        if out:
            rows = export_correction(get_correction(store, result["incident_id"],
                                                    stored["version"]), out)
            stored["out"], stored["rows"] = out, rows
    if as_json:
        emit_json({**result, "stored": stored})
        return
    click.echo(render_correction(result, stored), nl=False)
    if stored and out:
        click.echo(f"{stored['rows']:,} figures written to {out}")


@click.command()
@click.argument("incident_id")
@click.option("--n", "n", required=True, type=click.IntRange(1),
              help="How many scores to sample (at least one per dimension and segment).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The annotation queue: .csv or .jsonl.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the draw.")
@click.option("--blind", is_flag=True, help="Leave the judge's score out of the queue.")
@click.option("--actor", default=None, help="Who drew it (recorded with the event).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sample(ctx: click.Context, incident_id: str, n: int, out: str, seed: int, blind: bool,
           actor: str | None, as_json: bool) -> None:
    """Draw a stratified random sample of the window's scores to label by hand.

    Writes an annotation queue (score_id, customer, segment, dimension, scale, score_shown,
    label — empty). Fill in the label column and import it with `judgecal incidents
    labels`; `correct` then adds the window-sample estimate, which needs no assumption
    about the calibration set.
    """
    from judgecal.remedy import draw_sample

    summary = draw_sample(open_store(ctx), incident_id, n, out, seed=seed,
                          include_score=not blind, actor=actor)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{summary['n']:,} of {summary['window_scores']:,} window scores drawn "
               f"(seed {summary['seed']}, stratified by {summary['strata']}) → {out}")
    click.echo("fill in the label column, then: judgecal incidents labels "
               f"{summary['incident_id']} {out}")


@click.command()
@click.argument("incident_id")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--actor", default=None, help="Who labelled (recorded with the event).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def labels(ctx: click.Context, incident_id: str, file: str, actor: str | None,
           as_json: bool) -> None:
    """Import the labels of a window sample (CSV, JSONL or Parquet: score_id, label).

    Every problem is named by file, line and field, and then nothing is stored (exit 2).
    """
    from judgecal.remedy import import_labels

    summary = import_labels(open_store(ctx), incident_id, file, actor=actor)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{summary['labels']:,} labels imported from {file} ({summary['empty']:,} "
               f"empty) as {summary['import_id']}; `judgecal incidents correct "
               f"{summary['incident_id']}` now adds the window-sample estimate")
