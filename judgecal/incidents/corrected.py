"""Corrected figures on the incident: the newest ``corrected`` event (written by
``judgecal incidents correct``, :mod:`judgecal.remedy`), rendered for engineers (Markdown)
and in plain words for customers.

The event's data: ``{"correction_id", "version", "window", "confidence", "figures": [{
"dimension", "target", "scale", "n_window", "shown", "corrected", "ppi", "shift_robust",
"window_sample", "why_none", "messages", "customers": {name: {"shown", "corrected"}}}]}``;
each figure ``{"method", "value", "ci_low", "ci_high", "undefined", "flags"}`` or null.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from judgecal.io.markdown import escape_markdown_inline

__all__ = ["fmt_estimate", "latest_correction", "markdown_lines", "plain_lines"]

_METHOD = {"ppi++": "PPI++", "shift_robust": "shift-robust",
           "window_sample_ppi++": "window-sample PPI++", "raw": "raw",
           "re_judged": "re-judged"}


def latest_correction(incident: dict[str, Any]) -> dict[str, Any] | None:
    """The data of the newest ``corrected`` event (plus its ``at`` and ``seq``), or None."""
    for e in reversed(incident.get("events") or []):
        if e.get("kind") == "corrected" and isinstance(e.get("data"), dict):
            return dict(e["data"], at=e.get("at"), event_seq=e.get("seq"))
    return None


def fmt_estimate(e: dict[str, Any] | None, digits: int = 3,
                 escape: Callable[[str], str] = str) -> str:
    """``0.412 [0.371, 0.455]`` or ``— (reason)`` (the reason passed through ``escape``)."""
    if not e:
        return "—"
    if e.get("value") is None:
        return f"— ({escape(str(e.get('undefined') or 'undefined'))})"
    text = f"{e['value']:.{digits}f}"
    if e.get("ci_low") is not None:
        text += f" [{e['ci_low']:.{digits}f}, {e['ci_high']:.{digits}f}]"
    return text


def _est(f: dict[str, Any] | None) -> str:
    return fmt_estimate(f, escape=escape_markdown_inline)


def markdown_lines(data: dict[str, Any]) -> list[str]:
    """A ``## Corrected figures`` section: one table row per dimension."""
    pct = round(100 * float(data.get("confidence") or 0.95))
    out = ["", "## Corrected figures", "",
           f"Version {data.get('version')} (`{data.get('correction_id')}`, {data.get('at')}); "
           f"{pct}% intervals; the original scores are unchanged. `judgecal incidents correct` "
           "shows segments, customers and the checks.", "",
           "| dimension | what | scores | shown (raw) | PPI++ | shift-robust | window sample | "
           "use |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for f in data.get("figures") or []:
        use = _METHOD.get((f.get("corrected") or {}).get("method") or "", "none")
        out.append(f"| {escape_markdown_inline(f['dimension'])} | "
                   f"{escape_markdown_inline(f['target'])} | {f.get('n_window', 0):,} | "
                   f"{_est(f.get('shown'))} | {_est(f.get('ppi'))} | "
                   f"{_est(f.get('shift_robust'))} | {_est(f.get('window_sample'))} | {use} |")
        notes += [f"- {escape_markdown_inline(f['dimension'])}: "
                  f"{escape_markdown_inline(m)}" for m in f.get("messages") or []]
    if notes:
        out += ["", *notes]
    return out


def _number(value: float, rate: bool) -> str:
    return f"{100 * value:.0f} in 100" if rate else f"{value:.1f}"


def _range(low: float, high: float, rate: bool) -> str:
    if rate:
        return f"between {100 * low:.0f} and {100 * high:.0f} in 100"
    return f"between {low:.1f} and {high:.1f}"


def _what(f: dict[str, Any]) -> tuple[str, bool]:
    """(the thing measured in plain words, whether it is a rate)."""
    dim = str(f["dimension"]).replace("_", " ")
    target = str(f.get("target") or "")
    if target.startswith("preference rate"):
        return (f"the share of {dim} comparisons in which the first answer was judged "
                "better", True)
    if target.startswith("rate of"):
        return f"the share of {dim} grades that were {target[len('rate of '):]}", True
    return f"your average {dim} grade", False


def plain_lines(data: dict[str, Any], customer: str | None = None) -> list[str]:
    """Plain sentences: what was shown, the corrected estimate and its likely range."""
    lines: list[str] = []
    for f in data.get("figures") or []:
        what, rate = _what(f)
        shown, corrected = f.get("shown"), f.get("corrected")
        mine = (f.get("customers") or {}).get(customer or "")
        scope = ""
        if customer and mine:
            shown, corrected = mine.get("shown"), mine.get("corrected")
            scope = f"For {customer}, "
        elif customer:
            scope = "Across all customers (we have no separate figure for you), "
        if not shown or shown.get("value") is None:
            continue
        text = f"{scope}{what} was shown as {_number(shown['value'], rate)}"
        if corrected and corrected.get("value") is not None:
            text += f"; our corrected estimate is {_number(corrected['value'], rate)}"
            if corrected.get("ci_low") is not None:
                text += (", most likely "
                         f"{_range(corrected['ci_low'], corrected['ci_high'], rate)}")
            sample = corrected.get("method") == "window_sample_ppi++"
            again = corrected.get("method") == "re_judged"
            text += (" (from a random sample of the affected grades that people graded by "
                     "hand)." if sample else " (the affected grades given again by the grader "
                     "we used before the change)." if again else ".")
            if not (sample or again) and \
                    "judge_uninformative" in (corrected.get("flags") or []):
                text += (" The changed grader's grades told us almost nothing here, so this "
                         "estimate rests on the examples people graded by hand alone.")
        else:
            text += (". We cannot give a reliable corrected figure yet: the examples people "
                     "graded by hand do not look enough like these grades, so we are having a "
                     "sample of the affected grades graded by hand.")
        lines.append(text[0].upper() + text[1:])
    return lines
