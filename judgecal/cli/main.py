"""Root command group, exit codes and error translation."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from judgecal import __version__

# Exit codes of `judgecal run` (documented in the README).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_LOCKED = 4
EXIT_NOT_MONITORED = 5
EXIT_STALE = 6
EXIT_WARNING = 10
EXIT_JUDGE_CHANGED = 11
EXIT_INCIDENT = 20

# name -> (module, attribute, one-line help). The help is repeated here so that
# `judgecal --help` lists commands without importing them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("judgecal.cli.run", "run", "Replay a calibration set through a judge."),
    "validate": ("judgecal.cli.validate", "validate", "Check a calibration set and summarise it."),
    "config": (
        "judgecal.cli.config",
        "config",
        "JSON Schema and every key of run configs and judges.",
    ),
    "runs": ("judgecal.cli.runs", "runs", "List, show and import runs."),
    "metrics": ("judgecal.cli.metrics", "metrics", "Agreement of a run with the humans."),
    "compare": (
        "judgecal.cli.compare",
        "compare",
        "Compare two runs item by item, with paired intervals.",
    ),
    "baseline": (
        "judgecal.cli.baseline",
        "baseline",
        "Show or accept the baseline run of a judge.",
    ),
    "incidents": (
        "judgecal.cli.incidents",
        "incidents",
        "List, show, acknowledge and resolve drift incidents.",
    ),
    "scores": (
        "judgecal.cli.scores",
        "scores",
        "Production score history: ingest, link, export, shift.",
    ),
    "report": ("judgecal.cli.report", "report", "Write the self-contained HTML trust report."),
    "audit": ("judgecal.cli.audit", "audit", "Verify or export the tamper-evident audit log."),
    "explain": (
        "judgecal.cli.explain",
        "explain",
        "Items the judge gets wrong, and verdicts that flipped.",
    ),
    "status": (
        "judgecal.cli.status",
        "status",
        "Is every judge watched? healthy, drifted, stale, not monitored...",
    ),
    "schedule": (
        "judgecal.cli.schedule",
        "schedule",
        "Print crontab and systemd timer lines for a config.",
    ),
    "demo": ("judgecal.cli.demo", "demo", "Play the offline demo on recorded real judges."),
    "serve-recorded": (
        "judgecal.cli.serve_recorded",
        "serve_recorded",
        "Serve recorded real judge verdicts as an OpenAI-compatible API.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        command: click.Command = getattr(module, spec[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, spec[2]) for name, spec in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="judgecal")
@click.option(
    "--store",
    envvar="JUDGECAL_STORE",
    default=None,
    help="Database URL of the run store (default: sqlite file .judgecal/judgecal.db, "
    "or the config's 'store'). Env: JUDGECAL_STORE.",
)
@click.pass_context
def cli(ctx: click.Context, store: str | None) -> None:
    """judgecal keeps LLM-as-judge graders honest.

    It replays a human-labelled calibration set through a judge, measures
    agreement with the humans, and flags drift against an accepted baseline.

    \b
    Offline quick start:
        make demo
    """
    ctx.ensure_object(dict)
    ctx.obj["store"] = store
    if os.environ.get("JUDGECAL_DEBUG_HTTP"):
        # The client logs each request to ``judgecal.http``; show it on stderr (secrets are
        # redacted by the filter the run installs on that logger).
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        http_log = logging.getLogger("judgecal.http")
        http_log.addHandler(handler)
        http_log.setLevel(logging.DEBUG)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: translate library errors into messages and exit codes."""
    from judgecal.errors import InputError, JudgecalError, LockedError

    try:
        rv = cli.main(args=argv, prog_name="judgecal", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except InputError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except LockedError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_LOCKED)
    except JudgecalError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("Interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # pragma: no cover - last resort, keeps tracebacks for debugging
        if os.environ.get("JUDGECAL_RAISE_ERRORS"):
            raise
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc}", err=True)
        click.echo("Set JUDGECAL_RAISE_ERRORS=1 to see the traceback.", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)
