"""Overlap and double effects: ``judgecal run`` started twice at once, webhooks that are down.

The promise (to the nightly cron job): *one run at a time* — a second run of the
same judge and set exits with code 4 at once — and no effect happens twice: no duplicate
run, incident, notification or webhook delivery. A webhook endpoint that is down must not
hold up the run's record and is retried by a later run.

Scenarios:

* **pairs** — two ``judgecal run`` of one config started together, on a fresh store
  (both migrate and snapshot the set at the same moment) and on an existing one; SQLite
  and, when a server is given, PostgreSQL. Exactly one must run (its normal exit code),
  the other must exit 4; the store gains one run and no duplicate reply.
* **incident pair** — the same with a drifted judge (LLMBar GPT-4 verdicts accepted as the
  baseline, then ChatGPT's served under the same name): one incident, one
  ``incident.opened`` notification, one webhook delivery.
* **webhook down** — the incident is opened with the webhook endpoint down: the run still
  records it and exits 20 (the delay is measured); the notification stays pending; a later
  run, with the endpoint up, delivers it exactly once.
* **concurrent deliverers** — two runs of *different* judges (no shared lock) finish
  together while a notification is due, with a slow receiver: it must still be POSTed once.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.sandbox import (
    PgDatabases,
    Row,
    Sandbox,
    WebhookReceiver,
    free_port,
)
from judgecal.recorded.server import RunningServer, start_server

LLMBAR_RECORDINGS = {"gpt-4": "llmbar:GPT-4/Vanilla", "*": "pandalm:gpt-3.5-turbo"}
DRIFTED = {"gpt-4": "llmbar:ChatGPT/Vanilla", "*": "pandalm:gpt-3.5-turbo"}
LLMBAR_JUDGE = "llmbar-gpt4-vanilla.yaml"


@dataclass
class Pair:
    """Two processes of one config started together."""

    scenario: str
    codes: list[int]
    new_runs: int
    duplicate_replies: int
    elapsed_s: list[float]
    stderr: list[str]
    expected: int = 5
    """A first run of a judge has no baseline yet: exit 5 (not monitored)."""

    @property
    def ok(self) -> bool:
        return sorted(self.codes) == sorted([self.expected, 4]) and self.new_runs == 1 \
            and self.duplicate_replies == 0


@dataclass
class OverlapReport:
    pairs: list[Pair] = field(default_factory=list)
    incidents: int = -1
    incident_notifications: int = -1
    webhook_posts: dict[str, int] = field(default_factory=dict)
    down_exit: int = -1
    down_elapsed_s: float = 0.0
    up_elapsed_s: float = 0.0
    down_incident_stored: bool = False
    down_pending: int = 0
    later_exit: int = -1
    later_posts: dict[str, int] = field(default_factory=dict)
    later_delivered: int = 0
    concurrent_codes: list[int] = field(default_factory=list)
    concurrent_posts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def rows(self) -> list[Row]:
        plain = [p for p in self.pairs if p.scenario != "incident"]
        kinds = Counter(p.scenario for p in plain)
        bad = [p for p in plain if not p.ok]
        loser_s = [p.elapsed_s[p.codes.index(4)] for p in plain if 4 in p.codes]
        bad_text = "; ".join(f"{p.scenario}: exits {p.codes}, {p.new_runs} runs, "
                             f"{p.stderr[0][-160:] or p.stderr[1][-160:]}" for p in bad[:2])
        inc = [p for p in self.pairs if p.scenario == "incident"]
        dup_posts = sum(n - 1 for n in self.webhook_posts.values() if n > 1)
        dup_replies = sum(p.duplicate_replies for p in self.pairs)
        later_dups = sum(n - 1 for n in self.later_posts.values() if n > 1)
        conc_dups = sum(n - 1 for n in self.concurrent_posts.values() if n > 1)
        rows = [
            Row("overlap", "two runs started together: one runs, the other exits 4",
                f"{len(plain) - len(bad)}/{len(plain)} pairs", not bad,
                ", ".join(f"{n} {k}" for k, n in kinds.items())
                + (f"; the second exits after {min(loser_s):.1f}-{max(loser_s):.1f} s"
                   if loser_s else "") + (f"; FAILED: {bad_text}" if bad else "")),
            Row("overlap", "duplicate runs / replies / incidents / webhook deliveries",
                f"{sum(max(0, p.new_runs - 1) for p in self.pairs)} / {dup_replies} / "
                f"{max(0, self.incidents - 1)} / {dup_posts}",
                all(p.ok for p in inc) and bool(inc) and self.incidents == 1
                and self.incident_notifications == 1 and dup_posts == 0 and dup_replies == 0,
                f"drifted judge, both started together: exits {inc[0].codes if inc else '-'}, "
                f"{self.incidents} incident, {self.incident_notifications} notification"),
            Row("overlap", "webhook down: the run records the incident and exits 20",
                f"exit {self.down_exit} in {self.down_elapsed_s:.1f} s "
                f"(endpoint up: {self.up_elapsed_s:.1f} s)",
                self.down_exit == 20 and self.down_incident_stored and self.down_pending >= 1,
                f"{self.down_pending} notification(s) left pending for a later run"),
            Row("overlap", "webhook down: delivered by a later run, exactly once",
                f"{self.later_delivered} delivered, {later_dups} duplicate",
                self.later_delivered >= 1 and later_dups == 0 and self.later_exit in (10, 20)),
            Row("overlap", "two judges finishing together: a due notification POSTed once",
                f"{sum(self.concurrent_posts.values())} POSTs of "
                f"{len(self.concurrent_posts)} notification(s)",
                bool(self.concurrent_posts) and conc_dups == 0
                and sorted(self.concurrent_codes) != [],
                f"exits {self.concurrent_codes}"
                + (f"; {conc_dups} duplicate delivery" if conc_dups else "")),
        ]
        return rows


def _runs_and_dups(url: str) -> tuple[int, int]:
    """(runs, duplicate replies) in a store; (0, 0) before its schema exists."""
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from judgecal.db import schema
    from judgecal.db.engine import normalize_url

    r = schema.replies.c
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            runs = conn.execute(select(func.count()).select_from(schema.runs)).scalar()
            groups = (
                select(func.count().label("n"))
                .select_from(schema.replies)
                .group_by(r.run_id, r.item_id, r.dimension, r.variant)
                .having(func.count() > 1)
                .subquery()
            )
            dups = conn.execute(select(func.coalesce(func.sum(groups.c.n - 1), 0))).scalar()
    except (OperationalError, ProgrammingError):
        return 0, 0
    finally:
        engine.dispose()
    return int(runs or 0), int(dups or 0)


def run_pair(sandbox: Sandbox, cfg: str, store_url: str, scenario: str,
             expected: int = 5, timeout: float = 600) -> Pair:
    """Start two ``judgecal run --config cfg`` together and see what each did."""
    before, _ = _runs_and_dups(store_url) if _store_exists(store_url) else (0, 0)
    started = time.perf_counter()
    procs = [sandbox.start("run", "--config", cfg, "--json") for _ in range(2)]
    codes, errs, elapsed = [], [], []
    for proc in procs:
        _out, err = proc.communicate(timeout=timeout)
        codes.append(proc.returncode)
        errs.append(err)
        elapsed.append(time.perf_counter() - started)
    after, dups = _runs_and_dups(store_url)
    return Pair(scenario, codes, after - before, dups, elapsed, errs, expected)


def _store_exists(url: str) -> bool:
    from benchmarks.harness.sandbox import sqlite_path

    path = sqlite_path(url)
    return path is None or path.exists()


def overlap(
    sandbox: Sandbox,
    *,
    pairs: int = 4,
    limit: int = 60,
    pg_admin_url: str | None = None,
    server: RunningServer | None = None,
    incident_limit: int | None = None,
    concurrent_deliverers: bool = True,
) -> OverlapReport:
    """All scenarios of the module doc; ``pairs`` plain pairs per store kind."""
    own = server is None
    srv = server or start_server(recordings=dict(LLMBAR_RECORDINGS), sets_dir=sandbox.sets_dir,
                                 latency_ms=10)
    report = OverlapReport()
    pg = PgDatabases(pg_admin_url) if pg_admin_url else None
    try:
        kinds: list[tuple[str, Any]] = [("SQLite", lambda i: sandbox.sqlite_url(f"ov-{i}.db"))]
        if pg is not None:
            kinds.append(("PostgreSQL", lambda _i: pg.create()))
        for label, make in kinds:
            existing = make("existing")
            _prepare(sandbox, srv, existing, limit)
            for i in range(pairs):
                fresh = i % 2 == 0
                url = make(f"{label}-{i}") if fresh else existing
                cfg = sandbox.write_config(f"ov-{label}-{i}", base_url=srv.url, store=url,
                                           run={"limit": limit, "min_items": 10})
                scenario = f"{'fresh' if fresh else 'existing'} {label}"
                report.pairs.append(run_pair(sandbox, str(cfg), url, scenario))
        _incident_scenarios(sandbox, srv, report, incident_limit, concurrent_deliverers)
        return report
    finally:
        if pg is not None:
            pg.close()
        if own:
            srv.stop()


def _prepare(sandbox: Sandbox, srv: RunningServer, url: str, limit: int) -> None:
    """An existing store: migrated, the set snapshotted, one finished run."""
    cfg = sandbox.write_config("ov-prepare", base_url=srv.url, store=url,
                               run={"limit": limit, "min_items": 10})
    done = sandbox.judgecal("run", "--config", str(cfg), "--json")
    if done.returncode not in (0, 5):
        raise RuntimeError(f"preparing {url} failed: {done.stderr}")


def _drift_config(sandbox: Sandbox, srv: RunningServer, name: str, url: str, hook: str,
                  limit: int | None, judge_name: str = "llmbar-judge") -> str:
    run: dict[str, Any] = {"min_items": 10}
    if limit:
        run["limit"] = limit
    return str(sandbox.write_config(
        name, base_url=srv.url, store=url, set_path=sandbox.sets_dir / "llmbar",
        judge_file=LLMBAR_JUDGE, judge={"name": judge_name, "concurrency": 16},
        run=run, drift={"auto_baseline": True},
        notify={"webhook": {"url": hook, "tries_per_run": 3, "timeout_s": 2.0}},
    ))


def _outbox(url: str) -> list[dict[str, Any]]:
    from judgecal import notify
    from judgecal.store import open_store

    store = open_store(url)
    try:
        return notify.outbox(store)
    finally:
        store.close()


def _incident_scenarios(sandbox: Sandbox, srv: RunningServer, report: OverlapReport,
                        limit: int | None, concurrent: bool) -> None:
    from sqlalchemy import create_engine, update

    from benchmarks.harness.sandbox import count_rows
    from judgecal.db import schema
    from judgecal.db.engine import normalize_url

    # -- incident pair: a drifted judge, both started together, the webhook up
    with WebhookReceiver() as hook:
        url = sandbox.sqlite_url("ov-incident.db")
        cfg = _drift_config(sandbox, srv, "ov-incident", url, hook.url, limit)
        srv.configure(recordings=dict(LLMBAR_RECORDINGS))
        first = sandbox.judgecal("run", "--config", cfg, "--json")
        if first.returncode not in (0, 5):
            report.problems.append(f"baseline run exited {first.returncode}: {first.stderr}")
        srv.configure(recordings=dict(DRIFTED))
        pair = run_pair(sandbox, cfg, url, "incident", expected=20)
        report.pairs.append(pair)
        report.up_elapsed_s = max(pair.elapsed_s[i] for i, c in enumerate(pair.codes) if c != 4) \
            if 4 in pair.codes else max(pair.elapsed_s)
        report.incidents = count_rows(url, "incidents")
        report.incident_notifications = sum(
            1 for n in _outbox(url) if str(n["event"]).startswith("incident.opened"))
        report.webhook_posts = dict(hook.deliveries())

    # -- webhook down: the incident is recorded anyway and delivered by a later run
    port = free_port()
    down_url = f"http://127.0.0.1:{port}/hook"
    url = sandbox.sqlite_url("ov-down.db")
    cfg = _drift_config(sandbox, srv, "ov-down", url, down_url, limit)
    srv.configure(recordings=dict(LLMBAR_RECORDINGS))
    sandbox.judgecal("run", "--config", cfg, "--json")
    srv.configure(recordings=dict(DRIFTED))
    down = sandbox.judgecal("run", "--config", cfg, "--json")
    report.down_exit = down.returncode
    report.down_elapsed_s = down.elapsed_s
    report.down_incident_stored = count_rows(url, "incidents") == 1
    report.down_pending = sum(1 for n in _outbox(url) if n["status"] == "pending")

    def make_due() -> None:
        # Time passes: every pending notification is due again.
        engine = create_engine(normalize_url(url))
        with engine.begin() as conn:
            conn.execute(update(schema.notifications)
                         .where(schema.notifications.c.status == "pending")
                         .values(next_attempt_at="2000-01-01T00:00:00Z"))
        engine.dispose()

    # -- concurrent deliverers: two judges (two locks) finish together, a slow receiver
    if concurrent:
        make_due()
        cfg_b = _drift_config(sandbox, srv, "ov-down-b", url, down_url, limit,
                              judge_name="llmbar-judge-b")
        with WebhookReceiver(port=port, delay_s=1.0) as hook:
            procs = [sandbox.start("run", "--config", c, "--json") for c in (cfg, cfg_b)]
            for proc in procs:
                proc.communicate(timeout=600)
                report.concurrent_codes.append(proc.returncode)
            report.concurrent_posts = dict(hook.deliveries())

    # -- a later night, the endpoint up: what is still pending is delivered, once
    make_due()
    with WebhookReceiver(port=port) as hook:
        later = sandbox.judgecal("run", "--config", cfg, "--json")
        report.later_exit = later.returncode
        again = sandbox.judgecal("run", "--config", cfg, "--json")
        if again.returncode not in (10, 20):
            report.problems.append(f"night after exited {again.returncode}")
        posts = hook.deliveries()
    # Deliveries of the concurrent step count too: over all nights, one POST per notification.
    total = Counter(report.concurrent_posts) + posts
    report.later_posts = dict(total)
    report.later_delivered = sum(1 for n in _outbox(url) if n["status"] == "delivered")


__all__ = ["OverlapReport", "Pair", "overlap", "run_pair"]
