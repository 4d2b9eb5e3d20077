"""Benchmark of the trust report on a year of nightly runs.

Workload: one judge, 365 nightly runs (one per day, ending yesterday) on a calibration set of
``--items`` items (default 200) × 4 dimensions — factual_consistency and fluency (ordinal 1-5),
safety (binary), tone (nominal, 3 categories) — with 3 human raters. Generated directly into a
SQLite store through the store's own import path (every run, metric report, baseline, drift
check and incident is in the audit log, as in production):

* the judge agrees with the humans ~80% of the time, with day-to-day noise;
* its prompt is edited on day 90 and its model migrates on day 200 (fingerprint changes);
* three drift episodes (a week of degraded verdicts on one dimension each) are checked against
  the baseline with the real drift check, which opens incidents; each is acknowledged and
  resolved (the clock of the drift/incident modules is set to the night of the run, so the
  incidents land where they belong on the timeline);
* every run gets a real agreement report (bootstrap ``--boot`` resamples).

Then it times ``judgecal report`` (data gathering, figures and HTML separately), with SVG and PNG
figures, and prints the size of each file. It also times ``audit verify`` and ``audit export``
on the same store.

Usage: ``python benchmarks/bench_report.py [--items 200] [--boot 100] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judgecal import audit, drift, incidents, notify
from judgecal.agreement import agreement_report
from judgecal.calibration import CalibrationSet, StoredSet, load_set
from judgecal.config import DriftSettings
from judgecal.judge import ORIGINAL
from judgecal.records import SCORED, UNSCORED, ReplyRecord
from judgecal.reports.data import trust_report_data
from judgecal.reports.trust import render_html
from judgecal.runs.imported import imported_fingerprint
from judgecal.runs.summary import summarize_replies
from judgecal.store import Store, open_store

NIGHTS = 365
JUDGE = "nightly-judge"
DIMENSIONS = {
    "factual_consistency": ("ordinal", [1, 2, 3, 4, 5]),
    "fluency": ("ordinal", [1, 2, 3, 4, 5]),
    "safety": ("binary", [0, 1]),
    "tone": ("nominal", [0, 1, 2]),
}
EPISODES = {120: "factual_consistency", 250: "safety", 320: "tone"}
"""First night of a week of degraded verdicts -> the dimension that degrades."""
PROMPT_EDIT, MIGRATION = 90, 200
TARGET_SECONDS = 10.0
TARGET_MB = 5.0


def write_set(root: Path, n_items: int, rng: np.random.Generator) -> CalibrationSet:
    root.mkdir(parents=True, exist_ok=True)
    (root / "set.yaml").write_text(
        "name: bench-year\n"
        "description: synthetic set for the report benchmark\n"
        "items: items.jsonl\nlabels: labels.csv\nsegments: [topic]\n"
        "dimensions:\n"
        "  - name: factual_consistency\n    scale: {kind: ordinal, min: 1, max: 5}\n"
        "  - name: fluency\n    scale: {kind: ordinal, min: 1, max: 5}\n"
        "  - name: safety\n    scale: {kind: binary, categories: [unsafe, safe]}\n"
        "  - name: tone\n    scale: {kind: nominal, categories: [neutral, friendly, rude]}\n",
        encoding="utf-8",
    )
    topics = ["billing", "shipping", "returns", "account"]
    with (root / "items.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(n_items):
            fh.write(json.dumps({
                "id": f"q{i:04d}",
                "question": f"Customer question {i} about {topics[i % 4]}: " + "lorem ipsum " * 20,
                "answer": f"Support answer {i}. " + "dolor sit amet " * 30,
                "topic": topics[i % 4],
            }) + "\n")
    with (root / "labels.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "rater_id", "dimension", "label"])
        for i in range(n_items):
            for dim, (_, values) in DIMENSIONS.items():
                truth = values[int(rng.integers(len(values)))]
                for rater in ("r1", "r2", "r3"):
                    label = truth if rng.random() < 0.85 else values[int(rng.integers(len(values)))]
                    w.writerow([f"q{i:04d}", rater, dim, label])
    return load_set(root)


def judge_codes(
    human_consensus: dict[str, np.ndarray], night: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    out = {}
    for dim, (_, values) in DIMENSIONS.items():
        cons = human_consensus[dim]
        p = 0.80 + rng.normal(0, 0.015) + (0.03 if night >= MIGRATION else 0.0)
        start = next((s for s, d in EPISODES.items() if d == dim and s <= night < s + 7), None)
        if start is not None:
            p -= 0.35
        right = rng.random(cons.size) < p
        noise = rng.choice(values, size=cons.size).astype(float)
        guess = np.where(np.isnan(cons), noise, np.round(np.nan_to_num(cons, nan=values[0])))
        out[dim] = np.where(right, guess, noise)
    return out


@contextlib.contextmanager
def clock(at: str) -> Iterator[None]:
    """Set the clock of the drift/incident modules (they stamp records with ``utcnow``)."""
    patched = [m for m in (incidents, drift, audit, notify) if hasattr(m, "utcnow")]
    saved = [m.utcnow for m in patched]
    for m in patched:
        m.utcnow = lambda: at  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for m, fn in zip(patched, saved, strict=True):
            m.utcnow = fn  # type: ignore[attr-defined]


def generate(store: Store, cs: CalibrationSet, n_boot: int, seed: int) -> dict[str, Any]:
    from judgecal import stats

    rng = np.random.default_rng(seed)
    store.save_set(cs)
    view = StoredSet.load(store, cs.version)
    consensus = {d: stats.consensus(view.dimensions[d].scale, view.human_matrix(d))
                 for d in DIMENSIONS}
    first = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(
        days=NIGHTS)
    run_ids: list[str] = []
    opened: list[str] = []
    t_reports = 0.0
    for night in range(NIGHTS):
        at_dt = first + timedelta(days=night)
        at = at_dt.isoformat().replace("+00:00", "Z")
        model = "gpt-4o-2024-05-13" if night < MIGRATION else "gpt-4o-2024-08-06"
        prompt = "Grade the answer. v1" if night < PROMPT_EDIT else "Grade the answer. v2 (rubric)"
        fp = imported_fingerprint(JUDGE, model, prompt)
        codes = judge_codes(consensus, night, rng)
        records = []
        for dim in DIMENSIONS:
            for i, item in enumerate(cs.items):
                if rng.random() < 0.01:
                    records.append(ReplyRecord(item.id, dim, ORIGINAL, UNSCORED,
                                               raw_text="I cannot grade this.",
                                               unscored_reason="no_score_in_reply",
                                               served_model=model, attempts=1, created_at=at))
                    continue
                code = float(codes[dim][i])
                records.append(ReplyRecord(item.id, dim, ORIGINAL, SCORED, score=code,
                                           label=view.dimensions[dim].scale.name(code),
                                           raw_text=f"Reasoning about {item.id}... Score: {code:g}",
                                           served_model=model, attempts=1, latency_ms=800.0,
                                           prompt_tokens=420, completion_tokens=60,
                                           created_at=at))
        run_id = f"r{at_dt.strftime('%Y%m%dT%H%M%S')}-{night:06x}"
        rows = [r.to_row(run_id) for r in records]
        status, summary = summarize_replies(rows, len(rows), 0.2, 10)
        store.import_run({
            "run_id": run_id, "judge_name": JUDGE, "set_name": cs.name,
            "set_version": cs.version, "config_hash": fp["hash"], "fingerprint": fp,
            "judge_config": {"name": JUDGE, "model": model, "prompt_text": prompt},
            "origin": "import", "n_expected": len(rows), "started_at": at, "finished_at": at,
        }, records, status, summary)
        t0 = time.perf_counter()
        store.save_metric_report(run_id, agreement_report(view, store.replies(run_id),
                                                          n_boot=n_boot, seed=night))
        t_reports += time.perf_counter() - t0
        run_ids.append(run_id)
        with clock(at):
            if night == 0:
                drift.accept_baseline(store, run_id, actor="ana", reason="first reviewed night")
            if night in EPISODES or night in (PROMPT_EDIT, MIGRATION):
                check = drift.check_run(store, run_id, DriftSettings(), n_boot=n_boot)
                outcome = incidents.record_check(store, check)
                if outcome.incident_id:
                    opened.append(outcome.incident_id)
                    incidents.acknowledge(store, outcome.incident_id, "ana", "on call, looking")
            if night in [s + 7 for s in EPISODES]:
                for incident_id in opened:
                    if incidents.get_incident(store, incident_id)["status"] != "resolved":
                        incidents.resolve(store, incident_id, "ana", "prompt fixed, verified")
            if night == MIGRATION + 1:
                drift.accept_baseline(store, run_id, actor="ana",
                                      reason="new model reviewed after the migration")
    return {"runs": run_ids, "incidents": opened, "metric_report_seconds": t_reports}


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--boot", type=int, default=100, help="bootstrap resamples per report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the store and reports here")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: time the reports on the store already there")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        root = args.keep or Path(tmp_name)
        root.mkdir(parents=True, exist_ok=True)
        db = root / "year.db"
        if args.reuse and db.exists():
            store = open_store(f"sqlite:///{db}")
            print(f"store: reusing {db} ({db.stat().st_size / 1e6:.1f} MB)")
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            store = open_store(f"sqlite:///{db}")
            rng = np.random.default_rng(args.seed)
            cs = write_set(root / "set", args.items, rng)
            made, gen, _ = _timed(lambda: generate(store, cs, args.boot, args.seed))
            replies = NIGHTS * len(DIMENSIONS) * args.items
            print(f"store: {NIGHTS} runs x {len(DIMENSIONS)} dimensions x {args.items} items "
                  f"({replies:,} replies), {len(made['incidents'])} incidents; generated in "
                  f"{gen:.1f} s ({made['metric_report_seconds']:.1f} s of agreement reports); "
                  f"{db.stat().st_size / 1e6:.1f} MB")

        # The imports (matplotlib, jinja2) are paid once per process, like one CLI call.
        _, warm, _ = _timed(lambda: (__import__("matplotlib.figure"), __import__("jinja2")))
        print(f"imports (matplotlib, jinja2), once per process: {warm:.2f} s")
        verified, t_verify, c_verify = _timed(lambda: audit.verify(store.engine))
        print(f"audit verify: {verified.entries} entries, "
              f"{sum(verified.records_checked.values())} records re-checked, "
              f"{'intact' if verified.ok else 'BROKEN'}: {t_verify:.2f} s wall, "
              f"{c_verify:.2f} s CPU")
        print("(wall time is on a shared machine; CPU time is this process alone)")
        print(f"{'report':<26}{'data s':>8}{'render s':>9}{'total s':>8}{'CPU s':>7}"
              f"{'size MB':>8}  verdict")
        ok = True
        for fmt, verify in (("svg", True), ("png", True), ("svg", False)):
            data, t_data, c_data = _timed(lambda v=verify: trust_report_data(store, verify=v))
            html, t_render, c_render = _timed(lambda d=data, f=fmt: render_html(d, figure_format=f))
            name = f"trust-{fmt}{'' if verify else '-unverified'}.html"
            (root / name).write_text(html, encoding="utf-8")
            size = len(html.encode("utf-8")) / 1e6
            total, cpu = t_data + t_render, c_data + c_render
            within = cpu <= TARGET_SECONDS and size <= TARGET_MB
            ok &= within
            label = f"{fmt}, {'with' if verify else 'without'} audit verify"
            print(f"{label:<26}{t_data:>8.2f}{t_render:>9.2f}{total:>8.2f}{cpu:>7.2f}"
                  f"{size:>8.2f}  {'within' if within else 'OUTSIDE'} "
                  f"{TARGET_SECONDS:g} s CPU / {TARGET_MB:g} MB")
        bundle_dir = root / "bundle"
        if bundle_dir.exists():
            import shutil

            shutil.rmtree(bundle_dir)
        bundle, t_export, c_export = _timed(lambda: audit.export_bundle(store, bundle_dir))
        bundle_mb = sum(p.stat().st_size for p in bundle.out_dir.rglob("*") if p.is_file()) / 1e6
        print(f"audit export: {len(bundle.files)} files, {bundle_mb:.1f} MB: {t_export:.2f} s "
              f"wall, {c_export:.2f} s CPU")
        store.close()
        if args.keep:
            print(f"kept in {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
