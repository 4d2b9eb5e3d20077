"""The trust report's data (what it shows), and the stores the report/audit/explain tests use.

The builders make stores from real recorded judges: the PandaLM test set with the verdicts of
gpt-3.5-turbo and PandaLM-7B (a real judge migration), imported as runs through
``import_judgments``, each with its agreement report. ``hostile_set`` is a small set whose
item texts, judge replies, rater ids and judge name carry script/HTML/Markdown payloads.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from judgecal.agreement import agreement_report
from judgecal.calibration import CalibrationSet, StoredSet, load_set
from judgecal.runs.imported import import_judgments
from judgecal.store import Store, open_store, schema
from tests.conftest import SETS

# The real PandaLM judges' verdicts and reasons, as recorded (rebuilt byte for byte from the
# PandaLM release by a test): gpt-3.5-turbo and PandaLM-7B.
PANDALM_JUDGES = {"gpt35": SETS / "pandalm" / "recorded" / "gpt-3.5-turbo.jsonl",
                  "pandalm7b": SETS / "pandalm" / "recorded" / "pandalm-7b.jsonl"}
SCRIPT = '<script>window.__pwned = 1; console.error("pwned")</script>'
IMG = '<img src=x onerror="window.__pwned = 2">'
PAYLOAD = (f'{SCRIPT} {IMG} [click](javascript:alert(1)) "><svg onload=alert(3)> '
           "$\\alpha$ {{7*7}}")
HOSTILE_JUDGE = 'judge<script>alert("name")</script>'


def _pandalm_rows(key: str) -> list[dict[str, Any]]:
    rows = []
    with PANDALM_JUDGES[key].open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            # No verdict: the source kept only its marker ("garbage") for the reply.
            verdict = r["verdict"] if r["verdict"] is not None else r["source_verdict"]
            score = "" if r["verdict"] is None else str(verdict)
            rows.append({"item_id": r["id"], "dimension": "preference", "score": score,
                         "raw": r["reason"] or str(verdict)})
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def add_run(
    store: Store, cs: CalibrationSet, rows: list[dict[str, Any]], tmp: Path, *, judge: str,
    model: str, prompt: str = "Which response is better? Answer 1, 2 or 0.",
    at: str | None = None, n_boot: int = 200, report: bool = True,
) -> str:
    """Import ``rows`` as a run (optionally back-dated to ``at``) with its metric report."""
    path = write_csv(tmp / f"judgments-{len(list(tmp.glob('judgments-*')))}.csv", rows)
    run_id = str(import_judgments(store, cs, path, judge_name=judge, model=model,
                                  prompt_text=prompt)["run_id"])
    if at is not None:
        # Back-date before anything else is logged, then re-log the run, as finish_run would.
        from judgecal import audit

        with store.engine.begin() as conn:
            conn.execute(update(schema.runs).where(schema.runs.c.run_id == run_id)
                         .values(started_at=at, finished_at=at))
            record = audit.snapshot_run(conn, run_id)
            assert record is not None
            audit.append(conn, "run", run_id, record)
    if report:
        view = StoredSet.load(store, cs.version)
        store.save_metric_report(run_id, agreement_report(view, store.replies(run_id),
                                                          n_boot=n_boot))
    return run_id


def run_date(days_ago: int) -> str:
    """02:00 UTC, ``days_ago`` days before today (runs are dated just before the incident,
    which is opened now)."""
    day = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    return (day - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def degraded(rows: list[dict[str, Any]], share: float = 0.3) -> list[dict[str, Any]]:
    """A silently updated judge: every item whose position in the file is a multiple of
    ``1 / share`` gets the opposite preference (1 ↔ 2)."""
    step = round(1 / share)
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        if i % step == 0 and row["score"] in ("1", "2"):
            row["score"] = "2" if row["score"] == "1" else "1"
            row["raw"] = f"Response {row['score']} is better."
        out.append(row)
    return out


def pandalm_store(
    tmp: Path, *, n_boot: int = 200, incident: bool = False
) -> tuple[Store, dict[str, str]]:
    """A judge's history on real data: gpt-3.5 twice (the first accepted as the baseline),
    then the real migration to PandaLM-7B. With ``incident``: a fourth night where gpt-3.5,
    with an edited prompt, flips a third of its verdicts — a real drift check opens a SEV0
    incident, which is acknowledged, linked to its blast radius and resolved."""
    store = open_store(f"sqlite:///{tmp / 'demo.db'}")
    cs = load_set(SETS / "pandalm")
    gpt = _pandalm_rows("gpt35")
    panda = _pandalm_rows("pandalm7b")
    runs = {
        "gpt_a": add_run(store, cs, gpt, tmp, judge="helpfulness", model="gpt-3.5-turbo",
                         at=run_date(4), n_boot=n_boot),
        "gpt_b": add_run(store, cs, gpt, tmp, judge="helpfulness", model="gpt-3.5-turbo",
                         at=run_date(3), n_boot=n_boot),
        "panda": add_run(store, cs, panda, tmp, judge="helpfulness", model="pandalm-7b",
                         at=run_date(2), n_boot=n_boot),
    }
    if incident:
        from judgecal import drift, incidents
        from judgecal.config import DriftSettings

        runs["drifted"] = add_run(store, cs, degraded(gpt), tmp, judge="helpfulness",
                                  model="gpt-3.5-turbo", prompt="Which is better? (v2)",
                                  at=run_date(1), n_boot=n_boot)
        drift.accept_baseline(store, runs["gpt_a"], actor="ana", reason="first reviewed run")
        check = drift.check_run(store, runs["drifted"], DriftSettings(), n_boot=100)
        outcome = incidents.record_check(store, check)
        assert outcome.incident_id is not None, check.to_json()["message"]
        runs["incident"] = outcome.incident_id
        incidents.acknowledge(store, outcome.incident_id, "ana", f"looking into it {IMG}")
        incidents.add_event(store, outcome.incident_id, "blast_radius",
                            {"traffic_pct": 12.5, "customers_pct": 30.0,
                             "affected_scores": 1250, "total_scores": 10000},
                            actor="judgecal", reason="scores link")
        incidents.resolve(store, outcome.incident_id, "ana", "prompt v2 rolled back")
    return store, runs


def hostile_set(root: Path, n_items: int = 40) -> CalibrationSet:
    """An ordinal + binary set whose texts are attacks on the report renderers."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "set.yaml").write_text(
        "name: hostile\n"
        f"description: {json.dumps('Set ' + PAYLOAD)}\n"
        "items: items.jsonl\nlabels: labels.csv\nsegments: [topic]\n"
        "dimensions:\n"
        "  - name: quality\n    scale: {kind: ordinal, min: 1, max: 5}\n"
        f"    description: {json.dumps('quality ' + SCRIPT)}\n"
        "  - name: safe\n    scale: {kind: binary}\n",
        encoding="utf-8",
    )
    with (root / "items.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(n_items):
            fh.write(json.dumps({
                "id": f"item-{i}" if i else "item-<b>0</b>",
                "question": f"Question {i}: {PAYLOAD}\n# heading?\n- list?",
                "answer": f"Answer {i} {IMG}",
                "topic": "<i>t</i>" if i % 2 else "plain",
            }) + "\n")
    with (root / "labels.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "rater_id", "dimension", "label"])
        for i in range(n_items):
            item = f"item-{i}" if i else "item-<b>0</b>"
            for r, rater in enumerate(["ann<script>", "bob", "cy"]):
                w.writerow([item, rater, "quality", 1 + (i + r * (i % 3 == 0)) % 5])
                w.writerow([item, rater, "safe", (i + (r == 2)) % 2])
    return load_set(root)


def hostile_rows(cs: CalibrationSet, shift: int = 2) -> list[dict[str, Any]]:
    rows = []
    for i, item in enumerate(cs.items):
        rows.append({"item_id": item.id, "dimension": "quality", "score": str(1 + (i + shift) % 5),
                     "raw": f"Score {1 + (i + shift) % 5}. {PAYLOAD}"})
        rows.append({"item_id": item.id, "dimension": "safe", "score": str((i + 1) % 2),
                     "raw": f"verdict {IMG}"})
    return rows


def hostile_store(tmp: Path) -> tuple[Store, dict[str, str]]:
    store = open_store(f"sqlite:///{tmp / 'hostile.db'}")
    cs = hostile_set(tmp / "hostile-set")
    runs = {
        "a": add_run(store, cs, hostile_rows(cs, 0), tmp, judge=HOSTILE_JUDGE, model=f"m {IMG}",
                     at="2026-10-01T01:00:00Z"),
        "b": add_run(store, cs, hostile_rows(cs, 2), tmp, judge=HOSTILE_JUDGE, model="m2",
                     prompt=f"new prompt {SCRIPT}", at="2026-10-02T01:00:00Z"),
    }
    return store, runs


# -- tests of the report data ------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, str]]:
    return pandalm_store(tmp_path_factory.mktemp("demo"))


def test_data_has_timeline_ceiling_and_fingerprint_change(
    demo: tuple[Store, dict[str, str]],
) -> None:
    from judgecal.reports import trust_report_data

    store, runs = demo
    data = trust_report_data(store)
    assert data["audit"]["ok"] is True
    (judge,) = data["judges"]
    assert judge["name"] == "helpfulness"
    assert [r["run_id"] for r in judge["runs"]] == [runs["gpt_a"], runs["gpt_b"], runs["panda"]]
    dim = judge["dimensions"]["preference"]
    assert dim["kind"] == "pairwise" and dim["metric"] == "kappa"
    points = dim["points"]
    assert len(points) == 3
    # gpt-3.5 vs the human majority: kappa 0.493 on the PandaLM test set (reference numbers in
    # tests/data/README.md), then PandaLM-7B 0.435
    assert points[0]["value"] == pytest.approx(0.493, abs=0.002)
    assert points[2]["value"] == pytest.approx(0.435, abs=0.002)
    assert all(p["ci_low"] < p["value"] < p["ci_high"] for p in points)
    assert all(p["ceiling"] is not None and p["ceiling"] > p["value"] for p in points)
    changes = [f for f in judge["fingerprints"] if not f["first"]]
    assert [f["run_id"] for f in changes] == [runs["panda"]]
    assert any("gpt-3.5-turbo" in c and "pandalm-7b" in c for c in changes[0]["changes"])
    current = judge["current"]
    assert current["run_id"] == runs["panda"]
    conf = current["dimensions"]["preference"]["confusion"]
    assert sum(map(sum, conf["matrix"])) == conf["n"]
    worst = judge["worst"]["dimensions"]["preference"]
    assert 0 < len(worst["items"]) <= 10
    assert all(it["judge"]["score"] != it["humans"]["consensus"] for it in worst["items"])


def test_filters_since_and_judge(demo: tuple[Store, dict[str, str]]) -> None:
    from judgecal.errors import InputError
    from judgecal.reports import trust_report_data

    store, runs = demo
    data = trust_report_data(store, since=run_date(3)[:10], worst_items=0)
    assert [r["run_id"] for r in data["judges"][0]["runs"]] == [runs["gpt_b"], runs["panda"]]
    assert data["judges"][0]["worst"] is None
    assert trust_report_data(store, since="2027-01-01")["judges"] == []
    with pytest.raises(InputError, match="no judge named"):
        trust_report_data(store, judge="nobody")
    with pytest.raises(InputError, match="--since"):
        trust_report_data(store, since="last tuesday")
