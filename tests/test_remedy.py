"""The remedy end to end on real verdicts: `judgecal incidents correct|sample|labels`.

The fixture is the LLMBar GPT-4 → ChatGPT swap: the healthy run and the drifted run are the
real recorded verdicts (imported), the incident is opened by the real drift check, and the
production history of the judge's ``preference`` scores is made of the same real verdicts on
LLMBar items drawn at random (so the true human rate of every window is known): GPT-4 before
the swap, ChatGPT after it, five named customers, segments = LLMBar subsets.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select, update

from judgecal import audit, drift, incidents
from judgecal.calibration import load_set
from judgecal.config import DriftSettings
from judgecal.errors import InputError
from judgecal.judge.fingerprint import production_tag
from judgecal.records import simulated_clock
from judgecal.remedy import correct_incident, draw_sample, import_labels, save_correction
from judgecal.runs.imported import import_judgments
from judgecal.scores.ingest import ingest_file
from judgecal.scores.link import link_incident
from judgecal.store import open_store, schema
from tests.conftest import ROOT, SETS
from tests.helpers import llmbar_winners, run_main

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
JUDGE = "llmbar-judge"


def _import(store: Any, cs: Any, tmp: Path, verdicts: dict[str, int | None], served: str
            ) -> str:
    path = tmp / f"imp-{served}.jsonl"
    path.write_text("".join(
        json.dumps({"item_id": i.id, "dimension": "preference",
                    "score": "" if verdicts.get(i.id) is None else verdicts[i.id]}) + "\n"
        for i in cs.items))
    return str(import_judgments(store, cs, path, judge_name=JUDGE, model="gpt-4",
                                prompt_text="Which output is better?",
                                served_model=served)["run_id"])


def _history(cs: Any, gpt4: dict[str, int | None], chatgpt: dict[str, int | None],
             old_tag: str, new_tag: str, path: Path) -> dict[str, float]:
    """Production scores: 10 days of GPT-4 before T0, 7 of ChatGPT from T0 + 1 day.
    Returns the true human rate of the first response in the window after the swap."""
    rng = np.random.default_rng(5)
    human = cs.human_matrix("preference")[:, 0]
    gold = {item.id: human[k] for k, item in enumerate(cs.items)}
    rows = []
    inputs = []
    truth: list[float] = []
    for period, (start, days, verdicts, tag) in enumerate((
            (T0 - timedelta(days=10), 10, gpt4, old_tag),
            (T0 + timedelta(days=1), 7, chatgpt, new_tag))):
        ids = [i for i in cs.items if verdicts.get(i.id) is not None]
        for k in range(1200):
            item = ids[int(rng.integers(len(ids)))]
            at = start + timedelta(seconds=float(rng.uniform(0, days * 86400)))
            rows.append({"score_id": f"s{period}-{k:05d}",
                         "scored_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "judge": JUDGE,
                         "fingerprint": tag, "dimension": "preference",
                         "score": verdicts[item.id],
                         "customer": f"cust-{1 + int(rng.integers(5))}",
                         "segment": item.segments.get("subset", "")})
            if period == 1:
                truth.append(1.0 if gold[item.id] == 1 else 0.0)
                inputs.append({"score_id": rows[-1]["score_id"], "item": item.id,
                               **{k: item.fields[k] for k in ("input", "output_1", "output_2")}})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (path.parent / "inputs.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in inputs)
    return {"window_rate": float(np.mean(truth)), "inputs": path.parent / "inputs.jsonl"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("remedy")
    cs = load_set(SETS / "llmbar")
    gpt4, chatgpt = llmbar_winners("GPT-4/Vanilla"), llmbar_winners("ChatGPT/Vanilla")
    url = f"sqlite:///{tmp / 'store.db'}"
    store = open_store(url)
    try:
        with simulated_clock(T0) as clock:
            base = _import(store, cs, tmp, gpt4, "gpt-4-0613")
            drift.accept_baseline(store, base, actor="alice", reason="first healthy run")
            bad = _import(store, cs, tmp, chatgpt, "gpt-3.5-turbo-0613")
            outcome = incidents.record_check(store, drift.check_run(store, bad, DriftSettings(),
                                                                    n_boot=200))
            assert outcome.incident_id is not None
            facts = _history(cs, gpt4, chatgpt, production_tag(store.get_run(base)),
                             production_tag(store.get_run(bad)), tmp / "history.csv")
            assert ingest_file(store.engine, tmp / "history.csv").inserted == 2400
            clock.set(T0 + timedelta(days=9))
            link_incident(store, outcome.incident_id)
    finally:
        store.close()
    return {"db": tmp / "store.db", "incident_id": outcome.incident_id, **facts}


@pytest.fixture
def store_path(built: dict[str, Any], tmp_path: Path) -> Path:
    copy = tmp_path / "store.db"
    shutil.copy(built["db"], copy)
    return copy


def test_correct_real_swap_side_by_side(built: dict[str, Any], store_path: Path) -> None:
    store = open_store(f"sqlite:///{store_path}")
    try:
        result = correct_incident(store, built["incident_id"], n_boot=300)
    finally:
        store.close()
    assert result["affected_scores"] == 1200
    assert result["window"]["from"].startswith("blast_radius event")
    (dim,) = result["dimensions"]
    assert dim["dimension"] == "preference" and dim["target"].startswith("preference rate")
    est = dim["overall"]["estimates"]
    assert set(est) == {"raw", "ppi++", "shift_robust"}
    truth = built["window_rate"]
    # Every figure has a 95 % interval and its method; the corrected ones cover the truth of
    # the window (the window is drawn from the calibration population).
    for name in ("raw", "ppi++", "shift_robust"):
        assert est[name]["confidence"] == 0.95 and est[name]["ci_low"] is not None
    assert est["ppi++"]["ci_low"] <= truth <= est["ppi++"]["ci_high"]
    assert est["shift_robust"]["ci_low"] <= truth <= est["shift_robust"]["ci_high"]
    # The real ChatGPT verdicts disagree with the humans (kappa below 0): PPI++ tunes lambda
    # to 0 and the output says the estimate rests on the calibration set alone.
    assert est["ppi++"]["diagnostics"]["lambda"] == 0.0
    assert "judge_uninformative" in dim["overall"]["flags"]
    assert any("rests on the calibration set alone" in m for m in dim["overall"]["messages"])
    assert not est["raw"]["ci_low"] <= truth <= est["raw"]["ci_high"]  # raw is off
    assert dim["overall"]["recommended"] == "ppi++"
    # Segments are corrected with the calibration items of the same LLMBar subset.
    natural = next(s for s in dim["segments"] if s["group"] == "Natural")
    assert natural["calibration"].endswith("segment Natural")
    assert natural["estimates"]["ppi++"]["n_labelled"] < est["ppi++"]["n_labelled"]
    assert {s["group"] for s in dim["segments"]} >= {"Natural"}
    assert [c["group"] for c in dim["customers"]][:1] and len(dim["customers"]) == 5
    assert dim["representativeness"]["representative"] is not None
    assert dim["placebo"]["n_window"] > 500 and "estimates" in dim["placebo"]
    json.dumps(result, allow_nan=False)


def test_disagreement_and_refusal_are_said(built: dict[str, Any], store_path: Path) -> None:
    """A window that the calibration set does not represent (every score says "first"):
    the estimators disagree and the output says so; a judge that always says the same
    thing gets a refused shift-robust estimate."""
    store = open_store(f"sqlite:///{store_path}")
    try:
        with store.engine.begin() as conn:
            conn.execute(update(schema.score_history).values(score=1.0))
            conn.execute(update(schema.replies).where(
                schema.replies.c.run_id == incidents.get_incident(
                    store, built["incident_id"])["run_id"]).values(score=1.0))
        result = correct_incident(store, built["incident_id"], n_boot=200)
    finally:
        store.close()
    overall = result["dimensions"][0]["overall"]
    assert overall["estimates"]["shift_robust"]["undefined_code"] == "near_singular"
    assert any("rests on the calibration set alone" in m for m in overall["messages"])
    assert any("label a window sample" in m for m in result["messages"])


def test_scores_of_one_trace_are_resampled_together(built: dict[str, Any],
                                                    store_path: Path) -> None:
    """The history says which scores share a conversation (trace_id): the window's
    intervals are cluster-robust and the output says so; without traces, it says the scores
    are treated as independent."""
    store = open_store(f"sqlite:///{store_path}")
    try:
        plain = correct_incident(store, built["incident_id"], n_boot=200)
        h = schema.score_history
        with store.engine.begin() as conn:
            ids = conn.execute(select(h.c.score_id).order_by(h.c.score_id)).scalars().all()
            # conversations of 6 scores, every score of one conversation scored alike
            for k in range(0, len(ids), 6):
                group = ids[k:k + 6]
                first = conn.execute(select(h.c.score).where(h.c.score_id == group[0])
                                     ).scalar()
                conn.execute(update(h).where(h.c.score_id.in_(group))
                             .values(trace_id=f"conv-{k // 6}", score=first))
        clustered = correct_incident(store, built["incident_id"], n_boot=200)
    finally:
        store.close()
    assert "treated as independent" in plain["cluster_note"]
    assert "200 trace(s) hold 1200" in clustered["cluster_note"]
    est = clustered["dimensions"][0]["overall"]["estimates"]
    assert est["raw"]["interval"] == "cluster_clt"
    assert est["raw"]["diagnostics"]["n_clusters"] == 200
    assert est["raw"]["diagnostics"]["design_effect"] > 4
    assert est["shift_robust"]["diagnostics"]["n_clusters"] == 200
    # six identical scores per conversation carry the information of one
    width = est["raw"]["ci_high"] - est["raw"]["ci_low"]
    plain_raw = plain["dimensions"][0]["overall"]["estimates"]["raw"]
    assert width > 2 * (plain_raw["ci_high"] - plain_raw["ci_low"])


def _healthy_config(tmp_path: Path, base_url: str, store: str) -> Path:
    judge = (ROOT / "configs" / "judges" / "llmbar-gpt4-vanilla.yaml").read_text()
    (tmp_path / "judge.yaml").write_text(judge.replace("http://127.0.0.1:8765/v1", base_url))
    path = tmp_path / "healthy.yaml"
    path.write_text(f"store: {store}\ncalibration_set: {SETS / 'llmbar'}\njudge: judge.yaml\n")
    return path


def test_rejudge_window_with_the_healthy_judge(
        built: dict[str, Any], store_path: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept inputs of the window, re-scored by the recorded GPT-4 judge over real HTTP:
    the cost is shown first, a re-judge resumes without paying twice, and `correct` adds
    the re-judged figure (which is the healthy judge's rate on exactly those items)."""
    from judgecal.recorded.server import start_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-rejudge")
    url = f"sqlite:///{store_path}"
    inc = built["incident_id"]
    rows = [json.loads(line) for line in built["inputs"].read_text().splitlines()]
    gpt4 = llmbar_winners("GPT-4/Vanilla")
    # a third of the inputs kept, then all of them (the first re-judge is resumed, not repaid)
    part = tmp_path / "part.jsonl"
    part.write_text("".join(json.dumps(r) + "\n" for r in rows[:400]))
    with start_server(recordings={"gpt-4": "llmbar:GPT-4/Vanilla"}, sets_dir=SETS) as server:
        config = _healthy_config(tmp_path, server.url, url)
        base = ["--store", url, "incidents", "rejudge", inc, "--config", str(config)]
        code, out, err = run_main([*base, "--inputs", str(part), "--dry-run"], capsys)
        assert code == 0, err
        assert "400 with an input, 800 without" in out and "to send 400" in out
        assert "expected tokens ≈" in out and server.stats()["replies"] == 0
        code, out, err = run_main([*base, "--inputs", str(part)], capsys)
        assert code == 2 and "--yes" in err  # not a terminal: never sends unasked
        code, out, err = run_main([*base, "--inputs", str(part), "--yes", "--json"], capsys)
        assert code == 0, err
        first = json.loads(out)
        assert first["rejudge"]["requested_now"] == 400
        assert server.stats()["replies"] == 400
        full = tmp_path / "all.jsonl"
        full.write_text("".join(json.dumps(r) + "\n" for r in rows))
        code, out, err = run_main([*base, "--inputs", str(full), "--yes", "--json"], capsys)
        assert code == 0, err
        second = json.loads(out)
        assert server.stats()["replies"] == 1200  # the first 400 are not paid twice
        code, out, err = run_main([*base, "--inputs", str(full), "--yes"], capsys)
        assert code == 0 and "nothing to send: 1,200 scores already re-judged" in out
        assert server.stats()["replies"] == 1200
    assert (second["plan"]["requests"], second["plan"]["answered_before"]) == (800, 400)
    result_json = second["rejudge"]
    assert result_json["status"] == "completed" and result_json["requested_now"] == 800
    store = open_store(url)
    try:
        result = correct_incident(store, inc, n_boot=200)
        assert [r["run_id"] for r in store.list_runs()] == [
            r["run_id"] for r in store.list_runs() if r["origin"] != "rejudge"]
        assert len(store.list_runs(rejudges=True)) == len(store.list_runs()) + 2
        assert store.get_run("latest")["origin"] != "rejudge"
    finally:
        store.close()
    est = result["dimensions"][0]["overall"]["estimates"]["re_judged"]
    expect = np.mean([1.0 if gpt4[r["item"]] == 1 else 0.0 for r in rows
                      if gpt4[r["item"]] is not None])
    assert est["value"] == pytest.approx(expect, abs=1e-9)
    assert est["ci_low"] < expect < est["ci_high"]
    assert result["rejudge"]["window_scores_rejudged"] == sum(
        1 for r in rows if gpt4[r["item"]] is not None)
    assert result["dimensions"][0]["overall"]["recommended"] == "re_judged"
    # the healthy judge's own figure is close to the people's on this window
    assert abs(est["value"] - built["window_rate"]) < 0.1
    code, out, err = run_main(["--store", url, "incidents", "correct", inc], capsys)
    assert code == 0, err
    assert "re-judged" in out and "re-judged by llmbar-judge" in out
    code, out, err = run_main(["--store", url, "incidents", "postmortem", inc], capsys)
    assert code == 0, err
    assert "given again by the grader we used before the change" in out


def test_rejudge_inputs_are_checked(built: dict[str, Any], store_path: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-rejudge")
    url = f"sqlite:///{store_path}"
    config = _healthy_config(tmp_path, "http://127.0.0.1:9/v1", url)
    rows = [json.loads(line) for line in built["inputs"].read_text().splitlines()][:5]
    cmd = ["--store", url, "incidents", "rejudge", built["incident_id"], "--config",
           str(config), "--dry-run", "--inputs"]
    twice = tmp_path / "twice.jsonl"
    twice.write_text("".join(json.dumps(r) + "\n" for r in [*rows, rows[0]]))
    code, _, err = run_main([*cmd, str(twice)], capsys)
    assert code == 2 and "twice.jsonl:6" in err and "two inputs (first on line 1)" in err
    rows[3].pop("output_2")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run_main([*cmd, str(bad)], capsys)
    assert code == 2 and "bad.jsonl:4" in err and "output_2" in err
    nameless = tmp_path / "nameless.csv"
    nameless.write_text("id,input\nx,y\n")
    code, _, err = run_main([*cmd, str(nameless)], capsys)
    assert code == 2 and "missing column 'score_id'" in err and "--id-field" in err
    store = open_store(url)
    try:
        assert len(store.list_runs(rejudges=True)) == len(store.list_runs())  # nothing sent
    finally:
        store.close()


def test_cli_correct_stores_versions_exports_and_audits(
        built: dict[str, Any], store_path: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{store_path}"
    inc = built["incident_id"]
    code, out, err = run_main(["--store", url, "incidents", "correct", inc], capsys)
    assert code == 0, err
    assert "PPI++" in out and "shift-robust" in out and "raw (as shown)" in out
    assert "version 1" in out and "what each estimate assumes" in out
    code, out, err = run_main(["--store", url, "incidents", "correct", inc, "--json",
                               "--out", str(tmp_path / "fig.parquet")], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["stored"]["version"] == 2 and data["stored"]["rows"] > 0
    table = pq.read_table(tmp_path / "fig.parquet").to_pylist()
    assert {r["method"] for r in table} == {"raw", "ppi++", "shift_robust"}
    assert sum(r["recommended"] for r in table if r["kind"] == "all") == 1
    for ext in ("csv", "jsonl"):
        code, _, err = run_main(["--store", url, "incidents", "correct", inc, "--out",
                                 str(tmp_path / f"fig.{ext}")], capsys)
        assert code == 0, err
    assert len((tmp_path / "fig.jsonl").read_text().splitlines()) == len(table)
    code, _, err = run_main(["--store", url, "incidents", "correct", inc, "--out",
                             str(tmp_path / "fig.txt")], capsys)
    assert code == 2 and "fig.txt" in err
    code, _, err = run_main(["--store", url, "incidents", "correct", "INC-nope"], capsys)
    assert code == 2 and "no incident" in err

    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            versions = conn.execute(select(schema.corrections.c.version).order_by(
                schema.corrections.c.version)).scalars().all()
        assert versions == [1, 2, 3, 4]  # never overwritten
        incident = incidents.get_incident(store, inc)
        corrected = [e for e in incident["events"] if e["kind"] == "corrected"]
        assert [e["data"]["version"] for e in corrected] == [1, 2, 3, 4]
        fig = corrected[-1]["data"]["figures"][0]
        assert fig["dimension"] == "preference" and fig["corrected"]["method"] == "ppi++"
        result = audit.verify(store.engine)
        assert result.ok, [str(p) for p in result.problems]
        assert result.records_checked.get("correction") == 4
        with store.engine.begin() as conn:
            conn.execute(update(schema.corrections).where(schema.corrections.c.version == 1)
                         .values(actor="mallory"))
        assert not audit.verify(store.engine).ok
    finally:
        store.close()


def test_window_sample_queue_labels_and_estimate(
        built: dict[str, Any], store_path: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{store_path}"
    inc = built["incident_id"]
    queue = tmp_path / "queue.csv"
    code, out, err = run_main(["--store", url, "incidents", "sample", inc, "--n", "120",
                               "--out", str(queue), "--seed", "7", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    with queue.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["n"] >= 120
    assert list(rows[0]) == ["score_id", "customer", "segment", "dimension", "scale",
                             "score_shown", "label"]
    assert all(r["label"] == "" for r in rows) and rows[0]["dimension"] == "preference"
    again = tmp_path / "again.jsonl"
    assert run_main(["--store", url, "incidents", "sample", inc, "--n", "120", "--out",
                     str(again), "--seed", "7"], capsys)[0] == 0
    assert [json.loads(x)["score_id"] for x in again.read_text().splitlines()] == [
        r["score_id"] for r in rows]  # the same seed, the same sample

    # Label it from the truth: the gold label of the item behind each score.
    cs = load_set(SETS / "llmbar")
    gold = {i.id: int(v) for i, v in zip(cs.items, cs.human_matrix("preference")[:, 0],
                                         strict=True)}
    verdicts = llmbar_winners("ChatGPT/Vanilla")
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            shown = dict(conn.execute(select(schema.score_history.c.score_id,
                                             schema.score_history.c.score)).all())
    finally:
        store.close()
    # A labeller who knows the truth: a real human label for each sampled score is the gold
    # label of an item on which ChatGPT gave the shown verdict (drawn from the real pairs).
    rng = np.random.default_rng(3)
    pool: dict[float, list[int]] = {}
    for item_id, verdict in verdicts.items():
        if verdict is not None:
            pool.setdefault(float(verdict), []).append(gold[item_id])
    for r in rows:
        options = pool[shown[r["score_id"]]]
        r["label"] = str(options[int(rng.integers(len(options)))])
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows[:3], {**rows[3], "label": "7"}, {**rows[4], "score_id": "nope"},
                          rows[0]])
    code, _, err = run_main(["--store", url, "incidents", "labels", inc, str(bad)], capsys)
    assert code == 2
    assert f"{bad}:5: field 'label'" in err and "not a code" in err
    assert f"{bad}:6: field 'score_id'" in err and "not in the affected window" in err
    assert f"{bad}:7: field 'score_id'" in err and "labelled twice" in err
    store = open_store(url)
    try:
        with store.engine.connect() as conn:  # nothing half-written
            assert conn.execute(select(schema.window_labels)).first() is None
    finally:
        store.close()

    good = tmp_path / "labels.csv"
    with good.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, out, err = run_main(["--store", url, "incidents", "labels", inc, str(good), "--json"],
                              capsys)
    assert code == 0, err
    assert json.loads(out)["labels"] == len(rows)
    code, out, err = run_main(["--store", url, "incidents", "correct", inc, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    overall = data["dimensions"][0]["overall"]
    sample_est = overall["estimates"]["window_sample_ppi++"]
    assert sample_est["value"] is not None and sample_est["n_labelled"] == len(rows)
    human_only = sample_est["diagnostics"]["human_only"]
    assert sample_est["ci_high"] - sample_est["ci_low"] <= (
        human_only["ci_high"] - human_only["ci_low"]) + 1e-12
    assert overall["recommended"] == "window_sample_ppi++"
    store = open_store(url)
    try:
        assert audit.verify(store.engine).ok
        kinds = [e["kind"] for e in incidents.get_incident(store, inc)["events"]]
        assert "window_sample" in kinds and "labels_imported" in kinds
    finally:
        store.close()


def test_labels_need_the_columns(built: dict[str, Any], store_path: Path,
                                 tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{store_path}")
    try:
        path = tmp_path / "x.jsonl"
        path.write_text(json.dumps({"id": "s1-00001", "label": 1}) + "\n")
        with pytest.raises(InputError, match="missing column 'score_id'"):
            import_labels(store, built["incident_id"], path)
        with pytest.raises(InputError, match=r"\.csv or \.jsonl"):
            draw_sample(store, built["incident_id"], 10, tmp_path / "q.xlsx")
    finally:
        store.close()


def test_postmortem_and_markdown_quote_the_stored_figures(built: dict[str, Any],
                                                          store_path: Path) -> None:
    store = open_store(f"sqlite:///{store_path}")
    try:
        save_correction(store, correct_incident(store, built["incident_id"], n_boot=200))
        incident = incidents.get_incident(store, built["incident_id"])
    finally:
        store.close()
    pm = incidents.render_postmortem(incident)
    assert "was shown as 62 in 100; our corrected estimate is 49 in 100, most likely between" \
        in pm
    assert "Re-check the grades" not in pm
    from tests.test_incidents import JARGON

    assert not JARGON.search(pm), JARGON.search(pm)
    assert "rests on the examples people graded by hand alone" in pm  # lambda 0, said plainly
    for_customer = incidents.render_postmortem(incident, customer="cust-1")
    assert "For cust-1, the share of preference comparisons" in for_customer
    md = incidents.render_markdown(incident)
    assert "Corrected figures" in md and "PPI++" in md


def test_scores_show_one_suspicious_score(built: dict[str, Any], store_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`scores show`: the judge and fingerprint of one score, the baseline in force, the
    calibration runs around it with their agreement, the incident whose window holds it and
    its corrected figure."""
    url = f"sqlite:///{store_path}"
    inc = built["incident_id"]
    code, out, err = run_main(["--store", url, "scores", "show", "s1-00007", "--json"], capsys)
    assert code == 0, err
    story = json.loads(out)
    assert story["judge"] == JUDGE and story["score"]["dimension"] == "preference"
    assert story["run_before"] is not None and story["run_after"] is None
    assert story["fingerprint_match"] == {"before": True, "after": False}
    assert "matches the calibration run before it" in story["fingerprint_matches"]
    assert story["run_before"]["metrics"]["kappa"]["ci_low"] is not None
    assert story["baseline_in_force"]["actor"] == "alice"
    (held,) = story["incidents"]
    assert held["incident_id"] == inc and held["corrected"] is None
    # a score from before the swap: matches the healthy run after it, no incident holds it
    code, out, err = run_main(["--store", url, "scores", "show", "s0-00007", "--json"], capsys)
    assert code == 0, err
    early = json.loads(out)
    assert early["fingerprint_match"] == {"before": False, "after": True}
    assert early["incidents"] == [] and early["baseline_in_force"] is None
    code, _, err = run_main(["--store", url, "incidents", "correct", inc], capsys)
    assert code == 0, err
    code, out, err = run_main(["--store", url, "scores", "show", "s1-00007"], capsys)
    assert code == 0, err
    assert f"incident {inc}" in out and "corrected" in out and "version 1" in out
    assert "baseline in force: run" in out and "kappa" in out
    code, _, err = run_main(["--store", url, "scores", "show", "nope"], capsys)
    assert code == 2 and "no score 'nope'" in err
    # the same score read in place from a warehouse table (text timestamps, other names)
    import pandas as pd
    import sqlalchemy as sa

    store = open_store(url)
    try:
        frame = pd.read_sql(sa.select(schema.score_history), store.engine)
    finally:
        store.close()
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], unit="us", utc=True
                                        ).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    wh = store_path.parent / "warehouse.db"
    engine = sa.create_engine(f"sqlite:///{wh}")
    frame.rename(columns={"score_id": "id"}).to_sql("scores", engine, index=False)
    engine.dispose()
    cfg = store_path.parent / "source.yaml"
    cfg.write_text(f"score_source:\n  url: sqlite:///{wh}\n  table: scores\n"
                   "  columns:\n    score_id: id\n")
    code, out, err = run_main(["--store", url, "scores", "show", "s1-00007", "--source",
                               str(cfg), "--json"], capsys)
    assert code == 0, err
    in_place = json.loads(out)
    assert "read in place" in in_place["source"]
    assert in_place["score"] == story["score"]
    assert in_place["incidents"][0]["incident_id"] == inc
    # the remedy reads the same window in place
    figures = []
    for extra in ([], ["--source", str(cfg)]):
        code, out, err = run_main(["--store", url, "incidents", "correct", inc, "--no-record",
                                   "--json", *extra], capsys)
        assert code == 0, err
        figures.append(json.loads(out)["dimensions"][0]["overall"]["estimates"]["ppi++"])
    assert figures[0]["value"] == figures[1]["value"]
    assert figures[0]["n_window"] == figures[1]["n_window"] == 1200
