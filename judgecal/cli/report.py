"""`judgecal report` — the self-contained HTML trust report."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json, open_store


@click.command()
@click.option("--out", "out_path", default="trust.html", show_default=True,
              type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--judge", default=None, help="Only this judge (default: every judge).")
@click.option("--since", default=None, metavar="DATE",
              help="Only runs started on or after DATE (2026-01-31 or an ISO date-time, UTC).")
@click.option("--figures", "figure_format", type=click.Choice(["svg", "png"]), default="svg",
              show_default=True, help="Format of the embedded figures.")
@click.option("--worst", "worst_items", default=10, show_default=True, type=click.IntRange(min=0),
              help="Items with the worst disagreement listed per dimension (0: none).")
@click.option("--skip-audit", is_flag=True,
              help="Do not verify the audit log (faster; the report then says it is unverified).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_context
def report(
    ctx: click.Context, out_path: str, judge: str | None, since: str | None,
    figure_format: str, worst_items: int, skip_audit: bool, as_json: bool,
) -> None:
    """Write the trust report: one HTML file an auditor can read without judgecal.

    Per judge: agreement over time per dimension with intervals and the human
    ceiling, incidents on the timeline, the current metrics, confusion matrices,
    the fingerprint history, the incidents with their lifecycle, and the items
    with the worst disagreement. It starts with the audit-log verification.
    Inline CSS and images, no script, no network; it prints well.
    """
    from judgecal.reports import write_trust_report

    store = open_store(ctx)
    info = write_trust_report(store, out_path, judge=judge, since=since,
                              figure_format=figure_format, worst_items=worst_items,
                              verify=not skip_audit)
    if as_json:
        emit_json(info)
        return
    click.echo(f"wrote {info['path']} ({info['bytes'] / 1024:.0f} KiB; "
               f"{len(info['judges'])} judge(s), {info['runs']} run(s))")
    if info["audit_ok"] is False:
        click.echo("warning: the audit log does not verify (see the report's first section, "
                   "or run `judgecal audit verify`)", err=True)
