"""The trust report's verdict per judge: trustworthy / watch / not trustworthy, with reasons.

The rule (also printed in the report, :data:`RULE`), applied to the judge's newest run with
a metric report and to its watch states (:func:`judgecal.drift.watch.judge_watch`, one per
calibration set the judge runs on):

**not trustworthy** when any of
  - a watch state is ``drifted`` (an open incident, or the newest drift check is a warning),
    or the judge has an open incident;
  - on some dimension the headline agreement's 95% interval lies entirely below
    :data:`FLOOR` (half) of the human ceiling (its upper bound < 0.5 × ceiling);
  - the newest run's unscored rate is above the run's limit (``run.max_unscored_rate`` as
    stored in the run's summary, else the default :data:`DEFAULT_MAX_UNSCORED`);

**watch** when none of the above, but any of
  - a watch state is ``not_monitored`` (no accepted baseline: nothing is compared, nothing
    can alarm), ``stale`` (no conclusive drift check for too long), ``changed`` (fingerprint
    differs from the baseline's, not accepted) or ``inconclusive`` (the newest run could not
    conclude);
  - on some dimension the headline agreement is well below the human ceiling: its value
    under :data:`WELL_BELOW` (80%) of the ceiling, or undefined, or no ceiling to compare;

**trustworthy** otherwise.

Every aspect (agreement, baseline, incidents, unscored rate, watch state) gives one reason,
good or bad, so the auditor sees why as well as what.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_MAX_UNSCORED",
    "FLOOR",
    "NOT_TRUSTWORTHY",
    "RULE",
    "TRUSTWORTHY",
    "WATCH",
    "WELL_BELOW",
    "judge_verdict",
]

TRUSTWORTHY = "trustworthy"
WATCH = "watch"
NOT_TRUSTWORTHY = "not trustworthy"
FLOOR = 0.5
"""Not trustworthy when the agreement's whole interval is below this share of the ceiling."""
WELL_BELOW = 0.8
"""Watch when the agreement's value is below this share of the human ceiling."""
DEFAULT_MAX_UNSCORED = 0.2
"""``run.max_unscored_rate``'s default, used when a run did not store its limit."""

RULE: list[tuple[str, str]] = [
    (NOT_TRUSTWORTHY,
     "the judge is drifted (an open incident, or the newest drift check is a warning); or on "
     f"some dimension the agreement's 95% interval lies entirely below {FLOOR:.0%} of the "
     "human ceiling; or the newest run's unscored rate is above the run's limit"),
    (WATCH,
     "the judge is not monitored (no accepted baseline), stale (no conclusive drift check for "
     "too long), changed (fingerprint differs from the baseline's, not accepted) or "
     "inconclusive (the newest run could not conclude); or on some dimension the agreement is "
     f"below {WELL_BELOW:.0%} of the human ceiling, undefined, or has no ceiling to compare "
     "with"),
    (TRUSTWORTHY, "none of the above"),
]
"""The rule in words, worst verdict first (shown in the report)."""

_BAD, _WARN, _OK = "bad", "warn", "ok"
_WATCH_STATES = {"not_monitored": "not monitored", "stale": "stale", "changed": "changed",
                 "inconclusive": "inconclusive"}


def _n(x: float) -> str:
    return f"{x:.3f}"


def _agreement(dim: str, row: dict[str, Any] | None) -> dict[str, str]:
    """One reason for one dimension's headline metric against its human ceiling."""
    judge = (row or {}).get("judge") or {}
    ceiling = (row or {}).get("ceiling") or {}
    name = (row or {}).get("name") or "agreement"
    value, high, low = judge.get("value"), judge.get("ci_high"), judge.get("ci_low")
    top = ceiling.get("value")
    if value is None:
        why = judge.get("undefined") or "no value"
        return {"level": _WARN, "aspect": "agreement",
                "text": f"{dim}: {name} is undefined ({why})"}
    shown = _n(value) + ("" if low is None or high is None else f" [{_n(low)}, {_n(high)}]")
    if top is None or top <= 0:
        return {"level": _WARN, "aspect": "agreement",
                "text": f"{dim}: {name} {shown}, but no positive human ceiling to compare with"}
    share = value / top
    text = (f"{dim}: {name} {shown} is {share:.0%} of the human ceiling {_n(top)}")
    if high is not None and high < FLOOR * top:
        return {"level": _BAD, "aspect": "agreement",
                "text": text + f"; its whole interval is below {FLOOR:.0%} of the ceiling"}
    if share < WELL_BELOW:
        return {"level": _WARN, "aspect": "agreement",
                "text": text + f", well below it (under {WELL_BELOW:.0%})"}
    return {"level": _OK, "aspect": "agreement", "text": text}


def judge_verdict(
    current: dict[str, Any] | None,
    watch: list[dict[str, Any]],
    *,
    open_incidents: list[str],
    unscored_rate: float | None,
    max_unscored_rate: float | None,
) -> dict[str, Any]:
    """The verdict of one judge (see the module docstring).

    ``current``: the report's ``current`` block (newest run with a metric report, its
    dimensions' metric rows); ``watch``: :meth:`JudgeWatch.to_json` per set; the others are
    the judge's open incident ids and its newest run's unscored rate and limit.
    Returns ``{"verdict", "level", "reasons": [{"level", "aspect", "text"}], "flags"}``;
    ``flags`` lists the prominent warnings (not monitored, stale).
    """
    reasons: list[dict[str, str]] = []
    flags: list[str] = []
    # agreement against the human ceiling
    if current is None:
        reasons.append({"level": _WARN, "aspect": "agreement",
                        "text": "no metric report yet: agreement unknown"})
    else:
        for dim, entry in (current.get("dimensions") or {}).items():
            head = next((r for r in entry.get("rows") or [] if r.get("headline")), None)
            reasons.append(_agreement(dim, head))
    # baseline status, watch state
    for w in watch:
        where = f" on set {w.get('set_name')}" if len(watch) > 1 else ""
        if w.get("baseline_run_id"):
            reasons.append({"level": _OK, "aspect": "baseline",
                            "text": f"accepted baseline{where}: run {w['baseline_run_id']}"})
        else:
            reasons.append({"level": _WARN, "aspect": "baseline",
                            "text": f"no accepted baseline{where}: drift is not checked"})
        state = str(w.get("state"))
        detail = "; ".join(str(r) for r in w.get("reasons") or [])
        text = f"watch state{where}: {state.replace('_', ' ')}" + (f" — {detail}" if detail
                                                                    else "")
        level = _BAD if state == "drifted" else _WARN if state in _WATCH_STATES else _OK
        reasons.append({"level": level, "aspect": "watch", "text": text})
        if state in ("not_monitored", "stale"):
            flags.append(f"{_WATCH_STATES[state].upper()}{where}: "
                         + ("no accepted baseline, so nothing is compared and nothing can "
                            "alarm" if state == "not_monitored" else
                            "no conclusive drift check for too long"))
    if not watch:
        reasons.append({"level": _WARN, "aspect": "watch", "text": "watch state unknown"})
    # open incidents
    if open_incidents:
        reasons.append({"level": _BAD, "aspect": "incidents",
                        "text": f"{len(open_incidents)} open incident(s): "
                        + ", ".join(open_incidents)})
    else:
        reasons.append({"level": _OK, "aspect": "incidents", "text": "no open incident"})
    # unscored rate
    limit = DEFAULT_MAX_UNSCORED if max_unscored_rate is None else float(max_unscored_rate)
    if unscored_rate is None:
        reasons.append({"level": _WARN, "aspect": "unscored",
                        "text": "unscored rate of the newest run unknown"})
    else:
        over = float(unscored_rate) > limit
        reasons.append({"level": _BAD if over else _OK, "aspect": "unscored",
                        "text": f"newest run: {float(unscored_rate):.1%} of replies unscored "
                        f"({'above' if over else 'within'} the limit {limit:.0%})"})
    levels = {r["level"] for r in reasons}
    verdict = (NOT_TRUSTWORTHY if _BAD in levels else WATCH if _WARN in levels
               else TRUSTWORTHY)
    level = {NOT_TRUSTWORTHY: _BAD, WATCH: _WARN, TRUSTWORTHY: _OK}[verdict]
    order = {_BAD: 0, _WARN: 1, _OK: 2}
    reasons.sort(key=lambda r: order[r["level"]])
    return {"verdict": verdict, "level": level, "reasons": reasons, "flags": flags}
