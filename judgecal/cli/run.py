"""`judgecal run` — the nightly job."""

from __future__ import annotations

import sys
from typing import Any

import click

from judgecal.cli.common import emit_json, fmt_metric, open_store
from judgecal.cli.main import EXIT_INCONCLUSIVE, EXIT_OK


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
@click.option("--limit", type=int, default=None, help="Only the first N items (quick check).")
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
      1   error
      2   bad usage or invalid input
      3   inconclusive (too many unscored replies, too few items)
      4   another run of the same judge and set is in progress
      10  warning (drift below incident severity)
      20  incident opened
    """
    from judgecal.agreement import StoredSet, agreement_report
    from judgecal.calibration import load_set
    from judgecal.config import load_config
    from judgecal.records import INCONCLUSIVE
    from judgecal.runner import execute_run

    config = load_config(config_path)
    if limit is not None:
        config.run.limit = limit
    cs = load_set(config.calibration_set)
    store = open_store(ctx, config.store)
    if quiet is None:
        quiet = not sys.stdout.isatty()
    show_progress = not as_json and sys.stderr.isatty()

    bar: Any = None

    def on_start(total: int, done: int) -> None:
        nonlocal bar
        if show_progress and total > done:
            bar = click.progressbar(length=total - done, label=f"{config.judge.name}", file=sys.stderr)
            bar.__enter__()

    def on_reply(_record: Any) -> None:
        if bar is not None:
            bar.update(1)

    try:
        result = execute_run(config, store, cs, on_start=on_start, on_reply=on_reply)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)

    report = agreement_report(
        StoredSet.load(store, cs.version),
        store.replies(result.run_id),
        n_boot=config.run.bootstrap,
        seed=config.run.seed,
    )
    store.save_metric_report(result.run_id, report)
    exit_code = EXIT_INCONCLUSIVE if result.status == INCONCLUSIVE else EXIT_OK
    payload = {
        "run_id": result.run_id,
        "judge": config.judge.name,
        "set": {"name": cs.name, "version": cs.version},
        "status": result.status,
        "resumed": result.resumed,
        "exit_code": exit_code,
        "summary": result.summary,
        "dimensions": report["dimensions"],
    }
    if as_json:
        emit_json(payload)
    elif not quiet or exit_code != EXIT_OK:
        click.echo(_render(payload))
    ctx.exit(exit_code)


def _render(p: dict[str, Any]) -> str:
    s = p["summary"]
    lines = [
        f"run {p['run_id']}  judge {p['judge']}  set {p['set']['name']} "
        f"({p['set']['version'][:19]})",
        f"status: {p['status']}" + ("  (resumed)" if p["resumed"] else ""),
        f"replies: {s['scored']} scored, {s['unscored']} unscored, {s['failed']} failed "
        f"of {s['expected']}; requested now {s['requested_now']} in {s['elapsed_s']:.1f}s",
    ]
    if s["unscored_reasons"]:
        reasons = ", ".join(f"{k} × {v}" for k, v in s["unscored_reasons"].items())
        lines.append(f"unscored because: {reasons}")
    served = s["observed_fingerprint"]["served_models"]
    if served:
        lines.append("served by: " + ", ".join(f"{k} ({v['share']:.0%})" for k, v in served.items()))
    for reason in s["inconclusive_because"]:
        lines.append(f"inconclusive: {reason}")
    for dim, d in p["dimensions"].items():
        lines.append(f"\n{dim} ({d['scale']}): n={d['n']} scored items, {d['unscored']} unscored")
        for name, m in d["metrics"].items():
            ceiling = d["ceiling"].get(name)
            extra = f"   humans: {fmt_metric(ceiling)}" if ceiling else ""
            lines.append(f"  {name:<18} {fmt_metric(m)}{extra}")
    return "\n".join(lines)
