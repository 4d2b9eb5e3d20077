"""The drift check in words: one line per dimension, the shift of the judge's verdicts, and the
check's message.
"""

from __future__ import annotations

from typing import Any

from judgecal.drift.verdicts import JUDGE_CHANGED, SEV_WARNING, DriftCheck

ACCUMULATED = "accumulated evidence across nights"
"""``found_by`` of a dimension that the sequential test found (beside the night's own rule)."""

__all__ = [
    "ACCUMULATED",
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


def _sampling(check: DriftCheck) -> list[str]:
    """The first line of a sampled night: what it replayed, and whether it expanded."""
    s = check.sampling
    if not s:
        return []
    sampled = f"sampled {100 * s['share']:.0f}% ({s['items']:,} of {s['of']:,} items)"
    if s.get("expanded"):
        return [f"Expanded to the full set because {s['because']}; the night first {sampled}. "
                "The verdict below is on the whole set."]
    return [f"This night {sampled}, block {s['block'] + 1} of {s['blocks']} (every item "
            f"within {s['blocks']} nights): the sample rules out a drop of incident size, so "
            "the rest of the set was not requested."]


def message(check: DriftCheck) -> str:
    parts = _sampling(check)
    for e in check.dimensions:
        if e["delta_points"] is None:
            parts.append(describe_dimension(e))
            parts += _evidence(e)
            continue
        by = e.get("found_by") or []
        if e["real"] and by == [ACCUMULATED]:
            parts.append(_found_by_evidence(e))
        elif e["real"]:
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
        parts += _evidence(e)
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


def _change_point(q: dict[str, Any]) -> str:
    run = (q.get("change_point_run") or {}).get("run_id") or q.get("change_point_run_id")
    return (f"run {run} on (night {q['change_point']} of the {q['nights']} with evidence "
            "against this baseline)")


def _found_by_evidence(e: dict[str, Any]) -> str:
    """A dimension that only the accumulated evidence found."""
    q = e["sequential"]
    return (f"{e['dimension']} ({e['severity']}): found by accumulated evidence across nights — "
            f"agreement fell by an estimated {q['drop_points']:.1f} points from "
            f"{_change_point(q)}; tonight alone it moved {fmt_points(e['delta_points'])} "
            "points, which one night's interval cannot tell from no change.")


def _evidence(e: dict[str, Any]) -> list[str]:
    """The sequential test's word on a dimension, and the smallest drop it could have seen."""
    q = e.get("sequential")
    if not q:
        return []
    out = []
    if q.get("skipped") and "state" not in q:
        out.append(f"  Evidence across nights: none ({q['skipped']}).")
    elif q.get("crossed") and ACCUMULATED in (e.get("found_by") or []):
        if e.get("found_by") != [ACCUMULATED]:
            out.append(f"  Accumulated evidence across nights agrees: an estimated drop of "
                       f"{q['drop_points']:.1f} points from {_change_point(q)}.")
        if not q.get("newly_crossed"):
            out.append(f"  (The evidence first crossed on night {q['crossed_at']} and tonight "
                       "still looks like the drop; it stays crossed until a new baseline is "
                       "accepted.)")
    elif q.get("crossed"):
        drop = q.get("drop_points")
        if drop is None or drop < float((q.get("state") or {}).get("min_drop_points", 1.0)):
            why = "the estimated drop is now below the warning size"
        elif q.get("skipped"):
            why = f"tonight carried no evidence ({q['skipped']})"
        else:
            why = (f"tonight looks more like the baseline than like the estimated drop of "
                   f"{drop:.1f} points")
        out.append(f"  The evidence across nights crossed on night {q['crossed_at']} (it stays "
                   f"crossed until a new baseline is accepted), but {why}: no new alarm.")
    else:
        n = q.get("nights") or 0
        k = q.get("reference_runs") or 0
        refs = f" and its {k} reference run{'s' if k != 1 else ''}" if k else ""
        out.append(f"  Evidence across {n} night{'s' if n != 1 else ''} against this "
                   f"baseline{refs}: e-value {q['e_value']:.2g} "
                   f"(an alarm needs {q['threshold']:.0f})"
                   + (f"; tonight: {q['skipped']}" if q.get("skipped") else "") + ".")
        out += [f"  {note[0].upper()}{note[1:]}." for note in q.get("notes") or []]
    mdc = e.get("mdc_points")
    if mdc is not None:
        text = f"  The smallest drop it could have seen by tonight: about {mdc:.1f} points"
        if e.get("mdc_basis") == "accumulated evidence":
            text += " present since the first night (80% power"
            floor = q.get("mdc_floor_points")
            if floor is not None and floor < mdc - 0.05:
                text += f"; never below {floor:.1f} with this baseline, however many nights"
            text += ")."
        else:
            text += " (tonight's comparison alone, 80% power)."
        out.append(text)
    else:
        out.append("  The smallest drop it could have seen: not known yet (no night with "
                   "evidence against this baseline).")
    return out
