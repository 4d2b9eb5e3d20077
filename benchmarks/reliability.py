"""Reliability: the promises in the README under crashes, faults, overlap and hostile input.

Runs the harness of :mod:`benchmarks.harness` and prints ONE table; exits 1 if any row fails.

* crash    — ``judgecal run`` SIGKILLed at random points (random times, mid-write, after a
             random number of stored replies), resumed, compared with an uninterrupted run;
             the nightly job killed inside the reference runs of a replicated baseline
* faults   — every fault kind of the recorded judge at 1 %–50 %, the failure ceiling,
             drift checks against a fault-free baseline
* overlap  — two ``judgecal run`` started together (fresh and existing stores, SQLite and
             PostgreSQL), a drifted judge, a webhook that is down, two deliverers
* unattended — hostile HTTP 200 replies at 100 % and partial rates, poisoned token counts
             and a store poisoned by hand, a Retry-After storm against a short deadline,
             an endpoint refusing every connection
* watch    — a night with no baseline (exit 5), a judge gone stale (exit 6), and
             ``judgecal status`` agreeing with the nights
* hostile  — broken sets, configs, imported judgments and score files; YAML alias bombs and
             5,000-deep nesting; score files broken on line 5 of 1,000
* audit    — the stored calibration set's labels and items changed in SQL after a run
* secrets  — a sentinel API key and webhook secrets, searched for in every byte afterwards
             (also with an endpoint echoing the key in every 200 reply, HTTP loggers at DEBUG)

    python benchmarks/reliability.py            # full size (about 5 minutes on 2 cores)
    python benchmarks/reliability.py --quick    # CI size
    python benchmarks/reliability.py --only crash,faults --verbose

PostgreSQL scenarios run when ``--pg URL`` or ``$JUDGECAL_TEST_PG_URL`` names a server
(``make pg`` starts one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Row, Sandbox, format_table  # noqa: E402
from benchmarks.harness.bounded import bounded_reading  # noqa: E402
from benchmarks.harness.crash import (  # noqa: E402
    crash_resume,
    kill_after_last_reply,
    kill_points_table,
)
from benchmarks.harness.fault_matrix import FULL_RATES, QUICK_RATES, fault_matrix  # noqa: E402
from benchmarks.harness.hostile import campaign  # noqa: E402
from benchmarks.harness.leaks import secrets_scan, url_password_scan  # noqa: E402
from benchmarks.harness.overlap import overlap  # noqa: E402
from benchmarks.harness.references import kill_during_references  # noqa: E402
from benchmarks.harness.sandbox import PgDatabases  # noqa: E402
from benchmarks.harness.tamper import label_tamper  # noqa: E402
from benchmarks.harness.unattended import (  # noqa: E402
    FULL_RATES as MALFORMED_FULL_RATES,
)
from benchmarks.harness.unattended import (  # noqa: E402
    QUICK_RATES as MALFORMED_QUICK_RATES,
)
from benchmarks.harness.unattended import (  # noqa: E402
    malformed_matrix,
    poisoned_store,
    refused_connections,
    retry_after_storm,
)
from benchmarks.harness.watched import watch_nights  # noqa: E402

AREAS = ("crash", "faults", "unattended", "overlap", "watch", "hostile", "audit", "secrets")


@dataclass(frozen=True)
class Size:
    kills: int
    crash_items: int | None
    crash_bootstrap: int
    fault_rates: tuple[float, ...]
    fault_items: int
    pairs: int
    per_kind: int
    secret_items: int
    finish_kills: int
    finish_items: int
    malformed_rates: tuple[float, ...]
    malformed_items: int
    watch_items: int
    reference_kills: int = 4


# Full size: 295 s on 2 cores with SQLite (budget: 10 minutes; PostgreSQL adds its scenarios).
FULL = Size(kills=12, crash_items=None, crash_bootstrap=1000, fault_rates=FULL_RATES,
            fault_items=200, pairs=4, per_kind=6, secret_items=200, finish_kills=3,
            finish_items=300, malformed_rates=MALFORMED_FULL_RATES, malformed_items=100,
            watch_items=100, reference_kills=8)
QUICK = Size(kills=8, crash_items=200, crash_bootstrap=200, fault_rates=QUICK_RATES,
             fault_items=80, pairs=2, per_kind=3, secret_items=100, finish_kills=2,
             finish_items=100, malformed_rates=MALFORMED_QUICK_RATES, malformed_items=60,
             watch_items=60)

CRASH_MODES = {"random": 0.35, "mid-write": 0.25, "progress": 0.2, "progress-mid-write": 0.2}


def _crash(box: Sandbox, size: Size, args: argparse.Namespace) -> list[Row]:
    report = crash_resume(box, kills=size.kills, limit=size.crash_items,
                          bootstrap=size.crash_bootstrap, seed=args.seed, modes=CRASH_MODES)
    rows = report.rows()
    rows += kill_after_last_reply(box, attempts=size.finish_kills, limit=size.finish_items,
                                  bootstrap=size.crash_bootstrap).rows()
    rows += kill_during_references(box, attempts=size.reference_kills, replicates=3,
                                   seed=args.seed).rows()
    if args.pg:
        with PgDatabases(args.pg) as dbs:
            pg = crash_resume(Sandbox(box.workdir / "pg"), kills=max(3, size.kills // 4),
                              limit=100, bootstrap=200, seed=args.seed + 1,
                              modes={"progress": 0.5, "progress-mid-write": 0.5},
                              store_urls=lambda _i: dbs.create())
        ok = all(r.ok for r in pg.rows())
        bad = [r.check for r in pg.rows() if not r.ok]
        rows.append(Row("crash", "the same on PostgreSQL (progress and mid-write kills)",
                        f"{len(pg.kills)} kills in {len(pg.episodes)} runs", ok,
                        "failed: " + "; ".join(bad) if bad else ""))
    if args.verbose:
        print(kill_points_table(report), file=sys.stderr)
    return rows


def _faults(box: Sandbox, size: Size, args: argparse.Namespace) -> list[Row]:
    report = fault_matrix(box, rates=size.fault_rates, limit=size.fault_items)
    if args.verbose:
        for c in report.cells:
            print(f"{c.label:<28} {c.cls:<9} exit {c.exit_code:<3} {c.verdict:<12} "
                  f"{c.elapsed_s:5.1f}s faults {sum(c.faults.values()):<5} "
                  f"identical {c.identical}", file=sys.stderr)
    return report.rows()


def _overlap(box: Sandbox, size: Size, args: argparse.Namespace) -> list[Row]:
    report = overlap(box, pairs=size.pairs, pg_admin_url=args.pg)
    if args.verbose:
        for p in report.pairs:
            print(f"{p.scenario:<22} exits {p.codes} new runs {p.new_runs} "
                  f"({', '.join(f'{t:.1f}s' for t in p.elapsed_s)})", file=sys.stderr)
    return report.rows()


def _unattended(box: Sandbox, size: Size, args: argparse.Namespace) -> list[Row]:
    matrix = malformed_matrix(box, limit=size.malformed_items, rates=size.malformed_rates)
    if args.verbose:
        for c in matrix.cells + matrix.usage_cells:
            print(f"{c.label:<28} exit {c.exit_code:<3} {c.status:<12} {c.elapsed_s:5.1f}s "
                  f"faults {c.faults:<5} replies {c.replies:<4} failed {c.failed_malformed:<4}"
                  f" identical {c.identical} {' '.join(c.noise + c.problems)}",
                  file=sys.stderr)
    rows = matrix.rows()
    rows += poisoned_store(box).rows()
    rows += retry_after_storm(box, deadline_s=5.0).rows()
    rows += refused_connections(box).rows()
    return rows


def _watch(box: Sandbox, size: Size, args: argparse.Namespace) -> list[Row]:
    report = watch_nights(box, limit=size.watch_items)
    if args.verbose:
        for n in report.nights:
            print(f"{n.label:<18} +{n.hours:4.0f} h exit {n.exit_code} status {n.status_code} "
                  f"({n.state}) events {n.events} {n.error}", file=sys.stderr)
    return report.rows()


def _hostile(box: Sandbox, size: Size, args: argparse.Namespace) -> list[Row]:
    report = campaign(box.workdir, per_kind=size.per_kind, seed=args.seed)
    if args.verbose:
        for a in report.attempts:
            if not a.ok:
                print(a.explain(), file=sys.stderr)
    bounded = bounded_reading(box.workdir / "bounded")
    if args.verbose:
        for y in bounded.yaml:
            print(f"{y.target:<11} {y.payload:<24} {y.command:<8} exit {y.exit_code} "
                  f"{y.elapsed_s:.3f}s {y.message[:90]}", file=sys.stderr)
        for g in bounded.ingest:
            print(f"{g.label:<34} exit {g.exit_code:<3} {g.inserted:>4} stored, bad lines "
                  f"{g.bad_lines}: {g.outcome}", file=sys.stderr)
    return report.rows() + bounded.rows()


def _audit(box: Sandbox, size: Size, args: argparse.Namespace) -> list[Row]:
    report = label_tamper(box, seed=args.seed)
    if args.verbose:
        for t in report.tampers:
            print(f"{t.name:<18} exit {t.exit_code} named {t.found}: {t.statement}",
                  file=sys.stderr)
    return report.rows()


def _secrets(box: Sandbox, size: Size, args: argparse.Namespace) -> list[Row]:
    rows = secrets_scan(box, limit=size.secret_items).rows()
    return rows + url_password_scan(Sandbox(box.workdir / "password")).rows()


RUNNERS: dict[str, Callable[[Sandbox, Size, argparse.Namespace], list[Row]]] = {
    "crash": _crash,
    "faults": _faults,
    "unattended": _unattended,
    "overlap": _overlap,
    "watch": _watch,
    "hostile": _hostile,
    "audit": _audit,
    "secrets": _secrets,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI size (3-5 minutes on 2 cores)")
    parser.add_argument("--only", default=",".join(AREAS),
                        help=f"comma-separated areas ({', '.join(AREAS)})")
    parser.add_argument("--pg", default=os.environ.get("JUDGECAL_TEST_PG_URL"),
                        help="PostgreSQL admin URL for the PostgreSQL scenarios")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the scenarios' files here (default: a temporary directory)")
    parser.add_argument("--verbose", action="store_true", help="details on stderr")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    areas = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = set(areas) - set(AREAS)
    if unknown:
        parser.error(f"unknown area(s) {', '.join(sorted(unknown))}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="judgecal-reliability-"))
    rows: list[Row] = []
    timings: list[str] = []
    started = time.perf_counter()
    try:
        for area in areas:
            t0 = time.perf_counter()
            box = Sandbox(workdir / area)
            try:
                rows += RUNNERS[area](box, size, args)
            except Exception as exc:  # a scenario that cannot run is a failed row, not a crash
                traceback.print_exc(file=sys.stderr)
                rows.append(Row(area, "scenario ran to the end", f"{type(exc).__name__}",
                                False, str(exc)[:300]))
            timings.append(f"{area} {time.perf_counter() - t0:.0f}s")
            print(f"[{area} done in {time.perf_counter() - t0:.0f}s]", file=sys.stderr)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    rows += _summary_rows(rows)
    title = (f"judgecal reliability ({'quick' if args.quick else 'full'} size, seed "
             f"{args.seed}, {'SQLite + PostgreSQL' if args.pg else 'SQLite'}; "
             f"{time.perf_counter() - started:.0f}s: {', '.join(timings)})")
    print(format_table(rows, title=title))
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} rows hold"
          + (f"; FAILED: {', '.join(r.check for r in failed)}" if failed else ""))
    return 1 if failed else 0


def _summary_rows(rows: list[Row]) -> list[Row]:
    """The two headline numbers of the issue, read from the rows above."""
    def value(check: str) -> Any:
        for r in rows:
            if r.check.startswith(check):
                return r
        return None

    out = []
    lost = value("records lost")
    if lost is not None:
        out.append(Row("summary", "records lost (must be 0)", lost.value, lost.ok))
    false_inc = value("false incidents")
    if false_inc is not None:
        out.append(Row("summary", "false incidents (must be 0)",
                       false_inc.value.split(" / ")[0], false_inc.ok))
    return out


if __name__ == "__main__":
    sys.exit(main())
