"""Score history at warehouse scale: generate, ingest, link — against targets and pandas.

    python benchmarks/bench_scores.py                    # 10,000,000 scores, SQLite
    python benchmarks/bench_scores.py --rows 1000000 --pg postgresql://postgres@127.0.0.1:54329/postgres
    python benchmarks/bench_scores.py --quick            # 1,000,000 scores (make bench)

Measures
  * generation of the history (≈ 90 days, 500 customers, 6 dimensions; vectorised numpy →
    pyarrow, Parquet row groups);
  * ingest from Parquet: rows/s (wall clock, and per CPU-second of the ingesting process)
    and peak RSS (VmHWM) of the ingesting process — a child process, so the generator's
    memory is not counted — targets ≥ 200,000 rows/s, ≤ 500 MB. On PostgreSQL the CPU
    seconds of the server backend are shown too when the server runs on this machine;
  * link (onset + blast radius, every number of `judgecal scores link`) on SQLite and, with
    --pg, PostgreSQL — target < 5 s on SQLite — from the store's rollups (what the command
    does) and, for reference, from aggregate queries over the raw rows; against a pandas
    baseline that loads every row (from the Parquet file, the fastest load pandas has) and
    computes the same numbers. The three answers are checked to agree.

Each timing is repeated (--repeats): the best and the median are printed. Figures are
wall-clock times on this machine as it is; on shared CPUs they are noisy, so the load
average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INGEST_TARGET_ROWS_S = 200_000
RSS_TARGET_MB = 500
LINK_TARGET_S = 5.0
QUICK_ROWS = 1_000_000

_CHILD = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from judgecal.scores import ingest_file
from judgecal.store import open_store
store = open_store({url!r})
backend = None
if store.engine.dialect.name == "postgresql":
    # the pool hands this same connection to the ingest below
    with store.engine.connect() as conn:
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()

def server_cpu():
    try:
        fields = open(f"/proc/{{backend}}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None

s0 = server_cpu() if backend else None
t, c = time.perf_counter(), time.process_time()
r = ingest_file(store.engine, {path!r})
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
s1 = server_cpu() if backend else None
# VmHWM: the peak of this process image. ru_maxrss would also count the parent's memory,
# which Linux carries across fork + exec.
rss_mb = None
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        rss_mb = int(line.split()[1]) / 1024
print(json.dumps({{"rows": r.rows_read, "inserted": r.inserted, "bad": r.bad_rows,
                  "elapsed_s": elapsed, "cpu_s": cpu, "rss_mb": rss_mb,
                  "server_cpu_s": None if s0 is None or s1 is None else s1 - s0}}))
"""


def load() -> str:
    try:
        return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def ingest_in_child(url: str, path: Path) -> dict[str, Any]:
    code = _CHILD.format(root=str(ROOT), url=url, path=str(path))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def link_once(url: str, last_healthy: Any, end: Any, *,
              use_rollups: bool) -> tuple[float, dict[str, Any]]:
    from judgecal.scores import blast_radius, find_onset, store_source
    from judgecal.store import open_store

    store = open_store(url)
    try:
        src = store_source(store.engine)
        t = time.perf_counter()
        onset = find_onset(src, "quality-judge", last_healthy_at=last_healthy)
        result = blast_radius(src, onset, "quality-judge", end=end, top=10,
                              use_rollups=use_rollups)
        return time.perf_counter() - t, result
    finally:
        store.close()


def pandas_baseline(path: Path, last_healthy: Any, end: Any) -> tuple[float, dict[str, Any]]:
    """Load every row, then compute the same numbers in pandas."""
    import pandas as pd

    t = time.perf_counter()
    df = pd.read_parquet(path)
    judge = df["judge"] == "quality-judge"
    first_seen = df[judge].groupby("fingerprint", observed=True)["scored_at"].min()
    new = first_seen[first_seen > pd.Timestamp(last_healthy)]
    onset = new.min()
    stop = pd.Timestamp(end)
    in_window = (df["scored_at"] >= onset) & (df["scored_at"] < stop)
    affected = in_window & judge & df["fingerprint"].isin(list(new.index))
    aff = df[affected]
    win = df[in_window]
    before = df[judge & (df["scored_at"] >= onset - (stop - onset)) & (df["scored_at"] < onset)]
    top = aff.groupby("customer", observed=True).size().nlargest(10)
    result = {
        "affected_scores": int(affected.sum()),
        "scores_in_window": int(in_window.sum()),
        "customers_affected": int(aff["customer"].nunique()),
        "customers_active": int(win["customer"].nunique()),
        "by_dimension": aff.groupby("dimension", observed=True)["score"].agg(
            ["size", "mean", "var", "min", "max"]),
        "before": before.groupby("dimension", observed=True)["score"].agg(
            ["size", "mean", "var", "min", "max"]),
        "by_segment": aff.groupby("segment", observed=True)["score"].agg(["size", "mean"]),
        "top": top,
        "top_totals": win[win["customer"].isin(list(top.index))].groupby(
            "customer", observed=True).size(),
    }
    return time.perf_counter() - t, result


def pg_database(admin: str) -> tuple[str, Any]:
    import sqlalchemy as sa

    from judgecal.db.engine import normalize_url

    name = f"jc_bench_{secrets.token_hex(4)}"
    engine = sa.create_engine(normalize_url(admin), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return admin.rsplit("/", 1)[0] + f"/{name}", drop


def timed(label: str, repeats: int, fn: Any) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        elapsed, result = fn()
        times.append(elapsed)
    print(f"  {label}: " + ", ".join(f"{x:.3f}" for x in times) + " s", flush=True)
    return times, result


def spread(times: list[float]) -> str:
    return f"{min(times):.3f} / {statistics.median(times):.3f} s"


def agree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("affected_scores", "scores_in_window", "customers_affected", "customers_active")
    return all(a[k] == b[k] for k in keys)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None,
                        help="scores to generate (default 10,000,000; --quick: 1,000,000)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ROWS:,} scores and fewer repeats (for make bench)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of each link and of pandas (default 5; --quick: 3)")
    parser.add_argument("--pg", default=None, metavar="URL",
                        help="PostgreSQL server (a scratch database is created and dropped)")
    parser.add_argument("--workdir", default=None, help="Where to write files (default: temp)")
    parser.add_argument("--no-pandas", action="store_true", help="Skip the pandas baseline")
    parser.add_argument("--no-raw", action="store_true",
                        help="Skip the reference link over the raw rows")
    args = parser.parse_args()
    rows = args.rows or (QUICK_ROWS if args.quick else 10_000_000)
    repeats = args.repeats or (3 if args.quick else 5)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="jc-bench-scores-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, rows, repeats, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, rows: int, repeats: int, work: Path) -> int:
    from judgecal.scores.generate import generate, write_history

    lines: list[tuple[str, str, str]] = []
    print(f"score history benchmark: {rows:,} scores, {load()}", flush=True)

    t = time.perf_counter()
    history = generate(rows, days=args.days, customers=args.customers, seed=7,
                       switch_day=args.days * 2 / 3 + 0.4)
    gen_s = time.perf_counter() - t
    parquet = work / "scores.parquet"
    t = time.perf_counter()
    write_history(history, parquet)
    write_s = time.perf_counter() - t
    last_healthy = history.switch_at - timedelta(days=1)
    end = history.end
    del history
    print(f"generated {rows:,} scores in {gen_s:.1f} s, Parquet written in {write_s:.1f} s "
          f"({parquet.stat().st_size / 1e6:.0f} MB)", flush=True)
    lines.append(("generate + write Parquet", f"{gen_s + write_s:.1f} s",
                  f"{rows / (gen_s + write_s):,.0f} rows/s"))

    stores = [("SQLite", f"sqlite:///{work / 'store.db'}", None)]
    if args.pg:
        url, drop = pg_database(args.pg)
        stores.append(("PostgreSQL", url, drop))
    link_best: dict[str, float] = {}
    link_median: dict[str, float] = {}
    answers: dict[str, dict[str, Any]] = {}
    try:
        for name, url, _ in stores:
            r = ingest_in_child(url, parquet)
            rate = r["rows"] / r["elapsed_s"]
            cpu_s = r["cpu_s"] + (r.get("server_cpu_s") or 0.0)
            per_cpu = r["rows"] / cpu_s if cpu_s else 0.0
            server = (f", server backend {r['server_cpu_s']:.1f} CPU s"
                      if r.get("server_cpu_s") is not None else "")
            print(f"{name}: ingested {r['inserted']:,} rows in {r['elapsed_s']:.1f} s "
                  f"({r['cpu_s']:.1f} CPU s{server}) = {rate:,.0f} rows/s, "
                  f"peak RSS {r['rss_mb']:.0f} MB; {load()}", flush=True)
            lines.append((f"ingest Parquet → {name}", f"{rate:,.0f} rows/s",
                          f"{rate / INGEST_TARGET_ROWS_S:.2f}× the 200,000 rows/s target"))
            who = "ingest + server backend" if server else "the ingesting process"
            lines.append((f"  per CPU-second of {who}", f"{per_cpu:,.0f} rows/s",
                          f"{cpu_s:.1f} CPU s in all ({os.cpu_count()} CPUs shared)"))
            lines.append((f"ingest peak RSS ({name})", f"{r['rss_mb']:.0f} MB",
                          f"{r['rss_mb'] / RSS_TARGET_MB:.2f}× the 500 MB limit"))
            print(f"{name} link, from the rollups (what `scores link` runs):", flush=True)
            times, result = timed("runs", repeats + 1, lambda u=url: link_once(
                u, last_healthy, end, use_rollups=True))
            first, times = times[0], times[1:]
            answers[name] = result
            link_best[name], link_median[name] = min(times), statistics.median(times)
            print(f"  {result['affected_scores']:,} affected of {result['scores_in_window']:,}, "
                  f"{result['pct_traffic']:.2f}% of traffic, {result['pct_customers']:.2f}% of "
                  "customers", flush=True)
            target = (f"{link_median[name] / LINK_TARGET_S:.3f}× the 5 s target"
                      if name == "SQLite" else "")
            lines.append((f"link + blast radius ({name})", spread(times),
                          f"best / median; first run {first:.3f} s; {target}"))
            if not args.no_raw:
                print(f"{name} link, aggregate queries over the raw rows (reference):",
                      flush=True)
                raw_times, raw = timed("runs", 2, lambda u=url: link_once(
                    u, last_healthy, end, use_rollups=False))
                same = agree(result, raw)
                lines.append((f"  reference: raw-row queries ({name})", spread(raw_times),
                              f"{statistics.median(raw_times) / link_median[name]:.0f}× the "
                              f"rollup link; answers {'agree' if same else 'DIFFER'}"))
        if not args.no_pandas:
            print("pandas load-everything:", flush=True)
            times, base = timed("runs", max(2, repeats - 2), lambda: pandas_baseline(
                parquet, last_healthy, end))
            pandas_best, pandas_median = min(times), statistics.median(times)
            lines.append(("pandas load-everything baseline", spread(times), "best / median"))
            for name in link_best:
                same = agree(answers[name], base)
                lines.append((f"  {name} link vs pandas",
                               f"{pandas_best / link_best[name]:.0f}× / "
                               f"{pandas_median / link_median[name]:.0f}×",
                               f"faster (best / median); answers {'agree' if same else 'DIFFER'}"))
    finally:
        for _, _, drop in stores:
            if drop is not None:
                drop()

    width = max(len(a) for a, _, _ in lines)
    print()
    print(f"score history benchmark — {rows:,} scores, {args.days} days, "
          f"{args.customers} customers, {os.cpu_count()} CPUs, {load()}")
    for a, b, c in lines:
        print(f"  {a.ljust(width)}  {b:>22}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
