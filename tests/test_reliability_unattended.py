"""Unattended nights at reduced size (``make reliability`` runs the full matrix): hostile
HTTP 200 replies, poisoned token counts and stores, a Retry-After storm, refused
connections. Each test asserts the table row and the figures behind it."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import Sandbox, format_table
from benchmarks.harness.unattended import (
    MALFORMED_KINDS,
    malformed_matrix,
    poisoned_store,
    refused_connections,
    retry_after_storm,
)


def test_hostile_200_replies_end_every_run_with_a_status(tmp_path: Path) -> None:
    report = malformed_matrix(Sandbox(tmp_path), limit=30, rates=(1.0, 0.2),
                              streamed=("html",))
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
    assert report.clean_exit == 0
    cells = {c.label: c for c in report.cells}
    assert set(cells) == ({f"{k}@1" for k in MALFORMED_KINDS} | {f"{k}@0.2" for k in
                                                                MALFORMED_KINDS}
                          | {"html@1 (stream)", "html@0.2 (stream)"})
    for kind in MALFORMED_KINDS:
        full, partial = cells[f"{kind}@1"], cells[f"{kind}@0.2"]
        assert (full.exit_code, full.status) == (3, "inconclusive"), full
        assert full.replies > 0 and full.failed_malformed == full.replies, full
        assert (partial.exit_code, partial.status, partial.identical) == (0, "completed",
                                                                          True), partial
        assert partial.faults > 0 and full.faults > full.replies
    assert all(not c.noise and c.running_after == 0 for c in report.cells)
    # bad-usage: real verdicts, junk token counts dropped, never stored as text or < 0.
    assert [(c.rate, c.exit_code, c.identical) for c in report.usage_cells] == [
        (1.0, 0, True), (0.2, 0, True)]
    assert set(report.token_types) == {"null", "integer >= 0"}
    assert report.token_types["null"] >= 2 * 30  # every reply of the 100 % night


def test_store_poisoned_by_hand_is_closed_failed_and_the_next_night_completes(
    tmp_path: Path,
) -> None:
    report = poisoned_store(Sandbox(tmp_path), limit=40, kill_after=8)
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
    assert report.killed_after >= 8
    assert report.old_status == "failed" and "prompt_tokens 'lots'" in report.failed_because
    assert report.exits == [0, 0] and report.new_statuses == ["completed", "completed"]
    assert report.running_after == 0


def test_retry_after_storm_ends_at_the_deadline(tmp_path: Path) -> None:
    report = retry_after_storm(Sandbox(tmp_path), deadline_s=3.0, limit=20)
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
    assert (report.exit_code, report.status) == (3, "inconclusive")
    assert "deadline" in report.stopped_because
    assert report.replay_s <= 5.0 and report.elapsed_s <= 13.0
    assert report.requests > 0 and report.running_after == 0


def test_refused_connections_fail_fast_naming_the_url_without_secrets(tmp_path: Path) -> None:
    report = refused_connections(Sandbox(tmp_path))
    row = report.rows()[0]
    assert row.ok, format_table([row])
    assert report.exit_code == 1 and report.elapsed_s < 10
    assert report.url_named and report.leaked == [] and report.noise == []
