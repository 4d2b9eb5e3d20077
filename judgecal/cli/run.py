"""`judgecal run` — the nightly job."""

from __future__ import annotations

import sys
from typing import Any

import click

from judgecal.cli.common import emit_json, fmt_metric, open_store
from judgecal.cli.main import EXIT_OK
from judgecal.cli.progress import ProgressLine
from judgecal.cli.runs import reply_notes


@click.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False),
    help="Run config (YAML): calibration set, judge, store.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option(
    "--quiet/--verbose", default=None,
    help="Print nothing when healthy (default when stdout is not a terminal, e.g. under cron).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N items (quick check).")
@click.pass_context
def run(
    ctx: click.Context, config_path: str, as_json: bool, quiet: bool | None, limit: int | None
) -> None:
    """Replay a calibration set through a judge and report agreement.

    Safe to run unattended: a killed run resumes where it stopped when the same
    command is run again, and a second run of the same judge and set waits for
    nobody — it exits with code 4.

    \b
    Exit codes:
      0   healthy
      1   error (e.g. the endpoint cannot be reached)
      2   bad usage or invalid input (nothing written)
      3   inconclusive (too many unscored replies, too few items, the
          run's deadline passed)
      4   another run of the same judge and set is in progress
      5   not monitored: no accepted baseline, nothing was compared
      6   stale: inconclusive, and no conclusive check for longer than
          run.stale_after_hours
      10  warning (drift below incident severity, a real rise, a jump of
          unparseable replies, or an acknowledged incident confirmed again)
      11  judge changed: the fingerprint differs from the baseline's while
          agreement did not move (until a new baseline is accepted)
      20  incident opened (SEV2 or worse), or an open one confirmed again
      130 interrupted (Ctrl-C); the same command resumes the run

    After the run, the drift check compares it with the judge's accepted
    baseline (`judgecal baseline`), records the verdict, opens or updates an
    incident, delivers webhook notifications and rewrites the Prometheus
    textfile (config sections `drift:` and `notify:`).
    """
    from judgecal.calibration import load_set
    from judgecal.config import load_config
    from judgecal.nightly import EXIT_CODES, run_nightly

    config = load_config(config_path)
    if limit is not None:
        config.run.limit = limit
    cs = load_set(config.calibration_set)
    config.judge.api_key()  # a missing key is exit 2 before the store is even created
    store = open_store(ctx, config.store)
    if quiet is None:
        quiet = not sys.stdout.isatty()
    show_progress = not as_json and sys.stderr.isatty()

    bar: ProgressLine | None = None

    def on_start(total: int, done: int) -> None:
        nonlocal bar
        if bar is not None:  # a sampled night that expands starts a second replay
            bar.close()
            bar = None
        if show_progress and total > done:
            bar = ProgressLine(config.judge.name, total - done, sys.stderr)
            bar.start()

    def on_reply(_record: Any) -> None:
        if bar is not None:
            bar.advance()

    try:
        nightly = run_nightly(config, store, cs, on_start=on_start, on_reply=on_reply)
    finally:
        if bar is not None:
            bar.close()
    result, report, watch = nightly.result, nightly.report, nightly.watch
    exit_code = EXIT_CODES[nightly.kind]
    payload = {
        "run_id": result.run_id,
        "judge": config.judge.name,
        "set": {"name": cs.name, "version": cs.version},
        "status": result.status,
        "resumed": result.resumed,
        "outcome": nightly.kind,
        "exit_code": exit_code,
        "summary": result.summary,
        "dimensions": report["dimensions"],
        "drift": watch.to_json(),
    }
    if as_json:
        emit_json(payload)
    elif not quiet or exit_code != EXIT_OK:
        click.echo(_render(payload))
        click.echo(render_watch(watch.to_json()))
    for problem in watch.problems:
        click.echo(f"judgecal: {problem}", err=True)
    ctx.exit(exit_code)


def render_watch(w: dict[str, Any]) -> str:
    """The drift part of the run's output."""
    from judgecal.cli.compare import render_check

    check = w["check"]
    lines = ["", "drift:"]
    if check.get("baseline_run_id") and check["verdict"] not in ("inconclusive",):
        lines.append(render_check(check, title="against baseline"))
    else:
        lines.append(f"verdict: {check['verdict']} — {check['message']}")
    refs = w.get("references") or []
    if refs:
        lines.append(f"replicated baseline: {len(refs)} reference run(s) of the whole set "
                     f"taken ({', '.join(refs)}); each one's check says how it compared with "
                     "the baseline")
    if w.get("references_note"):
        lines.append(f"replicated baseline: {w['references_note']}")
    stale = w.get("stale")
    if stale:
        lines.append("stale: " + "; ".join(stale["reasons"]))
    inc = w.get("incident")
    if inc:
        what = "opened" if inc["action"] == "opened" else f"confirmed again ({inc['status']})"
        lines.append(f"incident {inc['incident_id']} {what}: judgecal incidents show "
                     f"{inc['incident_id']}")
    return "\n".join(lines)


def _render(p: dict[str, Any]) -> str:
    s = p["summary"]
    lines = [
        f"run {p['run_id']}  judge {p['judge']}  set {p['set']['name']} "
        f"({p['set']['version'][:19]})",
        f"status: {p['status']}" + ("  (resumed)" if p["resumed"] else ""),
        f"replies: {s['scored']} scored, {s['unscored']} unscored, {s['failed']} failed "
        f"of {s['expected']}; requested now {s['requested_now']} in {s['elapsed_s']:.1f}s",
    ]
    observed = s["observed_fingerprint"]
    served = observed["served_models"]
    if served:
        shares = ", ".join(f"{k} ({v['share']:.0%})" for k, v in served.items())
        lines.append("served by: " + shares)
    lines += reply_notes(s, observed)
    for reason in s["inconclusive_because"]:
        lines.append(f"inconclusive: {reason}")
    if p["outcome"] not in ("healthy", "inconclusive"):
        lines.append(f"outcome: {p['outcome']} (exit {p['exit_code']})")
    for dim, d in p["dimensions"].items():
        lines.append(f"\n{dim} ({d['scale']}): n={d['n']} scored items, {d['unscored']} unscored")
        for name, m in d["metrics"].items():
            ceiling = d["ceiling"].get(name)
            extra = f"   humans: {fmt_metric(ceiling)}" if ceiling else ""
            lines.append(f"  {name:<18} {fmt_metric(m)}{extra}")
    return "\n".join(lines)
