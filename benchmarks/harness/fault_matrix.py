"""A flaky judge: every fault kind of the recorded judge at rates from 1 % to 50 %.

The promise: *a flaky judge (429, 5xx, timeouts, junk replies) slows the run
down but neither crashes it nor raises a false drift alarm; too many failures make the run
inconclusive, not drifted.*

All cells share one store. A fault-free run comes first and is accepted as the judge's
baseline (``drift.auto_baseline``); every cell is then a full ``judgecal run`` (the real
command, called in-process for speed) against the same recorded judge with one fault kind
at one rate, followed by the run's own drift check against that baseline. Per cell class:

* **retryable** (429 with and without ``Retry-After``, 500/502/503, read timeouts, dropped
  connections, replies and streams without a finish reason): every reply must equal the
  fault-free run's, the exit code must be the fault-free one, and the drift check must be
  healthy (no incident, no warning).
* **re-asked** (junk and empty replies): re-asked ``parse_retries`` times; a reply that
  stays junk is *unscored* with its reason; no item may get a different score.
* **final** (``context_length_exceeded``): unscored with that reason, requested once.
* **ceiling**: failures past ``run.max_unscored_rate`` end the run *inconclusive*
  (exit 3), never drifted.

At the end the store must hold no incident and no incident notification at all. The
hostile HTTP 200 kinds (``html`` … ``bad-usage``) are run by :mod:`.unattended`, and
``echo-key`` by :mod:`.leaks`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.sandbox import Row, Sandbox, cli_in_process, count_rows
from judgecal.recorded.faults import FAULT_KINDS
from judgecal.recorded.server import RunningServer, start_server

RETRYABLE = ("429", "429-no-retry-after", "500", "502", "503", "timeout", "drop",
             "truncated-stream")
REASKED = ("junk", "empty")
FINAL = ("context-length",)
STREAMED = ("drop", "truncated-stream", "500")
"""Kinds also run with ``stream: true`` (a stream cut short is a different failure)."""

FULL_RATES = (0.01, 0.05, 0.2, 0.5)
QUICK_RATES = (0.01, 0.2, 0.5)

EXIT_OK, EXIT_INCONCLUSIVE, EXIT_WARNING, EXIT_INCIDENT = 0, 3, 10, 20

_RETRY = {"max_retries": 24, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 0.5}
"""Judge settings of the matrix: enough retries that no item exhausts them at 50 % (the
draws are seeded, so this is a fixed fact, not luck), short backoff, and a read timeout
well below the ``timeout`` fault's sleep."""


@dataclass
class Cell:
    """One run of the matrix."""

    kind: str
    rate: float
    stream: bool
    cls: str
    """``clean``, ``retryable``, ``reasked``, ``final``, ``mixed`` or ``ceiling``."""
    exit_code: int = -1
    status: str = ""
    verdict: str = ""
    elapsed_s: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    identical: bool = False
    changed_scores: int = 0
    """Items scored here and in the fault-free run with a *different* score."""
    newly_unscored: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    requested_more_than_once: int = 0
    """``final`` cells: items requested more often than in the fault-free run."""
    error: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}@{self.rate:g}{' (stream)' if self.stream else ''}"


@dataclass
class FaultReport:
    """Every cell of the matrix and the store-wide counts."""

    items: int
    cells: list[Cell] = field(default_factory=list)
    incidents: int = 0
    incident_notifications: int = 0
    clean_exit: int = 0

    def injected(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for c in self.cells:
            total.update(c.faults)
        return total

    def rows(self) -> list[Row]:
        cells = self.cells
        by = {k: [c for c in cells if c.cls == k] for k in
              ("retryable", "reasked", "final", "mixed", "ceiling")}
        injected = self.injected()
        planned = set(RETRYABLE + REASKED + FINAL) | set(injected)
        kinds_text = ", ".join(f"{k} {injected.get(k, 0)}" for k in FAULT_KINDS if k in planned)
        crashed = [c for c in cells if c.exit_code not in (EXIT_OK, EXIT_INCONCLUSIVE,
                                                           EXIT_WARNING, EXIT_INCIDENT)]
        same = [c for c in by["retryable"] + by["mixed"] if c.identical
                and c.exit_code == self.clean_exit and c.verdict == "healthy"]
        not_same = [c.label for c in by["retryable"] + by["mixed"] if c not in same]
        reasked = by["reasked"]
        wrong = sum(c.changed_scores for c in reasked + by["final"] + by["retryable"])
        unscored = sum(c.newly_unscored for c in reasked)
        reasons: Counter[str] = Counter()
        for c in reasked:
            reasons.update(c.reasons)
        final = by["final"]
        final_unscored = sum(c.reasons.get("context_length_exceeded", 0) for c in final)
        final_twice = sum(c.requested_more_than_once for c in final)
        ceiling = by["ceiling"]
        ceiling_ok = [c for c in ceiling if c.exit_code == EXIT_INCONCLUSIVE
                      and c.verdict == "inconclusive"]
        false_alarms = [c.label for c in by["retryable"] + by["mixed"]
                        if c.verdict not in ("healthy", "")]
        watched = [c for c in reasked if c.verdict == "warning"]
        reasked_bad = [c.label for c in reasked if c.verdict not in ("healthy", "warning")
                       or (c.verdict == "warning" and c.exit_code != EXIT_WARNING)]
        rates = sorted({c.rate for c in cells if c.cls in ("retryable", "reasked")})
        return [
            Row("faults", "faults injected by kind", f"{sum(injected.values())} in "
                f"{len(cells)} runs of {self.items} items", sum(injected.values()) > 0,
                kinds_text + f"; rates {', '.join(f'{r:.0%}' for r in rates)}"),
            Row("faults", "runs that crashed (exit other than 0/3/10/20)", str(len(crashed)),
                not crashed, "; ".join(f"{c.label}: {c.error[:120]}" for c in crashed[:3])),
            Row("faults", "retryable faults: replies identical, exit code same, healthy",
                f"{len(same)}/{len(by['retryable']) + len(by['mixed'])} runs",
                not not_same, ", ".join(not_same[:6])),
            Row("faults", "junk/empty: unscored with a reason, never a wrong score",
                f"{unscored} unscored, {wrong} wrong", wrong == 0,
                ", ".join(f"{k} × {v}" for k, v in reasons.most_common())),
            Row("faults", "prompt too long: unscored, never retried",
                f"{final_unscored} unscored, {final_twice} retried",
                final_twice == 0 and final_unscored > 0),
            Row("faults", "past the failure ceiling: inconclusive (exit 3)",
                f"{len(ceiling_ok)}/{len(ceiling)} runs", len(ceiling_ok) == len(ceiling) > 0,
                ", ".join(c.label for c in ceiling)),
            Row("faults", "false drift alarms on retryable faults", str(len(false_alarms)),
                not false_alarms, ", ".join(false_alarms[:4])),
            Row("faults", "junk/empty: agreement unchanged; unscored-rate watch warns",
                f"{len(watched)}/{len(reasked)} runs warned (exit 10)", not reasked_bad,
                "the unscored rate is itself watched: a real rise warns; "
                + (", ".join(c.label for c in watched[:6]) if watched
                   else "none was significant at this size")),
            Row("faults", "false incidents (incidents / incident notifications)",
                f"{self.incidents} / {self.incident_notifications}",
                self.incidents == 0 and self.incident_notifications == 0),
        ]


def _scores(replies: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[str, Any]]:
    return {(r["item_id"], r["dimension"], r["variant"]): (r["status"], r["score"])
            for r in replies}


def fault_matrix(
    sandbox: Sandbox,
    *,
    rates: tuple[float, ...] = QUICK_RATES,
    kinds: tuple[str, ...] = RETRYABLE + REASKED + FINAL,
    limit: int = 200,
    streamed: bool = True,
    server: RunningServer | None = None,
) -> FaultReport:
    """Run the matrix (see module doc) and return what every cell did."""
    from judgecal.store import open_store

    own = server is None
    srv = server or start_server(recordings={"*": "pandalm:gpt-3.5-turbo"},
                                 sets_dir=sandbox.sets_dir, timeout_sleep_s=5.0,
                                 retry_after_s=0.05)
    store_url = sandbox.sqlite_url("faults.db")
    report = FaultReport(items=limit)
    try:
        clean = _cell(sandbox, srv, store_url, "none", 0.0, "clean", {}, limit)
        report.clean_exit = clean.exit_code
        # Requests per item without faults (the recorded garbage replies are re-asked).
        clean_requests = {k: int(v["requests"]) for k, v in srv.stats()["items"].items()}
        store = open_store(store_url)
        try:
            baseline = _scores(store.replies(store.list_runs(limit=1)[0]["run_id"]))
        finally:
            store.close()
        plan: list[tuple[str, float, str, dict[str, Any]]] = []
        for kind in kinds:
            cls = ("retryable" if kind in RETRYABLE else "reasked" if kind in REASKED
                   else "final")
            for rate in rates:
                plan.append((kind, rate, cls, {}))
            if streamed and kind in STREAMED:
                plan.append((kind, rates[len(rates) // 2], cls, {"stream": True}))
        share = 0.5 / len(RETRYABLE)
        plan.append(("mixed", 0.5, "mixed", {"faults": {k: share for k in RETRYABLE}}))
        plan += [
            ("503", 0.6, "ceiling", {"max_retries": 1}),
            ("junk", 1.0, "ceiling", {}),
            ("context-length", 0.5, "ceiling", {}),
        ]
        for kind, rate, cls, extra in plan:
            cell = _cell(sandbox, srv, store_url, kind, rate, cls, extra, limit,
                         clean_requests)
            _compare(cell, store_url, baseline)
            report.cells.append(cell)
        report.incidents = count_rows(store_url, "incidents")
        store = open_store(store_url)
        try:
            from judgecal import notify

            report.incident_notifications = sum(
                1 for n in notify.outbox(store) if str(n["event"]).startswith("incident")
            )
        finally:
            store.close()
        return report
    finally:
        if own:
            srv.stop()


def _cell(
    sandbox: Sandbox,
    srv: RunningServer,
    store_url: str,
    kind: str,
    rate: float,
    cls: str,
    extra: dict[str, Any],
    limit: int,
    clean_requests: dict[str, int] | None = None,
) -> Cell:
    clean_requests = clean_requests or {}
    extra = dict(extra)
    faults = extra.pop("faults", None) or ({} if kind == "none" else {kind: rate})
    stream = bool(extra.get("stream", False))
    judge = {**_RETRY, **extra}
    cfg = sandbox.write_config(
        "faults", base_url=srv.url, store=store_url, judge=judge,
        run={"limit": limit, "min_items": 20}, drift={"auto_baseline": True},
    )
    srv.configure(faults=faults)
    srv.reset_stats()
    cell = Cell(kind, rate, stream, cls)
    started = time.perf_counter()
    code, out, err = cli_in_process(["run", "--config", str(cfg), "--json"])
    cell.elapsed_s = time.perf_counter() - started
    srv.configure(faults={})
    cell.exit_code = code
    stats = srv.stats()
    cell.faults = dict(stats["faults"])
    if cls == "final":  # more requests than the fault-free run made: a final error retried
        cell.requested_more_than_once = sum(
            1 for k, v in stats["items"].items() if v["requests"] > clean_requests.get(k, 1)
        )
    try:
        payload = json.loads(out)
    except ValueError:
        cell.error = (err or out).strip()[-400:]
        return cell
    cell.status = payload.get("status", "")
    cell.verdict = (payload.get("drift") or {}).get("check", {}).get("verdict", "")
    cell.reasons = dict((payload.get("summary") or {}).get("unscored_reasons") or {})
    if "Traceback" in err:
        cell.error = err.strip()[-400:]
    return cell


def _compare(cell: Cell, store_url: str, baseline: dict[tuple[str, str, str], tuple[str, Any]]
             ) -> None:
    """Compare the cell's replies with the fault-free run's, item by item."""
    from judgecal.records import SCORED
    from judgecal.store import open_store

    store = open_store(store_url)
    try:
        runs = store.list_runs(limit=1)
        replies = store.replies(runs[0]["run_id"]) if runs else []
    finally:
        store.close()
    got = _scores(replies)
    cell.identical = got == baseline
    reasons: Counter[str] = Counter()
    for r in replies:
        key = (r["item_id"], r["dimension"], r["variant"])
        base_status, base_score = baseline.get(key, (None, None))
        if r["status"] == SCORED and base_status == SCORED and r["score"] != base_score:
            cell.changed_scores += 1
        elif r["status"] != SCORED and base_status == SCORED:
            cell.newly_unscored += 1
            reasons[str(r["unscored_reason"])] += 1
    if cell.cls in ("reasked", "final"):
        cell.reasons = dict(reasons)


__all__ = ["FULL_RATES", "QUICK_RATES", "Cell", "FaultReport", "fault_matrix"]
