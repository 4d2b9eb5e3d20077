"""The customer-facing postmortem draft: plain words, no metric names, no statistics vocabulary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from judgecal import drift
from judgecal.errors import InputError
from judgecal.incidents.corrected import latest_correction, plain_lines
from judgecal.incidents.markdown import pct, window_of
from judgecal.incidents.schema import RESOLVED

__all__ = [
    "render_postmortem",
]

_LEVEL_WORDS = {"SEV0": "critical (the highest of our three levels)",
                "SEV2": "major (the middle of our three levels)"}

_WHAT_CHANGED = {
    drift.SILENT_PROVIDER_UPDATE: (
        "The company that provides the AI model behind our automated grader replaced or "
        "updated that model without notice. Nothing changed in our own setup: we asked for "
        "the same model as before, but the answers came from a different one."),
    drift.PLANNED_MODEL_MIGRATION: (
        "We moved our automated grader to a different AI model, and the new model grades "
        "differently from the old one."),
    drift.RUBRIC_PROMPT_CHANGE: (
        "We changed the instructions our automated grader follows, and the new instructions "
        "made it grade differently."),
    drift.DECODING_CHANGE: (
        "We changed technical settings that control how our automated grader writes its "
        "answers, and that made it grade differently."),
    drift.UNEXPLAINED_PROVIDER_CHANGE: (
        "Our automated grader started grading differently although nothing changed in our "
        "setup and the provider reported the same model as before. The most likely "
        "explanation is an unannounced change on the provider's side."),
}

_WILL_DO = {
    drift.SILENT_PROVIDER_UPDATE: [
        "Ask the provider for the exact model version and pin it where the provider allows, "
        "so that a silent replacement cannot happen again unnoticed.",
    ],
    drift.PLANNED_MODEL_MIGRATION: [
        "Check every future change of the grader's model against hand-graded examples "
        "before it goes live.",
    ],
    drift.RUBRIC_PROMPT_CHANGE: [
        "Check every future change of the grader's instructions against hand-graded "
        "examples before it goes live.",
    ],
    drift.DECODING_CHANGE: [
        "Check every future change of the grader's settings against hand-graded examples "
        "before it goes live.",
    ],
    drift.UNEXPLAINED_PROVIDER_CHANGE: [
        "Ask the provider what changed, and pin the model version where the provider allows.",
    ],
}


_CORRECT_DO = ("Estimate, from examples people graded by hand, what the affected grades "
               "should have been, and send you those corrected figures.")
_SAMPLE_DO = ("Have a random sample of the affected grades graded by hand, and send you the "
              "corrected figures it gives.")

_ALWAYS_DO = [
    "Keep checking the grader every night against the hand-graded examples, so that a change "
    "like this is caught within a day.",
]


def _when(iso: str | None) -> str:
    if not iso:
        return "an unknown time"
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{t.day} {t.strftime('%B %Y')} at {t.strftime('%H:%M')} UTC"


def _day(iso: str | None) -> str:
    if not iso:
        return "an unknown date"
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{t.day} {t.strftime('%B %Y')}"


def _rate_metric(dim: dict[str, Any]) -> tuple[float, float] | None:
    """The plain agreement rate (share of items where judge and humans agree), before/after."""
    for key in ("accuracy", "exact_agreement"):
        m = (dim.get("metrics") or {}).get(key)
        if m and m["baseline"].get("value") is not None and m["current"].get("value") is not None:
            return float(m["baseline"]["value"]), float(m["current"]["value"])
    return None


def _check_customer(incident: dict[str, Any], customer: str, per: Any,
                    top: dict[str, Any]) -> None:
    """Refuse a postmortem for a customer the blast radius shows had no affected score (a
    typo, or a customer that was not affected): the complete per-customer map does not name
    it, or every affected customer is listed and it is not among them. A customer the map
    gives 0 is known and gets the draft ("none of your grades...")."""
    blast = incident["severity"].get("blast_radius") or {}
    if isinstance(per, dict):
        if customer in per:
            return
        affected = sorted(str(c) for c, n in per.items() if n)
    else:
        count = blast.get("customers_affected", blast.get("affected_customers"))
        if customer in top or not isinstance(count, int) or len(top) < count:
            return  # listed, or not every affected customer is listed: it may be one
        affected = sorted(top)
    raise InputError(f"--customer {customer!r}: the customer is unknown or has no affected "
                     f"scores in the blast radius of incident {incident['incident_id']} "
                     f"(affected customers: {_names(affected)})")


def _names(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most]) or "none"
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def render_postmortem(incident: dict[str, Any], customer: str | None = None) -> str:
    """A customer-facing postmortem draft in plain words: what changed, how big, who was
    affected, what we did, what we will do. No metric names or statistics vocabulary."""
    sev = incident["severity"]
    mag = sev["magnitude"]
    rc = incident["root_cause"]
    ev = incident["evidence"]
    dim = next((d for d in ev["dimensions"] if d["dimension"] == mag["dimension"]),
               ev["dimensions"][0])
    n = mag["n_common"]
    opened = incident["opened_at"]
    lines = [
        f"# Incident report: a change in our automated grading ({_day(opened)})",
        "",
        "*Draft for review before sending.*" + (f" Prepared for {customer}." if customer else ""),
        "",
        "## What changed",
        "",
        _WHAT_CHANGED.get(rc["code"], "Our automated grader started grading differently."),
        "",
        "## How big",
        "",
        f"Every night we check our automated grader against {n} examples that people graded "
        "by hand, and compare its grades with theirs.",
    ]
    rate = _rate_metric(dim)
    direction = "fell" if mag["direction"] == "drop" else "rose"
    if rate is not None:
        lines.append(
            f"Before the change it agreed with the people on {100 * rate[0]:.0f} out of 100 "
            f"examples; after it, on {100 * rate[1]:.0f} out of 100.")
    b, c = mag["baseline"].get("value"), mag["current"].get("value")
    if b is not None and c is not None:
        lines.append(
            f"On a 100-point agreement score, where 100 means it always agrees with the people "
            f"and 0 means it does no better than guessing, its score {direction} from "
            f"{100 * b:.0f} to {100 * c:.0f}.")
    lo, hi = mag["interval95_points"]
    if lo is not None and hi is not None:
        near, far = sorted([abs(lo), abs(hi)])
        move = "drop" if direction == "fell" else "rise"
        lines.append(
            f"Allowing for the limited number of examples, the true {move} is most likely "
            f"between {near:.0f} and {far:.0f} points.")
    rng = mag.get("severity_range")
    lines.append("")
    level = _LEVEL_WORDS.get(sev["level"], "significant")
    text = f"We rated this incident as {level}."
    if rng and rng[0] != rng[1]:
        text += (" The change is close to the boundary between two of our levels, so its exact "
                 "size is uncertain.")
    lines.append(text)
    lines += ["", "## Who was affected", ""]
    blast = sev.get("blast_radius")
    window = window_of(blast or {})
    if blast:
        traffic = pct(blast, ("traffic_pct", "traffic_percent", "pct_traffic"),
                       ("traffic_share",))
        customers = pct(blast, ("customers_pct", "named_customers_pct", "pct_customers"),
                         ("customers_share", "customer_share"))
        when = (f" between {_when(window[0])} and {_when(window[1])}" if window
                else " during the affected period")
        if traffic is not None:
            lines.append(f"About {traffic:.0f} in 100 of the grades our system produced{when} "
                         "came from the changed grader.")
        if customers is not None:
            lines.append(f"{customers:.0f} in 100 of our customers had at least one grade from "
                         "the changed grader.")
        per = blast.get("customers")
        top = {str(c.get("customer")): c.get("affected_scores")
               for c in blast.get("top_customers") or [] if isinstance(c, dict)}
        if customer:
            _check_customer(incident, customer, per, top)
        if customer and isinstance(per, dict):
            count = per.get(customer)
            if count:
                lines.append(f"For {customer}, {count} grade(s) came from the changed grader.")
            else:
                lines.append(f"None of {customer}'s grades came from the changed grader.")
        elif customer and top.get(customer):
            lines.append(f"For {customer}, {top[customer]} grade(s) came from the changed "
                         "grader.")
        elif customer:
            lines.append(f"We are confirming exactly which of {customer}'s grades were "
                         "affected and will send you the list.")
    else:
        lines.append("We are still identifying which grades were produced by the changed "
                     "grader, and will tell you as soon as we know.")
    if incident.get("last_healthy_run_at"):
        lines.append(f"Grades produced before {_when(incident['last_healthy_run_at'])}, when our "
                     "last nightly check found the grader working normally, are not affected.")
    correction = latest_correction(incident)
    said = plain_lines(correction, customer) if correction else []
    if said:
        lines += ["", "## What the affected grades should have been", "",
                  "We estimated what the grades from the changed grader should have been, "
                  "using examples that people graded by hand. The grades you saw are kept "
                  "as they were; these are our corrected estimates beside them.", ""]
        lines += [f"- {s}" for s in said]
    lines += ["", "## What we did", ""]
    lines.append(f"- {_when(opened)}: our nightly check detected the change and opened this "
                 "incident.")
    for e in incident["events"]:
        if e["kind"] == "acknowledged":
            lines.append(f"- {_when(e['at'])}: our team started investigating.")
        elif e["kind"] == "blast_radius":
            first = not any(x["kind"] == "blast_radius" for x in incident["events"]
                            if x["seq"] < e["seq"])
            lines.append(f"- {_when(e['at'])}: " + (
                "we identified the grades that were affected." if first else
                "we updated the count of affected grades."))
        elif e["kind"] == "corrected":
            again = any(x["kind"] == "corrected" for x in incident["events"]
                        if x["seq"] < e["seq"])
            lines.append(f"- {_when(e['at'])}: " + (
                "we updated our corrected estimates." if again else
                "we estimated what the affected grades should have been."))
        elif e["kind"] == "resolved":
            lines.append(f"- {_when(e['at'])}: we resolved the incident."
                         + (f" Our note: {e['reason']}" if e.get("reason") else ""))
    if incident["status"] != RESOLVED:
        lines.append("- The incident is still open; we will update you when it is resolved.")
    lines += ["", "## What we will do", ""]
    pending = [f for f in (correction or {}).get("figures") or [] if not f.get("corrected")]
    remedy = [_CORRECT_DO] if not said else ([_SAMPLE_DO] if pending else [])
    for item in [*_WILL_DO.get(rc["code"], []), *remedy, *_ALWAYS_DO]:
        lines.append(f"- {item}")
    return "\n".join(lines) + "\n"
