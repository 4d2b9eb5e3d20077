"""Reports for people: the HTML trust report and safe Markdown.

* :func:`render_trust_report` / :func:`write_trust_report` — the self-contained HTML trust
  report an auditor reads (:mod:`judgecal.reports.trust`), built from
  :func:`trust_report_data` (:mod:`judgecal.reports.data`).
* :func:`escape_markdown` and friends — put untrusted text into Markdown
  (:mod:`judgecal.io.markdown`).

Importing this package is cheap: Jinja2, matplotlib and numpy load only when a report is
rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from judgecal.io.markdown import (
    escape_markdown,
    escape_markdown_cell,
    escape_markdown_inline,
    markdown_fence,
    truncate,
)

if TYPE_CHECKING:
    from pathlib import Path

    from judgecal.audit import VerifyResult
    from judgecal.store import Store

__all__ = [
    "escape_markdown",
    "escape_markdown_cell",
    "escape_markdown_inline",
    "markdown_fence",
    "render_trust_report",
    "truncate",
    "trust_report_data",
    "write_trust_report",
]


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
    """The trust report of ``store`` as one self-contained HTML string."""
    from judgecal.reports import trust

    return trust.render_trust_report(store, judge=judge, since=since, verification=verification,
                                     figure_format=figure_format, worst_items=worst_items,
                                     verify=verify)


def write_trust_report(store: Store, path: str | Path, **options: Any) -> dict[str, Any]:
    """Write the trust report to ``path`` (see :mod:`judgecal.reports.trust`)."""
    from judgecal.reports import trust

    return trust.write_trust_report(store, path, **options)


def trust_report_data(store: Store, **options: Any) -> dict[str, Any]:
    """The data the trust report shows (see :func:`judgecal.reports.data.trust_report_data`)."""
    from judgecal.reports import data

    return data.trust_report_data(store, **options)
