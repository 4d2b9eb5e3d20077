"""Score history: generator, ingest, onset, blast radius, export, shift — on SQLite and PostgreSQL.

The acceptance test generates a history with a known judge switch (known time, customers,
segments), ingests it, and checks every count and percentage exactly against an
independent pandas computation on the generated table.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from judgecal.errors import InputError
from judgecal.scores import (
    Window,
    blast_radius,
    export_affected,
    find_onset,
    ingest_file,
    judge_shift,
    link_incident,
    open_source,
    production_shift,
    store_source,
)
from judgecal.scores.generate import (
    NEW_FINGERPRINT,
    OLD_FINGERPRINT,
    GeneratedHistory,
    generate,
    write_history,
)
from judgecal.scores.link import LAST_HEALTHY_RUN, NEW_TAG
from judgecal.scores.link import NEW_FINGERPRINT as BY_FINGERPRINT
from judgecal.store import open_store, schema

JUDGE = "quality-judge"


@pytest.fixture(scope="module")
def history() -> GeneratedHistory:
    return generate(30_000, days=30, customers=60, seed=11, switch_day=20.4)


def _frame(h: GeneratedHistory) -> pd.DataFrame:
    df = h.table.to_pandas()
    for col in ("judge", "fingerprint", "dimension", "customer", "segment"):
        df[col] = df[col].astype(object)
    return df


def expected(h: GeneratedHistory, start: datetime, end: datetime,
             fps: tuple[str, ...] | None) -> dict[str, Any]:
    """The blast radius computed the naive way: every row in pandas."""
    df = _frame(h)
    ts = df["scored_at"]
    win = df[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
    aff = win[win["judge"] == JUDGE]
    if fps:
        aff = aff[aff["fingerprint"].isin(fps)]
    before = df[(df["judge"] == JUDGE) & (ts >= pd.Timestamp(start - (end - start)))
                & (ts < pd.Timestamp(start))]
    named_win = win["customer"].dropna()
    return {
        "affected": len(aff),
        "total": len(win),
        "customers_affected": aff["customer"].dropna().nunique(),
        "customers_active": named_win.nunique(),
        "by_dimension": aff.groupby("dimension").size().to_dict(),
        "mean_after": aff.groupby("dimension")["score"].mean().to_dict(),
        "mean_before": before.groupby("dimension")["score"].mean().to_dict(),
        "by_segment": aff.groupby("segment").size().to_dict(),
        "by_customer": aff.groupby("customer").size().sort_values(ascending=False).to_dict(),
        "customer_totals": win.groupby("customer").size().to_dict(),
        "ids": set(aff["score_id"]),
    }


def _ingested(store_url: str, h: GeneratedHistory, tmp_path: Path, ext: str = ".parquet") -> Any:
    path = write_history(h, tmp_path / f"history{ext}")
    store = open_store(store_url)
    result = ingest_file(store.engine, path)
    assert result.bad_rows == 0 and result.inserted == h.num_rows, result.to_json()
    return store


# -- generator ------------------------------------------------------------------------
def test_generator_is_deterministic_with_a_known_switch(history: GeneratedHistory) -> None:
    again = generate(30_000, days=30, customers=60, seed=11, switch_day=20.4)
    assert again.table.equals(history.table)
    assert history.num_rows == 30_000
    df = _frame(history)
    assert df["score_id"].is_unique
    assert df["scored_at"].is_monotonic_increasing
    new = df[df["fingerprint"] == NEW_FINGERPRINT]
    assert new["scored_at"].min() == pd.Timestamp(history.first_new_score_at)
    assert history.switch_at <= history.first_new_score_at < history.switch_at + timedelta(hours=2)
    assert not (df[df["scored_at"] < pd.Timestamp(history.switch_at)]["fingerprint"]
                == NEW_FINGERPRINT).any()
    assert set(df["dimension"]) == {"factual_consistency", "fluency", "safety", "tone",
                                    "formatting", "refusal"}
    # skewed traffic: the busiest customer has far more than a fair share
    shares = df["customer"].value_counts(normalize=True)
    assert shares.iloc[0] > 5 / 60
    # safety-only customers never get a quality-judge score
    quality_customers = set(df[df["judge"] == JUDGE]["customer"].dropna())
    assert not quality_customers & set(history.safety_only_customers)
    assert df["customer"].isna().any()  # anonymous traffic exists


def test_generator_writes_csv_jsonl_parquet(tmp_path: Path, history: GeneratedHistory) -> None:
    small = generate(500, days=3, customers=5, seed=2, switch_day=1.5)
    for ext in (".csv", ".jsonl", ".parquet"):
        path = write_history(small, tmp_path / f"h{ext}")
        assert path.stat().st_size > 0
    first = json.loads((tmp_path / "h.jsonl").read_text().splitlines()[0])
    assert first["scored_at"].endswith("Z") and "T" in first["scored_at"]
    assert (tmp_path / "h.csv").read_text().splitlines()[0].replace('"', "") == (
        "score_id,scored_at,judge,fingerprint,dimension,score,customer,segment")


# -- acceptance: exact counts on SQLite and PostgreSQL -------------------------------------------
def test_link_gives_exact_blast_radius(store_url: str, tmp_path: Path,
                                       history: GeneratedHistory) -> None:
    store = _ingested(store_url, history, tmp_path)
    try:
        src = store_source(store.engine)
        healthy = history.switch_at - timedelta(days=1)
        onset = find_onset(src, JUDGE, last_healthy_at=healthy)
        assert onset.method == BY_FINGERPRINT
        assert onset.at == history.first_new_score_at
        assert onset.fingerprints == (NEW_FINGERPRINT,)
        assert "first seen after the last healthy calibration run" in onset.explanation

        r = blast_radius(src, onset, JUDGE, end=history.end, top=5)
        exp = expected(history, onset.at, history.end, (NEW_FINGERPRINT,))
        assert r["affected_scores"] == exp["affected"] > 0
        assert r["scores_in_window"] == exp["total"]
        assert r["pct_traffic"] == pytest.approx(100 * exp["affected"] / exp["total"], abs=1e-12)
        assert r["customers_affected"] == exp["customers_affected"]
        assert r["customers_active"] == exp["customers_active"]
        assert r["customers_affected"] < r["customers_active"]  # safety-only customers
        assert r["pct_customers"] == pytest.approx(
            100 * exp["customers_affected"] / exp["customers_active"], abs=1e-12)
        dims = {d["dimension"]: d for d in r["by_dimension"]}
        assert {k: v["affected_scores"] for k, v in dims.items()} == exp["by_dimension"]
        for dim, mean in exp["mean_after"].items():
            assert dims[dim]["mean_after"] == pytest.approx(mean, abs=1e-9)
            assert dims[dim]["mean_before"] == pytest.approx(exp["mean_before"][dim], abs=1e-9)
        # the generated shift: factual consistency −5 points, fluency unchanged
        assert dims["factual_consistency"]["moved"] is True
        assert dims["factual_consistency"]["points"] == pytest.approx(-5, abs=1.5)
        assert dims["fluency"]["points"] == pytest.approx(0, abs=1.0)
        assert {s["segment"]: s["affected_scores"] for s in r["by_segment"]} == exp["by_segment"]
        top = [(c["customer"], c["affected_scores"]) for c in r["top_customers"]]
        ranked = sorted(exp["by_customer"].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert top == ranked
        for c in r["top_customers"]:
            assert c["scores_in_window"] == exp["customer_totals"][c["customer"]]
        assert r["window"]["end_reason"] == "now"
        json.dumps(r, allow_nan=False)  # strict JSON, ready to become an incident event
    finally:
        store.close()


def test_ingest_twice_changes_nothing(store_url: str, tmp_path: Path) -> None:
    h = generate(3_000, days=5, customers=10, seed=3, switch_day=3)
    path = write_history(h, tmp_path / "h.csv")
    store = open_store(store_url)
    try:
        first = ingest_file(store.engine, path, chunk_rows=700)
        second = ingest_file(store.engine, path, chunk_rows=700)
        assert (first.inserted, first.duplicates) == (3_000, 0)
        assert (second.inserted, second.duplicates, second.rows_read) == (0, 3_000, 3_000)
        with store.engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(schema.score_history)).scalar()
            fps = conn.execute(sa.select(schema.score_fingerprints)).mappings().all()
        assert n == 3_000
        assert {(f["judge"], f["fingerprint"]) for f in fps} == {
            (JUDGE, OLD_FINGERPRINT), (JUDGE, NEW_FINGERPRINT),
            ("safety-judge", "cfg:2c9e51aa04f7/served:llama-guard-3-8b")}
        # the store converts back to aware UTC instants, to the microsecond
        src = store_source(store.engine)
        with store.engine.connect() as conn:
            first_ts = src.when(conn.execute(
                sa.select(sa.func.min(schema.score_history.c.scored_at))).scalar())
        assert first_ts == h.table.column("scored_at")[0].as_py()
    finally:
        store.close()


CORRUPT = """score_id,scored_at,judge,fingerprint,dimension,score,customer,segment
a1,2026-03-01T10:00:00Z,j,fp1,tone,0.5,c1,chat
a2,yesterday,j,fp1,tone,0.5,c1,chat
a3,2026-03-01T10:00:02Z,j,fp1,tone,NaN,c1,chat
,2026-03-01T10:00:03Z,j,fp1,tone,0.5,c1,chat
a5,2026-03-01T10:00:04+02:00,j,fp1,tone,0.25,,
a6,2026-03-01 10:00:05,j,,tone,abc,c2,rag
a7,2026-03-01T10:00:06Z,j,fp1,tone,1,c2,rag
"""


def test_corrupt_rows_are_reported_by_line(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(CORRUPT)
    store = open_store(store_url)
    try:
        atomic = ingest_file(store.engine, path, atomic=True)
        assert atomic.bad_rows == 4 and not atomic.committed and atomic.inserted == 0
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(
                schema.score_history)).scalar() == 0
            assert conn.execute(sa.select(sa.func.count()).select_from(
                schema.score_fingerprints)).scalar() == 0

        result = ingest_file(store.engine, path)
        assert result.committed and result.inserted == 3 and result.bad_rows == 4
        by_line = {p.line: p for p in result.problems}
        assert sorted(by_line) == [3, 4, 5, 7]
        assert by_line[3].field == "scored_at" and "not an ISO-8601" in by_line[3].message
        assert by_line[4].field == "score" and "not a finite number" in by_line[4].message
        assert by_line[5].field == "score_id" and "missing" in by_line[5].message
        assert by_line[7].field == "score" and "not a number" in by_line[7].message
        assert str(by_line[3]).startswith(f"{path}:3: field 'scored_at'")
        src = store_source(store.engine)
        with store.engine.connect() as conn:
            rows = {r.score_id: r for r in conn.execute(sa.select(schema.score_history))}
        assert set(rows) == {"a1", "a5", "a7"}
        # +02:00 is converted to UTC; empty customer/segment become NULL
        assert src.when(rows["a5"].scored_at) == datetime(2026, 3, 1, 8, 0, 4, tzinfo=UTC)
        assert rows["a5"].customer is None and rows["a5"].segment is None
    finally:
        store.close()


def test_missing_column_and_mapping(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        path = tmp_path / "renamed.jsonl"
        path.write_text(
            '{"id": "x1", "ts": "2026-03-01T00:00:00Z", "judge": "j", "dimension": "tone",'
            ' "score": 1}\n'
            '{"id": "x2", "ts": "2026-03-01T00:00:01Z", "judge": "j", "dimension": "tone",'
            ' "score": 0.5, "customer": "c"}\n'
        )
        with pytest.raises(InputError, match=r"missing column.*score_id.*scored_at"):
            ingest_file(store.engine, path)
        result = ingest_file(store.engine, path, mapping={"score_id": "id", "scored_at": "ts"})
        assert (result.inserted, result.bad_rows) == (2, 0)
    finally:
        store.close()


# -- onset ------------------------------------------------------------------------
def test_onset_rules(tmp_path: Path) -> None:
    h = generate(8_000, days=10, customers=20, seed=5, switch_day=6.2)
    store = _ingested(f"sqlite:///{tmp_path / 's.db'}", h, tmp_path)
    try:
        src = store_source(store.engine)
        by_tag = find_onset(src, JUDGE, last_healthy_at=h.start + timedelta(days=2),
                            new_tag=NEW_FINGERPRINT)
        assert by_tag.method == NEW_TAG and by_tag.at == h.first_new_score_at
        assert "incident's new production tag" in by_tag.explanation
        # without a healthy run, the tag alone dates the onset
        tag_only = find_onset(src, JUDGE, last_healthy_at=None, new_tag=NEW_FINGERPRINT)
        assert tag_only.at == h.first_new_score_at
        # a healthy run after the switch: nothing new since → onset is that run
        late = h.switch_at + timedelta(days=1)
        quiet = find_onset(src, JUDGE, last_healthy_at=late, new_tag=NEW_FINGERPRINT)
        assert quiet.method == LAST_HEALTHY_RUN and quiet.at == late and quiet.fingerprints == ()
        assert "not new" in quiet.explanation
        with pytest.raises(InputError, match="cannot date the onset"):
            find_onset(src, JUDGE, last_healthy_at=None)
        # last-healthy onset: every score of the judge after it is affected
        r = blast_radius(src, quiet, JUDGE, end=h.end)
        exp = expected(h, late, h.end, None)
        assert r["affected_scores"] == exp["affected"]
    finally:
        store.close()


# -- read in place ---------------------------------------------------------------------------------
def _warehouse_frame(h: GeneratedHistory) -> pd.DataFrame:
    df = _frame(h).rename(columns={"score_id": "id", "scored_at": "created_at",
                                   "judge": "grader", "score": "value"})
    return df


def _source_yaml(tmp_path: Path, url: str, table: str, **extra: str) -> Path:
    lines = ["score_source:", f"  url: {url}", f"  table: {table}", "  columns:",
             "    score_id: id", "    scored_at: created_at", "    judge: grader",
             "    score: value"]
    lines += [f"  {k}: {v}" for k, v in extra.items()]
    path = tmp_path / "source.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("time_format", ["text", "epoch_ms"])
def test_read_in_place_from_sqlite(tmp_path: Path, history: GeneratedHistory,
                                   time_format: str) -> None:
    df = _warehouse_frame(history)
    if time_format == "text":
        df["created_at"] = df["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        df["created_at"] = df["created_at"].astype("int64") // 1_000  # ns → ms
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    df.to_sql("judge_scores", engine, index=False)
    engine.dispose()
    src = open_source(_source_yaml(tmp_path, url, "judge_scores"))
    try:
        assert src.codec.kind == ("text" if time_format == "text" else "epoch")
        onset = find_onset(src, JUDGE, last_healthy_at=history.switch_at - timedelta(days=1))
        start = history.first_new_score_at
        if time_format == "epoch_ms":
            start = start.replace(microsecond=start.microsecond // 1000 * 1000)
        assert onset.at == start
        r = blast_radius(src, onset, JUDGE, end=history.end)
        exp = expected(history, onset.at, history.end, (NEW_FINGERPRINT,))
        assert (r["affected_scores"], r["scores_in_window"]) == (exp["affected"], exp["total"])
        assert (r["customers_affected"], r["customers_active"]) == (
            exp["customers_affected"], exp["customers_active"])
        assert "read in place" in r["source"]
        out = tmp_path / "affected.parquet"
        window = Window(JUDGE, onset.at, history.end, onset.fingerprints)
        assert export_affected(src, window, out) == exp["affected"]
    finally:
        src.close()


def test_read_in_place_from_duckdb(tmp_path: Path, history: GeneratedHistory) -> None:
    duckdb = pytest.importorskip("duckdb")
    pytest.importorskip("duckdb_engine")
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    frame = _warehouse_frame(history)
    con.register("frame", frame)
    con.execute("CREATE SCHEMA analytics")
    con.execute("CREATE TABLE analytics.judge_scores AS SELECT * FROM frame")
    con.close()
    src = open_source(_source_yaml(tmp_path, f"duckdb:///{db}", "judge_scores",
                                   schema="analytics"))
    try:
        assert src.codec.kind == "aware"
        onset = find_onset(src, JUDGE, last_healthy_at=history.switch_at - timedelta(days=1))
        assert onset.at == history.first_new_score_at
        r = blast_radius(src, onset, JUDGE, end=history.end)
        exp = expected(history, onset.at, history.end, (NEW_FINGERPRINT,))
        assert (r["affected_scores"], r["scores_in_window"]) == (exp["affected"], exp["total"])
        assert r["customers_affected"] == exp["customers_affected"]
    finally:
        src.close()


def test_source_config_is_strict(tmp_path: Path) -> None:
    from judgecal.errors import ConfigError
    from judgecal.scores import load_source_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("score_source:\n  url: sqlite://\n  table: t\n  colums: {}\n")
    with pytest.raises(ConfigError, match="colums"):
        load_source_config(bad)
    bad.write_text("score_source:\n  url: sqlite://\n  table: t\n  columns: {nope: x}\n")
    with pytest.raises(ConfigError, match="unknown column"):
        load_source_config(bad)
    bad.write_text("score_source:\n  url: postgresql://u:${JC_NO_SUCH_VAR}@h/db\n  table: t\n")
    with pytest.raises(ConfigError, match="JC_NO_SUCH_VAR"):
        load_source_config(bad)


# -- export ------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_export_every_affected_score(store_url: str, tmp_path: Path, history: GeneratedHistory,
                                     ext: str) -> None:
    store = _ingested(store_url, history, tmp_path)
    try:
        src = store_source(store.engine)
        onset = find_onset(src, JUDGE, last_healthy_at=history.switch_at - timedelta(days=1))
        window = Window(JUDGE, onset.at, history.end, onset.fingerprints)
        out = tmp_path / f"affected{ext}"
        n = export_affected(src, window, out, batch_rows=1_000)
        exp = expected(history, onset.at, history.end, (NEW_FINGERPRINT,))
        assert n == exp["affected"]
        frame = pd.read_csv(out) if ext == ".csv" else pq.read_table(out).to_pandas()
        assert set(frame["score_id"]) == exp["ids"] and len(frame) == n
        if ext == ".csv":
            assert str(frame["scored_at"].iloc[0]).endswith("Z")
        assert not list(tmp_path.glob(".*.part"))
    finally:
        store.close()


def test_export_rejects_unknown_extension(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        window = Window(JUDGE, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
        with pytest.raises(InputError, match=r"csv or \.parquet"):
            export_affected(store_source(store.engine), window, tmp_path / "out.xlsx")
    finally:
        store.close()


# -- incidents ------------------------------------------------------------------------
def make_incident(store: Any, *, judge: str = JUDGE, last_healthy: datetime,
                  tag_after: str | None = NEW_FINGERPRINT, incident_id: str = "inc-test-1",
                  opened_at: datetime | None = None) -> str:
    """A minimal incident row, as the drift module would write it (for these tests)."""
    from judgecal.scores.link import iso

    opened = iso(opened_at or last_healthy + timedelta(days=2))
    record = {
        "incident_id": incident_id, "schema_version": 1, "judge_name": judge,
        "set_name": "s", "set_version": "v1", "baseline_run_id": "r0", "run_id": "r1",
        "check_id": "c1", "opened_at": opened,
        "severity": {"level": "SEV2", "magnitude": {"dimension": "factual_consistency",
                                                    "metric": "kappa", "points": -5.0,
                                                    "interval95_points": [-7.0, -3.0]},
                     "dimensions": []},
        "root_cause": {"code": "silent_provider_update", "title": "Silent provider update",
                       "summary": "the provider changed the model", "cause_family": "judge drift"},
        "fingerprint_diff": {},
        "production_tags": {"before": OLD_FINGERPRINT, "after": tag_after},
        "last_healthy_run_at": iso(last_healthy), "last_healthy_run_id": "r0",
        "evidence": {},
    }
    with store.engine.begin() as conn:
        conn.execute(schema.incidents.insert().values(
            incident_id=incident_id, schema_version=1, judge_name=judge, set_name="s",
            set_version="v1", baseline_run_id="r0", run_id="r1", check_id="c1",
            severity="SEV2", opened_at=opened, record=record))
    return incident_id


def test_link_incident_appends_blast_radius_events(store_url: str, tmp_path: Path,
                                                   history: GeneratedHistory) -> None:
    from judgecal import incidents

    store = _ingested(store_url, history, tmp_path)
    try:
        incident_id = make_incident(store, last_healthy=history.switch_at - timedelta(days=1))
        first = link_incident(store, incident_id, until=history.end - timedelta(days=2))
        assert first["onset"]["method"] == NEW_TAG
        assert first["onset"]["at"].startswith(history.first_new_score_at.strftime("%Y-%m-%dT%H"))
        assert first["window"]["end_reason"] == "given"
        second = link_incident(store, incident_id, until=history.end)
        assert second["affected_scores"] > first["affected_scores"]  # new scores arrived
        inc = incidents.get_incident(store, incident_id)
        events = [e for e in inc["events"] if e["kind"] == "blast_radius"]
        assert [e["data"]["affected_scores"] for e in events] == [
            first["affected_scores"], second["affected_scores"]]  # appended, not rewritten
        blast = inc["severity"]["blast_radius"]
        assert blast["pct_traffic"] == pytest.approx(second["pct_traffic"])
        assert blast["pct_customers"] == pytest.approx(second["pct_customers"])
        exp = expected(history, history.first_new_score_at, history.end, (NEW_FINGERPRINT,))
        assert second["affected_scores"] == exp["affected"]
    finally:
        store.close()


# -- shift ------------------------------------------------------------------------
def _add_check(store: Any, when: datetime, verdict: str, check_id: str) -> None:
    from judgecal.scores.link import iso

    with store.engine.begin() as conn:
        conn.execute(schema.drift_checks.insert().values(
            check_id=check_id, run_id=f"run-{check_id}", baseline_run_id="r0", judge_name=JUDGE,
            set_name="s", set_version="v1", created_at=iso(when), verdict=verdict,
            severity=None, record={}))


def test_shift_when_the_judge_is_not_the_cause(store_url: str, tmp_path: Path) -> None:
    h = generate(12_000, days=20, customers=40, seed=9, switch=False, mix_shift_day=10,
                 mix_shift_to={"code": 1.0})
    store = _ingested(store_url, h, tmp_path)
    try:
        since = h.start + timedelta(days=10)
        r = production_shift(store_source(store.engine), JUDGE, since=since, until=h.end)
        assert r["before"]["start"].startswith("2026-01-01")
        df = _frame(h)
        j = df[df["judge"] == JUDGE]
        later = j[j["scored_at"] >= pd.Timestamp(since)]
        earlier = j[j["scored_at"] < pd.Timestamp(since)]
        assert (r["before"]["scores"], r["after"]["scores"]) == (len(earlier), len(later))
        mix = {m["segment"]: m for m in r["segment_mix"]}
        assert mix["code"]["share_after"] == pytest.approx(
            (later["segment"] == "code").mean(), abs=1e-12)
        assert mix["code"]["share_after"] > mix["code"]["share_before"] + 0.2
        assert r["segment_mix_tvd"] > 0.2
        for d in r["by_dimension"]:
            # mix effect + within-segment effect = total move, exactly
            assert d["mix_effect"] + d["within_effect"] == pytest.approx(d["delta"], abs=1e-12)
        # formatting scores are lower on code: the mix alone moved them down
        fmt = next(d for d in r["by_dimension"] if d["dimension"] == "formatting")
        assert fmt["moved"] and fmt["mix_effect"] < 0
        assert abs(fmt["within_effect"]) < abs(fmt["mix_effect"])

        nothing = judge_shift(store, JUDGE, since=since, until=h.end)
        assert nothing["verdict"] == "undetermined"
        _add_check(store, h.start + timedelta(days=5), "healthy", "c1")
        _add_check(store, h.start + timedelta(days=15), "healthy", "c2")
        ok = judge_shift(store, JUDGE, since=since, until=h.end)
        assert ok["verdict"] == "judge_not_the_cause", ok["explanation"]
        assert [c["cause"] for c in ok["other_causes"]] == [
            "input distribution shift", "model migration", "prompt change"]
        assert "segment mix moved" in ok["other_causes"][0]["evidence"]
        make_incident(store, last_healthy=h.start + timedelta(days=12),
                      opened_at=h.start + timedelta(days=13))
        drift_ = judge_shift(store, JUDGE, since=since, until=h.end)
        assert drift_["verdict"] == "judge_drift"
        assert drift_["incidents"][0]["incident_id"] == "inc-test-1"
    finally:
        store.close()


def test_shift_flags_an_unverified_fingerprint(tmp_path: Path) -> None:
    h = generate(8_000, days=20, customers=30, seed=4, switch_day=12)
    store = _ingested(f"sqlite:///{tmp_path / 's.db'}", h, tmp_path)
    try:
        _add_check(store, h.start + timedelta(days=8), "healthy", "c1")
        r = judge_shift(store, JUDGE, since=h.start + timedelta(days=10), until=h.end)
        assert r["verdict"] == "judge_changed_unverified"
        assert r["new_fingerprints"][0]["fingerprint"] == NEW_FINGERPRINT
        _add_check(store, h.start + timedelta(days=14), "healthy", "c2")
        r = judge_shift(store, JUDGE, since=h.start + timedelta(days=10), until=h.end)
        assert r["verdict"] == "judge_not_the_cause"
        assert not math.isnan(r["by_dimension"][0]["delta"])
    finally:
        store.close()


# -- rollups: the same answers as the raw queries ----------------------------------------------
def _same_blast_radius(fast: dict[str, Any], raw: dict[str, Any]) -> None:
    for key in ("affected_scores", "scores_in_window", "customers_affected",
                "customers_active", "pct_traffic", "pct_customers", "top_customers",
                "history_through", "window", "onset"):
        assert fast[key] == raw[key], key
    assert [(s["segment"], s["affected_scores"], s["pct_of_affected"])
            for s in fast["by_segment"]] == [
        (s["segment"], s["affected_scores"], s["pct_of_affected"]) for s in raw["by_segment"]]
    for f, r in zip(fast["by_segment"], raw["by_segment"], strict=True):
        assert f["mean_score"] == pytest.approx(r["mean_score"], rel=1e-12)
    assert [d["dimension"] for d in fast["by_dimension"]] == [
        d["dimension"] for d in raw["by_dimension"]]
    for f, r in zip(fast["by_dimension"], raw["by_dimension"], strict=True):
        for key in ("affected_scores", "n_before", "n_after", "pct_of_affected", "moved"):
            assert f[key] == r[key], (f["dimension"], key)
        for key in ("mean_before", "mean_after", "delta", "points"):
            if r[key] is None:
                assert f[key] is None
            else:
                assert f[key] == pytest.approx(r[key], rel=1e-9, abs=1e-12), key
        if r["ci95"] is not None:
            assert f["ci95"] == pytest.approx(r["ci95"], rel=1e-6, abs=1e-9)


def test_rollups_answer_exactly_like_the_raw_queries(store_url: str, tmp_path: Path,
                                                     history: GeneratedHistory) -> None:
    from judgecal.scores.link import Onset

    store = _ingested(store_url, history, tmp_path)
    try:
        src = store_source(store.engine)
        assert src.rollups
        onset = find_onset(src, JUDGE, last_healthy_at=history.switch_at - timedelta(days=1))
        day = timedelta(days=1)
        midnight = datetime(2026, 1, 21, tzinfo=UTC)
        cases = [
            (onset, history.end),  # the incident: partial hours, hours and days
            (onset, onset.at + timedelta(minutes=37)),  # inside one hour
            (onset, onset.at + timedelta(hours=5, minutes=3)),  # hours, no whole day
            (Onset(at=midnight, method="given", explanation="t"), midnight + 2 * day),
            (Onset(at=midnight + timedelta(hours=3), method="given", explanation="t"),
             midnight + 3 * day + timedelta(hours=7)),  # aligned hours at both ends
            (Onset(at=history.start - day, method="given", explanation="t"),
             history.end + day),  # the whole history and beyond
            (Onset(at=midnight + timedelta(seconds=1), method="given", explanation="t",
                   fingerprints=(NEW_FINGERPRINT, OLD_FINGERPRINT)), history.end - 1.5 * day),
        ]
        for case, end in cases:
            now = datetime(2026, 6, 1, tzinfo=UTC)
            fast = blast_radius(src, case, JUDGE, end=end, top=7, now=now)
            raw = blast_radius(src, case, JUDGE, end=end, top=7, now=now, use_rollups=False)
            assert fast["scores_in_window"] > 0
            _same_blast_radius(fast, raw)
        # the shift reads the same rollups
        import dataclasses

        raw_src = dataclasses.replace(src, rollups=False)
        for since, until in ((onset.at, history.end), (midnight + timedelta(minutes=90),
                                                       midnight + 4 * day)):
            fast = production_shift(src, JUDGE, since=since, until=until)
            slow = production_shift(raw_src, JUDGE, since=since, until=until)
            assert (fast["before"], fast["after"]) == (slow["before"], slow["after"])
            assert fast["segment_mix"] == slow["segment_mix"]  # from counts: exact
            for f, r in zip(fast["by_dimension"], slow["by_dimension"], strict=True):
                assert (f["dimension"], f["n_before"], f["n_after"]) == (
                    r["dimension"], r["n_before"], r["n_after"])
                assert f["delta"] == pytest.approx(r["delta"], rel=1e-9, abs=1e-12)
                assert f["mix_effect"] == pytest.approx(r["mix_effect"], rel=1e-9, abs=1e-12)
        # and against the independent pandas computation
        r = blast_radius(src, onset, JUDGE, end=history.end)
        exp = expected(history, onset.at, history.end, (NEW_FINGERPRINT,))
        assert (r["affected_scores"], r["scores_in_window"], r["customers_active"]) == (
            exp["affected"], exp["total"], exp["customers_active"])
    finally:
        store.close()


def _stored_rollups(store: Any) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]],
                                         dict[tuple[Any, ...], int]]:
    with store.engine.connect() as conn:
        moments = {tuple(r[:6]): tuple(r[6:]) for r in conn.execute(
            sa.select(schema.score_rollup)).all()}
        customers = {tuple(r[:5]): int(r[5]) for r in conn.execute(
            sa.select(schema.score_customer_rollup)).all()}
    return moments, customers


def _rollups_from_rows(store: Any) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]],
                                            dict[tuple[Any, ...], int]]:
    """The rollups recomputed from every stored row, with pandas."""
    h = schema.score_history
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(h.c.judge, h.c.scored_at, h.c.fingerprint, h.c.dimension,
                                      h.c.score, h.c.customer, h.c.segment)).all()
    src = store_source(store.engine)
    df = pd.DataFrame([tuple(r) for r in rows], columns=[
        "judge", "scored_at", "fingerprint", "dimension", "score", "customer", "segment"])
    micros = [int(src.when(v).timestamp() * 1_000_000) for v in df["scored_at"]]
    df["hour"] = [m // 3_600_000_000 for m in micros]
    df["fingerprint"] = df["fingerprint"].fillna("")
    df["segment"] = df["segment"].fillna("")
    moments: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    customers: dict[tuple[Any, ...], int] = {}
    for grain in (1, 24):
        df["bucket"] = df["hour"] - df["hour"] % grain
        for key, g in df.groupby(["judge", "bucket", "fingerprint", "dimension", "segment"]):
            moments[(grain, key[0], int(key[1]), *key[2:])] = (
                len(g), g["score"].sum(), (g["score"] ** 2).sum(), g["score"].min(),
                g["score"].max())
        named = df[df["customer"].notna() & (df["customer"] != "")]
        for key, g in named.groupby(["judge", "bucket", "fingerprint", "customer"]):
            customers[(grain, key[0], int(key[1]), *key[2:])] = len(g)
    return moments, customers


def _assert_rollups_match_rows(store: Any) -> None:
    moments, customers = _stored_rollups(store)
    want_m, want_c = _rollups_from_rows(store)
    assert customers == want_c
    assert set(moments) == set(want_m)
    for key, (n, s, ss, lo, hi) in moments.items():
        wn, ws, wss, wlo, whi = want_m[key]
        assert (n, lo, hi) == (wn, wlo, whi), key
        assert s == pytest.approx(ws, rel=1e-12) and ss == pytest.approx(wss, rel=1e-12)


def test_rollups_count_each_stored_score_once(store_url: str, tmp_path: Path) -> None:
    h = generate(4_000, days=4, customers=12, seed=13, switch_day=2.2)
    df = _frame(h)
    first = write_history(pa_table(df.iloc[:2_500]), tmp_path / "first.csv")
    # overlaps the first file, repeats ids inside itself with another score (bad rows: the
    # first occurrence is kept) and exactly across its chunks, and brings new rows
    again = pd.concat([df.iloc[2_000:4_000], df.iloc[3_900:4_000].assign(score=0.0),
                       df.iloc[2_400:2_600]])
    # small row groups: chunks of 700 rows span several of them
    second = write_history(pa_table(again), tmp_path / "second.parquet", row_group_size=450)
    store = open_store(store_url)
    try:
        assert ingest_file(store.engine, first, chunk_rows=900).inserted == 2_500
        r = ingest_file(store.engine, second, chunk_rows=700, atomic=True)
        assert (r.inserted, r.committed, r.bad_rows) == (0, False, 100)
        r = ingest_file(store.engine, second, chunk_rows=700)
        assert (r.inserted, r.committed, r.bad_rows, r.duplicates) == (1_500, True, 100, 700)
        assert [p.line for p in r.problems] == list(range(2_001, 2_101))
        r = ingest_file(store.engine, second, chunk_rows=1_000)
        assert (r.inserted, r.bad_rows, r.duplicates) == (0, 100, 2_200)
        _assert_rollups_match_rows(store)
        with store.engine.connect() as conn:
            zero = conn.execute(sa.select(sa.func.count()).select_from(schema.score_history)
                                .where(schema.score_history.c.score == 0.0)).scalar()
        assert zero == int((df["score"] == 0.0).sum())  # the repeats did not overwrite
        src = store_source(store.engine)
        onset = find_onset(src, JUDGE, last_healthy_at=h.switch_at - timedelta(hours=5))
        _same_blast_radius(blast_radius(src, onset, JUDGE, end=h.end),
                           blast_radius(src, onset, JUDGE, end=h.end, use_rollups=False))
    finally:
        store.close()


def pa_table(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)


def test_migration_fills_the_rollups_of_existing_scores(store_url: str) -> None:
    from judgecal.db.engine import make_engine
    from judgecal.db.migrations import migrate

    h = generate(3_000, days=3, customers=9, seed=17, switch_day=1.7)
    engine = make_engine(store_url)
    try:
        migrate(engine, stop_before="m005_score_rollups")
        rows = _frame(h)
        rows["scored_at"] = [
            int(t.value // 1_000) if engine.dialect.name == "sqlite" else t.to_pydatetime()
            for t in rows["scored_at"]]
        rows = rows.astype(object).where(rows.notna(), None)
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO score_history (score_id, scored_at, judge, fingerprint, dimension, "
                "score, customer, segment) VALUES (:score_id, :scored_at, :judge, "
                ":fingerprint, :dimension, :score, :customer, :segment)"),
                rows.to_dict("records"))
        migrate(engine)
    finally:
        engine.dispose()
    store = open_store(store_url)
    try:
        _assert_rollups_match_rows(store)
        with store.engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(schema.score_history)).scalar()
        assert n == 3_000
    finally:
        store.close()


def test_plan_tiles_a_range_exactly() -> None:
    import random

    from judgecal.scores.rollup import HOUR_US, plan

    rng = random.Random(5)
    day = 24 * HOUR_US
    for _ in range(2_000):
        lo = rng.randrange(-5 * day, 5 * day)
        hi = lo + rng.choice([0, 1, rng.randrange(HOUR_US), rng.randrange(3 * day)])
        p = plan(lo, hi)
        pieces = [(b0 * HOUR_US, b1 * HOUR_US) for _, b0, b1 in p.ranges] + list(p.raw)
        pieces.sort()
        covered = lo
        for a, b in pieces:
            assert a == covered and b > a
            covered = b
        assert covered == max(lo, hi) if hi > lo else not pieces
        for grain, b0, b1 in p.ranges:
            assert b0 % grain == 0 and b1 % grain == 0
        assert len(p.raw) <= 2


def test_parquet_chunks_span_row_groups_and_keep_row_numbers(tmp_path: Path) -> None:
    h = generate(2_000, days=2, customers=5, seed=23, switch_day=1.1)
    df = _frame(h)
    df.loc[1234, "score_id"] = None
    df.loc[1777, "score"] = float("nan")
    path = write_history(pa_table(df), tmp_path / "h.parquet", row_group_size=300)
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        r = ingest_file(store.engine, path, chunk_rows=500)
        assert (r.rows_read, r.inserted, r.bad_rows) == (2_000, 1_998, 2)
        assert [(p.line, p.field) for p in r.problems] == [(1235, "score_id"), (1778, "score")]
        _assert_rollups_match_rows(store)
    finally:
        store.close()


def test_long_text_in_a_dictionary_column_is_a_bad_row(tmp_path: Path) -> None:
    h = generate(600, days=1, customers=3, seed=29, switch_day=0.5)
    table = h.table
    k = table.schema.get_field_index("customer")
    customers = table.column("customer").to_pylist()
    customers[321] = "c" * 201
    import pyarrow as pa

    table = table.set_column(k, "customer", pa.array(customers).dictionary_encode())
    path = write_history(table, tmp_path / "h.parquet")
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        r = ingest_file(store.engine, path, chunk_rows=250)
        assert (r.inserted, r.bad_rows) == (599, 1)
        assert (r.problems[0].line, r.problems[0].field) == (322, "customer")
        assert "longer than 200" in r.problems[0].message
    finally:
        store.close()


# -- hostile score files: a bad row never stops the ingest ------------------------------------
def _stored(store: Any) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return {r.score_id: r for r in conn.execute(sa.select(schema.score_history))}


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
@pytest.mark.parametrize("damage", ["not utf-8", "5 MB field"])
def test_a_bad_line_never_stops_the_ingest(store_url: str, tmp_path: Path, ext: str,
                                           damage: str) -> None:
    h = generate(1_000, days=2, customers=5, seed=31, switch_day=1.0)
    path = write_history(h, tmp_path / f"h{ext}")
    lines = path.read_bytes().split(b"\n")
    if damage == "not utf-8":  # in the score id: the first "-" of the line
        lines[4] = lines[4].replace(b"-", b"\xe9-", 1)
    elif ext == ".csv":  # the segment is the last column
        lines[4] = lines[4].rsplit(b",", 1)[0] + b"," + b"S" * 5_000_000
    else:
        row = json.loads(lines[4])
        row["segment"] = "S" * 5_000_000
        lines[4] = json.dumps(row).encode()
    path.write_bytes(b"\n".join(lines))
    line5 = (4 if ext == ".csv" else 5) - 1  # the row of line 5 (CSV: line 1 is the header)
    store = open_store(store_url)
    try:
        atomic = ingest_file(store.engine, path, chunk_rows=300, atomic=True)
        assert (atomic.inserted, atomic.bad_rows, atomic.committed) == (0, 1, False)
        assert _stored(store) == {}
        r = ingest_file(store.engine, path, chunk_rows=300)
        assert (r.rows_read, r.inserted, r.bad_rows, r.committed) == (1_000, 999, 1, True)
        [problem] = r.problems
        assert problem.line == 5
        assert ("not valid UTF-8" if damage == "not utf-8" else "longer than 200") in str(problem)
        assert len(str(problem)) < 300
        stored = _stored(store)
        assert len(stored) == 999
        assert h.table.column("score_id")[line5].as_py() not in stored
        assert h.table.column("score_id")[999].as_py() in stored
    finally:
        store.close()


@pytest.mark.parametrize("aware", [True, False])
def test_parquet_with_pandas_nanosecond_timestamps(store_url: str, tmp_path: Path,
                                                   aware: bool) -> None:
    import numpy as np

    h = generate(1_000, days=2, customers=5, seed=37, switch_day=1.0)
    df = _frame(h)
    ts = df["scored_at"].astype("datetime64[ns, UTC]") + pd.to_timedelta(
        np.arange(len(df)) % 1_000, unit="ns")  # sub-microsecond parts
    df["scored_at"] = ts if aware else ts.dt.tz_localize(None)
    path = tmp_path / "h.parquet"
    df.to_parquet(path)
    assert pq.read_schema(path).field("scored_at").type.unit == "ns"
    store = open_store(store_url)
    try:
        r = ingest_file(store.engine, path)
        assert (r.inserted, r.bad_rows) == (1_000, 0), r.to_json()
        src = store_source(store.engine)
        # nanoseconds are floored to the microsecond the store keeps
        want = dict(zip(h.table.column("score_id").to_pylist(),
                        h.table.column("scored_at").to_pylist(), strict=True))
        assert {k: src.when(row.scored_at) for k, row in _stored(store).items()} == want
    finally:
        store.close()


def test_parquet_timestamps_out_of_range_are_bad_rows(tmp_path: Path) -> None:
    import pyarrow as pa

    n = 3
    table = pa.table({
        "score_id": ["a", "b", "c"],
        # 2026; beyond what microseconds hold; the year 11476
        "scored_at": pa.array([1_767_225_600_000, 2**62, 300_000_000_000_000],
                              pa.timestamp("ms", tz="UTC")),
        "judge": ["j"] * n, "fingerprint": ["f"] * n, "dimension": ["d"] * n,
        "score": [0.5] * n, "customer": ["c"] * n, "segment": ["s"] * n,
    })
    path = tmp_path / "h.parquet"
    pq.write_table(table, path)
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        r = ingest_file(store.engine, path)
        assert (r.inserted, r.bad_rows) == (1, 2)
        assert [(p.line, p.field) for p in r.problems] == [(2, "scored_at"), (3, "scored_at")]
        assert "outside the years 1 to 9999" in r.problems[0].message
    finally:
        store.close()


REPEATS = """score_id,scored_at,judge,fingerprint,dimension,score,customer,segment
d1,2026-03-01T10:00:00Z,j,fp1,tone,0.5,c1,chat
d2,2026-03-01T10:00:01Z,j,fp1,tone,1,c1,chat
d1,2026-03-01T10:00:00Z,j,fp1,tone,0.5,c1,chat
d1,2026-03-01T10:00:00Z,j,fp1,tone,0.9,c1,chat
d2,2026-03-01T10:00:01Z,j,fp1,tone,1,c1,rag
"""


def test_a_repeated_score_id_with_other_values_is_a_bad_row(store_url: str,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(REPEATS)
    store = open_store(store_url)
    try:
        atomic = ingest_file(store.engine, path, atomic=True)
        assert (atomic.inserted, atomic.bad_rows, atomic.committed) == (0, 2, False)
        assert _stored(store) == {}
        r = ingest_file(store.engine, path, chunk_rows=2)  # repeats in later chunks
        assert (r.inserted, r.duplicates, r.bad_rows) == (2, 1, 2)
        assert [(p.line, p.field) for p in r.problems] == [(5, "score_id"), (6, "score_id")]
        assert "another score: 0.5 there, 0.9 here" in r.problems[0].message
        assert "another segment: 'chat' there, 'rag' here" in r.problems[1].message
        stored = _stored(store)
        assert (stored["d1"].score, stored["d2"].segment) == (0.5, "chat")  # first kept
        again = ingest_file(store.engine, path)  # one chunk, every id stored already
        assert (again.inserted, again.duplicates, again.bad_rows) == (0, 3, 2)
        assert [p.line for p in again.problems] == [5, 6]
    finally:
        store.close()


def test_trace_ids_are_ingested_and_read_in_place(store_url: str, tmp_path: Path) -> None:
    """trace_id (the conversation a score belongs to) is optional: stored when the file has
    it (under its name or mapped), NULL when empty or absent; a table read in place gives it
    only when its config maps it."""
    rows = [{"score_id": f"t{k}", "scored_at": "2026-03-01T00:00:00Z", "judge": JUDGE,
             "dimension": "fluency", "score": k % 5, "conversation": f"c{k // 3}" if k % 4
             else ""} for k in range(12)]
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = tmp_path / "plain.csv"
    plain.write_text("score_id,scored_at,judge,dimension,score\n"
                     f"p1,2026-03-01T00:00:00Z,{JUDGE},fluency,3\n")
    store = open_store(store_url)
    try:
        assert ingest_file(store.engine, path, mapping={"trace_id": "conversation"}).inserted == 12
        assert ingest_file(store.engine, plain).inserted == 1
        h = schema.score_history
        with store.engine.connect() as conn:
            got = dict(conn.execute(sa.select(h.c.score_id, h.c.trace_id)).all())
        assert got == {**{r["score_id"]: (r["conversation"] or None) for r in rows}, "p1": None}
    finally:
        store.close()
    wh = f"sqlite:///{tmp_path / 'wh.db'}"
    frame = pd.DataFrame(rows).rename(columns={"score_id": "id", "scored_at": "created_at",
                                               "judge": "grader", "score": "value"})
    engine = sa.create_engine(wh)
    frame.to_sql("judge_scores", engine, index=False)
    engine.dispose()
    for extra, expect in (({}, [None] * 12), ({"  trace_id": "conversation"},
                                               [r["conversation"] for r in rows])):
        src = open_source(_source_yaml(tmp_path, wh, "judge_scores", **extra))
        try:
            with src.engine.connect() as conn:
                values = conn.execute(sa.select(src.c("trace_id")).select_from(src.selectable)
                                      .order_by(src.c("score_id"))).scalars().all()
        finally:
            src.close()
        assert sorted(v or "" for v in values) == sorted(v or "" for v in expect)
