"""`judgecal runs list|show` — what ran, when, with which judge."""

from __future__ import annotations

__all__ = ["reply_notes", "runs"]

from typing import Any

import click

from judgecal.cli.common import emit_json, open_store, table


def reply_notes(summary: dict[str, Any], observed: dict[str, Any]) -> list[str]:
    """What a run's replies say beyond the counts, one line each, for `run` and `runs show`:
    a sampled night's share (and why it expanded), why replies have no score (failed
    requests included), replies cut by max_tokens, token
    counts (unknown is not 0), the cost and the budget, and whether the served-model
    fingerprint can show a swap."""
    lines = []
    sampling = summary.get("sampling")
    if isinstance(sampling, dict) and sampling.get("text"):
        lines.append(str(sampling["text"]))
    reasons = summary.get("unscored_reasons") or {}
    if reasons:
        lines.append("unscored because: " + ", ".join(f"{k} × {v}" for k, v in reasons.items()))
    truncated = summary.get("truncated") or 0
    if truncated:
        lines.append(
            f"truncated: {truncated} scored repl{'y was' if truncated == 1 else 'ies were'} cut "
            "by max_tokens (finish_reason length), the verdict read from the part that "
            "arrived: raise decoding.max_tokens"
        )
    tokens = summary.get("tokens") or {}
    if tokens:
        known = [tokens.get("prompt"), tokens.get("completion")]
        text = ("unknown (the endpoint reported no usage)" if known == [None, None] else
                f"{_count(known[0])} prompt, {_count(known[1])} completion")
        if tokens.get("unknown") and known != [None, None]:
            text += f" ({tokens['unknown']} repl(ies) without counts, not included)"
        lines.append(f"tokens: {text}")
    cost = summary.get("cost")
    if cost:
        text = f"{cost['total']:.4f} {cost['currency']}"
        if cost.get("unpriced"):
            text += f" ({cost['unpriced']} repl(ies) unpriced, not included)"
        if cost.get("budget_per_night") is not None:
            text += f"; budget {cost['budget_per_night']:g} {cost['currency']} a night"
            if cost.get("requests_refused"):
                text += f", {cost['requests_refused']:,} request(s) not sent"
        lines.append(f"cost: {text}")
    if observed.get("informative") is False:
        lines.append(f"served-model fingerprint uninformative: {observed.get('note')}")
    elif observed.get("note"):
        lines.append(f"served-model fingerprint: {observed['note']}")
    return lines


def _count(value: Any) -> str:
    return "unknown" if value is None else f"{value:,}"


@click.group()
def runs() -> None:
    """List, show and import runs."""


@runs.command("list")
@click.option("--judge", default=None, help="Only runs of this judge.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1),
              help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, judge: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    store = open_store(ctx)
    rows = store.list_runs(judge, limit)
    if as_json:
        emit_json(
            [
                {
                    k: r[k]
                    for k in (
                        "run_id",
                        "judge_name",
                        "set_name",
                        "set_version",
                        "status",
                        "origin",
                        "started_at",
                        "finished_at",
                        "n_expected",
                    )
                }
                | {"scored": (r["summary"] or {}).get("scored"),
                   "reference_of": (r["summary"] or {}).get("reference_of")}
                for r in rows
            ]
        )
        return
    if not rows:
        click.echo("no runs yet")
        return
    click.echo(
        table(
            [
                [
                    r["run_id"],
                    r["judge_name"],
                    r["set_name"],
                    r["status"],
                    r["started_at"][:19],
                    str((r["summary"] or {}).get("scored", "")),
                    str(r["n_expected"]),
                ]
                for r in rows
            ],
            ["run", "judge", "set", "status", "started (UTC)", "scored", "expected"],
        )
    )


def _reference_line(summary: dict[str, Any]) -> list[str]:
    """``reference  run 1 of 2 of the replicated baseline r…`` for a reference run (stored
    values printed only when they have the shape judgecal writes)."""
    ref = summary.get("reference_of")
    if not isinstance(ref, dict):
        return []
    index, of, base = ref.get("index"), ref.get("of"), ref.get("baseline_run_id")
    if not (isinstance(index, int) and isinstance(of, int) and isinstance(base, str)
            and base.isprintable()):
        return ["reference  a reference run (its record is not readable)"]
    same = " (gave exactly the baseline's verdicts)" if ref.get("identical") is True else ""
    return [f"reference  run {index} of {of} of the replicated baseline {base}{same}"]


@runs.command("show")
@click.argument("run_id")
@click.option("--replies", "with_replies", is_flag=True, help="Include every stored reply.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, run_id: str, with_replies: bool, as_json: bool) -> None:
    """Show one run: its judge configuration, fingerprint and reply summary.

    RUN_ID may be a unique prefix or `latest`.
    """
    from judgecal.judge.fingerprint import deep_fingerprint

    store = open_store(ctx)
    run = store.get_run(run_id)
    if with_replies:
        run["replies"] = store.replies(run["run_id"])
    if as_json:
        emit_json(run)
        return
    s = run["summary"] or {}
    fp = run["fingerprint"]
    lines = [
        f"run        {run['run_id']}",
        f"judge      {run['judge_name']} (model {run['judge_config'].get('model')})",
        f"set        {run['set_name']} {run['set_version']}",
        f"status     {run['status']}  ({run['origin']})",
        *_reference_line(s),
        f"started    {run['started_at']}   finished {run['finished_at'] or '—'}",
        f"configured fingerprint {fp.get('hash', '')}",
    ]
    for part, value in (fp.get("parts") or {}).items():
        lines.append(f"  {part:<16} {value}")
    if s:
        lines.append(
            f"replies    {s.get('scored')} scored, {s.get('unscored')} unscored, "
            f"{s.get('failed')} failed of {s.get('expected')}"
        )
        served = (s.get("observed_fingerprint") or {}).get("served_models") or {}
        for model, info in served.items():
            lines.append(f"  served by {model}: {info['count']} ({info['share']:.0%})")
        for model, count in (
            (s.get("observed_fingerprint") or {}).get("system_fingerprints") or {}
        ).items():
            lines.append(f"  system_fingerprint {model}: {count}")
        lines += reply_notes(s, deep_fingerprint(run)["observed"])
        for reason in s.get("inconclusive_because") or []:
            lines.append(f"inconclusive: {reason}")
    click.echo("\n".join(lines))


@runs.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--set", "set_path", required=True, help="The calibration set the judgments are for.")
@click.option("--judge", "judge_name", required=True, help="Name of the judge that produced them.")
@click.option("--model", required=True, help="The model the judge requested.")
@click.option(
    "--prompt-file",
    type=click.Path(exists=True, dir_okay=False),
    help="The judge's prompt text (for its fingerprint).",
)
@click.option("--prompt", "prompt_text", default=None, help="The prompt text, inline.")
@click.option("--served-model", default=None, help="The model id the provider reported, if known.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def import_(
    ctx: click.Context,
    path: str,
    set_path: str,
    judge_name: str,
    model: str,
    prompt_file: str | None,
    prompt_text: str | None,
    served_model: str | None,
    as_json: bool,
) -> None:
    """Import judgments produced elsewhere as a run (CSV/JSONL/Parquet).

    Columns: item_id, dimension, score, and optionally raw (the reply text). The
    whole file is checked first; any bad row is reported by line and nothing is
    stored.
    """
    from pathlib import Path

    from judgecal.calibration import load_set
    from judgecal.errors import InputError, Problem
    from judgecal.runs.imported import import_judgments

    if prompt_file is None and prompt_text is None:
        raise click.UsageError("give the judge's prompt with --prompt-file or --prompt")
    try:
        text = Path(prompt_file).read_text(encoding="utf-8") if prompt_file else str(prompt_text)
    except UnicodeDecodeError as exc:
        raise InputError(
            Problem(file=str(prompt_file), message=f"not UTF-8 text (byte {exc.start})")
        ) from None
    cs = load_set(set_path)
    store = open_store(ctx)
    result = import_judgments(
        store,
        cs,
        path,
        judge_name=judge_name,
        model=model,
        prompt_text=text,
        served_model=served_model,
    )
    if as_json:
        emit_json(result)
    else:
        s = result["summary"]
        click.echo(
            f"imported run {result['run_id']}: {s['scored']} scored, {s['unscored']} unscored"
        )
