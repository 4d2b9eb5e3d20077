"""Score history at warehouse scale: generate, ingest, link — against targets and pandas.

    python benchmarks/bench_scores.py                    # 10,000,000 scores, SQLite
    python benchmarks/bench_scores.py --rows 1000000 --pg postgresql://postgres@127.0.0.1:54329/postgres

Measures
  * generation of the history (≈ 90 days, 500 customers, 6 dimensions; vectorised numpy →
    pyarrow, Parquet row groups);
  * ingest from Parquet: rows/s and peak RSS of the ingesting process (a child process, so
    the generator's memory is not counted) — targets ≥ 200,000 rows/s, ≤ 500 MB;
  * link (onset + blast radius, every number of `judgecal scores link`) on SQLite and, with
    --pg, PostgreSQL — target < 5 s on SQLite — against a pandas baseline that loads every
    row (from the Parquet file, the fastest load pandas has) and computes the same numbers.

Figures are wall-clock times on this machine as it is (shared CPUs make them noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
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

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from judgecal.scores import ingest_file
from judgecal.store import open_store
store = open_store({url!r})
t = time.perf_counter()
r = ingest_file(store.engine, {path!r})
elapsed = time.perf_counter() - t
# VmHWM: the peak of this process image. ru_maxrss would also count the parent's memory,
# which Linux carries across fork + exec.
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            rss_mb = int(line.split()[1]) / 1024
except OSError:
    pass
print(json.dumps({{"rows": r.rows_read, "inserted": r.inserted, "bad": r.bad_rows,
                  "elapsed_s": elapsed, "rss_mb": rss_mb}}))
"""


def ingest_in_child(url: str, path: Path) -> dict[str, Any]:
    code = _CHILD.format(root=str(ROOT), url=url, path=str(path))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def link_once(url: str, last_healthy: Any, end: Any) -> tuple[float, dict[str, Any]]:
    from judgecal.scores import blast_radius, find_onset, store_source
    from judgecal.store import open_store

    store = open_store(url)
    try:
        src = store_source(store.engine)
        t = time.perf_counter()
        onset = find_onset(src, "quality-judge", last_healthy_at=last_healthy)
        result = blast_radius(src, onset, "quality-judge", end=end, top=10)
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
    in_window = (df["scored_at"] >= onset) & (df["scored_at"] < pd.Timestamp(end))
    affected = in_window & judge & df["fingerprint"].isin(list(new.index))
    aff = df[affected]
    win = df[in_window]
    before = df[judge & (df["scored_at"] >= onset - (pd.Timestamp(end) - onset))
                & (df["scored_at"] < onset)]
    result = {
        "affected_scores": int(affected.sum()),
        "scores_in_window": int(in_window.sum()),
        "customers_affected": int(aff["customer"].nunique()),
        "customers_active": int(win["customer"].nunique()),
        "by_dimension": aff.groupby("dimension", observed=True)["score"].agg(["size", "mean"]),
        "before": before.groupby("dimension", observed=True)["score"].mean(),
        "by_segment": aff.groupby("segment", observed=True).size(),
        "top": aff.groupby("customer", observed=True).size().nlargest(10),
    }
    return time.perf_counter() - t, result


def pg_database(admin: str) -> tuple[str, Any]:
    import sqlalchemy as sa

    from judgecal.store.engine import normalize_url

    name = f"jc_bench_{secrets.token_hex(4)}"
    engine = sa.create_engine(normalize_url(admin), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return admin.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--pg", default=None, metavar="URL",
                        help="PostgreSQL server (a scratch database is created and dropped)")
    parser.add_argument("--workdir", default=None, help="Where to write files (default: temp)")
    parser.add_argument("--no-pandas", action="store_true", help="Skip the pandas baseline")
    args = parser.parse_args()

    from judgecal.scores.generate import generate, write_history

    work = Path(args.workdir or tempfile.mkdtemp(prefix="jc-bench-scores-"))
    work.mkdir(parents=True, exist_ok=True)
    lines: list[tuple[str, str, str]] = []

    t = time.perf_counter()
    history = generate(args.rows, days=args.days, customers=args.customers, seed=7,
                       switch_day=args.days * 2 / 3 + 0.4)
    gen_s = time.perf_counter() - t
    parquet = work / "scores.parquet"
    t = time.perf_counter()
    write_history(history, parquet)
    write_s = time.perf_counter() - t
    last_healthy = history.switch_at - timedelta(days=1)
    end = history.end
    del history
    print(f"generated {args.rows:,} scores in {gen_s:.1f} s, Parquet written in {write_s:.1f} s "
          f"({parquet.stat().st_size / 1e6:.0f} MB)", flush=True)
    lines.append(("generate + write Parquet", f"{gen_s + write_s:.1f} s",
                  f"{args.rows / (gen_s + write_s):,.0f} rows/s"))

    stores = [("SQLite", f"sqlite:///{work / 'store.db'}", None)]
    if args.pg:
        url, drop = pg_database(args.pg)
        stores.append(("PostgreSQL", url, drop))
    link_times: dict[str, float] = {}
    try:
        for name, url, _ in stores:
            r = ingest_in_child(url, parquet)
            rate = r["rows"] / r["elapsed_s"]
            print(f"{name}: ingested {r['inserted']:,} rows in {r['elapsed_s']:.1f} s = "
                  f"{rate:,.0f} rows/s, peak RSS {r['rss_mb']:.0f} MB", flush=True)
            lines.append((f"ingest Parquet → {name}", f"{rate:,.0f} rows/s",
                          f"{rate / INGEST_TARGET_ROWS_S:.2f}× the 200,000 rows/s target"))
            lines.append((f"ingest peak RSS ({name})", f"{r['rss_mb']:.0f} MB",
                          f"{r['rss_mb'] / RSS_TARGET_MB:.2f}× the 500 MB limit"))
            times = []
            result: dict[str, Any] = {}
            for _ in range(2):
                elapsed, result = link_once(url, last_healthy, end)
                times.append(elapsed)
            link_times[name] = min(times)
            print(f"{name}: link {times[0]:.2f} s (first), {times[1]:.2f} s (second); "
                  f"{result['affected_scores']:,} affected of {result['scores_in_window']:,}, "
                  f"{result['pct_traffic']:.2f}% of traffic, {result['pct_customers']:.2f}% of "
                  "customers", flush=True)
            target = (f"{link_times[name] / LINK_TARGET_S:.2f}× the 5 s target"
                      if name == "SQLite" else "")
            lines.append((f"link + blast radius ({name})",
                          f"{times[0]:.2f} s / {times[1]:.2f} s", target))
        if not args.no_pandas:
            elapsed, base = pandas_baseline(parquet, last_healthy, end)
            print(f"pandas load-everything: {elapsed:.2f} s "
                  f"({base['affected_scores']:,} affected)", flush=True)
            lines.append(("pandas load-everything baseline", f"{elapsed:.2f} s", ""))
            for name, secs in link_times.items():
                lines.append((f"  {name} link vs pandas", f"{elapsed / secs:.1f}× faster"
                              if secs < elapsed else f"{secs / elapsed:.1f}× slower", ""))
    finally:
        for _, _, drop in stores:
            if drop is not None:
                drop()

    width = max(len(a) for a, _, _ in lines)
    print()
    print(f"score history benchmark — {args.rows:,} scores, {args.days} days, "
          f"{args.customers} customers, {os.cpu_count()} CPUs")
    for a, b, c in lines:
        print(f"  {a.ljust(width)}  {b:>22}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
