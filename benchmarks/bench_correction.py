"""Coverage of the remedy's intervals (judgecal.stats.correction), by simulation.

Every simulated window redraws everything: a calibration set of ``N_CAL`` items (true label
and the judge's score), a production window of ``N_WIN`` judge scores (with their hidden
true labels), and a stratified window sample of ``N_SAMPLE`` items labelled by humans. The
judge's error rates given the true label, P(judge = j | true = k), are fixed per scale:

* binary — a lenient drifted judge: Se = 0.85, Sp = 0.80 (healthy judge: 0.92 / 0.90);
* ordinal 1–5 — a banded matrix: the true code with 0.60, one step up 0.20, one step down
  0.10, two steps 0.05 each way (renormalised at the ends); the healthy judge 0.75 / 0.10 /
  0.10 / 0.025.

The truth is the population value of the window (its true-label distribution's rate or
mean), the quantity the CLT intervals target.

Scenarios (one table):

(a) representative calibration set (same true-label distribution as the window; binary pass
    rate 0.7). PPI++ coverage of the truth (target 94–96 %) and its width against the
    human-labels-only interval on the same calibration set (target: ≤ on average; the share
    of windows where it is ≤ is printed too); the false-alarm rate of the agreement check.
(b) label shift: calibration pass rate 0.5, window 0.8 (ordinal: share of scores ≥ 4), the
    judge's error rates given the true label unchanged. Shift-robust coverage (target
    94–96 %); the agreement warning among the windows where PPI++ misses (target ≥ 90 %);
    the stratified window-sample PPI++ (the remedy) coverage and width against its own
    human-only interval (never wider: target 100 % of windows).
(c) no drift: the healthy judge, representative calibration set; ``placebo`` coverage of
    the known value by PPI++ and shift-robust (target 94–96 %).
(d) a window of conversations: scores come in traces of 6, each repeating its trace's
    (true label, judge score) pair with probability 0.7 (same law per score, strongly
    correlated within a trace). PPI++ and shift-robust with the trace ids (cluster-robust
    variance, cluster bootstrap; target 94–96 %) and PPI++ taking the scores as independent
    (shown: it under-covers).

Monte-Carlo error of a coverage c over R windows: √(c(1 − c)/R) (0.7 points at 95 % and
R = 1,000). A target is "met" when the figure lies in its band; a figure outside the band
but within two Monte-Carlo errors of it is marked "within MC error".

Usage: ``python benchmarks/bench_correction.py [--quick] [--windows R] [--seed S]``
(default R = 1,000 per scenario and scale; ``--quick``: R = 300).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judgecal.scales import Scale
from judgecal.stats.correction import (
    agreement_check,
    placebo,
    ppi_mean,
    shift_robust,
    stratified_sample,
    window_sample_ppi,
)

N_CAL = 500
N_WIN = 2_000
N_SAMPLE = 300
N_BOOT = 1_000
STRATA = 4
STRATUM_SHARES = np.array([0.4, 0.3, 0.2, 0.1])


def _banded(weights: tuple[float, float, float, float, float], k: int = 5) -> np.ndarray:
    """P(judge = j | true = c) for offsets −2..+2 with the given weights (columns = true)."""
    m = np.zeros((k, k))
    for true in range(k):
        for off, wt in zip(range(-2, 3), weights, strict=True):
            j = true + off
            if 0 <= j < k:
                m[j, true] = wt
    return m / m.sum(axis=0, keepdims=True)


@dataclass(frozen=True)
class Design:
    scale: Scale
    codes: np.ndarray
    drifted: np.ndarray
    healthy: np.ndarray
    representative: np.ndarray
    cal_shifted: np.ndarray
    win_shifted: np.ndarray


BINARY = Design(
    Scale(kind="binary"), np.array([0.0, 1.0]),
    drifted=np.array([[0.80, 0.15], [0.20, 0.85]]),
    healthy=np.array([[0.90, 0.08], [0.10, 0.92]]),
    representative=np.array([0.3, 0.7]),
    cal_shifted=np.array([0.5, 0.5]),
    win_shifted=np.array([0.2, 0.8]),
)
ORDINAL = Design(
    Scale(kind="ordinal", min=1, max=5), np.arange(1.0, 6.0),
    drifted=_banded((0.05, 0.10, 0.60, 0.20, 0.05)),
    healthy=_banded((0.025, 0.10, 0.75, 0.10, 0.025)),
    representative=np.array([0.10, 0.15, 0.25, 0.30, 0.20]),
    cal_shifted=np.array([0.15, 0.15, 0.20, 0.25, 0.25]),
    win_shifted=np.array([0.04, 0.06, 0.10, 0.35, 0.45]),
)


def _draw(rng: np.random.Generator, design: Design, pi: np.ndarray, matrix: np.ndarray,
          size: int) -> tuple[np.ndarray, np.ndarray]:
    """True codes and judge codes of ``size`` items."""
    true = rng.choice(pi.size, size=size, p=pi)
    cdf = np.cumsum(matrix[:, true].T, axis=1)
    judge = (rng.random(size)[:, None] > cdf).sum(axis=1)
    judge = np.minimum(judge, pi.size - 1)
    return design.codes[true], design.codes[judge]


PER_TRACE = 6
SAME_IN_TRACE = 0.7


def _draw_clustered(rng: np.random.Generator, design: Design, pi: np.ndarray,
                    matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`_draw`, in conversations of :data:`PER_TRACE` scores: each score repeats
    its conversation's (true, judge) pair with probability :data:`SAME_IN_TRACE`, else is a
    fresh pair — the same joint law per score, strongly correlated within a conversation.
    Returns (true codes, judge codes, conversation id of each score)."""
    n_conv = size // PER_TRACE
    conv = np.repeat(np.arange(n_conv), PER_TRACE)
    y_c, f_c = _draw(rng, design, pi, matrix, n_conv)
    y, f = _draw(rng, design, pi, matrix, conv.size)
    same = rng.random(conv.size) < SAME_IN_TRACE
    return np.where(same, y_c[conv], y), np.where(same, f_c[conv], f), conv


def _truth(design: Design, pi: np.ndarray) -> float:
    values = design.codes if design.scale.kind == "ordinal" else (design.codes == 1.0)
    return float(pi @ values)


@dataclass
class Tally:
    covered: int = 0
    defined: int = 0

    def add(self, ok: bool | None) -> None:
        if ok is not None:
            self.defined += 1
            self.covered += bool(ok)

    @property
    def rate(self) -> float:
        return self.covered / self.defined if self.defined else math.nan

    @property
    def mc(self) -> float:
        c = self.rate
        return math.sqrt(c * (1 - c) / self.defined) if self.defined else math.nan


@dataclass
class Ratio(Tally):
    """A mean of per-window ratios, printed like a rate (e.g. width as % of another)."""

    values: list[float] | None = None

    def push(self, value: float) -> None:
        self.values = [*(self.values or []), value]
        self.defined += 1

    @property
    def rate(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def mc(self) -> float:
        v = self.values or []
        return float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def _covers(lo: float | None, hi: float | None, truth: float) -> bool | None:
    if lo is None or hi is None:
        return None
    return lo <= truth <= hi


def run_design(design: Design, windows: int, seed: int) -> list[tuple[str, Tally, str, str]]:
    rng = np.random.default_rng(seed)
    scale = design.scale
    a_ppi, a_sr, a_le, a_alarm, a_alarm_o = Tally(), Tally(), Tally(), Tally(), Tally()
    ratios = Ratio()
    b_sr, b_ppi, b_warn, b_warn_o = Tally(), Tally(), Tally(), Tally()
    b_ws, b_ws_own, b_ws_le = Tally(), Tally(), Tally()
    c_ppi, c_sr = Tally(), Tally()
    d_ppi, d_ppi_iid, d_sr = Tally(), Tally(), Tally()
    truth_a = _truth(design, design.representative)
    truth_b = _truth(design, design.win_shifted)
    ids = np.arange(N_WIN)
    for w in range(windows):
        # (a) representative calibration set, drifted judge
        y, f = _draw(rng, design, design.representative, design.drifted, N_CAL)
        _, fw = _draw(rng, design, design.representative, design.drifted, N_WIN)
        ppi = ppi_mean(scale, y, f, fw)
        sr = shift_robust(scale, y, f, fw, n_boot=N_BOOT, seed=w)
        a_ppi.add(_covers(ppi.ci_low, ppi.ci_high, truth_a))
        a_sr.add(_covers(sr.ci_low, sr.ci_high, truth_a))
        human = ppi.diagnostics["human_only"]
        width_h = human["ci_high"] - human["ci_low"]
        assert ppi.width is not None
        ratios.push(ppi.width / width_h)
        a_le.add(ppi.width <= width_h + 1e-12)
        a_alarm.add(agreement_check([ppi, sr]).disagree)
        a_alarm_o.add(agreement_check([ppi, sr], rule="overlap").disagree)

        # (b) label shift between calibration set and window
        y, f = _draw(rng, design, design.cal_shifted, design.drifted, N_CAL)
        yw, fw = _draw(rng, design, design.win_shifted, design.drifted, N_WIN)
        ppi = ppi_mean(scale, y, f, fw)
        sr = shift_robust(scale, y, f, fw, n_boot=N_BOOT, seed=w)
        b_sr.add(_covers(sr.ci_low, sr.ci_high, truth_b))
        ppi_hit = _covers(ppi.ci_low, ppi.ci_high, truth_b)
        b_ppi.add(ppi_hit)
        if ppi_hit is False:
            b_warn.add(agreement_check([ppi, sr]).disagree)
            b_warn_o.add(agreement_check([ppi, sr], rule="overlap").disagree)
        strata = rng.choice(STRATA, size=N_WIN, p=STRATUM_SHARES)
        sample = stratified_sample(ids.tolist(), strata.tolist(), N_SAMPLE, seed=w)
        pick = np.asarray(sample.ids)
        ws = window_sample_ppi(scale, yw[pick], fw[pick], strata[pick], fw, strata)
        b_ws.add(_covers(ws.ci_low, ws.ci_high, truth_b))
        b_ws_own.add(_covers(ws.ci_low, ws.ci_high, float((yw == 1.0).mean()) if
                             scale.kind == "binary" else float(yw.mean())))
        human = ws.diagnostics["human_only"]
        assert ws.width is not None
        b_ws_le.add(ws.width <= human["ci_high"] - human["ci_low"] + 1e-12)

        # (c) no drift: placebo with the healthy judge
        y, f = _draw(rng, design, design.representative, design.healthy, N_CAL)
        _, fw = _draw(rng, design, design.representative, design.healthy, N_WIN)
        res = placebo(scale, y, f, [fw], truth_a, n_boot=N_BOOT, seed=w)
        for name, tally in (("ppi++", c_ppi), ("shift_robust", c_sr)):
            est = res.windows[0][name]
            tally.add(_covers(est.ci_low, est.ci_high, truth_a))

        # (d) a window of conversations (scores of one trace resampled together)
        y, f = _draw(rng, design, design.representative, design.drifted, N_CAL)
        _, fw, conv = _draw_clustered(rng, design, design.representative, design.drifted,
                                      N_WIN)
        ppi = ppi_mean(scale, y, f, fw, clusters=conv)
        d_ppi.add(_covers(ppi.ci_low, ppi.ci_high, truth_a))
        iid = ppi_mean(scale, y, f, fw)
        d_ppi_iid.add(_covers(iid.ci_low, iid.ci_high, truth_a))
        sr = shift_robust(scale, y, f, fw, n_boot=N_BOOT, seed=w, clusters=conv)
        d_sr.add(_covers(sr.ci_low, sr.ci_high, truth_a))

    kind = scale.kind
    return [
        (f"(a) {kind}: PPI++ coverage", a_ppi, "band", ""),
        (f"(a) {kind}: PPI++ width / human-only width", ratios, "le100", "mean of ratios"),
        (f"(a) {kind}: PPI++ width ≤ human-only", a_le, "info", "share of windows"),
        (f"(a) {kind}: shift-robust coverage", a_sr, "band", ""),
        (f"(a) {kind}: warning, false alarm", a_alarm, "le5", ""),
        (f"(a) {kind}: warning, false alarm (overlap rule)", a_alarm_o, "info", ""),
        (f"(b) {kind}: shift-robust coverage", b_sr, "band", ""),
        (f"(b) {kind}: PPI++ coverage (biased)", b_ppi, "info", ""),
        (f"(b) {kind}: warning when PPI++ misses", b_warn, "ge90", ""),
        (f"(b) {kind}: same, overlap rule", b_warn_o, "info", ""),
        (f"(b) {kind}: window-sample PPI++ coverage", b_ws, "band", ""),
        (f"(b) {kind}: same, of the window's own mean", b_ws_own, "info", ""),
        (f"(b) {kind}: window-sample width ≤ human-only", b_ws_le, "all", ""),
        (f"(c) {kind}: placebo PPI++ coverage", c_ppi, "band", ""),
        (f"(c) {kind}: placebo shift-robust coverage", c_sr, "band", ""),
        (f"(d) {kind}: PPI++ coverage, traces of {PER_TRACE}", d_ppi, "band", "cluster-robust"),
        (f"(d) {kind}: same, scores taken as independent", d_ppi_iid, "info", ""),
        (f"(d) {kind}: shift-robust coverage, traces", d_sr, "band", "cluster bootstrap"),
    ]


def verdict(tally: Tally, target: str) -> str:
    c, mc = tally.rate, tally.mc
    if target == "band":
        if 0.94 <= c <= 0.96:
            return "met (94-96 %)"
        near = 0.94 - 2 * mc <= c <= 0.96 + 2 * mc
        return "within MC error of 94-96 %" if near else "NOT met (94-96 %)"
    if target == "ge90":
        if c >= 0.90:
            return "met (>= 90 %)"
        return "within MC error of 90 %" if c >= 0.90 - 2 * mc else "NOT met (>= 90 %)"
    if target == "le100":
        return "met (<= 100 %)" if c <= 1.0 else "NOT met (<= 100 %)"
    if target == "le5":
        return "met (<= 5 %)" if c <= 0.05 else "NOT met (<= 5 %)"
    if target == "all":
        return "met (100 %)" if tally.covered == tally.defined else "NOT met (100 %)"
    return "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 windows per scenario")
    parser.add_argument("--windows", type=int, default=None,
                        help="simulated windows per scenario and scale (default 1,000)")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    windows = args.windows or (300 if args.quick else 1_000)
    print(f"judgecal.stats.correction coverage: {windows:,} windows per scenario and scale; "
          f"calibration {N_CAL}, window {N_WIN:,}, window sample {N_SAMPLE} in {STRATA} "
          f"strata, {N_BOOT:,} bootstrap replicates, 95 % intervals")
    start = time.perf_counter()
    rows: list[tuple[str, Tally, str, str]] = []  # label, figure, target, remark
    for i, design in enumerate((BINARY, ORDINAL)):
        rows += run_design(design, windows, args.seed + i)
    seconds = time.perf_counter() - start
    print(f"{'figure':<48}{'rate':>8}{'± MC':>8}{'n':>7}  target")
    met = near = missed = 0
    for label, tally, target, extra in rows:
        v = verdict(tally, target)
        if target != "info":
            met += v.startswith("met")
            near += v.startswith("within")
            missed += v.startswith("NOT")
        print(f"{label:<48}{100 * tally.rate:7.1f}%{100 * tally.mc:7.1f}%{tally.defined:>7}"
              f"  {v if v != '-' else ''}{'; ' if extra and v != '-' else ''}{extra}")
    print(f"SUMMARY correction: of {met + near + missed} targets, {met} met, {near} within "
          f"two Monte-Carlo errors, {missed} missed ({windows:,} windows each, {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
