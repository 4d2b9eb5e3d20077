"""Correct an incident's affected window: raw, PPI++, shift-robust and window-sample figures
side by side, per dimension, segment and customer, with the checks that say which to trust.

The statistics are :mod:`judgecal.stats.correction`; this module feeds them what the store
holds (:mod:`judgecal.remedy.window`) and says, in sentences, what the result means:

* estimators that disagree beyond their intervals → the calibration set does not represent
  the window: label a window sample;
* PPI++'s λ near 0 or a near-singular confusion matrix → the estimate rests on the calibration
  set alone (or is refused): label a window sample;
* the representativeness check: the *healthy* judge's scores of the calibration items (the
  baseline run) against its production scores before the onset;
* a placebo: the same correction, with the healthy judge's calibration pairs, on the window
  before the onset, where nothing needed correcting: it should reproduce the figure the
  healthy judge showed there (when it does not, part of what the correction moves is the
  healthy judge's own bias, not the drift).

Which figure is *recommended* (what the postmortem quotes): the window-sample PPI++ when
labels of a window sample exist (no transfer assumption); else the re-judged figure when the
pinned healthy judge re-scored at least 95 % of the group's scores (what the scores would
have been without the drift; :mod:`judgecal.remedy.rejudge`); else PPI++ when it and the
shift-robust estimate agree; else none (the estimators disagree: label a window sample).
The re-judged figure is not part of the disagreement check: it estimates the healthy judge's
figure, not the people's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from judgecal.remedy.rejudge import REJUDGE_METHOD, rejudged_scores
from judgecal.remedy.window import (
    Calibration,
    WindowScores,
    incident_window,
    load_calibration,
    read_before,
    read_window,
)
from judgecal.scores.source import ScoreSource
from judgecal.stats import correction as corr

if TYPE_CHECKING:
    from judgecal.scales import Scale
    from judgecal.store import Store

__all__ = [
    "CLUSTER_NOTE",
    "SAMPLE_METHOD",
    "cluster_note",
    "correct_incident",
    "recommended",
    "targets",
]

SAMPLE_METHOD = "window_sample_ppi++"
REJUDGE_COVERAGE = 0.95
"""Least share of a group's scores re-judged for the re-judged figure to be the one quoted."""
CLUSTER_NOTE = ("scores are treated as independent: no two affected scores share a "
                "conversation or trace id (the score history's trace_id)")


def cluster_note(scores: WindowScores) -> str:
    """How the window's scores are resampled, in a sentence."""
    shared = Counter(t for t in scores.traces if t is not None)
    multi = [n for n in shared.values() if n > 1]
    if not multi:
        return CLUSTER_NOTE
    return (f"scores sharing a conversation or trace are resampled together: {len(multi)} "
            f"trace(s) hold {sum(multi)} of the {scores.n} affected scores (the largest "
            f"{max(multi)}); the intervals of the window are cluster-robust")
_ALONE = ("the estimate rests on the calibration set alone: label a window sample "
          "(`judgecal incidents sample`)")


def targets(scale: Scale) -> list[tuple[str, float | None]]:
    """``(what is estimated, positive code)`` per figure of a dimension: one for binary,
    pairwise, ordinal and interval scales; the rate of each category on a nominal scale."""
    if scale.kind == "nominal":
        codes = scale.domain() or []
        names = scale.categories or [f"{c:g}" for c in codes]
        return [(f"rate of {name}", float(code)) for name, code in zip(names, codes, strict=False)]
    if scale.kind == "binary":
        return [("rate of code 1", None)]
    if scale.kind == "pairwise":
        return [("preference rate for the first response (ties count half)", None)]
    return [("mean score", None)]


def recommended(estimates: dict[str, Any], disagree: bool) -> str | None:
    """The method whose figure a customer is told (see the module docstring)."""
    sample = estimates.get(SAMPLE_METHOD)
    if sample is not None and sample.get("value") is not None:
        return SAMPLE_METHOD
    again = estimates.get(REJUDGE_METHOD)
    if again is not None and again.get("value") is not None and \
            (again.get("diagnostics") or {}).get("coverage", 0.0) >= REJUDGE_COVERAGE:
        return REJUDGE_METHOD
    ppi = estimates.get("ppi++")
    if not disagree and ppi is not None and ppi.get("value") is not None:
        return "ppi++"
    return None


def _messages(flags: set[str], refused: list[str]) -> list[str]:
    out = []
    if corr.FLAG_CALIBRATION_NOT_REPRESENTATIVE in flags:
        out.append("the estimators disagree beyond their intervals: the calibration set does "
                   "not represent the window; label a window sample")
    if corr.FLAG_JUDGE_UNINFORMATIVE in flags:
        out.append("the drifted judge carries little information about the human labels "
                   f"(PPI++ lambda near 0): {_ALONE}")
    for reason in refused:
        out.append(f"shift-robust estimate refused: {reason}; {_ALONE}")
    if corr.FLAG_INTERVAL_BEYOND_SCALE in flags:
        out.append(corr.FLAG_TEXT[corr.FLAG_INTERVAL_BEYOND_SCALE])
    return out


class _Corrector:
    def __init__(self, cal: Calibration, labels: dict[str, float], confidence: float,
                 n_boot: int, seed: int, rejudged: dict[str, float] | None = None):
        self.cal, self.labels = cal, labels
        self.confidence, self.n_boot, self.seed = confidence, n_boot, seed
        self.rejudged = rejudged or {}

    def _rejudged(self, scale: Scale, positive: float | None, win: WindowScores
                  ) -> corr.CorrectionEstimate | None:
        """The healthy judge's figure over the group's re-judged scores, or None."""
        mask = np.array([sid in self.rejudged for sid in win.score_ids], dtype=bool)
        if not mask.any():
            return None
        part = win.select(mask)
        values = np.array([self.rejudged[sid] for sid in part.score_ids])
        est = corr.raw_estimate(scale, values, clusters=part.clusters(),
                                confidence=self.confidence, positive=positive)
        note = f"{part.n:,} of {win.n:,} scores re-judged" + (
            f"; {est.note}" if est.note else "")
        return replace(est, method=REJUDGE_METHOD, note=note,
                       diagnostics={**est.diagnostics, "coverage": part.n / win.n})

    def figure(self, dim: str, positive: float | None, win: WindowScores, kind: str,
               group: str | None, strata: list[Any]) -> dict[str, Any]:
        scale = self.cal.scales[dim]
        human, judge = self.cal.human[dim], self.cal.drifted[dim]
        calibration = "all calibration items"
        mask = self.cal.segment_mask(group) if kind == "segment" else None
        if mask is not None and int((mask & ~np.isnan(human) & ~np.isnan(judge)).sum()) \
                >= corr.MIN_LABELLED:
            human, judge = human[mask], judge[mask]
            calibration = f"the {int(mask.sum())} calibration items of segment {group}"
        est = corr.correct_window(scale, human, judge, win.scores, clusters=win.clusters(),
                                  confidence=self.confidence, positive=positive,
                                  n_boot=self.n_boot, seed=self.seed)
        labelled = [i for i, sid in enumerate(win.score_ids) if sid in self.labels]
        if labelled:
            est[SAMPLE_METHOD] = corr.window_sample_ppi(
                scale, np.array([self.labels[win.score_ids[i]] for i in labelled]),
                win.scores[labelled], [strata[i] for i in labelled], win.scores, strata,
                confidence=self.confidence, positive=positive)
        check = corr.agreement_check(est)
        again = self._rejudged(scale, positive, win)  # not an estimator of the human figure
        if again is not None:
            est[REJUDGE_METHOD] = again
        flags = set(check.flags)
        for e in est.values():
            flags.update(e.flags)
        refused = [e.undefined or "" for e in est.values() if e.refused]
        data = {name: e.to_json() for name, e in est.items()}
        rec = recommended(data, check.disagree)
        if rec == "ppi++" and kind != "all" and corr.FLAG_JUDGE_UNINFORMATIVE in flags \
                and calibration == "all calibration items":
            rec = None  # the whole set's human rate says nothing about this group
        return {
            "kind": kind, "group": group, "n_window": win.n, "n_labelled_window": len(labelled),
            "calibration": calibration,
            "estimates": data, "agreement": check.to_json(), "flags": sorted(flags),
            "messages": _messages(flags, refused) + ([
                "no figure to use for this group: with lambda near 0 its PPI++ is the whole "
                "calibration set's human figure, nothing specific to it"] if rec is None and
                data.get("ppi++", {}).get("value") is not None and not check.disagree else []),
            "recommended": rec,
        }


def _placebo(cal: Calibration, dim: str, positive: float | None, before: WindowScores,
             confidence: float, n_boot: int, seed: int) -> dict[str, Any] | None:
    if dim not in cal.healthy:
        return {"undefined": "no healthy (baseline) run to take calibration pairs from"}
    scale = cal.scales[dim]
    raw = corr.raw_estimate(scale, before.scores, confidence=confidence, positive=positive)
    if raw.value is None:
        return {"undefined": f"no window before the onset ({raw.undefined})",
                "n_window": before.n}
    result = corr.placebo(scale, cal.human[dim], cal.healthy[dim], [before.scores], raw.value,
                          confidence=confidence, positive=positive, n_boot=n_boot, seed=seed)
    out = {"n_window": before.n, "known_value": raw.value,
           "known_value_is": "the healthy judge's own figure for the window before the onset",
           "estimates": {k: v.to_json() for k, v in result.windows[0].items()},
           "reproduced": not result.flags, "flags": list(result.flags)}
    out["message"] = (
        "placebo: corrected with the healthy judge's calibration labels, the window before "
        "the onset reproduces the figure shown there" if not result.flags else
        "placebo: on the window before the onset the correction moves the healthy judge's "
        "figure beyond its interval: part of what it corrects is the healthy judge's own "
        "bias, not the drift")
    return out


def _representativeness(cal: Calibration, dim: str, before: WindowScores) -> dict[str, Any]:
    if dim not in cal.healthy:
        return {"undefined": "no healthy (baseline) run to compare with", "flags": []}
    check = corr.representativeness_check(cal.scales[dim], cal.healthy[dim], before.scores)
    out = check.to_json()
    if check.representative is False:
        out["message"] = (corr.FLAG_TEXT[corr.FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION]
                          + f" (p = {check.p_value:.3g}, effect size {check.effect_size:.3f})")
    elif check.representative:
        out["message"] = ("the healthy judge scored the calibration items like production "
                          f"traffic before the onset (p = {check.p_value:.3g})")
    return out


def correct_incident(
    store: Store,
    incident_id: str,
    *,
    source: ScoreSource | None = None,
    until: datetime | None = None,
    top: int = 10,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Corrected figures of an incident's affected window (JSON-ready; nothing is stored).

    Per dimension of the calibration set that the window has scores on: the whole window,
    each segment and the ``top`` customers with the most affected scores, each with the raw,
    PPI++ and shift-robust estimates (and the window-sample PPI++ where labels of a window
    sample were imported), the agreement check, flags, plain sentences and the recommended
    figure; per dimension also the representativeness check and the placebo.
    """
    from judgecal import incidents
    from judgecal.remedy.sample import window_labels
    from judgecal.scores.source import store_source

    incident = incidents.get_incident(store, incident_id)
    full_id = str(incident["incident_id"])
    src = source or store_source(store.engine)
    window, window_json = incident_window(store, incident, src, until)
    cal = load_calibration(store, incident)
    scores = read_window(src, window)
    before = read_before(src, window)
    labels = window_labels(store, full_id)
    rejudged, rejudge_run = rejudged_scores(store, full_id)
    work = _Corrector(cal, labels, confidence, n_boot, seed, rejudged)
    dims_out: list[dict[str, Any]] = []
    skipped = sorted(set(scores.dimensions.tolist()) - set(cal.scales))
    for dim in sorted(cal.scales):
        win = scores.select(scores.dimensions == dim)
        if win.n == 0:
            continue
        pre = before.select(before.dimensions == dim)
        strata = [s or "" for s in win.segments]
        customers = Counter(c for c in win.customers if c is not None)
        for what, positive in targets(cal.scales[dim]):
            entry: dict[str, Any] = {
                "dimension": dim, "scale": cal.scales[dim].describe(), "target": what,
                "positive": positive, "n_window": win.n,
                "overall": work.figure(dim, positive, win, "all", None, strata),
                "segments": [], "customers": [],
            }
            for seg in sorted({s for s in win.segments}, key=lambda s: (s is None, s or "")):
                part = win.select(np.array([s == seg for s in win.segments]))
                entry["segments"].append(work.figure(dim, positive, part, "segment", seg,
                                                     [seg or ""] * part.n))
            for cust, _ in sorted(customers.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
                part = win.select(np.array([c == cust for c in win.customers]))
                entry["customers"].append(work.figure(dim, positive, part, "customer", cust,
                                                      [s or "" for s in part.segments]))
            entry["representativeness"] = _representativeness(cal, dim, pre)
            entry["placebo"] = _placebo(cal, dim, positive, pre, confidence, n_boot, seed)
            dims_out.append(entry)
    messages: list[str] = []
    for d in dims_out:
        name = d["dimension"] if len(targets(cal.scales[d["dimension"]])) == 1 \
            else f"{d['dimension']} ({d['target']})"
        messages += [f"{name}: {m}" for m in d["overall"]["messages"]]
        rep = d["representativeness"].get("message")
        if rep:
            messages.append(f"{name}: {rep}")
        placebo = (d.get("placebo") or {}).get("message")
        if placebo:
            messages.append(f"{name}: {placebo}")
    if skipped:
        messages.append("not corrected (no such dimension in the calibration set): "
                        + ", ".join(skipped))
    return {
        "incident_id": full_id,
        "judge": window.judge,
        "window": window_json,
        "calibration": cal.describe(),
        "confidence": confidence,
        "affected_scores": scores.n,
        "labelled_window_scores": sum(1 for s in scores.score_ids if s in labels),
        "rejudge": None if rejudge_run is None else {
            **rejudge_run, "window_scores_rejudged": sum(1 for s in scores.score_ids
                                                         if s in rejudged)},
        "dimensions": dims_out,
        "not_corrected": skipped,
        "messages": messages,
        "cluster_note": cluster_note(scores),
        "assumptions": {
            "raw": "the drifted judge's figure as stored (no correction)",
            "ppi++": "the calibration items are a random sample of the window's population "
                     "(same joint law of human label and judge score)",
            "shift_robust": "the label distribution may differ, but the judge's error rates "
                            "given the true label are those on the calibration set",
            SAMPLE_METHOD: "none beyond the random sample: the labelled scores were drawn "
                           "from the window itself (stratified by dimension and segment)",
            REJUDGE_METHOD: "the pinned healthy judge's scores are what the affected scores "
                            "should have been (its own agreement with people is its baseline "
                            "run's); scores without a kept input are not in it",
        },
    }
