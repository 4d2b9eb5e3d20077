"""`judgecal runs list|show` — what ran, when, with which judge."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json, open_store, table


@click.group()
def runs() -> None:
    """List, show and import runs."""


@runs.command("list")
@click.option("--judge", default=None, help="Only runs of this judge.")
@click.option("--limit", default=50, show_default=True, help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, judge: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    store = open_store(ctx)
    rows = store.list_runs(judge, limit)
    if as_json:
        emit_json(
            [
                {k: r[k] for k in ("run_id", "judge_name", "set_name", "set_version", "status",
                                   "origin", "started_at", "finished_at", "n_expected")}
                | {"scored": (r["summary"] or {}).get("scored")}
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
                [r["run_id"], r["judge_name"], r["set_name"], r["status"], r["started_at"][:19],
                 str((r["summary"] or {}).get("scored", "")), str(r["n_expected"])]
                for r in rows
            ],
            ["run", "judge", "set", "status", "started (UTC)", "scored", "expected"],
        )
    )


@runs.command("show")
@click.argument("run_id")
@click.option("--replies", "with_replies", is_flag=True, help="Include every stored reply.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, run_id: str, with_replies: bool, as_json: bool) -> None:
    """Show one run: its judge configuration, fingerprint and reply summary.

    RUN_ID may be a unique prefix or `latest`.
    """
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
        for model, count in ((s.get("observed_fingerprint") or {}).get("system_fingerprints") or {}).items():
            lines.append(f"  system_fingerprint {model}: {count}")
    click.echo("\n".join(lines))
