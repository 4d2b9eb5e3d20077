"""Overlap and double effects: two runs started together, webhooks down or raced.

``make reliability`` runs more pairs; these are the reduced versions, plus deterministic
in-process races for the two places two processes meet before the run lock: opening
(migrating) a fresh store and snapshotting the calibration set, and the notification outbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import Sandbox, format_table
from benchmarks.harness.overlap import overlap, run_pair
from benchmarks.harness.sandbox import WebhookReceiver
from judgecal import notify
from judgecal.calibration import load_set
from judgecal.config import WebhookSettings
from judgecal.db.engine import make_engine
from judgecal.db.migrations import migrate, pending
from judgecal.recorded.server import start_server
from judgecal.store import open_store
from tests.conftest import SETS


def _together(n: int, fn: Callable[[], Any]) -> list[BaseException]:
    """Call ``fn`` from ``n`` threads released at the same moment; the exceptions raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def go() -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_migrating_a_fresh_store_from_many_processes_at_once(store_url: str) -> None:
    engines = [make_engine(store_url) for _ in range(4)]
    try:
        it = iter(engines)
        lock = threading.Lock()

        def one() -> None:
            with lock:
                engine = next(it)
            migrate(engine)

        assert _together(4, one) == []
        assert pending(engines[0]) == []
    finally:
        for e in engines:
            e.dispose()


def test_snapshotting_one_set_from_many_processes_at_once(store_url: str) -> None:
    cs = load_set(SETS / "pandalm")
    stores = [open_store(store_url) for _ in range(3)]
    try:
        it = iter(stores)
        lock = threading.Lock()

        def one() -> None:
            with lock:
                store = next(it)
            store.save_set(cs)

        assert _together(3, one) == []
        assert len(stores[0].set_snapshot(cs.version)["items"]) == len(cs.items)
    finally:
        for s in stores:
            s.close()


def test_two_deliverers_post_a_notification_once(tmp_path: Path) -> None:
    """Two runs of different judges (no shared lock) deliver the outbox at the same time."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    with store.engine.begin() as conn:
        notify.enqueue(conn, "incident.opened", "incident.opened:INC-1", {"x": 1})
    store.close()
    with WebhookReceiver(delay_s=0.3) as hook:
        settings = WebhookSettings(url=hook.url, timeout_s=5)
        stores = [open_store(url) for _ in range(2)]
        it = iter(stores)
        lock = threading.Lock()

        def one() -> None:
            with lock:
                s = next(it)
            notify.deliver_pending(s, settings)

        assert _together(2, one) == []
        for s in stores:
            s.close()
        assert hook.deliveries() == {"incident.opened:INC-1": 1}
    store = open_store(url)
    assert [n["status"] for n in notify.outbox(store)] == ["delivered"]
    store.close()


def test_two_runs_started_together_on_a_fresh_store(store_url: str, tmp_path: Path) -> None:
    box = Sandbox(tmp_path)
    with start_server(recordings={"*": "pandalm:gpt-3.5-turbo"}, sets_dir=SETS,
                      latency_ms=10) as srv:
        cfg = box.write_config("n", base_url=srv.url, store=store_url,
                               run={"limit": 60, "min_items": 10})
        pair = run_pair(box, str(cfg), store_url, "fresh")
    assert sorted(pair.codes) == [4, 5], pair.stderr  # 5: the winner has no baseline yet
    assert "another judgecal run holds the lock" in pair.stderr[pair.codes.index(4)]
    assert pair.new_runs == 1 and pair.duplicate_replies == 0


def test_overlap_incident_and_webhook_scenarios(tmp_path: Path) -> None:
    # Plain pairs and concurrent deliverers are covered above; the incident pair and the
    # webhook nights run here.
    report = overlap(Sandbox(tmp_path), pairs=0, incident_limit=150,
                     concurrent_deliverers=False)
    rows = [r for r in report.rows() if not r.check.startswith(("two runs started together",
                                                                 "two judges finishing"))]
    assert all(r.ok for r in rows), format_table(rows) + f"\n{report.problems}"
    assert report.incidents == 1
