"""Figures of the trust report, drawn with matplotlib and embedded as ``data:`` URIs.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot, so no global
state and no GUI backend) and saved as SVG — vector, so they print sharply — with text kept
as text (smaller files) and ids and dates fixed, so the same data gives the same bytes.
They are embedded as ``<img src="data:image/svg+xml;base64,…">``: a browser never runs
scripts inside an SVG shown as an image, and the report needs no network.

Text from the store (incident ids, severities) is drawn with ``parse_math=False`` so that a
``$`` cannot switch matplotlib into its math parser.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from typing import Any

__all__ = ["FIGURE_FORMATS", "parse_time", "timeline"]

FIGURE_FORMATS = ("svg", "png")
_MARKER_LIMIT = 60
"""Up to this many runs each run gets a marker on the line."""

_JUDGE = "#1d4ed8"
_CEILING = "#4b5563"
_INCIDENT = "#b91c1c"
_FINGERPRINT = "#7c3aed"


def parse_time(text: str) -> datetime:
    """The store's ISO-8601 UTC strings (``…Z``) as aware datetimes."""
    parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _data_uri(fig: Any, fmt: str) -> str:
    import matplotlib

    buf = io.BytesIO()
    if fmt == "svg":
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "judgecal"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        mime = "image/svg+xml"
    elif fmt == "png":
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        mime = "image/png"
    else:
        raise ValueError(f"figure format {fmt!r} is not one of {', '.join(FIGURE_FORMATS)}")
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def timeline(
    points: list[dict[str, Any]],
    *,
    metric: str,
    incidents: list[dict[str, Any]] | None = None,
    fingerprint_changes: list[str] | None = None,
    fmt: str = "svg",
) -> str:
    """Agreement over time for one dimension, as a ``data:`` URI.

    ``points``: ``{"at", "value", "ci_low", "ci_high", "ceiling", "status"}`` per run, oldest
    first. The judge's metric is a line in its interval band (with markers up to 60 runs);
    the human ceiling is a dashed reference line; incidents are red vertical
    lines with their open period shaded; fingerprint changes are violet dotted lines.
    """
    import matplotlib.dates as mdates
    import numpy as np
    from matplotlib.figure import Figure

    # A fixed size and a constrained layout: every figure of the report has the same width and
    # plot area, whatever its legend holds.
    fig = Figure(figsize=(8.0, 2.9), layout="constrained")
    ax = fig.add_subplot()
    xs = [parse_time(p["at"]) for p in points]
    value = np.array([_nan(p.get("value")) for p in points])
    low = np.array([_nan(p.get("ci_low")) for p in points])
    high = np.array([_nan(p.get("ci_high")) for p in points])
    ceiling = np.array([_nan(p.get("ceiling")) for p in points])
    x_num = np.array(mdates.date2num(xs)) if xs else np.array([])

    ax.fill_between(x_num, low, high, color=_JUDGE, alpha=0.16, lw=0, label="95% interval")
    if len(points) <= _MARKER_LIMIT:
        ax.plot(x_num, value, color=_JUDGE, lw=1.4, marker="o", ms=3.5, label=f"judge {metric}")
    else:
        ax.plot(x_num, value, color=_JUDGE, lw=1.2, label=f"judge {metric}")
    bad = np.array([p.get("status") not in (None, "completed") for p in points], dtype=bool)
    if bad.any() and not np.isnan(value[bad]).all():
        ax.plot(x_num[bad], value[bad], ls="none", marker="x", color="#92400e", ms=5,
                label="inconclusive run")
    finite = np.concatenate([a[~np.isnan(a)] for a in (value, low, high, ceiling)])
    if finite.size:
        lo_y, hi_y = float(finite.min()), float(finite.max())
    else:
        lo_y, hi_y = 0.0, 1.0
    pad = max(0.05, (hi_y - lo_y) * 0.12)
    ax.set_ylim(lo_y - pad, hi_y + pad * 1.8)
    marks = [parse_time(i["at"]) for i in incidents or [] if i.get("at")]
    marks += [parse_time(w) for w in fingerprint_changes or []]
    every = np.concatenate([x_num, np.array(mdates.date2num(marks)) if marks else []])
    if every.size:
        # The view spans the runs and every mark; an incident opened after the last run
        # (the usual case: the check runs after the run) stays visible.
        span = max(float(every.max() - every.min()), 1.0)
        ax.set_xlim(float(every.min()) - span * 0.02, float(every.max()) + span * 0.04)
    right = ax.get_xlim()[1]
    if not np.isnan(ceiling).all():
        # A step line that holds its last value to the right edge of the plot.
        last = ceiling[~np.isnan(ceiling)][-1]
        ax.step(np.append(x_num, right), np.append(ceiling, last), where="post",
                color=_CEILING, ls="--", lw=1.1, label="human ceiling")

    labelled = False
    for when in fingerprint_changes or []:
        x = float(mdates.date2num(parse_time(when)))
        ax.axvline(x, color=_FINGERPRINT, ls=":", lw=1.2,
                   label=None if labelled else "fingerprint changed")
        labelled = True
    labelled = False
    for inc in incidents or []:
        if not inc.get("at"):
            continue
        start = float(mdates.date2num(parse_time(inc["at"])))
        end = (float(mdates.date2num(parse_time(inc["resolved_at"])))
               if inc.get("resolved_at") else right)
        ax.axvspan(start, max(end, start), color=_INCIDENT, alpha=0.07, lw=0)
        ax.axvline(start, color=_INCIDENT, lw=1.3,
                   label=None if labelled else "incident (shaded while open)")
        labelled = True
        tag = str(inc.get("severity") or "incident")
        ax.text(start, 0.98, f" {tag}", transform=ax.get_xaxis_transform(), color=_INCIDENT,
                fontsize=7, va="top", ha="left", parse_math=False)

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel(metric)
    ax.grid(axis="y", color="#e5e7eb", lw=0.8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper left", ncols=min(len(handles), 5),
                   fontsize=7.5, frameon=False)
    return _data_uri(fig, fmt)
