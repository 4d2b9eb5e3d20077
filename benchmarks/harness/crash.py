"""Crash safety: ``judgecal run`` killed with SIGKILL at random points, then resumed.

The promise: *no reply is paid for twice; a killed run resumes where it
stopped.* The harness measures it the way a database measures durability:

1. An **uninterrupted reference run** of the config into its own store gives the expected
   replies, summary and metric report, and how long one invocation takes (``T``).
2. An **episode** starts ``judgecal run`` on a fresh store and kills it with SIGKILL, again
   and again, until the target number of kills is reached; then the same command runs to
   the end. Each kill comes after a uniformly random delay in ``[0, T]`` (landing in
   start-up, the replay, or the final report); for a share of them (*mid-write*) the
   harness then polls the store's write lock and kills the moment a write transaction is
   open (SQLite: ``BEGIN IMMEDIATE`` fails; PostgreSQL: a backend is inside a
   transaction or running a write). Right after
   each kill, before anything else touches the file, the WAL is read for frames of an
   uncommitted transaction (a torn write that recovery must discard).
3. After each kill: ``PRAGMA integrity_check`` and ``foreign_key_check``; every reply
   stored at an earlier kill must still be there, unchanged; the recorded judge's request
   count of every item with a stored reply is noted.
4. At the end: no item was requested again after its reply was stored, no reply was lost
   or duplicated, the episode made exactly one run, the audit chain verifies, and the run's
   replies, summary and metric report equal the reference run's **exactly**.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.sandbox import (
    Row,
    Sandbox,
    integrity_check,
    kill,
    sqlite_path,
    store_as_killed,
    wal_uncommitted_frames,
    write_lock_held,
)
from judgecal.recorded.server import RunningServer, start_server

RECORDING = "pandalm:gpt-3.5-turbo"
_VOLATILE_SUMMARY = ("elapsed_s", "requested_now")
"""Summary fields that legitimately differ between a resumed and an uninterrupted run."""

Key = tuple[str, str, str]


@dataclass
class KillPoint:
    """One SIGKILL: when, in which phase, and what the store looked like afterwards."""

    episode: int
    mode: str
    """One of :data:`MODES`."""
    delay_s: float
    phase: str
    """Judged from the store right after the kill: ``start-up`` (no run yet, or no reply
    stored by this invocation), ``replay`` (replies were being stored) or ``finishing``
    (every reply was stored: the run was being closed or its report computed)."""
    torn_wal_frames: int
    stored: int
    integrity: str


@dataclass
class Episode:
    """One logical run, killed several times and finished."""

    index: int
    store: str
    kills: list[KillPoint] = field(default_factory=list)
    exit_code: int | None = None
    runs: int = 0
    rerequested: list[str] = field(default_factory=list)
    """Items requested again after their reply had been stored."""
    lost: list[str] = field(default_factory=list)
    """Replies seen stored after a kill that were later missing or different."""
    duplicates: int = 0
    missing: int = 0
    ended_before_kill: bool = False
    """The last kill landed after the job had ended (its run closed and drift-checked; only
    the process had not exited): not a kill point, and the job is not run again."""
    replies_equal: bool = False
    summary_equal: bool = False
    metrics_equal: bool = False
    audit_ok: bool = False
    integrity_final: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class CrashReport:
    """Everything the crash harness measured."""

    target_kills: int
    items: int
    reference_s: float
    reference_exit: int
    episodes: list[Episode] = field(default_factory=list)

    @property
    def kills(self) -> list[KillPoint]:
        return [k for e in self.episodes for k in e.kills]

    def phase_counts(self) -> Counter[str]:
        return Counter(k.phase for k in self.kills)

    def rows(self) -> list[Row]:
        kills = self.kills
        eps = self.episodes
        phases = self.phase_counts()
        torn = sum(1 for k in kills if k.torn_wal_frames)
        mid = Counter(k.phase for k in kills if k.mode.endswith("mid-write"))
        phase_text = ", ".join(
            f"{n} {p} ({mid[p]} mid-write)"
            for p, n in sorted(phases.items(), key=lambda kv: -kv[1])
        )
        checked = [k.integrity for k in kills] + [e.integrity_final for e in eps]
        checked = [c for c in checked if c != "n/a"]
        bad_integrity = [c for c in checked if c != "ok"]
        rereq = sum(len(e.rerequested) for e in eps)
        lost = sum(len(e.lost) + e.missing for e in eps)
        extra_runs = sum(max(0, e.runs - 1) for e in eps)
        equal = sum(1 for e in eps if e.replies_equal and e.summary_equal and e.metrics_equal)
        finished = sum(1 for e in eps
                       if e.exit_code == self.reference_exit or e.ended_before_kill)
        examples = "; ".join(p for e in eps for p in e.problems[:2])[:300]
        return [
            Row("crash", "kills survived (SIGKILL, then resumed)",
                f"{len(kills)} in {len(eps)} runs of {self.items} items",
                len(kills) >= self.target_kills and finished == len(eps),
                f"kill points: {phase_text}; {torn} left a torn WAL tail; "
                f"{sum(e.ended_before_kill for e in eps)} landed after the job had ended "
                "(not counted)"),
            Row("crash", "replies requested again after being stored", str(rereq), rereq == 0,
                examples if rereq else ""),
            Row("crash", "records lost (stored, then missing or changed)", str(lost), lost == 0),
            Row("crash", "duplicate replies / extra runs",
                f"{sum(e.duplicates for e in eps)} / {extra_runs}",
                extra_runs == 0 and all(e.duplicates == 0 for e in eps)),
            Row("crash", "integrity_check + foreign_key_check after each kill",
                f"{len(checked) - len(bad_integrity)}/{len(checked)} ok"
                if checked else "n/a (not SQLite)",
                not bad_integrity, "; ".join(bad_integrity[:2])),
            Row("crash", "final replies, summary, metrics == uninterrupted run",
                f"{equal}/{len(eps)} identical", equal == len(eps)),
            Row("crash", "audit chain verifies after kills",
                f"{sum(e.audit_ok for e in eps)}/{len(eps)}", all(e.audit_ok for e in eps)),
        ]


def _reply_signature(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["status"], r["score"], r["label"], r["raw_text"], r["unscored_reason"])


def _load(store_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(runs, replies of the newest run, its newest metric report) of a store."""
    from judgecal.store import open_store

    store = open_store(store_url)
    try:
        runs = store.list_runs(limit=1000)
        if not runs:
            return [], [], {}
        newest = runs[0]["run_id"]
        return runs, store.replies(newest), store.latest_metric_report(newest) or {}
    finally:
        store.close()


def _stored_now(store_url: str) -> tuple[str | None, str | None, dict[Key, tuple[Any, ...]]]:
    """(run id, run status, stored final replies) of the newest run, read after a kill."""
    from sqlalchemy import create_engine, select

    from judgecal.db import schema
    from judgecal.db.engine import normalize_url
    from judgecal.records import FAILED

    path = sqlite_path(store_url)
    if path is not None and not path.exists():
        return None, None, {}
    engine = create_engine(normalize_url(store_url))
    try:
        with engine.connect() as conn:
            try:
                run = conn.execute(
                    select(schema.runs.c.run_id, schema.runs.c.status)
                    .order_by(schema.runs.c.started_at.desc())
                    .limit(1)
                ).first()
            except Exception:  # the schema was not created yet: killed during start-up
                return None, None, {}
            if run is None:
                return None, None, {}
            rows = conn.execute(
                select(schema.replies).where(schema.replies.c.run_id == run[0])
            ).mappings().all()
    finally:
        engine.dispose()
    stored = {
        (r["item_id"], r["dimension"], r["variant"]): _reply_signature(dict(r))
        for r in rows
        if r["status"] != FAILED
    }
    return str(run[0]), str(run[1]), stored


class _Probe:
    """Cheap, repeated looks at a store while a run writes to it: replies stored so far,
    and whether a write transaction is open right now."""

    def __init__(self, store_url: str):
        self.path = sqlite_path(store_url)
        self.engine: Any = None
        if self.path is None:
            from sqlalchemy import create_engine

            from judgecal.db.engine import normalize_url

            self.engine = create_engine(normalize_url(store_url), pool_size=1)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    def _first(self, query: str) -> Any:
        """The first row of ``query`` (None before the store or its schema exists)."""
        if self.path is not None:
            import sqlite3

            if not self.path.exists():
                return None
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            try:
                return conn.execute(query).fetchone()
            except sqlite3.OperationalError:
                return None
            finally:
                conn.close()
        from sqlalchemy import text
        from sqlalchemy.exc import ProgrammingError

        try:
            with self.engine.connect() as conn:
                return conn.execute(text(query)).first()
        except ProgrammingError:
            return None

    def _count(self, query: str) -> int:
        row = self._first(query)
        return 0 if row is None else int(row[0] or 0)

    def stored(self) -> int:
        """Final replies stored so far (0 before the schema exists)."""
        return self._count("SELECT count(*) FROM replies WHERE status <> 'failed'")

    def stored_newest(self) -> int:
        """Final replies of the newest run only."""
        return self._count(
            "SELECT count(*) FROM replies WHERE status <> 'failed' AND run_id = "
            "(SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)")

    def runs(self) -> int:
        """Runs in the store (0 before the schema exists)."""
        return self._count("SELECT count(*) FROM runs")

    def status(self) -> str | None:
        """Status of the newest run (None before there is one)."""
        row = self._first("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1")
        return None if row is None else str(row[0])

    def writing(self) -> bool:
        """A write transaction is open (SQLite: the write lock is held; PostgreSQL: another
        backend is inside a transaction or running a write)."""
        if self.path is not None:
            return self.path.exists() and write_lock_held(self.path)
        from sqlalchemy import text

        with self.engine.connect() as conn:
            n = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND (state LIKE 'idle in transaction%' "
                    "OR (state = 'active' AND (query ILIKE 'INSERT%' OR query ILIKE 'DELETE%' "
                    "OR query ILIKE 'UPDATE%')))"
                )
            ).scalar()
        return bool(n)


MODES = ("random", "mid-write", "progress", "progress-mid-write")
"""Kill-point modes: ``random`` — after a random delay in ``[0, T]``; ``mid-write`` — the
first open write transaction after such a delay; ``progress`` — as soon as a random number
of replies (short of all of them) is stored; ``progress-mid-write`` — the first open write
transaction after that. The two progress modes never land after the last reply is stored."""


def _wait_or_kill(
    proc: subprocess.Popen[str],
    mode: str,
    delay: float,
    target: int,
    probe: _Probe,
    limit: float,
    items: int,
) -> tuple[bool, float]:
    """Wait for the kill point of ``mode`` (see :data:`MODES`) and SIGKILL ``proc`` there.

    Returns (killed, seconds since start); not killed means the run ended by itself.
    """
    started = time.perf_counter()
    if mode in ("random", "mid-write"):
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            if mode == "random":
                kill(proc)
                return True, time.perf_counter() - started
        else:
            proc.communicate()
            return False, time.perf_counter() - started
    reached = mode in ("random", "mid-write")
    while time.perf_counter() - started < limit:
        if proc.poll() is not None:
            proc.communicate()
            return False, time.perf_counter() - started
        if not reached:
            reached = probe.stored() >= target
            if reached and mode == "progress":
                kill(proc)
                return True, time.perf_counter() - started
        elif mode == "progress-mid-write" and probe.stored() >= items:
            time.sleep(0.01)  # every reply is stored: this mode lets the run finish
        elif probe.writing():
            kill(proc)
            return True, time.perf_counter() - started
        time.sleep(0.001)
    kill(proc)
    return True, time.perf_counter() - started


def crash_resume(
    sandbox: Sandbox,
    *,
    kills: int = 20,
    limit: int | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    modes: dict[str, float] | None = None,
    store_urls: Any = None,
    server: RunningServer | None = None,
    timeout: float = 600.0,
) -> CrashReport:
    """Kill ``judgecal run`` ``kills`` times in total and check every resume (see module doc).

    ``modes`` weighs the kill-point modes (:data:`MODES`; default: random 0.6, mid-write
    0.4). ``store_urls(i)`` gives the store of episode ``i`` (default: a SQLite file in the
    sandbox); ``limit`` takes the first N PandaLM items (default all 999).
    """
    weights = modes or {"random": 0.6, "mid-write": 0.4}
    unknown = set(weights) - set(MODES)
    if unknown:
        raise ValueError(f"unknown kill modes {sorted(unknown)}; known: {MODES}")
    own_server = server is None
    srv = server or start_server(recordings={"*": RECORDING}, sets_dir=sandbox.sets_dir)
    rng = random.Random(seed)
    run_settings: dict[str, Any] = {"bootstrap": bootstrap, "seed": 0}
    if limit:
        run_settings["limit"] = limit

    def url_for(i: int) -> str:
        if store_urls is not None:
            return str(store_urls(i))
        return sandbox.sqlite_url(f"crash-{i}.db")

    try:
        ref_cfg = sandbox.write_config(
            "crash-reference", base_url=srv.url, store=sandbox.sqlite_url("crash-reference.db"),
            run=run_settings,
        )
        ref = sandbox.judgecal("run", "--config", str(ref_cfg), "--json", timeout=timeout)
        if ref.returncode not in (0, 3, 5):
            raise RuntimeError(f"the reference run failed ({ref.returncode}): {ref.stderr}")
        _runs, ref_replies, ref_report = _load(sandbox.sqlite_url("crash-reference.db"))
        ref_summary = _stable_summary(_runs[0]["summary"])
        report = CrashReport(kills, len(ref_replies), ref.elapsed_s, ref.returncode)
        index = 0
        while len(report.kills) < kills:
            episode = _episode(
                sandbox, srv, index, url_for(index), rng, report, kills, run_settings,
                weights, timeout,
            )
            _check_episode(episode, ref_replies, ref_summary, ref_report)
            report.episodes.append(episode)
            index += 1
        return report
    finally:
        if own_server:
            srv.stop()


def _stable_summary(summary: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (summary or {}).items() if k not in _VOLATILE_SUMMARY}


def _episode(
    sandbox: Sandbox,
    srv: RunningServer,
    index: int,
    store_url: str,
    rng: random.Random,
    report: CrashReport,
    target: int,
    run_settings: dict[str, Any],
    weights: dict[str, float],
    timeout: float,
) -> Episode:
    episode = Episode(index, store_url)
    cfg = sandbox.write_config(
        f"crash-{index}", base_url=srv.url, store=store_url, run=run_settings
    )
    srv.reset_stats()
    probe = _Probe(store_url)
    path = sqlite_path(store_url)
    stored_at: dict[Key, tuple[Any, ...]] = {}
    requests_at_store: dict[str, int] = {}
    first_run: str | None = None
    previous = 0
    try:
        while len(report.kills) + len(episode.kills) < target:
            names = sorted(weights)
            mode = rng.choices(names, weights=[weights[n] for n in names])[0]
            delay = rng.uniform(0.0, report.reference_s)
            if mode.startswith("progress"):
                if previous >= report.items - 1:
                    break  # (almost) every reply is stored: no progress point is left
                target = rng.randint(previous + 1, report.items - 1)
            else:
                target = 0
            proc = sandbox.start("run", "--config", str(cfg), "--json")
            killed, when = _wait_or_kill(
                proc, mode, delay, target, probe, limit=timeout, items=report.items,
            )
            if not killed:
                episode.exit_code = proc.returncode
                break
            torn = wal_uncommitted_frames(path) if path is not None else 0
            with store_as_killed(store_url) as killed_url:
                killed_path = sqlite_path(killed_url)
                integrity = (integrity_check(killed_path)
                             if killed_path is not None and killed_path.exists() else "n/a")
                run_id, status, stored = _stored_now(killed_url)
                unchecked = run_id is not None and _unchecked(killed_url)
            if run_id is not None and status != "running" and not unchecked:
                # The job had ended before the kill landed (run closed, drift check stored):
                # running it again would be tomorrow's night, not a resume.
                episode.ended_before_kill = True
                break
            if run_id is None or (first_run is not None and run_id != first_run):
                phase = "start-up"
            elif status != "running" or len(stored) == report.items:
                phase = "finishing"
            elif len(stored) > previous:
                phase = "replay"
            else:
                phase = "start-up"
            first_run = first_run or run_id
            previous = len(stored)
            for key, sig in stored_at.items():
                if stored.get(key) != sig:
                    episode.lost.append(f"{key} after kill {len(episode.kills) + 1}")
            counts = _item_requests(srv)
            for key, sig in stored.items():
                if key not in stored_at:
                    stored_at[key] = sig
                    requests_at_store.setdefault(key[0], counts.get(key[0], 0))
            episode.kills.append(
                KillPoint(index, mode, round(when, 3), phase, torn, len(stored),
                          "n/a" if integrity == "n/a" else integrity)
            )
        if episode.exit_code is None and not episode.ended_before_kill:
            done = sandbox.judgecal("run", "--config", str(cfg), "--json", timeout=timeout)
            episode.exit_code = done.returncode
            if done.returncode not in (0, 3, 5):
                episode.problems.append(f"final run exited {done.returncode}: {done.stderr[-300:]}")
    finally:
        probe.close()
    counts = _item_requests(srv)
    for item, n in sorted(requests_at_store.items()):
        if counts.get(item, 0) != n:
            episode.rerequested.append(item)
            if len(episode.problems) < 3:
                episode.problems.append(
                    f"item {item} requested {counts.get(item, 0) - n} more time(s) after its "
                    "reply was stored"
                )
    _, _, final = _stored_now(store_url)
    for key, sig in stored_at.items():
        if key in final and final[key] != sig:
            episode.lost.append(f"{key} changed")
        elif key not in final:
            episode.lost.append(f"{key} missing")
    episode.integrity_final = integrity_check(path) if path is not None else "n/a"
    return episode


def _item_requests(srv: RunningServer) -> dict[str, int]:
    return {k: int(v["requests"]) for k, v in srv.stats()["items"].items()}


def _check_episode(
    episode: Episode,
    ref_replies: list[dict[str, Any]],
    ref_summary: dict[str, Any],
    ref_report: dict[str, Any],
) -> None:
    from judgecal import audit
    from judgecal.store import open_store

    runs, replies, metric_report = _load(episode.store)
    episode.runs = len(runs)
    keys = Counter((r["item_id"], r["dimension"], r["variant"]) for r in replies)
    episode.duplicates = sum(n - 1 for n in keys.values() if n > 1)
    expected = {(r["item_id"], r["dimension"], r["variant"]): _reply_signature(r)
                for r in ref_replies}
    got = {(r["item_id"], r["dimension"], r["variant"]): _reply_signature(r) for r in replies}
    episode.missing = len(set(expected) - set(got))
    episode.replies_equal = got == expected
    episode.summary_equal = bool(runs) and _stable_summary(runs[0]["summary"]) == ref_summary
    episode.metrics_equal = bool(metric_report) and metric_report == ref_report
    if not episode.replies_equal:
        diff = [k for k in expected if got.get(k) != expected[k]][:3]
        episode.problems.append(f"replies differ from the uninterrupted run, e.g. {diff}")
    if not episode.metrics_equal:
        episode.problems.append("metric report differs from the uninterrupted run"
                                if metric_report else "no metric report stored")
    if episode.runs != 1:
        episode.problems.append(f"{episode.runs} runs in the store (expected 1)")
    store = open_store(episode.store)
    try:
        episode.audit_ok = audit.verify(store.engine).ok
    finally:
        store.close()


WINDOWS = ("report", "drift check")
"""Where :func:`kill_after_last_reply` kills: while the metric report is computed (every
reply stored), or after the run was closed while its drift check is computed."""


@dataclass
class FinishProbe:
    """Kills aimed at the end of a job, after every reply was paid for. Run again, the job
    must complete what is missing (report, drift check) without requesting anything."""

    attempts: dict[str, int] = field(default_factory=dict)
    """Kills per window."""
    ok: dict[str, int] = field(default_factory=dict)
    """Per window: kills after which the job completed without new requests or runs."""
    rerequested: int = 0
    extra_runs: int = 0
    without_followups: int = 0
    """Runs left without a metric report or a drift check."""

    def rows(self) -> list[Row]:
        total = sum(self.attempts.values())
        good = sum(self.ok.values())
        per = ", ".join(f"{w}: {self.ok.get(w, 0)}/{n}" for w, n in self.attempts.items())
        return [Row(
            "crash", "killed after the last reply: the job completes, nothing paid again",
            f"{good}/{total} kills", good == total and total > 0,
            f"{per}; then {self.extra_runs} extra run(s), {self.rerequested} replies paid "
            f"for again, {self.without_followups} run(s) without report or drift check",
        )]


def kill_after_last_reply(
    sandbox: Sandbox,
    *,
    attempts: int = 4,
    limit: int = 150,
    bootstrap: int = 1000,
    windows: tuple[str, ...] = WINDOWS,
    server: RunningServer | None = None,
    timeout: float = 600.0,
) -> FinishProbe:
    """SIGKILL ``judgecal run`` after its last reply is stored, in each window of
    :data:`WINDOWS` in turn, then run the same command again and see what it paid for.

    For the drift-check window the store first gets an accepted baseline (one whole run),
    so the killed run's check is a real paired comparison that takes time.
    """
    own = server is None
    srv = server or start_server(recordings={"*": RECORDING}, sets_dir=sandbox.sets_dir)
    result = FinishProbe()
    try:
        for i in range(attempts):
            window = windows[i % len(windows)]
            url = sandbox.sqlite_url(f"finish-{i}.db")
            cfg = sandbox.write_config(f"finish-{i}", base_url=srv.url, store=url,
                                       run={"limit": limit, "bootstrap": bootstrap},
                                       drift={"auto_baseline": True})
            if window == "drift check":
                first = sandbox.judgecal("run", "--config", str(cfg), "--json",
                                         timeout=timeout)
                if first.returncode not in (0, 5):
                    raise RuntimeError(f"the baseline run failed: {first.stderr}")
            srv.reset_stats()
            hit = _kill_in_window(sandbox, str(cfg), url, window, limit, timeout)
            if hit is None:
                continue  # the job was complete before the kill: no kill point this time
            window = hit
            result.attempts[window] = result.attempts.get(window, 0) + 1
            at_kill = _item_requests(srv)
            with store_as_killed(url) as killed_url:
                runs_at_kill = len(_run_ids(killed_url))
            done = sandbox.judgecal("run", "--config", str(cfg), "--json", timeout=timeout)
            after = _item_requests(srv)
            again = sum(1 for k, n in after.items() if n > at_kill.get(k, 0))
            runs = _run_ids(url)
            lacking = _without_followups(url, runs)
            result.rerequested += again
            result.extra_runs += max(0, len(runs) - runs_at_kill)
            result.without_followups += lacking
            if done.returncode in (0, 3, 5, 10, 20) and again == 0 and len(runs) == runs_at_kill \
                    and lacking == 0:
                result.ok[window] = result.ok.get(window, 0) + 1
        return result
    finally:
        if own:
            srv.stop()


def _kill_in_window(sandbox: Sandbox, cfg: str, url: str, window: str, limit: int,
                    timeout: float) -> str | None:
    """Kill in ``window``; return the window the kill really landed in (judged from the
    store afterwards), or None when the job had already completed (or ended)."""
    probe = _Probe(url)
    runs_before = len(_run_ids(url))
    proc = sandbox.start("run", "--config", cfg, "--json")
    try:
        started = time.perf_counter()
        # Every reply of *this* run stored ...
        while proc.poll() is None and time.perf_counter() - started < timeout:
            if len(_run_ids(url)) > runs_before and probe.status() == "running" \
                    and probe.stored_newest() >= limit:
                break
            time.sleep(0.005)
        all_stored = time.perf_counter()
        # ... then: report window — 0.3 s into the report (the run still open); drift-check
        # window — the moment the run is closed (its check still being computed).
        while proc.poll() is None:
            if window == "report" and time.perf_counter() - all_stored > 0.05:
                break
            if window == "drift check" and probe.status() != "running":
                break
            time.sleep(0.002)
    finally:
        probe.close()
    if proc.poll() is not None:
        proc.communicate()
        return None
    kill(proc)
    with store_as_killed(url) as killed_url:
        probe = _Probe(killed_url)
        try:
            status = probe.status()
        finally:
            probe.close()
        if status == "running":
            return "report"
        if _unchecked(killed_url):
            return "drift check"
    return None


def _unchecked(url: str) -> bool:
    """The newest run is closed but has no drift check yet."""
    from sqlalchemy import create_engine, func, select

    from judgecal.db import schema
    from judgecal.db.engine import normalize_url

    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            newest = conn.execute(select(schema.runs.c.run_id)
                                  .order_by(schema.runs.c.started_at.desc()).limit(1)).scalar()
            if newest is None:
                return False
            checks = conn.execute(select(func.count()).select_from(schema.drift_checks)
                                  .where(schema.drift_checks.c.run_id == newest)).scalar()
    finally:
        engine.dispose()
    return not checks


def _run_ids(url: str) -> list[str]:
    from sqlalchemy import create_engine, select
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from judgecal.db import schema
    from judgecal.db.engine import normalize_url

    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(select(schema.runs.c.run_id)).all()]
    except (OperationalError, ProgrammingError):
        return []
    finally:
        engine.dispose()


def _without_followups(url: str, runs: list[str]) -> int:
    from sqlalchemy import create_engine, func, select

    from judgecal.db import schema
    from judgecal.db.engine import normalize_url

    engine = create_engine(normalize_url(url))
    lacking = 0
    try:
        with engine.connect() as conn:
            for run_id in runs:
                reports = conn.execute(
                    select(func.count()).select_from(schema.metric_reports)
                    .where(schema.metric_reports.c.run_id == run_id)).scalar()
                checks = conn.execute(
                    select(func.count()).select_from(schema.drift_checks)
                    .where(schema.drift_checks.c.run_id == run_id)).scalar()
                lacking += not reports or not checks
    finally:
        engine.dispose()
    return lacking


def kill_points_table(report: CrashReport) -> str:
    """Every kill point, one line each (for ``--verbose``)."""
    lines = ["episode  mode       delay_s  phase      torn  stored  integrity"]
    for k in report.kills:
        lines.append(
            f"{k.episode:<8} {k.mode:<10} {k.delay_s:<8.3f} {k.phase:<10} "
            f"{k.torn_wal_frames:<5} {k.stored:<7} {k.integrity}"
        )
    return "\n".join(lines)


__all__ = [
    "WINDOWS",
    "CrashReport",
    "Episode",
    "FinishProbe",
    "KillPoint",
    "crash_resume",
    "kill_after_last_reply",
    "kill_points_table",
]
