"""Detection quality of the drift rule: false alarms under no change, power for a 4-point drop.

What is simulated
-----------------
*Real judge noise.* LLMBar recorded every judge's verdict twice per item: with the two outputs
in their original order and swapped (mapped back). GPT-4 (Vanilla prompt) gives a different
verdict in the two orders on 7.2 % of the 419 items. A simulated *night* re-draws each item's
verdict: with probability ``λ / 2`` the swapped-order verdict, otherwise the original one. With
``λ = 1`` the unstable items are coin flips every night, so two nights differ on about 3.6 % of
the verdicts — more run-to-run variation than a temperature-0 API usually shows, so a
pessimistic case; ``λ = 0.25`` (about 0.9 % of verdicts differ between two nights) is closer to
a deterministic endpoint. A deterministic endpoint (``λ = 0``, e.g. the recorded judge) never
raises a false alarm: identical verdicts give an interval of exactly 0.

*Set sizes.* 419 = LLMBar itself; 1,000 and 2,000 are sets of that size drawn with replacement
from LLMBar's items (its gold labels and the judge's real verdicts), since no shipped set with
two orders of verdicts has 1,000 items. PandaLM (974 items compared) sits next to the 1,000 row.

*A 4-point drop.* On a drifted night each item is, with probability ``p``, judged by the
ChatGPT (Vanilla) recordings instead — a real, worse judge, with its own order noise — and
``p`` is set so that the *expected* kappa against gold falls by exactly 4 points.

*The rule* is the one ``judgecal run`` applies (:func:`judgecal.drift.decide`, 1,000
bootstrap resamples, seed 0 every night as in production): an alarm is a move whose interval
excludes 0 at the alarm level and is at least 1 point (warning), or a real shift of the
judge's own verdict shares of at least 5 points (the distribution watch); an incident needs a
4-point drop (SEV2). Each night is compared with a fixed baseline that is itself a noisy night.

* False alarms: sequences of a baseline and 30 nights without change, every night *routine*
  (level 0.05 / 30). Rates per night and per 30 nights (any alarm in the sequence), with a
  95 % Wilson interval.
* Power: one drifted night at the *change-event* level (0.05: the fingerprint shows the change)
  and at the *routine* level (nothing visible changed), and within 3 drifted nights at the
  routine level (the drift persists and is re-tested nightly).

Usage: ``python benchmarks/bench_detection.py [--quick] [--json]``. ``--quick``: 30 sequences
and 60 drift trials per row (a few minutes) instead of 100 and 200.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from judgecal import drift  # noqa: E402
from judgecal.config import DriftSettings  # noqa: E402
from judgecal.scales import Scale  # noqa: E402
from judgecal.stats import paired_difference  # noqa: E402

DATA = ROOT / "calibration_sets" / "llmbar"
SCALE = Scale(kind="pairwise", ties=False)
SETTINGS = DriftSettings()
EVENT_ALPHA = 1 - SETTINGS.confidence
ROUTINE_ALPHA = EVENT_ALPHA / SETTINGS.horizon_nights
NIGHTS = 30
TARGET_FA_30 = 0.05
TARGET_POWER = 0.90


@dataclass
class Judge:
    original: np.ndarray
    swapped: np.ndarray


def load() -> tuple[np.ndarray, Judge, Judge]:
    """The gold labels and the real GPT-4 and ChatGPT (Vanilla) verdicts on LLMBar, in both
    presentation orders (the swapped one mapped back), from the shipped calibration set."""
    gold: dict[str, float] = {}
    with open(DATA / "labels.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["rater_id"] == "gold":
                gold[row["item_id"]] = float(row["label"])
    ids = sorted(gold)

    def judge(name: str) -> Judge:
        verdicts: dict[str, tuple[float, float]] = {}
        with open(DATA / "recorded" / f"{name}.jsonl", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                verdicts[row["id"]] = tuple(  # type: ignore[assignment]
                    math.nan if row[k] is None else float(row[k])
                    for k in ("winner", "winner_swapped"))
        pairs = [verdicts.get(i, (math.nan, math.nan)) for i in ids]
        return Judge(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))

    return np.array([gold[i] for i in ids]), judge("GPT-4/Vanilla"), judge("ChatGPT/Vanilla")


def night(rng: np.random.Generator, j: Judge, idx: np.ndarray, lam: float) -> np.ndarray:
    v = j.original[idx].copy()
    s = j.swapped[idx]
    use = (rng.random(idx.size) < lam / 2) & ~np.isnan(s)
    v[use] = s[use]
    return v


def drifted(rng: np.random.Generator, good: Judge, bad: Judge, idx: np.ndarray, lam: float,
            p: float) -> np.ndarray:
    v = night(rng, good, idx, lam)
    other = night(rng, bad, idx, lam)
    mix = rng.random(idx.size) < p
    v[mix] = other[mix]
    return v


def _prob_one(j: Judge, lam: float) -> np.ndarray:
    """P(verdict = 1) per item on a night (NaN verdicts count as missing)."""
    o = np.nan_to_num((j.original == 1).astype(float))
    s = np.where(np.isnan(j.swapped), o, (j.swapped == 1).astype(float))
    return (1 - lam / 2) * o + (lam / 2) * s


def expected_kappa(gold: np.ndarray, p_one: np.ndarray) -> float:
    table = np.zeros((2, 2))
    for g, label in ((1.0, 0), (2.0, 1)):
        table[label, 0] = p_one[gold == g].sum()
        table[label, 1] = (1 - p_one[gold == g]).sum()
    n = table.sum()
    po = np.trace(table) / n
    pe = (table.sum(1) @ table.sum(0)) / n**2
    return float((po - pe) / (1 - pe))


def calibrate_mix(gold: np.ndarray, good: Judge, bad: Judge, lam: float, drop: float) -> float:
    pg, pb = _prob_one(good, lam), _prob_one(bad, lam)
    k0 = expected_kappa(gold, pg)
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if k0 - expected_kappa(gold, (1 - mid) * pg + mid * pb) < drop:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def check(gold: np.ndarray, base: np.ndarray, run: np.ndarray, alpha: float,
          cache: dict[str, drift.DimensionData] | None = None) -> tuple[bool, bool, float]:
    """(alarm, incident, delta points) of one nightly comparison under the real rule."""
    key = "d"
    if cache is not None and key in cache:
        d = cache[key]
    else:
        ones = np.ones(gold.size, dtype=bool)
        d = drift.DimensionData("preference", SCALE, "kappa", gold[:, None], base, run, ones, ones)
        if cache is not None:
            cache[key] = d
    result = drift.decide([d], alpha, n_boot=1000, seed=0)["preference"]
    delta = result["delta_points"] or 0.0
    # The watch on the judge's own verdicts (same items) also raises warnings.
    shift = drift.distribution_watch(d)
    watch_alarm = bool(shift["p_value"] <= alpha
                       and (shift.get("shift_points") or 0) >= SETTINGS.distribution_shift_points)
    if not result["real"]:
        return watch_alarm, False, delta
    severity = drift.severity_for(delta, delta < 0, SETTINGS)
    alarm = severity in ("warning", "SEV2", "SEV0") or watch_alarm
    return alarm, severity in ("SEV2", "SEV0"), delta


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def false_alarms(gold_all: np.ndarray, good: Judge, n: int, lam: float, sequences: int,
                 rng: np.random.Generator) -> dict[str, Any]:
    nights = alarms = incidents = seq_alarm = seq_incident = 0
    spread = []
    for _ in range(sequences):
        idx = np.arange(gold_all.size) if n == gold_all.size else rng.integers(
            0, gold_all.size, n)
        gold = gold_all[idx]
        base = night(rng, good, idx, lam)
        any_alarm = any_incident = False
        for _ in range(NIGHTS):
            alarm, incident, delta = check(gold, base, night(rng, good, idx, lam), ROUTINE_ALPHA)
            nights += 1
            alarms += alarm
            incidents += incident
            any_alarm |= alarm
            any_incident |= incident
            spread.append(delta)
        seq_alarm += any_alarm
        seq_incident += any_incident
    return {
        "nights": nights,
        "per_night": alarms / nights,
        "per_night_incident": incidents / nights,
        "sequences": sequences,
        "per_30_nights": seq_alarm / sequences,
        "per_30_nights_ci": wilson(seq_alarm, sequences),
        "per_30_nights_incident": seq_incident / sequences,
        "night_to_baseline_sd_points": float(np.std(spread)),
    }


def power(gold_all: np.ndarray, good: Judge, bad: Judge, n: int, lam: float, p: float,
          trials: int, rng: np.random.Generator) -> dict[str, Any]:
    counts = {"event_alarm": 0, "event_incident": 0, "routine_alarm": 0, "routine_incident": 0,
              "routine_alarm_3_nights": 0}
    deltas = []
    for _ in range(trials):
        idx = np.arange(gold_all.size) if n == gold_all.size else rng.integers(
            0, gold_all.size, n)
        gold = gold_all[idx]
        base = night(rng, good, idx, lam)
        first = drifted(rng, good, bad, idx, lam, p)
        cache: dict[str, drift.DimensionData] = {}
        e_alarm, e_inc, delta = check(gold, base, first, EVENT_ALPHA, cache)
        r_alarm, r_inc, _ = check(gold, base, first, ROUTINE_ALPHA, cache)
        deltas.append(delta)
        counts["event_alarm"] += e_alarm
        counts["event_incident"] += e_inc
        counts["routine_alarm"] += r_alarm
        counts["routine_incident"] += r_inc
        within = r_alarm
        for _ in range(2):
            if within:
                break
            within = check(gold, base, drifted(rng, good, bad, idx, lam, p), ROUTINE_ALPHA)[0]
        counts["routine_alarm_3_nights"] += within
    out: dict[str, Any] = {k: v / trials for k, v in counts.items()}
    out["trials"] = trials
    out["mean_drop_points"] = float(np.mean(deltas))
    return out


def mdc_points(gold_all: np.ndarray, good: Judge, n: int, lam: float,
               rng: np.random.Generator) -> dict[str, float]:
    """The paired SE of one no-change night, as a minimum detectable change (80 % power)."""
    from statistics import NormalDist

    idx = np.arange(gold_all.size) if n == gold_all.size else rng.integers(0, gold_all.size, n)
    gold = gold_all[idx]
    comp = paired_difference(SCALE, gold[:, None], night(rng, good, idx, lam),
                             night(rng, good, idx, lam), metrics=["kappa"], n_boot=1000,
                             confidence=0.6827)
    se = 50 * ((comp.metrics["kappa"].ci_high or 0) - (comp.metrics["kappa"].ci_low or 0))
    out = {}
    for name, alpha in (("event", EVENT_ALPHA), ("routine", ROUTINE_ALPHA)):
        z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(0.8)
        out[name] = z * se
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sequences and trials")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    sequences, trials = (30, 60) if args.quick else (100, 200)
    rng = np.random.default_rng(args.seed)
    gold, good, bad = load()
    rows = []
    started = time.perf_counter()
    for lam in (1.0, 0.25):
        p = calibrate_mix(gold, good, bad, lam, 0.04)
        for n in (gold.size, 1000, 2000):
            row: dict[str, Any] = {"noise_lambda": lam, "items": int(n), "mix_share": p}
            unstable = float(np.mean(good.original != good.swapped))
            row["verdicts_differing_between_nights"] = unstable * 2 * (lam / 2) * (1 - lam / 2)
            row["false_alarms"] = false_alarms(gold, good, n, lam, sequences, rng)
            row["power_4_points"] = power(gold, good, bad, n, lam, p, trials, rng)
            row["mdc_points"] = mdc_points(gold, good, n, lam, rng)
            rows.append(row)
            print(_line(row), file=sys.stderr if args.json else sys.stdout, flush=True)
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"rows": rows, "elapsed_s": elapsed, "settings": {
            "event_alpha": EVENT_ALPHA, "routine_alpha": ROUTINE_ALPHA, "nights": NIGHTS,
            "sequences": sequences, "trials": trials}}, indent=2))
        return 0
    print()
    print(_verdict(rows))
    print(f"\n{elapsed:.0f} s; {sequences} sequences of {NIGHTS} nights and {trials} drift "
          "trials per row")
    return 0


def _line(r: dict[str, Any]) -> str:
    fa, pw = r["false_alarms"], r["power_4_points"]
    lo, hi = fa["per_30_nights_ci"]
    return (
        f"λ={r['noise_lambda']:<4} n={r['items']:<5} "
        f"({100 * r['verdicts_differing_between_nights']:.1f}% verdicts differ night to night)\n"
        f"  no change : false alarms {100 * fa['per_night']:.2f}% per night, "
        f"{100 * fa['per_30_nights']:.0f}% per 30 nights [{100 * lo:.0f}–{100 * hi:.0f}%], "
        f"incidents {100 * fa['per_30_nights_incident']:.0f}% per 30 nights; night-to-baseline "
        f"SD {fa['night_to_baseline_sd_points']:.2f} points\n"
        f"  4-pt drop : mean {pw['mean_drop_points']:+.2f} points; alarm on the first night "
        f"{100 * pw['event_alarm']:.0f}% when the change is visible (SEV2+ "
        f"{100 * pw['event_incident']:.0f}%), {100 * pw['routine_alarm']:.0f}% when invisible "
        f"(SEV2+ {100 * pw['routine_incident']:.0f}%), {100 * pw['routine_alarm_3_nights']:.0f}% "
        f"invisible within 3 nights\n"
        f"  min. detectable change (80% power): {r['mdc_points']['event']:.1f} points visible, "
        f"{r['mdc_points']['routine']:.1f} invisible"
    )


def _verdict(rows: list[dict[str, Any]]) -> str:
    lines = ["targets: ≤ 5% false alarms over 30 nights; ≥ 90% power for a 4-point drop at "
             "n ≥ 1,000"]
    for r in rows:
        fa = r["false_alarms"]["per_30_nights"]
        lines.append(f"  λ={r['noise_lambda']:<4} n={r['items']:<5} false alarms/30 nights "
                     f"{100 * fa:.0f}% {'PASS' if fa <= TARGET_FA_30 else 'MISS'}")
        if r["items"] >= 1000:
            pw = r["power_4_points"]
            for key, label in (("event_alarm", "visible change, first night"),
                               ("routine_alarm", "invisible change, first night"),
                               ("routine_alarm_3_nights", "invisible change, within 3 nights")):
                lines.append(f"      power {label}: {100 * pw[key]:.0f}% "
                             f"{'PASS' if pw[key] >= TARGET_POWER else 'MISS'}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
