"""`judgecal audit verify|export|head` — the tamper-evident audit log."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json, open_store

EXIT_TAMPERED = 1
"""Exit code of `audit verify` when anything does not verify."""


@click.group()
def audit() -> None:
    """Verify or export the tamper-evident audit log.

    Every stored calibration set (its items and labels), finished run (with a digest of all
    its replies), metric report, baseline change, incident and incident step is appended to
    a hash-chained log in the same transaction that writes it.
    """


@audit.command()
@click.option("--anchor", default=None, metavar="[SEQ:]HASH",
              help="A head published earlier (see `audit head`): it must still be in the chain.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify(ctx: click.Context, anchor: str | None, as_json: bool) -> None:
    """Check the chain and every record it covers.

    Exit 0 when everything verifies. Exit 1 when anything does not, with one line per
    problem naming the entry (seq), the kind and the record: an entry edited, deleted or
    reordered in the log; a covered record (run, its replies, metric report, baseline,
    incident, incident step, ...) edited or deleted in its table after it was logged; or a
    record that has no entry at all (e.g. its entry was cut from the end of the log).
    A calibration set stored before set auditing is a warning, not a failure: the next run
    that uses it logs it.
    """
    from judgecal import audit as lib

    store = open_store(ctx)
    result = lib.verify(store.engine, anchor=anchor)
    if as_json:
        emit_json(result.to_json())
    else:
        checked = ", ".join(f"{n} {kind}" for kind, n in sorted(result.records_checked.items()))
        if result.ok:
            click.echo(f"audit log intact: {result.entries} entries, head {result.head}")
            click.echo(f"records re-checked against the log: {checked or 'none'}")
        else:
            click.echo(f"audit log does NOT verify: {len(result.problems)} problem(s) in "
                       f"{result.entries} entries")
            for problem in result.problems:
                click.echo(f"  {problem}")
        for warning in result.warnings:
            click.echo(f"warning: {warning.kind} {warning.ref} {warning.message}")
        if result.unchecked_kinds:
            click.echo("note: no snapshot function for kind(s) "
                       f"{', '.join(result.unchecked_kinds)}: their records are protected by "
                       "the chain only")
    ctx.exit(0 if result.ok else EXIT_TAMPERED)


@audit.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def head(ctx: click.Context, as_json: bool) -> None:
    """Print the head of the chain (SEQ:HASH): publish it, then `verify --anchor` it later."""
    from judgecal import audit as lib

    store = open_store(ctx)
    count, last = lib.head(store.engine)
    if as_json:
        emit_json({"entries": count, "head": last, "anchor": f"{count}:{last}"})
    else:
        click.echo(f"{count}:{last}")


@audit.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to create (it must not exist or be empty).")
@click.option("--judge", default=None, help="Restrict the trust report to this judge.")
@click.option("--since", default=None, help="Restrict the trust report to runs since DATE.")
@click.option("--no-report", is_flag=True, help="Leave the trust report out of the bundle.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def export(
    ctx: click.Context, out_dir: str, judge: str | None, since: str | None, no_report: bool,
    as_json: bool,
) -> None:
    """Write an auditor's bundle that verifies without judgecal.

    \b
    The bundle holds the log (audit_log.jsonl), every covered record as JSON,
    the calibration sets, the trust report, verification.json and SHA256SUMS.
    Check it with standard tools (README.txt in the bundle explains each step):
        cd DIR && sha256sum -c SHA256SUMS && python3 verify_bundle.py .
    """
    from judgecal.audit import VerifyResult, export_bundle

    store = open_store(ctx)

    def report(verification: VerifyResult) -> str:
        from judgecal.reports import render_trust_report

        return render_trust_report(store, judge=judge, since=since, verification=verification)

    result = export_bundle(store, out_dir, report=None if no_report else report)
    if as_json:
        emit_json({"out": str(result.out_dir), "files": result.files, "entries": result.entries,
                   "head": result.head, "verification": result.verification.to_json()})
        return
    click.echo(f"wrote {len(result.files)} files to {result.out_dir} "
               f"({result.entries} audit entries, head {result.head})")
    if not result.verification.ok:
        click.echo(f"warning: the audit log does not verify ({len(result.verification.problems)} "
                   "problem(s), see verification.json)", err=True)
