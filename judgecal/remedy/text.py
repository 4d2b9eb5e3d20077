"""The plain-text rendering of a correction (``judgecal incidents correct`` without --json)."""

from __future__ import annotations

from typing import Any

from judgecal.incidents.corrected import fmt_estimate

__all__ = ["LABELS", "fmt_estimate", "render_correction"]

LABELS = {"raw": "raw (as shown)", "ppi++": "PPI++", "shift_robust": "shift-robust",
          "window_sample_ppi++": "window sample PPI++", "re_judged": "re-judged"}


def _table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False))
                     .rstrip())
    return lines


def _methods(result: dict[str, Any]) -> list[str]:
    seen = ["raw", "ppi++", "shift_robust"]
    for extra in ("window_sample_ppi++", "re_judged"):
        if any(extra in d["overall"]["estimates"] for d in result["dimensions"]):
            seen.append(extra)
    return seen


def render_correction(result: dict[str, Any], stored: dict[str, Any] | None = None) -> str:
    """Side-by-side figures per dimension, segment and customer, then what they mean."""
    pct = round(100 * result["confidence"])
    w = result["window"]
    cal = result["calibration"]
    lines = [
        f"incident {result['incident_id']}: corrected figures for judge {result['judge']}",
        f"window {w['start']} → {w['end']} ({w['from']}); {result['affected_scores']:,} "
        "affected scores",
        f"calibration set {cal['set_name']} {cal['set_version'][:12]}: human consensus vs the "
        f"drifted judge's replies (run {cal['drifted_run_id']})",
        f"every figure with its {pct}% interval and method; '—' says why there is none",
    ]
    methods = _methods(result)
    headers = ["", "scores", *[LABELS[m] for m in methods], "use"]
    for d in result["dimensions"]:
        lines += ["", f"{d['dimension']} — {d['target']} ({d['scale']})"]
        rows = []
        for fig in [d["overall"], *d["segments"], *d["customers"]]:
            name = "all" if fig["kind"] == "all" else (
                f"segment {fig['group'] or '(none)'}" if fig["kind"] == "segment"
                else f"customer {fig['group']}")
            rows.append([name, f"{fig['n_window']:,}",
                         *[fmt_estimate(fig["estimates"].get(m)) for m in methods],
                         LABELS.get(fig.get("recommended") or "", "—")])
        lines += _table(rows, headers)
        lam = d["overall"]["estimates"].get("ppi++", {}).get("diagnostics", {}).get("lambda")
        if lam is not None:
            lines.append(f"PPI++ lambda {lam:.2f} (0 = human labels alone, 1 = the judge "
                         "fully trusted)")
        for m in d["overall"]["messages"]:
            lines.append(f"! {m}")
        rep = d["representativeness"]
        lines.append("representativeness: " + (rep.get("message") or rep.get("undefined")
                                                or "—"))
        placebo = d.get("placebo") or {}
        if placebo.get("message"):
            est = placebo["estimates"]
            lines.append(f"{placebo['message']} (shown {placebo['known_value']:.3f}; PPI++ "
                         f"{fmt_estimate(est.get('ppi++'))}; shift-robust "
                         f"{fmt_estimate(est.get('shift_robust'))})")
        elif placebo.get("undefined"):
            lines.append(f"placebo: none ({placebo['undefined']})")
    if result.get("not_corrected"):
        lines += ["", "not corrected (no such dimension in the calibration set): "
                  + ", ".join(result["not_corrected"])]
    lines += ["", "what each estimate assumes:"]
    for m in methods:
        lines.append(f"  {LABELS[m]}: {result['assumptions'][m]}")
    lines.append(f"  note: {result['cluster_note']}")
    again = result.get("rejudge")
    if again:
        lines.append(f"  re-judged by {again['judge']} (run {again['run_id']}, {again['status']}): "
                     f"{again['window_scores_rejudged']:,} of {result['affected_scores']:,} "
                     "affected scores")
    if stored:
        lines += ["", f"stored as correction {stored['correction_id']} (version "
                  f"{stored['version']}), linked to the incident as event #{stored['event_seq']}; "
                  "the original scores are unchanged"]
    return "\n".join(lines) + "\n"
