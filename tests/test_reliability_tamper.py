"""Label tamper: the stored calibration set edited in SQL after a run fails ``judgecal audit
verify`` (exit 1) naming the row (``make reliability`` runs the same tampers)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import Sandbox, format_table
from benchmarks.harness.tamper import label_tamper


def test_every_tamper_with_the_stored_set_is_named(tmp_path: Path) -> None:
    report = label_tamper(Sandbox(tmp_path), limit=20, seed=3)
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
    assert report.untouched_exit == 0 and report.entries >= 4
    assert [t.name for t in report.tampers] == [
        "label flipped", "label deleted", "label added", "item text edited", "item deleted"]
    for t in report.tampers:
        assert t.exit_code == 1 and t.named in t.output, t.output
        assert "does NOT verify" in t.output
