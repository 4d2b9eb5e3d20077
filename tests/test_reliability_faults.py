"""A flaky judge: the fault matrix at reduced size (``make reliability`` runs 1 %–50 %)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import Sandbox, format_table
from benchmarks.harness.fault_matrix import fault_matrix


def test_fault_matrix_slows_the_run_but_changes_nothing(tmp_path: Path) -> None:
    report = fault_matrix(Sandbox(tmp_path), rates=(0.01, 0.5), limit=40)
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
    injected = report.injected()
    # Every kind was really injected, and most runs met many faults.
    assert all(injected[kind] > 0 for kind in injected), injected
    assert len(injected) == 11
    cells = {c.label: c for c in report.cells}
    # A ceiling case: persistent junk is unscored with its reason and inconclusive, not drift.
    junk = cells["junk@1"]
    assert junk.exit_code == 3 and junk.verdict == "inconclusive"
    assert junk.reasons == {"no_verdict_found": junk.newly_unscored}
    assert report.incidents == 0
