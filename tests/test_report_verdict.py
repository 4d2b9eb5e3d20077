"""The trust report's verdict per judge (judgecal.reports.verdict), each branch on a small
store built from the real PandaLM judges (tests/test_report_data.py), and the incident's blast
radius and corrected figures as tables with one interval per figure."""

from __future__ import annotations

import csv
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from judgecal import drift, incidents
from judgecal.calibration import CalibrationSet, load_set
from judgecal.config import DriftSettings
from judgecal.records import now
from judgecal.reports import trust_report_data
from judgecal.reports.trust import render_html
from judgecal.reports.verdict import NOT_TRUSTWORTHY, TRUSTWORTHY, WATCH, judge_verdict
from judgecal.store import Store, open_store
from tests.conftest import SETS
from tests.test_report_data import IMG, SCRIPT, _pandalm_rows, add_run, degraded, run_date


def _annotator_rows(blank_share: float = 0.0) -> list[dict[str, Any]]:
    """A judge that answers like the first human annotator (near the human ceiling); with
    ``blank_share``, that share of its replies has no score."""
    rows = []
    with (SETS / "pandalm" / "labels.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["rater_id"] == "annotator1":
                rows.append({"item_id": r["item_id"], "dimension": "preference",
                             "score": r["label"], "raw": f"Response {r['label']}."})
    step = round(1 / blank_share) if blank_share else 0
    for i, row in enumerate(rows):
        if step and i % step == 0:
            row["score"] = ""
    return rows


@pytest.fixture(scope="module")
def pandalm() -> CalibrationSet:
    return load_set(SETS / "pandalm")


def _store(tmp: Path) -> Store:
    return open_store(f"sqlite:///{tmp / 'v.db'}")


def _verdict(store: Store, **kw: Any) -> dict[str, Any]:
    (judge,) = trust_report_data(store, verify=False, worst_items=0, **kw)["judges"]
    return dict(judge["verdict"])


def _levels(v: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in v["reasons"]:
        out.setdefault(r["aspect"], set()).add(r["level"])
    return out


def test_trustworthy_near_the_ceiling_with_a_baseline(tmp_path: Path,
                                                     pandalm: CalibrationSet) -> None:
    store = _store(tmp_path)
    run = add_run(store, pandalm, _annotator_rows(), tmp_path, judge="j", model="m",
                  at=run_date(1), n_boot=100)
    drift.accept_baseline(store, run, actor="ana", reason="reviewed")
    v = _verdict(store)
    assert v["verdict"] == TRUSTWORTHY and v["level"] == "ok" and v["flags"] == []
    assert {r["level"] for r in v["reasons"]} == {"ok"}
    assert set(_levels(v)) == {"agreement", "baseline", "watch", "incidents", "unscored"}
    assert any("of the human ceiling" in r["text"] for r in v["reasons"])


def test_watch_not_monitored_is_flagged(tmp_path: Path, pandalm: CalibrationSet) -> None:
    store = _store(tmp_path)
    add_run(store, pandalm, _annotator_rows(), tmp_path, judge="j", model="m",
            at=run_date(0), n_boot=100)
    v = _verdict(store)
    assert v["verdict"] == WATCH
    assert any(f.startswith("NOT MONITORED") for f in v["flags"])
    assert _levels(v)["baseline"] == {"warn"} and _levels(v)["watch"] == {"warn"}
    html = render_html(trust_report_data(store, verify=False, worst_items=0))
    assert html.count('<div class="flag">NOT MONITORED') == 2  # overview and judge section
    assert "<h3>Verdict: watch</h3>" in html


def test_watch_stale(tmp_path: Path, pandalm: CalibrationSet) -> None:
    store = _store(tmp_path)
    run = add_run(store, pandalm, _annotator_rows(), tmp_path, judge="j", model="m",
                  at=run_date(1), n_boot=100)
    drift.accept_baseline(store, run, actor="ana", reason="reviewed")
    v = _verdict(store, at=now() + timedelta(days=3))
    assert v["verdict"] == WATCH
    assert any(f.startswith("STALE") for f in v["flags"])
    assert _levels(v)["agreement"] == {"ok"} and _levels(v)["baseline"] == {"ok"}


def test_watch_agreement_well_below_the_ceiling(tmp_path: Path,
                                               pandalm: CalibrationSet) -> None:
    # gpt-3.5-turbo on PandaLM: kappa 0.49 against a human ceiling of 0.93 (53%)
    store = _store(tmp_path)
    run = add_run(store, pandalm, _pandalm_rows("gpt35"), tmp_path, judge="j", model="gpt",
                  at=run_date(1), n_boot=100)
    drift.accept_baseline(store, run, actor="ana", reason="reviewed")
    v = _verdict(store)
    assert v["verdict"] == WATCH and v["flags"] == []
    (agreement,) = [r for r in v["reasons"] if r["aspect"] == "agreement"]
    assert agreement["level"] == "warn" and "well below" in agreement["text"]
    assert "53% of the human ceiling 0.926" in agreement["text"]


def test_not_trustworthy_agreement_interval_below_half_the_ceiling(
    tmp_path: Path, pandalm: CalibrationSet,
) -> None:
    # a third of gpt-3.5's verdicts flipped: kappa 0.19 [0.14, 0.24], all below 0.46
    store = _store(tmp_path)
    run = add_run(store, pandalm, degraded(_pandalm_rows("gpt35")), tmp_path, judge="j",
                  model="gpt", at=run_date(1), n_boot=100)
    drift.accept_baseline(store, run, actor="ana", reason="accepted anyway")
    v = _verdict(store)
    assert v["verdict"] == NOT_TRUSTWORTHY and v["level"] == "bad"
    levels = _levels(v)
    assert levels["agreement"] == {"bad"} and levels["watch"] == {"ok"}
    assert "whole interval is below 50% of the ceiling" in v["reasons"][0]["text"]


def test_not_trustworthy_unscored_above_the_limit(tmp_path: Path,
                                                 pandalm: CalibrationSet) -> None:
    store = _store(tmp_path)
    run = add_run(store, pandalm, _annotator_rows(blank_share=0.3), tmp_path, judge="j",
                  model="m", at=run_date(1), n_boot=100)
    drift.accept_baseline(store, run, actor="ana", reason="reviewed")
    v = _verdict(store)
    assert v["verdict"] == NOT_TRUSTWORTHY
    (unscored,) = [r for r in v["reasons"] if r["aspect"] == "unscored"]
    assert unscored["level"] == "bad" and "above the limit 20%" in unscored["text"]
    assert _levels(v)["agreement"] == {"ok"}


def test_not_trustworthy_drifted_with_an_open_incident(tmp_path: Path,
                                                      pandalm: CalibrationSet) -> None:
    store = _store(tmp_path)
    gpt = _pandalm_rows("gpt35")
    base = add_run(store, pandalm, gpt, tmp_path, judge="j", model="gpt", at=run_date(2),
                   n_boot=100)
    drift.accept_baseline(store, base, actor="ana", reason="reviewed")
    bad = add_run(store, pandalm, degraded(gpt), tmp_path, judge="j", model="gpt",
                  prompt="Which is better? (v2)", at=run_date(1), n_boot=100)
    outcome = incidents.record_check(store, drift.check_run(store, bad, DriftSettings(),
                                                            n_boot=100))
    assert outcome.incident_id is not None
    v = _verdict(store)
    assert v["verdict"] == NOT_TRUSTWORTHY
    levels = _levels(v)
    assert levels["watch"] == {"bad"} and levels["incidents"] == {"bad"}
    assert any(outcome.incident_id in r["text"] for r in v["reasons"]
               if r["aspect"] == "incidents")


def _current(value: float, low: float, high: float, ceiling: float) -> dict[str, Any]:
    return {"dimensions": {"d": {"rows": [{
        "name": "kappa", "headline": True,
        "judge": {"value": value, "ci_low": low, "ci_high": high},
        "ceiling": {"value": ceiling, "ci_low": ceiling - .02, "ci_high": ceiling + .02}}]}}}


@pytest.mark.parametrize(("state", "verdict"), [
    ("healthy", TRUSTWORTHY), ("changed", WATCH), ("inconclusive", WATCH),
    ("not_monitored", WATCH), ("stale", WATCH), ("drifted", NOT_TRUSTWORTHY),
])
def test_each_watch_state(state: str, verdict: str) -> None:
    watch = [{"set_name": "s", "state": state, "reasons": [f"because {state}"],
              "baseline_run_id": "r1", "open_incidents": []}]
    v = judge_verdict(_current(0.85, 0.8, 0.9, 0.9), watch, open_incidents=[],
                      unscored_rate=0.01, max_unscored_rate=0.2)
    assert v["verdict"] == verdict
    assert bool(v["flags"]) == (state in ("not_monitored", "stale"))


def test_undefined_agreement_or_no_ceiling_is_watch() -> None:
    watch = [{"set_name": "s", "state": "healthy", "reasons": [], "baseline_run_id": "r1",
              "open_incidents": []}]
    undefined = {"dimensions": {"d": {"rows": [{"name": "kappa", "headline": True,
                                                "judge": {"value": None,
                                                          "undefined": "constant judge"},
                                                "ceiling": {"value": 0.9}}]}}}
    for current in (undefined, _current(0.5, 0.4, 0.6, 0.0)):
        v = judge_verdict(current, watch, open_incidents=[], unscored_rate=0.0,
                          max_unscored_rate=None)
        assert v["verdict"] == WATCH


# -- the incident's blast radius and corrected figures as tables ----------------------------
BLAST = {
    "judge": "j", "source": "scores table",
    "window": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-03T00:00:00Z",
               "end_reason": "resolved", "fingerprints": []},
    "affected_scores": 840, "scores_in_window": 4000, "pct_traffic": 21.0,
    "customers_affected": 3, "customers_active": 12, "pct_customers": 25.0,
    "by_dimension": [{"dimension": "preference", "affected_scores": 840,
                      "pct_of_affected": 100.0, "n_before": 700, "n_after": 840,
                      "mean_before": 0.61, "mean_after": 0.48, "delta": -0.13,
                      "ci95": [-0.18, -0.08], "points": -13.0, "moved": True}],
    "by_segment": [{"segment": "coding", "affected_scores": 500, "pct_of_affected": 59.5,
                    "mean_score": 0.47}],
    "top_customers": [{"customer": f"acme {SCRIPT}", "affected_scores": 600,
                       "scores_in_window": 1500, "pct_of_their_traffic": 40.0},
                      {"customer": "globex", "affected_scores": 240, "scores_in_window": 800,
                       "pct_of_their_traffic": 30.0}],
}
CORRECTED = {
    "correction_id": "cor-1", "version": 1, "window": BLAST["window"], "confidence": 0.95,
    "figures": [
        {"dimension": "preference", "target": "preference rate (1 over 2)", "scale": "pairwise",
         "n_window": 840,
         "shown": {"method": "raw", "value": 0.48, "ci_low": 0.45, "ci_high": 0.51},
         "corrected": {"method": "ppi++", "value": 0.6, "ci_low": 0.55, "ci_high": 0.65},
         "ppi": {"method": "ppi++", "value": 0.6, "ci_low": 0.55, "ci_high": 0.65},
         "shift_robust": None, "window_sample": None, "why_none": None,
         "messages": [f"the estimators disagree {IMG}"], "customers": {}},
        {"dimension": "quality", "target": "mean", "scale": "ordinal", "n_window": 10,
         "shown": {"method": "raw", "value": 3.2, "ci_low": 3.0, "ci_high": 3.4},
         "corrected": None, "ppi": None, "shift_robust": None, "window_sample": None,
         "why_none": "confusion matrix near-singular", "messages": [], "customers": {}},
    ],
}


def _tables_store(tmp: Path, pandalm: CalibrationSet) -> Store:
    store = _store(tmp)
    gpt = _pandalm_rows("gpt35")
    base = add_run(store, pandalm, gpt, tmp, judge="j", model="gpt", at=run_date(2),
                   n_boot=50)
    drift.accept_baseline(store, base, actor="ana", reason="reviewed")
    bad = add_run(store, pandalm, degraded(gpt), tmp, judge="j", model="gpt",
                  prompt="Which is better? (v2)", at=run_date(1), n_boot=50)
    outcome = incidents.record_check(store, drift.check_run(store, bad, DriftSettings(),
                                                            n_boot=50))
    assert outcome.incident_id is not None
    incidents.add_event(store, outcome.incident_id, "blast_radius", BLAST, actor="judgecal",
                        reason="scores link")
    incidents.add_event(store, outcome.incident_id, "corrected", CORRECTED, actor="judgecal",
                        reason="incidents correct")
    return store


def test_blast_radius_and_corrected_figures_as_tables(tmp_path: Path,
                                                      pandalm: CalibrationSet) -> None:
    store = _tables_store(tmp_path, pandalm)
    data = trust_report_data(store, verify=False, worst_items=0)
    (inc,) = data["judges"][0]["incidents"]
    b = inc["blast_tables"]
    assert b["summary"]["pct_traffic"] == 21.0 and b["summary"]["pct_customers"] == 25.0
    assert [c["affected_scores"] for c in b["customers"]] == [600, 240]
    assert b["dimensions"][0]["change"] == {"value": -0.13, "ci_low": -0.18, "ci_high": -0.08}
    c = inc["correction"]
    assert [r["dimension"] for r in c["rows"]] == ["preference", "quality"]
    assert c["rows"][0]["method"].startswith("PPI++") and c["rows"][1]["corrected"] is None

    html = render_html(data)
    section = html[html.index("<h3>Incidents</h3>"):html.index("<h3>Items with the worst")]
    assert "{" not in section  # tables, not a dump of JSON
    blast = section[section.index('<table class="blast">'):]
    assert "840 / 4000" in blast and "21.0%" in blast and "3 / 12" in blast
    assert "2026-11-01 00:00 UTC → 2026-11-03 00:00 UTC" in blast
    assert "acme &lt;script&gt;" in blast and SCRIPT not in html and IMG not in html
    assert "40.0%" in blast and "-0.130 [-0.180, -0.080]" in blast
    corrected = section[section.index('<table class="corrected">'):]
    corrected = corrected[:corrected.index("</table>")]
    assert "0.480 [0.450, 0.510]" in corrected and "0.600 [0.550, 0.650]" in corrected
    assert "PPI++" in corrected and "confusion matrix near-singular" in corrected
    assert "the estimators disagree &lt;img" in section


def test_one_interval_per_figure(tmp_path: Path, pandalm: CalibrationSet) -> None:
    store = _tables_store(tmp_path, pandalm)
    html = render_html(trust_report_data(store, verify=False, worst_items=0))
    cells = re.findall(r'<td class="num">(.*?)</td>', html, flags=re.S)
    assert cells
    for cell in cells:
        assert cell.count("[") <= 1, cell
    for head in re.findall(r"<thead>(.*?)</thead>", html, flags=re.S):
        names = re.findall(r"<th[^>]*>(.*?)</th>", head, flags=re.S)
        assert len(names) == len(set(names)), names
        assert sum("CI" in n for n in names) <= 2, names  # judge and ceiling at most
