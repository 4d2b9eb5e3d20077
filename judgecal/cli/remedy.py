"""`judgecal incidents correct|sample|labels|rejudge` — what the affected scores should have
been."""

from __future__ import annotations

from typing import Any

import click

from judgecal.cli.common import emit_json, open_store

__all__ = ["correct", "labels", "rejudge", "sample"]


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
@click.option("--source", "source_config", default=None, envvar="JUDGECAL_SCORE_SOURCE",
              type=click.Path(dir_okay=False),
              help="Read the window's scores in place (a YAML file with a score_source: "
              "block) instead of the store's ingested history.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def correct(ctx: click.Context, incident_id: str, top: int, out: str | None, no_record: bool,
            actor: str | None, seed: int, source_config: str | None, as_json: bool) -> None:
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
    if source_config:
        from judgecal.scores import open_source

        src = open_source(source_config)
        try:
            result = correct_incident(store, incident_id, top=top, seed=seed, source=src)
        finally:
            src.close()
    else:
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


@click.command()
@click.argument("incident_id")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="A run config whose judge re-scores the window: the pinned healthy judge.")
@click.option("--inputs", required=True, type=click.Path(dir_okay=False),
              help="The window's production inputs (CSV, JSONL or Parquet) keyed by score id, "
              "with the fields the judge's templates use.")
@click.option("--id-field", default="score_id", show_default=True,
              help="The column of --inputs holding the score id.")
@click.option("--yes", is_flag=True, help="Send without asking (the estimate is printed first).")
@click.option("--dry-run", is_flag=True, help="Print what would be sent and its expected "
              "tokens; send nothing.")
@click.option("--fresh", is_flag=True, help="Ask again scores an earlier re-judge with this "
              "judge already answered (e.g. after correcting their inputs).")
@click.option("--actor", default=None, help="Who re-judged (recorded with the event).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rejudge(ctx: click.Context, incident_id: str, config_path: str, inputs: str, id_field: str,
            yes: bool, dry_run: bool, fresh: bool, actor: str | None, as_json: bool) -> None:
    """Re-score the window's kept production inputs with the pinned healthy judge.

    Shows the requests to send and their expected tokens first, then (with --yes, or when
    confirmed at a terminal) sends them through the normal runner: a killed re-judge
    resumes where it stopped, and a score an earlier re-judge with the same judge answered
    is not asked again (--fresh asks it again). `judgecal incidents correct` then adds the
    re-judged figure. The inputs are not stored; the replies are.
    """
    import sys

    from judgecal.config import load_config
    from judgecal.remedy.rejudge import execute_rejudge, plan_rejudge

    config = load_config(config_path)
    config.judge.api_key()  # a missing key is exit 2 before anything is written
    store = open_store(ctx)
    plan = plan_rejudge(store, incident_id, config, inputs, id_field=id_field, fresh=fresh)
    about = plan.to_json()
    if dry_run:
        if as_json:
            emit_json({"plan": about, "sent": False})
        else:
            click.echo(_plan_text(about))
        return
    if not as_json:
        click.echo(_plan_text(about))
    if not yes:
        if as_json or not sys.stdin.isatty():
            raise click.UsageError("pass --yes to send the requests (or --dry-run to see the "
                                   "plan only)")
        click.confirm("send them?", abort=True)
    bar = None
    if not as_json and sys.stderr.isatty() and about["to_send"]:
        from judgecal.cli.progress import ProgressLine

        bar = ProgressLine(config.judge.name, about["to_send"], sys.stderr)
        bar.start()
    try:
        done = execute_rejudge(store, plan, config, actor=actor,
                               on_reply=(lambda _r: bar.advance()) if bar else None)
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        emit_json({"plan": about, "sent": True, "rejudge": done})
        return
    if done["run_id"] is None:
        click.echo(f"nothing to send: {plan.answered_before:,} scores already re-judged")
        return
    s = done["summary"]
    click.echo(f"run {done['run_id']}: {done['status']}; {s.get('scored', 0):,} scored, "
               f"{s.get('unscored', 0):,} unscored, {s.get('failed', 0):,} failed of "
               f"{plan.requests:,}; requested now {done['requested_now']:,}")
    click.echo(f"noted on the incident as event #{done['event_seq']}; `judgecal incidents "
               f"correct {plan.incident_id}` now adds the re-judged figure")


def _plan_text(p: dict[str, Any]) -> str:
    lines = [f"re-judge of incident {p['incident_id']} by judge {p['judge']}"
             + ("" if p["matches_baseline"] is None else
                " (the baseline run's configuration)" if p["matches_baseline"] else
                " (NOT the baseline run's configuration)"),
             f"affected scores {p['window_scores']:,}: {p['with_input']:,} with an input, "
             f"{p['no_input']:,} without; {p['not_in_window']:,} input rows outside the window",
             f"requests {p['requests']:,} ({p['already_done']:,} already answered"
             + (f" in run {p['resumes_run']}" if p["resumes_run"] else "") + "); to send "
             f"{p['to_send']:,}"
             + (f"; {p['answered_before']:,} scores re-judged before, not asked again"
                if p["answered_before"] else ""),
             f"expected tokens ≈ {p['expected_prompt_tokens']:,} prompt + "
             f"{p['expected_completion_tokens']:,} completion"]
    lines += [f"note: {n}" for n in p["notes"]]
    return "\n".join(lines)
