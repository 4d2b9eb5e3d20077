"""`judgecal compare A B` — what changed between two runs, item by item, with paired intervals."""

from __future__ import annotations

from typing import Any

import click

from judgecal.cli.common import emit_json, open_store, table


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="Take the drift thresholds and primary metrics from this run config.")
@click.option("--items", "n_items", default=20, show_default=True, type=click.IntRange(min=-1),
              help="Flipped items to list per dimension (-1: all, 0: none).")
@click.option("--bootstrap", "n_boot", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Bootstrap resamples of the paired intervals.")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def compare(ctx: click.Context, run_a: str, run_b: str, config_path: str | None, n_items: int,
            n_boot: int, seed: int, as_json: bool) -> None:
    """Compare run B with run A (the reference) on the items both scored.

    Shows the fingerprint diff field by field, every dimension's primary metric with
    its paired 95% interval, the severity the drift rule gives (one comparison:
    Holm across dimensions, no night correction), the root cause in plain words and
    the items whose verdict flipped. RUN_A and RUN_B may be unique prefixes or `latest`.
    Runs on different calibration-set versions are not comparable (exit 2).
    """
    from judgecal import drift
    from judgecal.config import DriftSettings, load_config

    settings = load_config(config_path).drift if config_path else DriftSettings()
    store = open_store(ctx)
    check = drift.compare_runs(store, run_a, run_b, settings, n_boot=n_boot, seed=seed,
                               flipped_limit=n_items)
    data = check.to_json()
    if as_json:
        emit_json(data)
        return
    click.echo(render_check(data, title="compare"))


def _pts(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}"


def render_check(c: dict[str, Any], *, title: str = "drift check") -> str:
    """Plain-text rendering of a drift check (``DriftCheck.to_json()``)."""
    from judgecal.drift import describe_dimension, describe_field, describe_shift
    from judgecal.judge.fingerprint import FieldChange

    lines = []
    if c.get("baseline_run_id"):
        lines.append(f"{title}: {c['baseline_run_id']} (baseline) → {c['run_id']}  "
                     f"judge {c['judge_name']}  set {c['set_name']}")
    verdict = c["verdict"] + (f" ({c['severity']})" if c.get("severity") not in (None,
                                                                             c["verdict"]) else "")
    lines.append(f"verdict: {verdict}")
    level = c.get("alarm_level")
    if level:
        lines.append(f"alarm level: {100 * level['confidence']:.2f}% — {level['reason']}")
    diff = c.get("fingerprint_diff")
    if diff:
        changed = [f for f in diff["fields"] if f["changed"]]
        if changed:
            lines.append("fingerprint changed:")
            for f in changed:
                lines.append("  " + describe_field(FieldChange(**f)))
        else:
            lines.append("fingerprint: unchanged (configured and observed halves)")
        for note in diff.get("notes") or []:
            lines.append(f"  note — {note}")
        lines.append(f"production tags: {diff['before_tag']} → {diff['after_tag']}")
    for e in c.get("dimensions") or []:
        lines.append("")
        lines.append(describe_dimension(e))
        sev = e.get("severity") or "no real move"
        rng = e.get("severity_range")
        extra = f" (interval spans {rng[0] or 'none'} … {rng[1]})" if rng and rng[0] != rng[1] \
            and e.get("real") else ""
        lines.append(f"  severity: {sev}{extra}; verdicts changed on {e['n_changed']} items")
        mdc = e.get("minimum_detectable_change_points") or {}
        if mdc.get("set") is not None:
            text = f"  minimum detectable change: {mdc['set']:.1f} points on this set"
            if mdc.get("pair") is not None:
                text += f", {mdc['pair']:.1f} for two runs as different as these"
            lines.append(text + f" (alpha {mdc['alpha']:.3g}, power {mdc['power']:.0%})")
    for w in (c.get("watches") or {}).get("unscored") or []:
        if w.get("baseline_rate") is not None and (w["newly_unscored"] or w["newly_scored"]):
            lines.append(f"unparseable replies ({w['dimension']}): {100 * w['baseline_rate']:.1f}%"
                         f" → {100 * w['run_rate']:.1f}% (p = {w['p_value']:.3g})"
                         + (f" — {w['severity']}" if w.get("severity") else ""))
    for w in (c.get("watches") or {}).get("distribution") or []:
        if w.get("real"):
            lines.append(f"judge's own verdicts ({w['dimension']}): {describe_shift(w)} "
                         f"(p = {w['p_value']:.3g})"
                         + (f" — {w['severity']}" if w.get("severity") else ""))
    if c.get("message") and c.get("dimensions"):
        lines.append("")
        lines.append("in words:")
        lines.extend(f"  {line.strip()}" for line in c["message"].splitlines())
    rc = c.get("root_cause") or {}
    if rc:
        lines.append("")
        lines.append(f"root cause: {rc['title']} — {rc['summary']}")
    if c.get("message") and not c.get("dimensions"):
        lines.append(c["message"])
    for dim, items in (c.get("flipped_items") or {}).items():
        if items:
            lines.append("")
            lines.append(f"flipped items ({dim}), worst first:")
            lines.append(table(
                [[i["item_id"], str(i["human"]), i["baseline"], i["current"], i["effect"]]
                 for i in items],
                ["item", "humans", "baseline", "run", "effect"]))
    return "\n".join(lines)
