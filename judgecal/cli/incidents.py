"""`judgecal incidents list|show|ack|resolve|note|postmortem|correct|sample|labels|rejudge` —
drift incidents and the remedy."""

from __future__ import annotations

import getpass
from typing import Any

import click

from judgecal.cli.common import emit_json, open_store, table
from judgecal.cli.remedy import correct, labels, rejudge, sample

__all__ = ["incidents"]


@click.group()
def incidents() -> None:
    """List, show, acknowledge and resolve drift incidents.

    An incident is opened by `judgecal run` when a drift check reaches SEV2 or
    worse. Its evidence never changes; acknowledging, resolving and notes are
    appended as events, each with who and why. `correct` estimates what the
    affected scores should have been; `sample` and `labels` add a labelled window
    sample; `rejudge` re-scores kept production inputs with the healthy judge.
    """


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return "unknown"


@incidents.command("list")
@click.option("--judge", default=None, help="Only this judge.")
@click.option("--status", type=click.Choice(["open", "acknowledged", "resolved"]), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, judge: str | None, status: str | None, as_json: bool) -> None:
    """Incidents, newest first."""
    from judgecal.incidents import list_incidents

    rows = list_incidents(open_store(ctx), judge_name=judge, status=status)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no incidents")
        return
    click.echo(table(
        [[r["incident_id"], r["severity"]["level"], r["status"], r["judge_name"],
          r["opened_at"][:19], f"{r['severity']['magnitude']['points']:+.1f}",
          r["root_cause"]["title"]] for r in rows],
        ["incident", "severity", "status", "judge", "opened (UTC)", "points", "root cause"],
    ))


@incidents.command("show")
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True, help="The full record (schema_version 1).")
@click.pass_context
def show(ctx: click.Context, incident_id: str, as_json: bool) -> None:
    """One incident: severity, root cause, fingerprint diff, evidence, timeline (Markdown)."""
    from judgecal.incidents import get_incident, render_markdown
    from judgecal.io.markdown import for_terminal

    inc = get_incident(open_store(ctx), incident_id)
    if as_json:
        emit_json(inc)
        return
    click.echo(for_terminal(render_markdown(inc)), nl=False)


def _deliver(ctx: click.Context, config_path: str | None) -> dict[str, Any] | None:
    if not config_path:
        return None
    from judgecal.config import load_config
    from judgecal.notify import deliver_pending

    config = load_config(config_path)
    return deliver_pending(open_store(ctx, config.store), config.notify.webhook).to_json()


def _step(ctx: click.Context, incident_id: str, kind: str, actor: str | None, reason: str,
          config_path: str | None, as_json: bool) -> None:
    from judgecal.incidents import add_event, get_incident

    store = open_store(ctx)
    full_id = get_incident(store, incident_id)["incident_id"]
    event = add_event(store, full_id, kind, {}, actor or _user(), reason)
    delivery = _deliver(ctx, config_path)
    if as_json:
        emit_json({"event": event, "notifications": delivery})
        return
    click.echo(f"{full_id}: {kind} by {event['actor']} at {event['at']}")


_config_option = click.option(
    "--config", "config_path", default=None, type=click.Path(dir_okay=False),
    help="Run config whose webhook should hear about it now (otherwise the next run sends it).",
)


@incidents.command("ack")
@click.argument("incident_id")
@click.option("--reason", required=True, help="Why / what happens next.")
@click.option("--by", "actor", default=None, help="Who (default: your user name).")
@_config_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ack(ctx: click.Context, incident_id: str, reason: str, actor: str | None,
        config_path: str | None, as_json: bool) -> None:
    """Acknowledge an open incident."""
    _step(ctx, incident_id, "acknowledged", actor, reason, config_path, as_json)


@incidents.command("resolve")
@click.argument("incident_id")
@click.option("--reason", required=True, help="How it was resolved.")
@click.option("--by", "actor", default=None, help="Who (default: your user name).")
@_config_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def resolve(ctx: click.Context, incident_id: str, reason: str, actor: str | None,
            config_path: str | None, as_json: bool) -> None:
    """Resolve an incident (open or acknowledged)."""
    _step(ctx, incident_id, "resolved", actor, reason, config_path, as_json)


@incidents.command("note")
@click.argument("incident_id")
@click.option("--reason", "text", required=True, help="The note.")
@click.option("--by", "actor", default=None, help="Who (default: your user name).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def note(ctx: click.Context, incident_id: str, text: str, actor: str | None,
         as_json: bool) -> None:
    """Add a note to an incident's timeline."""
    _step(ctx, incident_id, "note", actor, text, None, as_json)


@incidents.command("postmortem")
@click.argument("incident_id")
@click.option("--customer", default=None, help="Write the draft for this named customer.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="Write the Markdown to this file (its folder is created) instead of "
                   "printing it.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def postmortem(ctx: click.Context, incident_id: str, customer: str | None,
               out_path: str | None, as_json: bool) -> None:
    """A customer-facing postmortem draft in plain words (Markdown).

    What changed, how big, who was affected and in which hours, what we did, what
    we will do; no internal ids. On the terminal without Markdown escapes; --out
    writes the Markdown file.
    """
    from judgecal.incidents import get_incident, render_postmortem
    from judgecal.io.markdown import for_terminal
    from judgecal.io.paths import cannot_write, make_parent

    inc = get_incident(open_store(ctx), incident_id)
    text = render_postmortem(inc, customer=customer)
    if out_path:
        path = make_parent(out_path, "the postmortem")
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise cannot_write(path, exc, "the postmortem") from None
    if as_json:
        emit_json({"incident_id": inc["incident_id"], "customer": customer, "markdown": text,
                   "out": out_path})
    elif out_path:
        click.echo(f"wrote {out_path}")
    else:
        click.echo(for_terminal(text), nl=False)


incidents.add_command(correct)
incidents.add_command(rejudge)
incidents.add_command(sample)
incidents.add_command(labels)
