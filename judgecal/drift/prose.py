"""The drift check in words: one line per dimension, the shift of the judge's verdicts, and the
check's message.
"""

from __future__ import annotations

from typing import Any

from judgecal.drift.verdicts import JUDGE_CHANGED, SEV_WARNING, DriftCheck

__all__ = [
    "describe_dimension",
    "describe_shift",
    "fmt_points",
    "message",
]


def fmt_points(x: float | None) -> str:
    return "?" if x is None else f"{x:+.1f}"


def describe_dimension(e: dict[str, Any]) -> str:
    """One line per dimension, e.g. ``preference: kappa 0.657 → -0.184, -84.0 points …``."""
    if e["delta_points"] is None:
        return f"{e['dimension']}: {e['metric']} undefined ({e['delta'].get('undefined')})"
    lo, hi = e["interval95_points"]
    dlo, dhi = e["decision_interval_points"]
    text = (f"{e['dimension']}: {e['metric']} {e['baseline']['value']:.3f} → "
            f"{e['current']['value']:.3f}, {fmt_points(e['delta_points'])} points "
            f"(95% interval {fmt_points(lo)} to {fmt_points(hi)}")
    if abs(e["decision_confidence"] - 0.95) > 1e-9:
        text += (f"; at the alarm level {100 * e['decision_confidence']:.2f}%: "
                 f"{fmt_points(dlo)} to {fmt_points(dhi)}")
    text += f") on {e['n_common']} items both runs scored"
    left = e["scored_only_by_baseline"] + e["scored_only_by_run"]
    if left:
        text += f", {left} left out (scored by one run only)"
    return text


def describe_shift(w: dict[str, Any]) -> str:
    """``share of '1' 47% → 41%, tie 4% → 10%`` or ``mean 3.2 → 3.6 (more lenient)``."""
    if w.get("kind") == "category shares":
        moved = [(k, w["before"][k], w["after"][k]) for k in w["before"]
                 if abs(w["after"][k] - w["before"][k]) >= 0.005]
        moved.sort(key=lambda t: -abs(t[2] - t[1]))
        return ", ".join(f"'{k}' {100 * a:.0f}% → {100 * b:.0f}%" for k, a, b in moved[:3])
    if w.get("kind") == "mean score":
        return f"mean {w['before']:.2f} → {w['after']:.2f}, {w['direction']}"
    return ""


def message(check: DriftCheck) -> str:
    parts = []
    for e in check.dimensions:
        if e["delta_points"] is None:
            parts.append(describe_dimension(e))
            continue
        if e["real"]:
            verb = "fell" if e["direction"] == "drop" else "rose"
            parts.append(f"{e['dimension']}: agreement {verb} by {abs(e['delta_points']):.1f} "
                         f"points ({e['severity']}); the move is real at the alarm level.")
            rng = e.get("severity_range")
            if rng and rng[0] != rng[1]:
                parts.append(f"  The interval allows anything from {rng[0] or 'no real move'} "
                             f"to {rng[1]}: treat the severity as approximate.")
        elif e["n_changed"] == 0:
            parts.append(f"{e['dimension']}: unchanged — the same verdict on all "
                         f"{e['n_common']} items both runs scored.")
        else:
            lo, hi = e["decision_interval_points"]
            text = (f"{e['dimension']}: {e['metric']} moved {fmt_points(e['delta_points'])} points "
                    f"({e['baseline']['value']:.3f} → {e['current']['value']:.3f}); the interval "
                    f"{fmt_points(lo)} to {fmt_points(hi)} includes no change, so this set cannot "
                    "tell whether agreement really moved.")
            mdc = e.get("minimum_detectable_change_points") or {}
            if mdc.get("set") is not None:
                text += (f" It detects changes of about {mdc['set']:.1f} points or more when a "
                         "judge drifts on a share of the items")
                if mdc.get("pair") is not None:
                    text += (f"; for two runs whose verdicts differ on {e['n_changed']} of "
                             f"{e['n_common']} items, as these do, about {mdc['pair']:.1f} points")
                text += "."
            parts.append(text)
    for w in check.watches.get("unscored", []):
        if w["severity"]:
            parts.append(f"{w['dimension']}: unparseable replies rose from "
                         f"{100 * w['baseline_rate']:.1f}% to {100 * w['run_rate']:.1f}%.")
    for w in check.watches.get("distribution", []):
        if w["severity"] == SEV_WARNING:
            parts.append(f"{w['dimension']}: the judge's own verdicts shifted on the same items "
                         f"({describe_shift(w)}).")
    if check.verdict == JUDGE_CHANGED and check.fingerprint_diff is not None:
        changed = ", ".join(f.label for f in check.fingerprint_diff.changed_fields
                            if f.half != "context")
        parts.append(f"The judge changed ({changed}) although agreement did not really move: "
                     "scores before and after are not comparable until the change is accepted "
                     f"(judgecal baseline accept {check.run['run_id']}).")
    return "\n".join(parts)
