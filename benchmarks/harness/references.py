"""Kills during a replicated baseline: the nightly job SIGKILLed inside a reference run.

With ``drift.baseline_replicates: K`` the job that accepts a baseline replays the whole set
K − 1 more times (the *reference runs*) before any monitored night. A kill there must not
cost a reply twice, lose a reference, or stop the watching: the next job resumes the killed
reference, takes the ones still missing, checks them, and goes on to its own night.

Each attempt uses a fresh SQLite store and a recorded judge that does not repeat itself
(the ``rescore`` fault at 20 %: every replay re-draws other verdicts, so every reference
differs from the baseline, carries evidence, and the replication does not stop early). The job is
killed in one of two windows of reference run ``r`` (alternating ``r = 1, 2, …``):

* ``replay`` — once a random share of its replies is stored;
* ``closed`` — the moment it is closed, before (or while) its drift check is written.

Then one more ``judgecal run`` goes to the end. What must hold, per attempt: exit 0, 3 or
10; exactly K − 1 completed reference runs of the baseline, indexed 1 … K − 1, each with
one healthy check naming it; one monitored night after them, checked against the baseline
with the K − 1 references in its sequential evidence; no run left ``running``; and, item by
item, the judge asked after the kill exactly what was still owed — the replies of the
killed run not yet stored, plus one replay per later run (no stored reply paid again).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.crash import _Probe
from benchmarks.harness.sandbox import Row, Sandbox, kill, store_as_killed
from judgecal.recorded.server import RunningServer, start_server

RECORDING = "pandalm:gpt-3.5-turbo"
WINDOWS = ("replay", "closed")


@dataclass
class Attempt:
    window: str
    reference: int
    landed: str = ""
    """Where the kill really landed: ``replay``, ``closed`` or ``missed`` (the job had
    moved on or ended before the kill)."""
    exit_code: int | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class ReferenceKillReport:
    replicates: int
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def landed(self) -> list[Attempt]:
        return [a for a in self.attempts if a.landed in WINDOWS]

    def rows(self) -> list[Row]:
        landed = self.landed
        where = Counter(f"{a.landed} of reference {a.reference}" for a in landed)
        bad = [a for a in landed if a.problems]
        detail = "; ".join(f"{a.landed} of reference {a.reference}: {', '.join(a.problems)}"
                           for a in bad[:3])
        return [
            Row("crash", f"killed in a reference run (K = {self.replicates}): references "
                "kept, night monitored",
                f"{len(landed) - len(bad)}/{len(landed)} kills",
                bool(landed) and not bad,
                detail or ", ".join(f"{k} × {n}" for k, n in sorted(where.items()))),
        ]


def _runs(url: str) -> list[dict[str, Any]]:
    """Every run of the store, oldest first, with its summary and drift checks."""
    from sqlalchemy import create_engine, select

    from judgecal.db import schema
    from judgecal.db.engine import normalize_url

    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            runs = [dict(r) for r in conn.execute(
                select(schema.runs).order_by(schema.runs.c.started_at)).mappings()]
            checks = [dict(r) for r in conn.execute(select(schema.drift_checks)).mappings()]
            replies = conn.execute(
                select(schema.replies.c.run_id, schema.replies.c.item_id,
                       schema.replies.c.status)).all()
    finally:
        engine.dispose()
    for run in runs:
        run["summary"] = run["summary"] or {}  # JSON columns arrive decoded
        run["checks"] = [c for c in checks if c["run_id"] == run["run_id"]]
        run["stored"] = Counter(item for rid, item, status in replies
                                if rid == run["run_id"] and status != "failed")
    return runs


def _wait_and_kill(sandbox: Sandbox, cfg: str, url: str, window: str, reference: int,
                   share: float, items: int, timeout: float) -> str:
    """Start the job and kill it in ``window`` of reference run ``reference`` (the
    ``reference + 1``-th run of the store); return where the kill landed."""
    probe = _Probe(url)
    proc = sandbox.start("run", "--config", cfg, "--json")
    wanted = reference + 1
    landed = "missed"
    try:
        started = time.perf_counter()
        while proc.poll() is None and time.perf_counter() - started < timeout:
            runs = probe.runs()
            if runs > wanted:
                break  # the job has moved past that reference: no kill point this time
            if runs == wanted:
                status = probe.status()
                if window == "replay" and status == "running" \
                        and probe.stored_newest() >= share * items:
                    landed = "replay"
                    break
                if window == "closed" and status not in (None, "running"):
                    landed = "closed"
                    break
            time.sleep(0.003)
    finally:
        probe.close()
    if proc.poll() is not None:
        proc.communicate()
        return "missed"
    kill(proc)
    return landed


def kill_during_references(
    sandbox: Sandbox,
    *,
    attempts: int = 4,
    replicates: int = 3,
    limit: int = 120,
    bootstrap: int = 100,
    seed: int = 0,
    server: RunningServer | None = None,
    timeout: float = 300.0,
) -> ReferenceKillReport:
    """Kill the nightly job inside its reference runs ``attempts`` times (see module doc)."""
    if replicates < 2:
        raise ValueError("a replicated baseline needs replicates >= 2")
    own = server is None
    srv = server or start_server(recordings={"*": RECORDING}, sets_dir=sandbox.sets_dir,
                                 faults={"rescore": 0.2}, latency_ms=5.0)
    rng = random.Random(seed)
    report = ReferenceKillReport(replicates)
    try:
        for i in range(attempts):
            attempt = Attempt(WINDOWS[i % len(WINDOWS)], 1 + (i // len(WINDOWS)) % (replicates - 1))
            report.attempts.append(attempt)
            url = sandbox.sqlite_url(f"references-{i}.db")
            cfg = sandbox.write_config(
                f"references-{i}", base_url=srv.url, store=url,
                judge={"concurrency": 8, "parse_retries": 0},  # one request per reply
                run={"limit": limit, "bootstrap": bootstrap},
                drift={"auto_baseline": True, "bootstrap": bootstrap,
                       "baseline_replicates": replicates},
            )
            srv.reset_stats()
            attempt.landed = _wait_and_kill(sandbox, str(cfg), url, attempt.window,
                                            attempt.reference, rng.uniform(0.1, 0.9),
                                            limit, timeout)
            if attempt.landed == "missed":
                continue
            with store_as_killed(url) as killed_url:
                at_kill = _runs(killed_url)
            if len(at_kill) != attempt.reference + 1:
                attempt.landed = "missed"  # the next run had begun when the kill landed
                continue
            # A request the job sent just before it died may still be in the server's hands:
            # let it be counted before the count that the resume is measured from.
            time.sleep(0.3)
            requests_at_kill = _item_requests(srv)
            done = sandbox.judgecal("run", "--config", str(cfg), "--json", timeout=timeout)
            attempt.exit_code = done.returncode
            _check(attempt, replicates, at_kill, _runs(url), requests_at_kill,
                   _item_requests(srv), done.stderr)
        return report
    finally:
        if own:
            srv.stop()


def _item_requests(srv: RunningServer) -> Counter[str]:
    return Counter({k: int(v["requests"]) for k, v in srv.stats()["items"].items()})


def _check(attempt: Attempt, replicates: int, at_kill: list[dict[str, Any]],
           after: list[dict[str, Any]], requests_at_kill: Counter[str],
           requests_after: Counter[str], stderr: str) -> None:
    problems = attempt.problems
    if attempt.exit_code not in (0, 3, 10):
        problems.append(f"exit {attempt.exit_code}: {stderr.strip()[-200:]}")
    if any(r["status"] == "running" for r in after):
        problems.append("a run left running")
    if not after:
        problems.append("no run stored")
        return
    base = after[0]
    refs = [r for r in after if (r["summary"].get("reference_of") or {})
            .get("baseline_run_id") == base["run_id"]]
    indices = sorted(int(r["summary"]["reference_of"]["index"]) for r in refs)
    if indices != list(range(1, replicates)):
        problems.append(f"reference indices {indices}, expected 1..{replicates - 1}")
    for ref in refs:
        verdicts = [c["verdict"] for c in ref["checks"]]
        if ref["status"] != "completed" or verdicts != ["healthy"]:
            problems.append(f"reference {ref['summary']['reference_of']['index']}: "
                            f"{ref['status']}, checks {verdicts}")
    nights = [r for r in after[1:] if r not in refs]
    if len(nights) != 1:
        problems.append(f"{len(nights)} monitored night(s) after the references, expected 1")
    else:
        night = nights[0]
        checks = night["checks"]
        record = (checks[0]["record"] if len(checks) == 1 else None) or {}
        used = {((d.get("sequential") or {}).get("reference_runs"))
                for d in record.get("dimensions") or []}
        if len(checks) != 1 or checks[0]["baseline_run_id"] != base["run_id"] \
                or used != {replicates - 1}:
            problems.append(f"the night's check: {len(checks)} check(s), references used "
                            f"{sorted(map(str, used))}")
    # Item by item: what was owed after the kill, and nothing more.
    per_item = base["stored"]
    killed = at_kill[-1] if len(at_kill) == attempt.reference + 1 else None
    if killed is None:
        problems.append(f"{len(at_kill)} run(s) at the kill, expected {attempt.reference + 1}")
        return
    later = len(after) - len(at_kill)
    open_run = killed["status"] == "running"
    paid_again = 0
    for item, n in per_item.items():
        owed = later * n + (n - killed["stored"].get(item, 0) if open_run else 0)
        sent = requests_after.get(item, 0) - requests_at_kill.get(item, 0)
        if sent != owed:
            paid_again += sent > owed
            if sent < owed:
                problems.append(f"item {item}: {sent} request(s) after the kill, owed {owed}")
                break
    if paid_again:
        problems.append(f"{paid_again} item(s) requested beyond what was owed")
