"""An incident as Markdown, for engineers: evidence, severity axes, root cause, events.
"""

from __future__ import annotations

import json
from typing import Any

from judgecal import drift
from judgecal.incidents.corrected import latest_correction, markdown_lines
from judgecal.io.markdown import escape_markdown_inline

__all__ = [
    "md",
    "pct",
    "render_markdown",
    "window_of",
]

def md(text: Any) -> str:
    """Escape text from data (item ids, names, reasons) for one line of Markdown (the one
    escaper, :func:`judgecal.io.markdown.escape_markdown_inline`)."""
    return escape_markdown_inline(str(text))


def _pts(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}"


def _metric(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None:
        return "undefined"
    text = f"{m['value']:.3f}"
    if m.get("ci_low") is not None:
        text += f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
    return text


def _blast_text(blast: dict[str, Any] | None) -> str:
    if not blast:
        return "not linked yet (run `judgecal scores link`)"
    parts = []
    traffic = pct(blast, ("traffic_pct", "traffic_percent", "pct_traffic"), ("traffic_share",))
    customers = pct(blast, ("customers_pct", "named_customers_pct", "pct_customers"),
                     ("customers_share", "customer_share"))
    if traffic is not None:
        parts.append(f"{traffic:.1f}% of traffic")
    if customers is not None:
        parts.append(f"{customers:.1f}% of named customers")
    if blast.get("affected_scores") is not None:
        total = blast.get("scores_in_window") or blast.get("total_scores")
        parts.append(f"{blast['affected_scores']} affected score(s)"
                     + (f" of {total}" if total else ""))
    affected_customers = blast.get("customers_affected", blast.get("affected_customers"))
    if affected_customers is not None:
        active = blast.get("customers_active") or blast.get("total_customers")
        parts.append(f"{affected_customers} customer(s)" + (f" of {active}" if active else ""))
    window = window_of(blast)
    if window:
        parts.append(f"window {window[0]} → {window[1]}")
    return "; ".join(parts) or md(json.dumps({k: v for k, v in blast.items()
                                              if k not in ("at", "event_seq")}))


def pct(data: dict[str, Any], pct_keys: tuple[str, ...], share_keys: tuple[str, ...]
         ) -> float | None:
    for k in pct_keys:
        if isinstance(data.get(k), int | float):
            return float(data[k])
    for k in share_keys:
        if isinstance(data.get(k), int | float):
            return 100.0 * float(data[k])
    return None


def window_of(data: dict[str, Any]) -> tuple[str, str] | None:
    w = data.get("window")
    if isinstance(w, dict) and w.get("start") and w.get("end"):
        return str(w["start"]), str(w["end"])
    if data.get("window_start") and data.get("window_end"):
        return str(data["window_start"]), str(data["window_end"])
    return None


def render_markdown(incident: dict[str, Any]) -> str:
    """The incident for engineers: severity axes, root cause, fingerprint diff, evidence,
    worst-flipped items, timeline."""
    sev = incident["severity"]
    mag = sev["magnitude"]
    rc = incident["root_cause"]
    ev = incident["evidence"]
    runs = ev["runs"]
    out = [
        f"# {md(incident['incident_id'])} — {sev['level']} judge drift: {md(rc['title'])}",
        "",
        f"**Status:** {incident['status']}  ",
        f"**Judge:** {md(incident['judge_name'])}  ",
        f"**Calibration set:** {md(incident['set_name'])} (version "
        f"`{incident['set_version'][:19]}`)  ",
        f"**Opened:** {incident['opened_at']}  ",
        f"**Last healthy run:** {incident.get('last_healthy_run_at') or 'none on record'}"
        + (f" (`{incident['last_healthy_run_id']}`)" if incident.get("last_healthy_run_id")
           else ""),
        "",
        "| | baseline | run |",
        "|---|---|---|",
        f"| run | `{runs['baseline']['run_id']}` | `{runs['current']['run_id']}` |",
        f"| finished | {runs['baseline']['finished_at']} | {runs['current']['finished_at']} |",
        f"| requested model | {md(runs['baseline']['requested_model'])} | "
        f"{md(runs['current']['requested_model'])} |",
        f"| production tag | `{incident['production_tags']['before']}` | "
        f"`{incident['production_tags']['after']}` |",
        "",
        "## Severity",
        "",
        f"- **Magnitude: {mag['level']}** — {md(mag['dimension'])} {md(mag['metric'])} "
        f"{_metric(mag['baseline'])} → {_metric(mag['current'])}: "
        f"**{_pts(mag['points'])} points** (95% interval {_pts(mag['interval95_points'][0])} "
        f"to {_pts(mag['interval95_points'][1])}"
        + ("" if abs(mag["decision_confidence"] - 0.95) < 1e-9 else
           f"; at the alarm level {100 * mag['decision_confidence']:.2f}%: "
           f"{_pts(mag['decision_interval_points'][0])} to "
           f"{_pts(mag['decision_interval_points'][1])}")
        + f") on {mag['n_common']} items.",
    ]
    rng = mag.get("severity_range")
    if rng and rng[0] != rng[1]:
        out.append(f"  The interval spans severities {rng[0] or 'none'} to {rng[1]}: the "
                   "level is the point estimate's, not a certainty.")
    if mag.get("estimated_drop_points") is not None:
        onset = incident.get("onset") or {}
        out.append(f"- **Found by accumulated evidence across {mag['nights']} nights** against "
                   f"the baseline (e-value {mag['e_value']:.3g}, alarm at "
                   f"{mag['threshold']:.0f}): an estimated drop of "
                   f"{mag['estimated_drop_points']:.1f} points from run "
                   f"`{mag['change_point_run_id']}` on (started "
                   f"{onset.get('started_at') or '?'}), the estimated onset.")
    out += [
        f"- **Blast radius:** {_blast_text(sev.get('blast_radius'))}",
        "- **Dimensions:** " + (", ".join(
            f"{md(d['dimension'])} ({d['direction']} {_pts(d['points'])} points, "
            f"{d['severity']})" for d in sev["dimensions"]) or "none"),
        "",
        "## Root cause",
        "",
        f"**{md(rc['title'])}** (cause family: {rc['cause_family']}). {md(rc['summary'])}",
        "",
    ]
    for f in rc.get("factors") or []:
        out.append(f"- {md(f['words'])}")
    out += ["", "## Fingerprint diff", "", "| field | baseline | run | changed |",
            "|---|---|---|---|"]
    for f in incident["fingerprint_diff"]["fields"]:
        out.append(f"| {md(f['label'])} | {md(_short(f['before']))} | {md(_short(f['after']))} "
                   f"| {'**yes**' if f['changed'] else 'no'} |")
    for note in incident["fingerprint_diff"].get("notes") or []:
        out.append(f"\n> {md(note)}")
    for f in incident["fingerprint_diff"]["fields"]:
        detail = f.get("detail")
        if f["changed"] and isinstance(detail, dict) and detail.get("diff"):
            out += ["", f"{md(f['label'])} diff:", "", "```diff"]
            out += [line.replace("```", "ʼʼʼ") for line in detail["diff"]]
            out.append("```")
    out += ["", "## Evidence", "", f"Alarm level: {md(ev['alarm_level']['reason'])} "
            f"(alpha {ev['alarm_level']['alpha']:.4g}, {ev['alarm_level']['correction']}).", "",
            "| dimension | metric | baseline | run | Δ points | 95% interval | items | "
            "left out | verdicts changed | min. detectable |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for d in ev["dimensions"]:
        mdc = (d.get("minimum_detectable_change_points") or {}).get("set")
        out.append(
            f"| {md(d['dimension'])} | {md(d['metric'])} | {_metric(d['baseline'])} | "
            f"{_metric(d['current'])} | {_pts(d['delta_points'])} | "
            f"{_pts(d['interval95_points'][0])} to {_pts(d['interval95_points'][1])} | "
            f"{d['n_common']} | {d['scored_only_by_baseline'] + d['scored_only_by_run']} | "
            f"{d['n_changed']} | {'—' if mdc is None else f'{mdc:.1f}'} |")
    for w in ev["watches"].get("unscored") or []:
        if w.get("baseline_rate") is not None:
            out.append(f"\nUnparseable replies ({md(w['dimension'])}): "
                       f"{100 * w['baseline_rate']:.1f}% → {100 * w['run_rate']:.1f}% "
                       f"(p = {w['p_value']:.3g}).")
    for w in ev["watches"].get("distribution") or []:
        if w.get("shift_points") is not None:
            out.append(f"\nJudge's own verdicts ({md(w['dimension'])}): "
                       f"{md(drift.describe_shift(w))} — {w['test']}, p = {w['p_value']:.3g}.")
    for dim, items in (ev.get("worst_flipped_items") or {}).items():
        if not items:
            continue
        out += ["", f"### Worst-flipped items: {md(dim)}", "",
                "| item | humans | baseline | run | effect | segments |",
                "|---|---|---|---|---|---|"]
        for it in items:
            segs = ", ".join(f"{k}={v}" for k, v in (it.get("segments") or {}).items())
            out.append(f"| {md(it['item_id'])} | {md(it['human'])} | {md(it['baseline'])} | "
                       f"{md(it['current'])} | {it['effect']} | {md(segs)} |")
    correction = latest_correction(incident)
    if correction:
        out += markdown_lines(correction)
    out += ["", "## Timeline", ""]
    for e in incident["events"]:
        who = f" by {md(e['actor'])}" if e.get("actor") else ""
        why = f": {md(e['reason'])}" if e.get("reason") else ""
        extra = ""
        if e["kind"] == "blast_radius":
            extra = f" — {_blast_text(e['data'])}"
        elif e["kind"] == "corrected":
            extra = f" — version {e['data'].get('version')} (`{e['data'].get('correction_id')}`)"
        elif e["kind"] == "recheck":
            extra = f" — run `{e['data'].get('run_id')}`, {e['data'].get('severity')}"
        out.append(f"- {e['at']} — **{md(e['kind'])}**{who}{why}{extra}")
    return "\n".join(out) + "\n"


def _short(value: Any) -> str:
    if isinstance(value, dict):
        if all(isinstance(v, dict) and "share" in v for v in value.values()):
            return ", ".join(f"{k} ({v['share']:.0%})" for k, v in value.items()) or "none"
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[7:19]
    return "—" if value is None else str(value)
