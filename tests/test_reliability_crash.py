"""Crash safety: SIGKILL at random points (also mid-write), resume, compare exactly.

The full-size figures (20+ kills over the 999 PandaLM items) come from
``make reliability``; these tests run the same harness at a reduced size.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from benchmarks.harness import Sandbox, format_table
from benchmarks.harness.crash import crash_resume, kill_after_last_reply, kill_points_table
from benchmarks.harness.references import kill_during_references
from benchmarks.harness.sandbox import (
    PgDatabases,
    count_rows,
    integrity_check,
    kill,
    wal_uncommitted_frames,
    write_lock_held,
)
from judgecal.db import schema
from judgecal.recorded.server import RunningServer, start_server
from tests.conftest import SETS


@pytest.fixture
def recorded() -> Iterator[RunningServer]:
    with start_server(recordings={"*": "pandalm:gpt-3.5-turbo"}, sets_dir=SETS) as server:
        yield server


def _assert_rows_hold(report: object) -> None:
    rows = report.rows()  # type: ignore[attr-defined]
    failed = [r for r in rows if not r.ok]
    assert not failed, format_table(rows) + "\n" + kill_points_table(report)  # type: ignore[arg-type]


def test_random_sigkills_then_resume_equal_an_uninterrupted_run(tmp_path: Path) -> None:
    report = crash_resume(
        Sandbox(tmp_path), kills=5, limit=100, bootstrap=200, seed=7,
        modes={"progress": 0.5, "progress-mid-write": 0.5},
    )
    assert len(report.kills) >= 5
    _assert_rows_hold(report)


@pytest.mark.postgres
def test_sigkills_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    admin = os.environ["JUDGECAL_TEST_PG_URL"]
    with PgDatabases(admin) as dbs:
        report = crash_resume(
            Sandbox(tmp_path), kills=3, limit=40, bootstrap=100, seed=3,
            modes={"progress": 0.5, "progress-mid-write": 0.5},
            store_urls=lambda _i: dbs.create(),
        )
    _assert_rows_hold(report)


def _scalar(url: str, query: object) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)  # type: ignore[call-overload]
    finally:
        engine.dispose()


def test_kill_after_the_last_reply_is_stored_resumes_the_same_run(
    recorded: RunningServer, tmp_path: Path
) -> None:
    """Killed while the report is computed (every reply already paid for): the next
    invocation must finish *this* run, not start a new one and pay for everything again."""
    box = Sandbox(tmp_path)
    url = box.sqlite_url("s.db")
    cfg = box.write_config("n", base_url=recorded.url, store=url,
                           run={"limit": 120, "bootstrap": 20000})
    proc = box.start("run", "--config", str(cfg), "--json")
    n_replies = select(func.count()).select_from(schema.replies)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (tmp_path / "s.db").exists() and count_rows(url, "replies") >= 120:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before every reply was stored"
    kill(proc)
    assert _scalar(url, n_replies) == 120
    requests_at_kill = {k: v["requests"] for k, v in recorded.stats()["items"].items()}

    again = box.judgecal("run", "--config", str(cfg), "--json")
    assert again.returncode == 5, again.stderr  # no baseline: not monitored
    payload = json.loads(again.stdout)
    assert payload["resumed"] is True
    assert payload["summary"]["requested_now"] == 0
    after = {k: v["requests"] for k, v in recorded.stats()["items"].items()}
    assert after == requests_at_kill, "items were requested again after their replies were stored"
    assert count_rows(url, "runs") == 1
    assert count_rows(url, "metric_reports") == 1


def test_a_kill_while_the_report_is_computed_finishes_the_same_run(tmp_path: Path) -> None:
    probe = kill_after_last_reply(Sandbox(tmp_path), attempts=1, limit=60, bootstrap=5000,
                                  windows=("report",))
    assert probe.attempts == {"report": 1}
    assert probe.rows()[0].ok, probe


def test_a_kill_while_the_drift_check_is_computed_pays_nothing_again(tmp_path: Path) -> None:
    probe = kill_after_last_reply(Sandbox(tmp_path), attempts=1, limit=60, bootstrap=5000,
                                  windows=("drift check",))
    assert probe.attempts == {"drift check": 1}
    assert probe.extra_runs == 0 and probe.rerequested == 0, probe
    assert probe.without_followups == 0


def test_write_lock_probe_and_wal_reader(tmp_path: Path) -> None:
    """The harness's own instruments: the mid-write probe sees an open write transaction,
    and the WAL reader counts the frames of a transaction that never committed."""
    import sqlite3

    path = tmp_path / "x.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x BLOB)")
    assert not write_lock_held(path)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (zeroblob(10000))")
    assert write_lock_held(path)
    writer.execute("COMMIT")
    assert wal_uncommitted_frames(path) == 0
    # A transaction too big for the page cache spills frames into the WAL before its
    # commit; killing the process then would leave exactly such a torn tail.
    writer.execute("PRAGMA cache_size=2")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t SELECT zeroblob(4000) FROM (SELECT 1 UNION SELECT 2 "
                   "UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6)")
    assert wal_uncommitted_frames(path) > 0
    writer.execute("ROLLBACK")
    writer.close()
    assert integrity_check(path) == "ok"


def test_kill_reaps_the_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    kill(proc)
    assert proc.returncode == -9


def test_kills_inside_reference_runs_cost_nothing_and_stop_no_watching(tmp_path: Path) -> None:
    """A replicated baseline (K = 3) killed inside each of its two reference runs, mid-replay
    and just closed: the next job resumes or checks it, takes the one still missing, and
    monitors its night with both references; no stored reply is requested again."""
    report = kill_during_references(Sandbox(tmp_path), attempts=4, replicates=3, limit=80)
    landed = report.landed
    assert len(landed) >= 3, [a.landed for a in report.attempts]
    assert {a.reference for a in landed} == {1, 2}
    rows = report.rows()
    assert all(r.ok for r in rows), format_table(rows)
