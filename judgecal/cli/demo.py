"""`judgecal demo` — the offline demo on recorded real judges."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json


@click.command()
@click.option("--out", "out_dir", default="demo-output", show_default=True,
              help="Directory for the demo's store and artifacts (its store is replaced).")
@click.option("--configs-dir", default=None,
              help="Folder with the demo's configs (demo.yaml, demo-month.yaml). Default: the "
              "configs shipped with judgecal (a checkout's configs/ when run from one).")
@click.option("--sets-dir", default=None,
              help="Calibration sets root with the recorded verdicts. Default: "
              "$JUDGECAL_SETS_DIR, else the sets shipped with judgecal (a checkout's "
              "calibration_sets/ when run from one).")
@click.option("--nights", default=28, show_default=True, help="Nights in the simulated month.")
@click.option("--swap-night", default=21, show_default=True,
              help="The night the provider silently swaps the model.")
@click.option("--history-rows", default=300_000, show_default=True,
              help="Production scores generated for the month.")
@click.option("--json", "as_json", is_flag=True)
def demo(out_dir: str, configs_dir: str | None, sets_dir: str | None, nights: int, swap_night: int,
         history_rows: int, as_json: bool) -> None:
    """Play a month in the life of a production judge, offline (no API key, no network).

    Real recorded judge verdicts are served over HTTP by the recorded judge; a
    simulated clock plays the nights. It ends with an incident, its blast radius,
    a customer postmortem draft, the trust report and a verified audit log.
    """
    from judgecal.demo import run_demo

    if not 2 <= swap_night <= nights - 3:
        raise click.BadParameter("leave at least one night before and three after",
                                 param_hint="--swap-night")
    result = run_demo(
        out_dir, configs_dir=configs_dir, sets_dir=sets_dir, nights=nights,
        swap_night=swap_night, history_rows=history_rows,
        on_step=None if as_json else click.echo,
    )
    if as_json:
        emit_json({
            "store": result.store_url, "first_look": result.first_look, "nights": result.nights,
            "incident": result.incident, "blast_radius": result.blast_radius,
            "audit": result.audit, "artifacts": result.artifacts,
        })
        return
    click.echo("\nWhat happened")
    first = result.first_look
    k = first["metrics"].get("preference", {}).get("kappa", {})
    click.echo(f"  first look: gpt-3.5-turbo vs the PandaLM annotators: κ {k.get('value', 0):.3f}"
               f" on {first['scored']} scored items; {first['unscored']} replies had no verdict")
    healthy = sum(1 for n in result.nights if n["outcome"] == "healthy")
    click.echo(f"  {len(result.nights)} nights: {healthy} healthy, "
               + ", ".join(f"{n['label'].strip()} {n['outcome']}" for n in result.nights
                           if n["outcome"] != "healthy"))
    inc = result.incident
    if inc:
        sev = inc.get("severity", {}).get("magnitude", {})
        level = sev.get("level", sev.get("severity", "?"))
        click.echo(f"  incident {inc['incident_id']}: {level}, "
                   f"{inc.get('root_cause', {}).get('summary', '')}")
        click.echo(f"  status: {inc.get('status')}")
    click.echo("\nArtifacts")
    for name, path in result.artifacts.items():
        click.echo(f"  {name:<18} {path}")
    click.echo(f"\nExplore: judgecal --store {result.store_url} runs list")
