"""`judgecal demo` — the offline demo on recorded real judges."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json, fmt_metric


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="demo-output",
    show_default=True,
    help="Directory for the demo's store and artifacts (replaced).",
)
@click.option("--config", "config_path", default="configs/demo.yaml", show_default=True)
@click.option("--sets-dir", default="calibration_sets", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def demo(out_dir: str, config_path: str, sets_dir: str, as_json: bool) -> None:
    """Play the offline demo: no API key, no network.

    Starts the recorded judge (real gpt-3.5-turbo verdicts on the PandaLM test set),
    replays the set through it over HTTP, and prints the agreement with the humans.
    """
    from judgecal.demo import run_demo

    result = run_demo(
        out_dir,
        config_path=config_path,
        sets_dir=sets_dir,
        on_step=None if as_json else (lambda msg: click.echo(f"• {msg}")),
    )
    if as_json:
        emit_json({"store": result.store_url, "runs": result.runs, "artifacts": result.artifacts})
        return
    for run in result.runs:
        s = run["summary"]
        reasons = ", ".join(f"{k} × {v}" for k, v in s["unscored_reasons"].items()) or "none"
        click.echo(
            f"\nrun {run['run_id']}: {s['expected']} items, {s['scored']} scored, "
            f"{s['unscored']} unscored ({reasons})"
        )
        for dim, d in run["report"]["dimensions"].items():
            click.echo(f"{dim} ({d['scale']}), judge vs human majority on {d['n']} items:")
            for name in ("kappa", "accuracy", "alpha", "exact_agreement"):
                if name in d["metrics"]:
                    ceiling = d["ceiling"].get(name)
                    extra = (
                        f"   (humans among themselves: {fmt_metric(ceiling)})" if ceiling else ""
                    )
                    click.echo(f"  {name:<16} {fmt_metric(d['metrics'][name])}{extra}")
    click.echo(f"\nstore: {result.artifacts['store']}")
    click.echo(f"next: judgecal --store {result.store_url} metrics latest")
