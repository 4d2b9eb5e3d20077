"""`judgecal status` — is every judge really being watched?"""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json, open_store, table
from judgecal.cli.main import (
    EXIT_INCIDENT,
    EXIT_INCONCLUSIVE,
    EXIT_JUDGE_CHANGED,
    EXIT_NOT_MONITORED,
    EXIT_OK,
    EXIT_STALE,
)

STATE_EXIT = {
    "drifted": EXIT_INCIDENT,
    "not_monitored": EXIT_NOT_MONITORED,
    "stale": EXIT_STALE,
    "changed": EXIT_JUDGE_CHANGED,
    "inconclusive": EXIT_INCONCLUSIVE,
    "healthy": EXIT_OK,
}


@click.command()
@click.option(
    "--config", "config_path", default=None, type=click.Path(dir_okay=False),
    help="Read the store of this run config (default: --store / JUDGECAL_STORE).",
)
@click.option("--judge", "judge_name", default=None, help="Only this judge.")
@click.option("--json", "as_json", is_flag=True, help="Print the states as JSON.")
@click.pass_context
def status(ctx: click.Context, config_path: str | None, judge_name: str | None,
           as_json: bool) -> None:
    """Each judge's watch state, worst first, and why.

    \b
    States (worst first) and the exit code when one is present:
      drifted        20  an open incident, or the newest check is a warning
      not_monitored   5  no accepted baseline: nothing is compared
      stale           6  no conclusive drift check for run.stale_after_hours
      changed        11  fingerprint differs from the baseline's, not accepted
      inconclusive    3  the newest run could not conclude
      healthy         0  compared with the baseline, no real move

    An empty store is not healthy either: nothing is watched (exit 5).
    """
    from judgecal.drift.watch import watch_states

    configured = None
    if config_path is not None:
        from judgecal.config import load_config

        configured = load_config(config_path).store
    store = open_store(ctx, configured)
    states = watch_states(store)
    if judge_name is not None:
        states = [w for w in states if w.judge == judge_name]
    code = STATE_EXIT[states[0].state] if states else EXIT_NOT_MONITORED
    if as_json:
        emit_json({"exit_code": code, "judges": [w.to_json() for w in states]})
    elif not states:
        click.echo("no judge has finished a run in this store: nothing is watched")
    else:
        rows = [
            [w.judge, w.set_name, w.state,
             "—" if w.hours_since_conclusive is None else f"{w.hours_since_conclusive:.0f} h",
             w.baseline_run_id or "—"]
            for w in states
        ]
        click.echo(table(rows, ["judge", "set", "state", "last conclusive", "baseline"]))
        for w in states:
            if w.state != "healthy":
                click.echo(f"\n{w.judge} ({w.state}):")
                for reason in w.reasons:
                    click.echo(f"  - {reason}")
    ctx.exit(code)
