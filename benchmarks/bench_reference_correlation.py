"""False alarms of the replicated baseline when reference runs share the baseline's luck.

The sequential test takes the verdict noise of the baseline run, of each reference run and
of each night as independent. An endpoint that caches or seeds its replies may repeat part
of the baseline's noise in the reference runs taken right after it (correlation ``c``
between a reference run's and the baseline's noise); the references then look more alike
than they are and are given more weight than they carry. This measures what that does to
the false-alarm rate of the sequential test alone, at its level 0.03, over 30 healthy
nights, when the paired standard error of a reference comparison is what a bootstrap would
report (``sqrt(2 (1 − c))`` noise units) and the nights are independent of the baseline's
noise apart from the shared baseline itself.

The nightly check also weighs the nights by the references' noise
(:func:`judgecal.stats.sequential.null_standard_errors`): references that repeat the
baseline's noise change fewer items (``(1 − c)`` of a night's ``--changed``), so they
understate it, and every night looks surer than it is, up to the bound of 1/0.9. Both are
printed: the nights weighed by their own spread, and as the check weighs them.

    python benchmarks/bench_reference_correlation.py [--sequences 4000] [--changed 36]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from judgecal.stats.sequential import alarms, e_process, null_standard_errors

ALPHA = 0.03
NIGHTS = 30


def false_alarm_rate(k: int, c: float, sequences: int, rng: np.random.Generator,
                     changed: int | None = None) -> float:
    """Share of healthy sequences in which the sequential test alarms, K runs in the
    baseline, reference noise correlated ``c`` with the baseline's; with ``changed`` (the
    items a night changes) the nights are weighed by the references' noise, as the check
    does, a reference changing ``(1 − c) · changed`` items."""
    base = rng.normal(0.0, 1.0, (sequences, 1))
    refs = c * base + math.sqrt(1.0 - c * c) * rng.normal(0.0, 1.0, (sequences, k - 1))
    nights = rng.normal(0.0, 1.0, (sequences, NIGHTS))
    delta = np.concatenate([refs - base, nights - base], axis=1)
    se = np.concatenate([np.full((sequences, k - 1), math.sqrt(2.0 * (1.0 - c))),
                         np.full((sequences, NIGHTS), math.sqrt(2.0))], axis=1)
    if changed is not None:
        counts = np.concatenate([np.full((sequences, k - 1), max(1, round(changed * (1 - c)))),
                                 np.full((sequences, NIGHTS), changed)], axis=1)
        se = null_standard_errors(se, 1.0, counts, k - 1)
    trajectory = e_process(delta, se, reference=k - 1)
    return float(alarms(trajectory, ALPHA, 0.0)[:, k - 1:].any(axis=1).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--changed", type=int, default=36,
                        help="items a night changes against the baseline (36: the noisier "
                             "benchmark judge at 1,000 items)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    correlations = (0.0, 0.5, 0.8, 0.95)
    print(f"false alarms of the sequential test alone (level {ALPHA}) over {NIGHTS} healthy "
          f"nights, {args.sequences:,} sequences per cell")
    for title, changed in (("nights weighed by their own spread", None),
                           ("nights weighed by the references' noise (as the check does)",
                            args.changed)):
        print(f"{title}:")
        print("runs in the baseline   " + "".join(f"c = {c:<6g}" for c in correlations))
        for k in (1, 3, 5):
            cells = [false_alarm_rate(k, c, args.sequences, rng, changed)
                     if k > 1 or c == 0.0 else None for c in correlations]
            print(f"K = {k:<19}" + "".join("—         " if v is None else f"{v:<10.1%}"
                                           for v in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
