"""The customer-facing postmortem draft: plain words, no metric names, no statistics vocabulary.

It says which hours were affected (a time range in UTC with its length) and shows none of
our internal ids — run, incident, correction and check ids, fingerprint hashes and production
tags, score ids — nor command lines: a resolution note quoted in it has them taken out
(:func:`customer_words`). Text from people and data (the customer's name, the note) is
escaped for Markdown; ``judgecal incidents postmortem`` undoes the escapes on a terminal.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from judgecal import drift
from judgecal.errors import InputError
from judgecal.incidents.corrected import latest_correction, plain_lines
from judgecal.incidents.markdown import md, pct, window_of
from judgecal.incidents.schema import RESOLVED

__all__ = [
    "customer_words",
    "render_postmortem",
]

_INTERNAL = re.compile(
    r"\b(?:r\d{8}T\d{6}-[0-9a-f]{6}"  # run ids
    r"|INC-\d{8}-[0-9a-f]{6}"  # incident ids
    r"|(?:COR|chk|CHK)-[0-9a-f]{6,}"  # correction and check ids
    r"|sha256:[0-9a-f]{6,}"  # fingerprint hashes
    r"|cfg:[0-9a-f]{6,}(?:/served:\S+)?"  # production tags
    r"|score[_ -]?ids?\b[:=]?\s*\S+"  # score ids
    r"|[0-9a-f]{32,})",  # any other long hash
    re.IGNORECASE,
)
_COMMAND = re.compile(r"`[^`]*`|\bjudgecal(?:\s+[a-z][\w-]*)+", re.IGNORECASE)
_PARENS = re.compile(r"\s*\(([^()]*)\)")

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


def customer_words(text: str) -> str:
    """``text`` (an engineer's note) without internal ids or command lines: a parenthesis
    holding one goes whole ("(run r2026…)", "(judgecal incidents correct)"), the rest is
    taken out where it stands."""
    def parens(m: re.Match[str]) -> str:
        inner = m.group(1)
        return "" if _INTERNAL.search(inner) or _COMMAND.search(inner) else m.group(0)

    out = _PARENS.sub(parens, text)
    out = _COMMAND.sub("", _INTERNAL.sub("", out))
    out = re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\s{2,}", " ", out))
    return re.sub(r"(?:\b(?:run|incident|check|correction|id)\s*)+([.,;:]|$)", r"\1",
                  out).strip()


def _hours(start: str, end: str) -> str:
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    h = (b - a).total_seconds() / 3600
    if h < 1:
        return "less than an hour"
    return f"about {h:.0f} hour{'' if round(h) == 1 else 's'}"


def _affected_period(incident: dict[str, Any], window: tuple[str, str] | None) -> str:
    """The hours affected, as a sentence: the blast radius's window, or else the span from
    the last healthy check to the resolution (or to now, while open)."""
    resolved = incident["status"] == RESOLVED
    if window:
        text = (f"The affected period ran from {_when(window[0])} to {_when(window[1])} "
                f"({_hours(*window)})")
        return text + ("." if resolved else ", the latest grades we have checked; the "
                       "incident is still open, so later grades may be affected too.")
    start = incident.get("last_healthy_run_at")
    if not start:
        return (f"The change was detected on {_when(incident['opened_at'])}; we are still "
                "establishing when it started.")
    end = incident.get("resolved_at")
    if end:
        return (f"Grades produced from {_when(start)} to {_when(end)} ({_hours(start, end)}) "
                "may be affected.")
    return (f"Grades produced from {_when(start)} until the incident is resolved may be "
            "affected.")


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
        "*Draft for review before sending.*"
        + (f" Prepared for {md(customer)}." if customer else ""),
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
        when = " in that period" if window else " during the affected period"
        lines.append(_affected_period(incident, window))
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
        who = md(customer) if customer else ""
        if customer and isinstance(per, dict):
            count = per.get(customer)
            if count:
                lines.append(f"For {who}, {count} grade(s) came from the changed grader.")
            else:
                lines.append(f"None of {who}'s grades came from the changed grader.")
        elif customer and top.get(customer):
            lines.append(f"For {who}, {top[customer]} grade(s) came from the changed "
                         "grader.")
        elif customer:
            lines.append(f"We are confirming exactly which of {who}'s grades were "
                         "affected and will send you the list.")
    else:
        lines.append(_affected_period(incident, None))
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
            note = customer_words(str(e.get("reason") or ""))
            lines.append(f"- {_when(e['at'])}: we resolved the incident."
                         + (f" Our note: {md(note)}" if note else ""))
    if incident["status"] != RESOLVED:
        lines.append("- The incident is still open; we will update you when it is resolved.")
    lines += ["", "## What we will do", ""]
    pending = [f for f in (correction or {}).get("figures") or [] if not f.get("corrected")]
    remedy = [_CORRECT_DO] if not said else ([_SAMPLE_DO] if pending else [])
    for item in [*_WILL_DO.get(rc["code"], []), *remedy, *_ALWAYS_DO]:
        lines.append(f"- {item}")
    return "\n".join(lines) + "\n"
