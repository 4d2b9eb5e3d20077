"""Is the judge really watched? A night with no baseline exits 5 and says so on the webhook;
an inconclusive night more than 36 hours after the last conclusive check exits 6; and
``judgecal status`` agrees with every night (``make reliability`` runs the same nights)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import Sandbox, format_table
from benchmarks.harness.watched import watch_nights


def test_no_baseline_and_stale_nights_are_loud(tmp_path: Path) -> None:
    report = watch_nights(Sandbox(tmp_path), limit=30)
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
    assert [(n.label, n.exit_code, n.status_code, n.state) for n in report.nights] == [
        ("no baseline", 5, 5, "not_monitored"),
        ("baseline accepted", 0, 0, "healthy"),
        ("35 h", 3, 3, "inconclusive"),
        ("37 h", 6, 6, "stale"),
    ]
    assert [n.events for n in report.nights] == [["watch.not_monitored"], [], [],
                                                 ["watch.stale"]]
    stale = report.nights[-1]
    assert stale.hours_since_conclusive is not None and stale.hours_since_conclusive > 36
