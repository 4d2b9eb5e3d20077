"""Unattended nights: hostile HTTP 200 replies, poisoned token counts and stores, a
``Retry-After`` storm, an endpoint that refuses every connection.

The promise: *a nightly job that nobody watches ends with a status and an exit
code, whatever the endpoint sends back: it never crashes, never hangs, never stores what a
reply is not, and never leaves a run behind that the next night cannot get past.* Every
scenario runs the real ``judgecal run`` as a separate process (so interpreter shutdown
noise such as asyncio's ``Task exception was never retrieved`` shows on its stderr) against
the recorded judge (:mod:`judgecal.recorded`) and reads the store afterwards.

* **Malformed 200 matrix** — each kind of :data:`judgecal.recorded.faults.MALFORMED_200`
  (an HTML page, broken JSON, ``choices: ["oops"]``, no ``message``, a number or a list as
  the content) at 100 % and at a partial rate, plus streamed cells. At 100 % the run must
  end inconclusive (exit 3) with every stored reply failed for ``malformed_reply`` (or a
  stream without a finish reason); at a partial rate the retries must leave the scores
  identical to a fault-free run of the same store and the exit code that run's. Never exit
  1, never a traceback or ``Task exception was never retrieved``, no run left ``running``.
* **Poisoned usage** — ``bad-usage`` (token counts ``"lots"`` and ``-5``) at 100 % and a
  partial rate: completed, scores identical, and the store's token columns hold only NULL
  or non-negative integers.
* **Poisoned store** — a run SIGKILLed mid-way, then text written by hand into
  ``prompt_tokens`` of one of its replies: the next ``judgecal run`` closes it as
  ``failed`` with the reason and completes a new run; the night after completes too.
* **Retry-After storm** — every request answered 429 with ``Retry-After: 3600`` and the
  judge's default ``retry_after_max_s``: the run ends at its (short) ``run.deadline_s``,
  inconclusive, exit 3.
* **Refused connections** — a closed port, a password in the URL and a sentinel API key
  in the environment: exit 1 within seconds, the URL named without credentials, neither
  secret on stdout or stderr.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.crash import _Probe, _wait_or_kill
from benchmarks.harness.sandbox import Done, Row, Sandbox, free_port, sqlite_path
from judgecal.recorded.faults import MALFORMED_200
from judgecal.recorded.server import RunningServer, start_server

RECORDING = "pandalm:gpt-3.5-turbo"
MALFORMED_KINDS: tuple[str, ...] = tuple(sorted(MALFORMED_200))
"""``broken-json``, ``content-list``, ``content-number``, ``html``, ``no-message``,
``wrong-shape``."""
STREAMED_KINDS: tuple[str, ...] = ("html", "broken-json")
"""Kinds also run with ``stream: true`` (the body of a 200 where events were expected)."""

FULL_RATES = (1.0, 0.1)
QUICK_RATES = (1.0, 0.2)

_RETRY = {"max_retries": 24, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0}
"""Enough retries that no item exhausts them at a partial rate (the draws are seeded)."""

NOISE = ("Task exception was never retrieved", "Traceback", "RuntimeWarning",
         "Unclosed client session", "Event loop is closed")
"""Text that must never appear on the stderr of a run that ended with a status."""
_MALFORMED_REASONS = ("transient_failure: malformed_reply",
                      "transient_failure: stream_ended_without_finish_reason")


def _noise(done: Done) -> list[str]:
    return [n for n in NOISE if n in done.stderr or n in done.stdout]


def _payload(done: Done) -> dict[str, Any]:
    try:
        data = json.loads(done.stdout)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _store_sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    path = sqlite_path(url)
    if path is None or not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _running(url: str) -> int:
    return len(_store_sql(url, "SELECT run_id FROM runs WHERE status = 'running'"))


def _scores(url: str, run_id: str) -> dict[tuple[str, str, str], tuple[str, Any]]:
    rows = _store_sql(url, "SELECT item_id, dimension, variant, status, score FROM replies "
                           "WHERE run_id = ?", run_id)
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


# --------------------------------------------------------------------------- malformed 200


@dataclass
class Cell:
    """One ``judgecal run`` of the malformed-reply matrix."""

    kind: str
    rate: float
    stream: bool = False
    exit_code: int = -1
    status: str = ""
    elapsed_s: float = 0.0
    faults: int = 0
    replies: int = 0
    failed_malformed: int = 0
    """Stored replies failed for a malformed reply (or a stream without a finish reason)."""
    identical: bool = False
    running_after: int = 0
    noise: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind}@{self.rate:g}{' (stream)' if self.stream else ''}"

    @property
    def full(self) -> bool:
        return self.rate >= 1.0


@dataclass
class MalformedReport:
    items: int
    clean_exit: int = -1
    cells: list[Cell] = field(default_factory=list)
    usage_cells: list[Cell] = field(default_factory=list)
    token_types: Counter[str] = field(default_factory=Counter)
    """Stored token counts by kind: ``null``, ``integer >= 0``, anything else."""
    problems: list[str] = field(default_factory=list)

    def rows(self) -> list[Row]:
        cells = self.cells
        full = [c for c in cells if c.full]
        partial = [c for c in cells if not c.full]
        statuses = [c for c in cells + self.usage_cells if c.exit_code in (0, 3, 10, 11, 20)
                    and not c.noise]
        full_ok = [c for c in full if c.exit_code == 3 and c.status == "inconclusive"
                   and c.replies > 0 and c.failed_malformed == c.replies]
        partial_ok = [c for c in partial if c.status == "completed" and c.identical
                      and c.exit_code == self.clean_exit]
        noisy = [f"{c.label}: {', '.join(c.noise)}" for c in cells + self.usage_cells if c.noise]
        left = sum(c.running_after for c in cells + self.usage_cells)
        usage_ok = [c for c in self.usage_cells if c.status == "completed" and c.identical
                    and c.exit_code == self.clean_exit]
        bad_tokens = sum(n for k, n in self.token_types.items() if k not in ("null",
                                                                            "integer >= 0"))
        kinds = sorted({c.kind for c in cells})
        rates = sorted({c.rate for c in cells}, reverse=True)
        slowest = max(cells, key=lambda c: c.elapsed_s) if cells else None
        faults = sum(c.faults for c in cells)
        return [
            Row("unattended", "hostile 200 replies: the run ends with a status, never exit 1",
                f"{len(statuses)}/{len(cells) + len(self.usage_cells)} runs",
                len(statuses) == len(cells) + len(self.usage_cells) > 0 and not self.problems,
                "; ".join(self.problems[:2] + noisy[:3]) or
                f"{', '.join(kinds)} at {', '.join(f'{r:.0%}' for r in rates)} "
                f"({len(STREAMED_KINDS)} also streamed), bad-usage; {faults} faults in "
                f"{self.items}-item runs; no traceback, no 'Task exception was never "
                "retrieved'" + (f"; slowest {slowest.elapsed_s:.1f} s ({slowest.label})"
                                if slowest else "")),
            Row("unattended", "hostile 200 at 100 %: inconclusive, exit 3, failed with a reason",
                f"{len(full_ok)}/{len(full)} runs", len(full_ok) == len(full) > 0,
                ", ".join(f"{c.label}: exit {c.exit_code} {c.status}, "
                          f"{c.failed_malformed}/{c.replies} failed" for c in full
                          if c not in full_ok)[:300]
                or f"{sum(c.replies for c in full)} replies stored, every one failed "
                "'malformed_reply' (streams: no finish reason)"),
            Row("unattended", "hostile 200 at a partial rate: retried, scores == clean run",
                f"{len(partial_ok)}/{len(partial)} runs", len(partial_ok) == len(partial) > 0,
                ", ".join(f"{c.label}: exit {c.exit_code} {c.status} identical {c.identical}"
                          for c in partial if c not in partial_ok)[:300]
                or f"{sum(c.faults for c in partial)} faults retried; exit {self.clean_exit} "
                "as the clean run"),
            Row("unattended", "runs left 'running' after a hostile night", str(left), left == 0),
            Row("unattended", "bad-usage: token columns only NULL or integers >= 0",
                f"{bad_tokens} bad of {sum(self.token_types.values())}",
                bad_tokens == 0 and len(usage_ok) == len(self.usage_cells) > 0
                and self.token_types["null"] > 0,
                ", ".join(f"{k} {n}" for k, n in sorted(self.token_types.items()))
                + f"; {len(usage_ok)}/{len(self.usage_cells)} runs completed with the clean "
                "run's scores"),
        ]


def malformed_matrix(
    sandbox: Sandbox,
    *,
    limit: int = 100,
    rates: tuple[float, ...] = QUICK_RATES,
    kinds: tuple[str, ...] = MALFORMED_KINDS,
    streamed: tuple[str, ...] = STREAMED_KINDS,
) -> MalformedReport:
    """Run the malformed-reply matrix and the ``bad-usage`` cells on one store."""
    report = MalformedReport(items=limit)
    url = sandbox.sqlite_url("malformed.db")
    with start_server(recordings={"*": RECORDING}, sets_dir=sandbox.sets_dir,
                      retry_after_s=0.05) as srv:
        clean = _run(sandbox, srv, url, "none", 0.0, limit, stream=False)
        report.clean_exit = clean.exit_code
        clean_runs = _store_sql(url, "SELECT run_id FROM runs ORDER BY started_at")
        if clean.exit_code != 0 or not clean_runs:
            report.problems.append(f"the fault-free run exited {clean.exit_code}")
            return report
        baseline = _scores(url, clean_runs[-1][0])
        plan = [(k, r, False) for k in kinds for r in rates]
        plan += [(k, r, True) for k in streamed for r in rates[:2]]
        for kind, rate, stream in plan:
            cell = _run(sandbox, srv, url, kind, rate, limit, stream=stream, baseline=baseline)
            report.cells.append(cell)
        partial = next((r for r in rates if r < 1.0), 0.2)
        for rate in (1.0, partial):
            report.usage_cells.append(_run(sandbox, srv, url, "bad-usage", rate, limit,
                                           stream=False, baseline=baseline))
    for kind_p, kind_c in _store_sql(
        url, "SELECT CASE WHEN prompt_tokens IS NULL THEN 'null' WHEN typeof(prompt_tokens) = "
             "'integer' AND prompt_tokens >= 0 THEN 'integer >= 0' ELSE typeof(prompt_tokens) "
             "|| ' ' || prompt_tokens END, CASE WHEN completion_tokens IS NULL THEN 'null' "
             "WHEN typeof(completion_tokens) = 'integer' AND completion_tokens >= 0 THEN "
             "'integer >= 0' ELSE typeof(completion_tokens) || ' ' || completion_tokens END "
             "FROM replies"):
        report.token_types[kind_p] += 1
        report.token_types[kind_c] += 1
    return report


def _run(sandbox: Sandbox, srv: RunningServer, url: str, kind: str, rate: float, limit: int,
         *, stream: bool, baseline: dict[tuple[str, str, str], tuple[str, Any]] | None = None
         ) -> Cell:
    # At 100 % no number of retries helps: a few show that they happen and still end.
    retries = {"max_retries": 4} if rate >= 1.0 else {}
    cfg = sandbox.write_config(
        "malformed", base_url=srv.url, store=url, judge={**_RETRY, **retries, "stream": stream},
        run={"limit": limit, "min_items": 20}, drift={"auto_baseline": True},
    )
    srv.configure(faults={} if kind == "none" else {kind: rate})
    srv.reset_stats()
    cell = Cell(kind, rate, stream)
    try:
        done = sandbox.judgecal("run", "--config", str(cfg), "--json", timeout=300)
    finally:
        srv.configure(faults={})
    cell.exit_code, cell.elapsed_s = done.returncode, done.elapsed_s
    cell.faults = sum(srv.stats()["faults"].values())
    cell.noise = _noise(done)
    payload = _payload(done)
    cell.status = str(payload.get("status", ""))
    run_id = payload.get("run_id")
    cell.running_after = _running(url)
    if not run_id:
        cell.problems.append(f"no JSON result: {done.stderr.strip()[-200:]}")
        return cell
    replies = _store_sql(url, "SELECT status, unscored_reason FROM replies WHERE run_id = ?",
                         run_id)
    cell.replies = len(replies)
    cell.failed_malformed = sum(1 for status, reason in replies if status == "failed"
                                and str(reason or "").startswith(_MALFORMED_REASONS))
    if baseline is not None:
        cell.identical = _scores(url, run_id) == baseline
    return cell


# --------------------------------------------------------------------------- poisoned store


@dataclass
class PoisonReport:
    killed_after: int = 0
    """Replies stored when the first run was killed."""
    exits: list[int] = field(default_factory=list)
    """Exit codes of the two nights after the poisoning."""
    old_status: str = ""
    failed_because: str = ""
    new_statuses: list[str] = field(default_factory=list)
    running_after: int = -1
    elapsed_s: float = 0.0
    noise: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.old_status == "failed" and "prompt_tokens" in self.failed_because
                and self.new_statuses == ["completed", "completed"]
                and all(code == 0 for code in self.exits) and self.running_after == 0
                and not self.noise and not self.problems)

    def rows(self) -> list[Row]:
        return [Row(
            "unattended", "store poisoned by hand: the run is closed 'failed', the next completes",
            f"exit {', '.join(map(str, self.exits)) or '?'}; old run {self.old_status or '?'}",
            self.ok,
            "; ".join(self.problems[:2] + self.noise[:2]) or
            f"killed after {self.killed_after} replies, prompt_tokens set to 'lots'; "
            f"reason: {self.failed_because[:90]}; next nights "
            f"{' and '.join(self.new_statuses)}, {self.running_after} left running"),
        ]


def poisoned_store(sandbox: Sandbox, *, limit: int = 60, kill_after: int = 10) -> PoisonReport:
    """Kill a run mid-way, write text into one of its token counts, run two more nights."""
    report = PoisonReport()
    url = sandbox.sqlite_url("poisoned.db")
    with start_server(recordings={"*": RECORDING}, sets_dir=sandbox.sets_dir,
                      latency_ms=150) as srv:
        cfg = sandbox.write_config("poisoned", base_url=srv.url, store=url,
                                   judge={"concurrency": 4},
                                   run={"limit": limit, "min_items": 10},
                                   drift={"auto_baseline": True})
        probe = _Probe(url)
        try:
            proc = sandbox.start("run", "--config", str(cfg), "--json")
            killed, _t = _wait_or_kill(proc, "progress", 0.0, kill_after, probe, 120.0, limit)
            report.killed_after = probe.stored()
        finally:
            probe.close()
        if not killed:
            report.problems.append("the first run finished before it could be killed")
            return report
        first = _store_sql(url, "SELECT run_id FROM runs WHERE status = 'running'")
        path = sqlite_path(url)
        if not first or path is None:
            report.problems.append("no running run after the kill")
            return report
        conn = sqlite3.connect(path, timeout=30)
        try:
            with conn:
                conn.execute("UPDATE replies SET prompt_tokens = 'lots' WHERE rowid = (SELECT "
                             "min(rowid) FROM replies WHERE run_id = ?)", (first[0][0],))
        finally:
            conn.close()
        srv.configure(latency_ms=0)
        started = time.perf_counter()
        for _night in range(2):
            done = sandbox.judgecal("run", "--config", str(cfg), "--json", timeout=300)
            report.exits.append(done.returncode)
            report.noise += _noise(done)
            report.new_statuses.append(str(_payload(done).get("status", f"exit "
                                                               f"{done.returncode}")))
        report.elapsed_s = time.perf_counter() - started
    old = _store_sql(url, "SELECT status, summary FROM runs WHERE run_id = ?", first[0][0])
    if old:
        report.old_status = str(old[0][0])
        try:
            report.failed_because = str(json.loads(old[0][1] or "{}").get("failed_because", ""))
        except ValueError:
            report.failed_because = str(old[0][1])
    report.running_after = _running(url)
    return report


# --------------------------------------------------------------------------- Retry-After storm


@dataclass
class StormReport:
    deadline_s: float
    exit_code: int = -1
    status: str = ""
    elapsed_s: float = 0.0
    replay_s: float = 0.0
    requests: int = 0
    stopped_because: str = ""
    running_after: int = -1
    noise: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.exit_code == 3 and self.status == "inconclusive"
                and "deadline" in self.stopped_because
                and self.replay_s <= self.deadline_s + 2.0
                and self.elapsed_s <= self.deadline_s + 10.0
                and self.running_after == 0 and not self.noise)

    def rows(self) -> list[Row]:
        return [Row(
            "unattended", "Retry-After: 3600 on every request: ends at run.deadline_s, exit 3",
            f"exit {self.exit_code} in {self.elapsed_s:.1f} s (deadline {self.deadline_s:g} s)",
            self.ok,
            f"{self.status or '?'}; replay {self.replay_s:.1f} s, {self.requests} requests "
            f"(retry_after_max_s 60 s by default); {self.running_after} left running"
            + (f"; {', '.join(self.noise)}" if self.noise else "")),
        ]


def retry_after_storm(sandbox: Sandbox, *, deadline_s: float = 5.0, limit: int = 50
                      ) -> StormReport:
    """Every request 429 with ``Retry-After: 3600``; the run must end at its deadline."""
    report = StormReport(deadline_s=deadline_s)
    url = sandbox.sqlite_url("storm.db")
    with start_server(recordings={"*": RECORDING}, sets_dir=sandbox.sets_dir,
                      retry_after_s=3600, faults={"429": 1.0}) as srv:
        cfg = sandbox.write_config("storm", base_url=srv.url, store=url,
                                   judge={"max_retries": 50},
                                   run={"limit": limit, "min_items": 10,
                                        "deadline_s": deadline_s})
        done = sandbox.judgecal("run", "--config", str(cfg), "--json",
                                timeout=deadline_s + 120)
        report.requests = int(srv.stats()["requests"])
    report.exit_code, report.elapsed_s = done.returncode, done.elapsed_s
    report.noise = _noise(done)
    payload = _payload(done)
    report.status = str(payload.get("status", ""))
    summary = payload.get("summary") or {}
    report.replay_s = float(summary.get("elapsed_s") or 0.0)
    report.stopped_because = str(summary.get("stopped_because") or "")
    report.running_after = _running(url)
    return report


# --------------------------------------------------------------------------- refused connections


@dataclass
class RefusedReport:
    url: str
    exit_code: int = -1
    elapsed_s: float = 0.0
    url_named: bool = False
    leaked: list[str] = field(default_factory=list)
    """Secrets found on stdout or stderr."""
    message: str = ""
    running_after: int = -1
    noise: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.exit_code == 1 and self.elapsed_s < 10.0 and self.url_named
                and not self.leaked and not self.noise)

    def rows(self) -> list[Row]:
        wrong = [f"on stdout/stderr: {name}" for name in self.leaked] + self.noise
        if not self.url_named:
            wrong.append("the URL is NOT named")
        return [
            Row("unattended", "refused connections: exit 1 within 10 s, URL named, no secret",
                f"exit {self.exit_code} in {self.elapsed_s:.1f} s", self.ok,
                "; ".join(wrong) or "0 of 2 secrets (URL password, API key) on stdout/stderr; "
                f"{self.running_after} run(s) left running (resumable); "
                f"'{self.message[:100]}'"),
        ]


def refused_connections(sandbox: Sandbox, *, limit: int = 30) -> RefusedReport:
    """A closed port, a password in the URL and a sentinel key: fail fast, name, leak nothing."""
    password = "hunter2-SENTINEL-pw-5d1e"
    key = "sk-judgecal-SENTINEL-refused-0c0ffee0c0ffee"
    port = free_port()
    base = f"http://judge:{password}@127.0.0.1:{port}/v1"
    report = RefusedReport(url=f"http://127.0.0.1:{port}/v1")
    url = sandbox.sqlite_url("refused.db")
    cfg = sandbox.write_config("refused", base_url=base, store=url,
                               run={"limit": limit, "min_items": 1})
    done = sandbox.judgecal("run", "--config", str(cfg), env={"OPENAI_API_KEY": key},
                            timeout=120)
    report.exit_code, report.elapsed_s = done.returncode, done.elapsed_s
    report.noise = [n for n in _noise(done) if n != "Traceback"] + (
        ["Traceback"] if "Traceback" in done.stderr else [])
    report.message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    report.url_named = report.url in done.stderr
    report.running_after = _running(url)
    for name, secret in (("URL password", password), ("API key", key)):
        if secret in done.stdout or secret in done.stderr:
            report.leaked.append(name)
    return report


__all__ = [
    "FULL_RATES",
    "MALFORMED_KINDS",
    "QUICK_RATES",
    "STREAMED_KINDS",
    "Cell",
    "MalformedReport",
    "PoisonReport",
    "RefusedReport",
    "StormReport",
    "malformed_matrix",
    "poisoned_store",
    "refused_connections",
    "retry_after_storm",
]
