"""`judgecal metrics RUN` — agreement of a run with the humans."""

from __future__ import annotations

import click

from judgecal.cli.common import emit_json, fmt_metric, open_store


@click.command()
@click.argument("run_id")
@click.option(
    "--by", "by", default=None, help="Also report every metric per value of this segment field."
)
@click.option(
    "--min-segment-items",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Segments with fewer scored items are reported as too small.",
)
@click.option("--bootstrap", "n_boot", default=None, type=click.IntRange(min=0),
              help="Bootstrap resamples of a recomputed report [default: 1000].")
@click.option("--seed", default=None, type=int,
              help="Seed of a recomputed report's bootstrap [default: 0].")
@click.option("--recompute", is_flag=True,
              help="Compute the report again instead of showing the one stored with the run.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def metrics(
    ctx: click.Context,
    run_id: str,
    by: str | None,
    min_segment_items: int,
    n_boot: int | None,
    seed: int | None,
    recompute: bool,
    as_json: bool,
) -> None:
    """Agreement of a run with the human consensus, per dimension, with intervals.

    RUN_ID may be a unique prefix, `latest` or `latest@JUDGE`. Next to each judge
    metric stands the human ceiling: the same metric for each rater against the
    others. Shows the report stored when the run finished (the one its drift check
    and the trust report used); --by, --bootstrap, --seed or --recompute compute it
    again (an imported run has no stored report: it is computed).
    """
    from judgecal.calibration import StoredSet

    store = open_store(ctx)
    run = store.get_run(run_id)
    view = StoredSet.load(store, run["set_version"])
    stored = None
    if not (recompute or by or n_boot is not None or seed is not None):
        stored = store.latest_metric_report(run["run_id"])
    if stored is not None:
        report = stored
        origin = "stored with the run"
    else:
        from judgecal.agreement import agreement_report

        report = agreement_report(
            view,
            store.replies(run["run_id"]),
            n_boot=1000 if n_boot is None else n_boot,
            seed=0 if seed is None else seed,
            by=by,
            min_segment_items=min_segment_items,
        )
        origin = "computed now"
    report = {"run_id": run["run_id"], "judge": run["judge_name"], "report": origin} | report
    if as_json:
        emit_json(report)
        return
    lines = [f"run {run['run_id']}  judge {run['judge_name']}  set {view.name}  "
             f"(report {origin})"]
    for dim, d in report["dimensions"].items():
        lines.append(f"\n{dim} ({d['scale']}): n={d['n']} scored, {d['unscored']} unscored")
        width = max((len(k) for k in d["metrics"]), default=10)
        lines.append(f"  {'metric':<{width}}  {'judge vs humans':<28}  human ceiling")
        for name, m in d["metrics"].items():
            ceiling = d["ceiling"].get(name)
            lines.append(
                f"  {name:<{width}}  {fmt_metric(m):<28}  {fmt_metric(ceiling) if ceiling else ''}"
            )
        for name, m in d["ceiling"].items():
            if name not in d["metrics"]:
                lines.append(f"  {name:<{width}}  {'':<28}  {fmt_metric(m)}")
        mdc = d.get("minimum_detectable_change")
        if isinstance(mdc, dict) and mdc.get("value") is not None:
            lines.append(f"  minimum detectable change: {mdc['value']:.3f}")
        for seg, entry in (d.get("segments") or {}).items():
            if "too_small" in entry:
                lines.append(f"  [{by}={seg}] too small ({entry['too_small']} items)")
            else:
                first = next(iter(entry.items()))
                lines.append(f"  [{by}={seg}] {first[0]} {fmt_metric(first[1])}")
    click.echo("\n".join(lines))
