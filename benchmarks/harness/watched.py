"""Is the judge really watched? A night without a baseline, and a judge gone stale.

The promise: *a monitor that silently stops monitoring is worse than none.* A
nightly run that has no accepted baseline to compare with exits 5 (*not monitored*) and
sends ``watch.not_monitored``; a night that cannot conclude, more than
``run.stale_after_hours`` (36 by default) after the judge's last conclusive drift check,
exits 6 (*stale*) and sends ``watch.stale``. ``judgecal status`` must say the same with
its exit code.

The nights are real ``judgecal run`` commands, called in-process under
:func:`judgecal.records.simulated_clock` (so "37 hours later" takes a second), against the
recorded judge, with a real webhook receiver:

1. night 1, no baseline: exit 5, ``watch.not_monitored`` delivered; status 5;
2. ``judgecal baseline accept``, night 2 an hour later: healthy, exit 0; status 0;
3. the endpoint fails every request from now on; night 3, 35 hours after night 2's check:
   inconclusive but not stale yet, exit 3; status 3;
4. night 4, 37 hours after it: stale, exit 6, ``watch.stale`` delivered; status 6.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.harness.sandbox import Row, Sandbox, WebhookReceiver, cli_in_process
from judgecal.recorded.server import start_server
from judgecal.records import simulated_clock

RECORDING = "pandalm:gpt-3.5-turbo"


@dataclass
class Night:
    label: str
    hours: float
    """Hours after night 1 (simulated)."""
    expected: int
    exit_code: int = -1
    status_code: int = -1
    state: str = ""
    events: list[str] = field(default_factory=list)
    """Webhook events delivered during this night."""
    hours_since_conclusive: float | None = None
    elapsed_s: float = 0.0
    error: str = ""


@dataclass
class WatchReport:
    nights: list[Night] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def night(self, label: str) -> Night | None:
        return next((n for n in self.nights if n.label == label), None)

    def rows(self) -> list[Row]:
        none = self.night("no baseline")
        early = self.night("35 h")
        stale = self.night("37 h")
        matched = [n for n in self.nights if n.exit_code == n.expected == n.status_code]
        none_ok = (none is not None and none.exit_code == 5 and none.status_code == 5
                   and "watch.not_monitored" in none.events)
        stale_ok = (stale is not None and early is not None and stale.exit_code == 6
                    and stale.status_code == 6 and "watch.stale" in stale.events
                    and "watch.stale" not in early.events and early.exit_code == 3)

        def show(n: Night | None) -> str:
            return "?" if n is None else f"exit {n.exit_code}"

        return [
            Row("watch", "a night with no baseline: exit 5 + watch.not_monitored", show(none),
                none_ok and not self.problems,
                "; ".join(self.problems[:2]) or (
                    f"webhook events {', '.join(none.events) or 'none'}; status exit "
                    f"{none.status_code} ({none.state})" if none else "")),
            Row("watch", "inconclusive night > 36 h after the last conclusive check: exit 6",
                show(stale), stale_ok,
                (f"37 h: {', '.join(stale.events) or 'no event'}, status exit "
                 f"{stale.status_code} ({stale.state}, {stale.hours_since_conclusive} h); "
                 f"35 h: exit {early.exit_code}, not stale") if stale and early else ""),
            Row("watch", "judgecal status exit code == the night's",
                f"{len(matched)}/{len(self.nights)} nights", len(matched) == len(self.nights) > 0,
                ", ".join(f"{n.label}: run {n.exit_code} status {n.status_code}"
                          for n in self.nights)),
        ]


def watch_nights(sandbox: Sandbox, *, limit: int = 60) -> WatchReport:
    """Play the four nights of the module doc and compare exit codes and webhook events."""
    report = WatchReport()
    url = sandbox.sqlite_url("watched.db")
    start = datetime.now(UTC) - timedelta(hours=80)
    with start_server(recordings={"*": RECORDING}, sets_dir=sandbox.sets_dir) as srv, \
            WebhookReceiver() as hook:
        notify = {"webhook": {"url": hook.url, "tries_per_run": 1, "timeout_s": 2.0}}
        cfg = sandbox.write_config("watched", base_url=srv.url, store=url,
                                   judge={"max_retries": 0, "backoff_base_s": 0.0},
                                   run={"limit": limit, "min_items": 10}, notify=notify)
        plan = [("no baseline", 0.0, 5), ("baseline accepted", 1.0, 0), ("35 h", 36.0, 3),
                ("37 h", 38.0, 6)]
        for label, hours, expected in plan:
            night = Night(label, hours, expected)
            report.nights.append(night)
            before = len(hook.posts)
            with simulated_clock(start + timedelta(hours=hours)):
                if label == "35 h":
                    srv.configure(faults={"503": 1.0})
                t0 = time.perf_counter()
                code, out, err = cli_in_process(["run", "--config", str(cfg), "--json"])
                night.elapsed_s = time.perf_counter() - t0
                night.exit_code = code
                if code not in (0, 3, 5, 6, 10, 11, 20):
                    night.error = err.strip()[-300:]
                    report.problems.append(f"{label}: exit {code}: {night.error}")
                status = _status(url)
                night.status_code = status[0]
                judge = (status[1].get("judges") or [{}])[0]
                night.state = str(judge.get("state", ""))
                night.hours_since_conclusive = judge.get("hours_since_conclusive")
                if label == "no baseline":
                    run_id = _run_id(out)
                    done = cli_in_process(["--store", url, "baseline", "accept", run_id or "?",
                                           "--by", "harness", "--reason", "reviewed"])
                    if done[0] != 0:
                        report.problems.append(f"baseline accept exited {done[0]}: "
                                               f"{done[2].strip()[-200:]}")
            night.events = [_event(p) for p in hook.posts[before:]]
    return report


def _status(url: str) -> tuple[int, dict[str, Any]]:
    code, out, _err = cli_in_process(["--store", url, "status", "--json"])
    try:
        data = json.loads(out)
    except ValueError:
        data = {}
    return code, data if isinstance(data, dict) else {}


def _run_id(out: str) -> str | None:
    try:
        return str(json.loads(out)["run_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _event(post: dict[str, Any]) -> str:
    try:
        return str(json.loads(post["body"])["event"])
    except (ValueError, KeyError, TypeError):
        return "?"


__all__ = ["Night", "WatchReport", "watch_nights"]
