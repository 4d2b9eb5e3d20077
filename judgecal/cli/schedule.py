"""`judgecal schedule` — crontab and systemd timer lines for a config."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json


@click.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True),
    help="Run config (YAML) the nightly job runs.",
)
@click.option("--at", "at", default="03:17", show_default=True,
              help="Time of day (HH:MM, the machine's local time).")
@click.option("--log", "log_path", default=None, type=click.Path(dir_okay=False),
              help="Log file of the cron job (default: .judgecal/judgecal-<judge>.log next to "
                   "the config).")
@click.option("--only", type=click.Choice(["cron", "service", "timer"]), default=None,
              help="Print only this part, ready to append to a file (e.g. --only cron >> "
                   "crontab.txt).")
@click.option("--json", "as_json", is_flag=True, help="Print the lines as JSON.")
def schedule(config_path: str, at: str, log_path: str | None, only: str | None,
             as_json: bool) -> None:
    """Print the crontab line and the systemd service and timer for a nightly run.

    Nothing is installed: copy the lines where they belong.

    \b
    Examples:
        judgecal schedule --config configs/nightly.yaml --at 02:30
        judgecal schedule --config configs/nightly.yaml --only cron >> crontab.txt
    """
    from judgecal.config import load_config
    from judgecal.schedule import schedule_lines

    config = load_config(config_path)
    lines = schedule_lines(config_path, at=at, judge_name=config.judge.name,
                           api_key_env=config.judge.api_key_env if config.judge.api_key_required
                           else None, log_path=log_path)
    if as_json:
        emit_json(lines)
        return
    if only is not None:
        key = {"cron": "cron", "service": "systemd_service", "timer": "systemd_timer"}[only]
        click.echo(lines[key], nl=False)
        return
    unit = lines["unit"]
    click.echo("# --- crontab (crontab -e) " + "-" * 50)
    click.echo(lines["cron"])
    click.echo(f"# --- /etc/systemd/system/{unit}.service " + "-" * 30)
    click.echo(lines["systemd_service"])
    click.echo(f"# --- /etc/systemd/system/{unit}.timer " + "-" * 32)
    click.echo(lines["systemd_timer"])
    click.echo("# --- install " + "-" * 62)
    for line in lines["install"]:
        click.echo(line)
