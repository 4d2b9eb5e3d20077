"""Bounded reading: YAML alias bombs and 5,000-deep nesting are refused with exit 2 in
under a second; a score file broken on line 5 of 1,000 never stops the ingest silently
(``make reliability`` runs the same inputs)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import format_table
from benchmarks.harness.bounded import PAYLOADS, bounded_reading


def test_yaml_bombs_and_broken_score_files(tmp_path: Path) -> None:
    report = bounded_reading(tmp_path)
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
    # YAML: 4 payloads x (set.yaml through validate and run, run config, judge file).
    assert len(report.yaml) == 4 * len(PAYLOADS)
    for a in report.yaml:
        assert a.exit_code == 2 and a.elapsed_s < 1.0, (a.target, a.payload, a.message)
        assert not a.recursion and a.store_unchanged and a.named
        expected = "alias" if "alias" in a.payload else "nested deeper than"
        assert expected in a.message, a.message
    # Score files: the valid rows stored and line 5 reported, or (--atomic) nothing stored.
    assert len(report.ingest) == 8
    for g in report.ingest:
        assert g.bad_lines == [5], (g.label, g.message)
        if g.atomic:
            assert (g.exit_code, g.inserted, g.store_unchanged) == (2, 0, True), g.label
        else:
            assert (g.exit_code, g.inserted) == (10, g.rows - 1), g.label
