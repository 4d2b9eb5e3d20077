"""`judgecal baseline show|accept` — the accepted run each judge is compared with."""

from __future__ import annotations

import getpass

import click

from judgecal.cli.common import emit_json, open_store, table


@click.group()
def baseline() -> None:
    """Show or accept the baseline run of a judge.

    Every nightly run is compared with its judge's accepted baseline on the same
    calibration-set version; a new set version needs a new baseline.
    """


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return "unknown"


@baseline.command("show")
@click.option("--judge", default=None, help="Only this judge.")
@click.option("--history", is_flag=True, help="Every acceptance, not only the current ones.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, judge: str | None, history: bool, as_json: bool) -> None:
    """The current baseline of each judge and set version (newest first)."""
    from judgecal import drift

    store = open_store(ctx)
    rows = drift.baselines(store, judge, history=history)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no baseline accepted yet: `judgecal baseline accept RUN --reason ...`")
        return
    click.echo(table(
        [[r["judge_name"], r["set_name"], r["set_version"][7:19], r["run_id"],
          r["accepted_at"][:19], r["actor"] + (" (auto)" if r["auto"] else ""), r["reason"]]
         for r in rows],
        ["judge", "set", "version", "baseline run", "accepted (UTC)", "by", "why"],
    ))


@baseline.command("accept")
@click.argument("run_id")
@click.option("--reason", required=True, help="Why this run is the new reference.")
@click.option("--by", "actor", default=None, help="Who accepts it (default: your user name).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def accept(ctx: click.Context, run_id: str, reason: str, actor: str | None,
           as_json: bool) -> None:
    """Make a completed run the baseline of its judge on its set version.

    RUN_ID may be a unique prefix or `latest`. Inconclusive runs are refused.
    """
    from judgecal import drift

    store = open_store(ctx)
    row = drift.accept_baseline(store, run_id, actor=actor or _user(), reason=reason)
    if as_json:
        emit_json(row)
        return
    replaced = f" (replaces {row['replaces_run_id']})" if row.get("replaces_run_id") else ""
    click.echo(f"baseline of {row['judge_name']} on {row['set_name']} "
               f"{row['set_version'][7:19]}: {row['run_id']}{replaced}")
