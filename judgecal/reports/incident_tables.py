"""An incident's blast radius and stored corrected figures as table rows for the report.

Both are read from the incident (:func:`judgecal.incidents.get_incident`): the blast radius
is ``severity.blast_radius`` (the newest ``blast_radius`` event, written by ``judgecal
scores link``; keys in :mod:`judgecal.incidents`), the corrected figures the newest
``corrected`` event (written by ``judgecal incidents correct``, read through
:func:`judgecal.incidents.corrected.latest_correction`). Every figure is one cell ``{"value",
"ci_low", "ci_high"}`` — one interval per figure — and every row is plain data (the template
escapes it).
"""

from __future__ import annotations

from typing import Any

from judgecal.incidents.corrected import latest_correction
from judgecal.incidents.markdown import pct, window_of

__all__ = ["METHODS", "blast_tables", "correction_table"]

METHODS = {"ppi++": "PPI++ (calibration items' human and judge labels)",
           "shift_robust": "shift-robust (confusion-matrix inversion / Rogan–Gladen)",
           "window_sample_ppi++": "PPI++ on a hand-labelled sample of the window",
           "re_judged": "re-judged by the pinned healthy judge",
           "raw": "raw (no correction)"}
"""The correction methods in words."""


def _figure(value: Any, interval: Any = None) -> dict[str, Any]:
    lo, hi = (interval if isinstance(interval, list | tuple) and len(interval) == 2
              else (None, None))
    return {"value": value, "ci_low": lo, "ci_high": hi}


def blast_tables(blast: dict[str, Any] | None) -> dict[str, Any] | None:
    """The blast radius as tables: ``summary`` (one row), ``customers``, ``dimensions``,
    ``segments`` (lists of rows; empty when the event did not record them), or None when the
    incident is not linked to production scores yet."""
    if not isinstance(blast, dict) or not blast:
        return None
    window = window_of(blast)
    wdata = blast.get("window") if isinstance(blast.get("window"), dict) else {}
    affected_customers = blast.get("customers_affected", blast.get("affected_customers"))
    summary = {
        "start": window[0] if window else None,
        "end": window[1] if window else None,
        "end_reason": (wdata or {}).get("end_reason"),
        "affected_scores": blast.get("affected_scores"),
        "scores_in_window": blast.get("scores_in_window", blast.get("total_scores")),
        "pct_traffic": pct(blast, ("pct_traffic", "traffic_pct", "traffic_percent"),
                           ("traffic_share",)),
        "customers_affected": affected_customers,
        "customers_active": blast.get("customers_active", blast.get("total_customers")),
        "pct_customers": pct(blast, ("pct_customers", "customers_pct", "named_customers_pct"),
                             ("customers_share", "customer_share")),
        "computed_at": blast.get("computed_at") or blast.get("at"),
        "source": blast.get("source"),
    }
    customers = []
    for c in blast.get("top_customers") or []:
        if isinstance(c, dict):
            customers.append({"customer": c.get("customer"),
                              "affected_scores": c.get("affected_scores"),
                              "scores_in_window": c.get("scores_in_window"),
                              "pct_of_their_traffic": c.get("pct_of_their_traffic")})
    if not customers and isinstance(blast.get("customers"), dict):
        customers = [{"customer": k, "affected_scores": v, "scores_in_window": None,
                      "pct_of_their_traffic": None}
                     for k, v in sorted(blast["customers"].items(), key=lambda kv: -kv[1])]
    dimensions = [
        {"dimension": d.get("dimension"), "affected_scores": d.get("affected_scores"),
         "pct_of_affected": d.get("pct_of_affected"),
         "mean_before": d.get("mean_before"), "mean_after": d.get("mean_after"),
         "change": _figure(d.get("delta"), d.get("ci95"))}
        for d in blast.get("by_dimension") or [] if isinstance(d, dict)
    ]
    segments = [
        {"segment": s.get("segment"), "affected_scores": s.get("affected_scores"),
         "pct_of_affected": s.get("pct_of_affected"), "mean_score": s.get("mean_score")}
        for s in blast.get("by_segment") or [] if isinstance(s, dict)
    ]
    return {"summary": summary, "customers": customers, "dimensions": dimensions,
            "segments": segments}


def correction_table(incident: dict[str, Any]) -> dict[str, Any] | None:
    """The incident's newest stored corrected figures: per dimension, shown (raw) against
    corrected, each with its interval, and the method used; None when there are none."""
    data = latest_correction(incident)
    if data is None:
        return None
    rows = []
    for f in data.get("figures") or []:
        corrected = f.get("corrected") or None
        method = (corrected or {}).get("method")
        rows.append({
            "dimension": f.get("dimension"),
            "target": f.get("target"),
            "n_window": f.get("n_window"),
            "shown": f.get("shown"),
            "corrected": corrected,
            "method": None if method is None else METHODS.get(str(method), str(method)),
            "why_none": f.get("why_none"),
            "messages": [str(m) for m in f.get("messages") or []],
        })
    return {"version": data.get("version"), "correction_id": data.get("correction_id"),
            "at": data.get("at"), "confidence": data.get("confidence") or 0.95,
            "rows": rows}
