"""The trust report: one self-contained HTML file an auditor can read without judgecal.

Self-contained means: the CSS is inline, the figures are ``data:`` URIs, there is no script
and no external reference, and a Content-Security-Policy (``default-src 'none'``) tells the
browser to load nothing else — so nothing in the report executes, and opening it makes no
network request. Every piece of text from the store (item fields, judge replies, rater ids,
judge names, incident reasons) goes through Jinja2 autoescaping; the template never marks
anything as safe. A ``@media print`` block makes it readable on paper.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judgecal.io.markdown import truncate

if TYPE_CHECKING:
    from jinja2 import Environment

    from judgecal.audit import VerifyResult
    from judgecal.store import Store

__all__ = ["render_html", "render_trust_report", "write_trust_report"]

TEMPLATES = Path(__file__).parent / "templates"
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")


def _fmt_num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "—"
    return f"{number:.{digits}f}"


def _fmt_metric(m: Any) -> str:
    if not isinstance(m, dict):
        return "—"
    if m.get("value") is None:
        return f"undefined ({m.get('undefined') or 'no value'})"
    text = _fmt_num(m["value"])
    if m.get("ci_low") is not None and m.get("ci_high") is not None:
        text += f" [{_fmt_num(m['ci_low'])}, {_fmt_num(m['ci_high'])}]"
    return text


def _fmt_when(value: Any) -> str:
    if not value:
        return "—"
    text = str(value).replace("T", " ")
    if "." in text:
        text = text.split(".", 1)[0]
    return text.rstrip("Z")[:16] + " UTC"


def _fmt_pct(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1%}"


def _short(value: Any, n: int = 12) -> str:
    text = "" if value is None else str(value)
    return text.split(":", 1)[-1][:n]


def _describe(value: Any) -> str:
    """Plain text of an arbitrary JSON value (incident fields whose shape may vary)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return _fmt_num(value, 3)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_describe(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_describe(v) for v in value)
    return str(value)


def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name: all text is escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=_fmt_num, metric=_fmt_metric, when=_fmt_when, pct=_fmt_pct, short=_short,
        trunc=truncate, describe=_describe,
    )
    return env


def _points(value: Any) -> str:
    return "—" if value is None else f"{float(value):+.1f}"


def _incident_view(inc: dict[str, Any]) -> dict[str, Any]:
    """Plain-words lines for one incident (the shape of ``judgecal.incidents.get_incident``;
    unknown shapes fall back to a generic description). The blast radius and the corrected
    figures are tables (:mod:`judgecal.reports.incident_tables`)."""
    sev = inc.get("severity")
    sev = sev if isinstance(sev, dict) else {"level": sev}
    mag = sev.get("magnitude")
    if isinstance(mag, dict) and "points" in mag:
        base, cur = mag.get("baseline"), mag.get("current")
        base_v = base.get("value") if isinstance(base, dict) else base
        cur_v = cur.get("value") if isinstance(cur, dict) else cur
        magnitude = (f"{_points(mag['points'])} points of {mag.get('metric', 'agreement')} on "
                     f"{mag.get('dimension', '—')} ({_fmt_num(base_v)} → {_fmt_num(cur_v)})")
        interval = mag.get("interval95_points")
        if isinstance(interval, list | tuple) and len(interval) == 2 and None not in interval:
            magnitude += f"; 95% interval {_points(interval[0])} to {_points(interval[1])} points"
    else:
        magnitude = _describe(mag)
    dims = sev.get("dimensions")
    if isinstance(dims, list) and dims and all(isinstance(d, dict) for d in dims):
        dims_text = "; ".join(
            f"{d.get('dimension', '—')}: {_points(d.get('points'))} points of "
            f"{d.get('metric', '—')} ({d.get('severity') or 'no severity'})" for d in dims)
    else:
        dims_text = _describe(dims)
    rc = inc.get("root_cause")
    if isinstance(rc, dict):
        root = " — ".join(str(rc[k]) for k in ("title", "summary") if rc.get(k))
        root_code = str(rc.get("code") or "")
    else:
        root, root_code = _describe(rc), ""
    return {"level": sev.get("level"), "magnitude": magnitude,
            "dimensions": dims_text, "root_cause": root, "root_code": root_code}


def _confusion_cells(conf: dict[str, Any] | None) -> dict[str, Any] | None:
    """Confusion matrix with a shade per cell (share of its row), for the HTML table."""
    if not conf or not conf.get("matrix"):
        return None
    names = conf.get("names") or [str(v) for v in conf.get("labels", [])]
    rows = []
    for i, row in enumerate(conf["matrix"]):
        total = sum(row) or 1
        rows.append({
            "name": names[i] if i < len(names) else str(i),
            "total": sum(row),
            "cells": [
                {"count": c, "share": c / total, "diagonal": i == j,
                 "alpha": round(0.08 + 0.6 * c / total, 3) if c else 0.0}
                for j, c in enumerate(row)
            ],
        })
    return {"names": names, "rows": rows, "n": conf.get("n")}


def render_html(data: dict[str, Any], *, figure_format: str = "svg") -> str:
    """Render :func:`~judgecal.reports.data.trust_report_data` output as HTML."""
    from judgecal.reports.figures import timeline

    for judge in data["judges"]:
        changes = [f["at"] for f in judge["fingerprints"] if not f.get("first")]
        judge["figures"] = {
            dim: timeline(d["points"], metric=d["metric"], incidents=d["incidents"],
                          fingerprint_changes=changes, fmt=figure_format)
            for dim, d in judge["dimensions"].items()
            if d["points"]
        }
        for inc in judge["incidents"]:
            inc["view"] = _incident_view(inc)
        if judge["current"]:
            for entry in judge["current"]["dimensions"].values():
                entry["confusion_table"] = _confusion_cells(entry.get("confusion"))
    template = _environment().get_template("trust.html.j2")
    return template.render(report=data, csp=CSP)


def render_trust_report(
    store: Store,
    *,
    judge: str | None = None,
    since: str | None = None,
    verification: VerifyResult | None = None,
    figure_format: str = "svg",
    worst_items: int = 10,
    verify: bool = True,
) -> str:
    """The trust report of ``store`` as one HTML string (see the module docstring)."""
    from judgecal.reports.data import trust_report_data

    data = trust_report_data(store, judge=judge, since=since, verification=verification,
                             worst_items=worst_items, verify=verify)
    return render_html(data, figure_format=figure_format)


def write_trust_report(store: Store, path: str | Path, **options: Any) -> dict[str, Any]:
    """Write the trust report to ``path``; returns ``{"path", "bytes", "judges"}``.

    The file is written next to its destination and renamed into place, so a reader never
    sees half a report.
    """
    from judgecal.io.paths import cannot_write, make_parent
    from judgecal.reports.data import trust_report_data

    out = make_parent(path, "the report")  # before the work: a bad path costs nothing
    figure_format = options.pop("figure_format", "svg")
    data = trust_report_data(store, **options)
    html = render_html(data, figure_format=figure_format)
    tmp = out.with_name(out.name + ".partial")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise cannot_write(out, exc, "the report") from None
    return {"path": str(out), "bytes": len(html.encode("utf-8")),
            "judges": [j["name"] for j in data["judges"]],
            "runs": sum(len(j["runs"]) for j in data["judges"]),
            "audit_ok": None if data["audit"] is None else data["audit"]["ok"]}
