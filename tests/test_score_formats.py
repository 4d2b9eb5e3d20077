"""Import adapters (Langfuse, MLflow, OpenTelemetry) and Parquet folders read in place.

Every fixture in tests/data/formats/ is shaped like the real export (written for these
tests, see tests/data/README.md) and holds the awkward records: other sources, free text,
a category without a number, a failed evaluation, ``intValue`` as a string, nanosecond
times, unicode. Each is ingested into SQLite and PostgreSQL and the stored rows, the bad
rows (file, line, field, message) and the skipped records are checked exactly, as is
idempotency (twice = once).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from judgecal.errors import InputError
from judgecal.scores import IngestResult, ingest_file, store_source
from judgecal.scores.formats import FormatOptions
from judgecal.store import open_store, schema
from tests.conftest import TEST_DATA
from tests.helpers import run_main

DATA = TEST_DATA / "formats"


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _stored(engine: sa.Engine) -> list[tuple[Any, ...]]:
    """Every stored row: (score_id, scored_at, judge, fingerprint, dimension, score,
    customer, segment, trace_id), by score_id."""
    src = store_source(engine)
    h = schema.score_history
    with engine.connect() as conn:
        rows = conn.execute(sa.select(h.c.score_id, h.c.scored_at, h.c.judge, h.c.fingerprint,
                                      h.c.dimension, h.c.score, h.c.customer, h.c.segment,
                                      h.c.trace_id).order_by(h.c.score_id)).all()
    return [(r[0], src.when(r[1]), *r[2:]) for r in rows]


def _problems(result: IngestResult) -> list[tuple[int | None, str | None, str]]:
    return [(p.line, p.field, p.message) for p in result.problems]


def _skips(result: IngestResult) -> list[tuple[int | None, str | None, str]]:
    return [(p.line, p.field, p.message) for p in result.skips]


def _counts(result: IngestResult) -> tuple[int, int, int, int, int]:
    return (result.rows_read, result.rows_valid, result.inserted, result.bad_rows,
            result.skipped)


# -- Langfuse ----------------------------------------------------------------------------------
LF = "7a1c9e52-3f0b-4d8e-9b6a-0c2f4e1d8a0"
LF_ROWS = [
    (f"{LF}1", _t("2026-01-05T09:14:22.481Z"), "lf-judge",
     "cfg:5e0c2a91b7d4/served:gpt-4o-mini-2024-07-18", "helpfulness", 0.85, "acme-logistics",
     "billing", "c5b0f6a2e9d3417f8a2b6c4d1e0f9a37"),
    (f"{LF}2", _t("2026-01-05T09:14:22.913Z"), "lf-judge", None, "hallucination", 0.0, None,
     None, "c5b0f6a2e9d3417f8a2b6c4d1e0f9a37"),
    (f"{LF}3", _t("2026-01-05T11:02:07.330Z"), "lf-judge", None, "hallucination", 1.0,
     "acme-logistics", None, "0d4e8b1f6a2c49e3b7d5f0a9c8e1b246"),
    (f"{LF}5", _t("2026-01-05T11:02:08.001Z"), "lf-judge", None, "tone", 2.0, None, "support",
     "0d4e8b1f6a2c49e3b7d5f0a9c8e1b246"),
    ("7a1c9e52-3f0b-4d8e-9b6a-0c2f4e1d8a10", _t("2026-01-06T23:59:59.999999Z"), "lf-judge",
     None, "Hilfsbereitschaft — 有用性", 4.0, "Müller & Söhne GmbH", "de-DE",
     "b2f4d6e8a0c14e3f9b7d5c3a1e0f8d62"),
]
LF_SKIP = "(kept: EVAL; --include-sources to keep others)"


def test_langfuse_api_json(store_url: str) -> None:
    path = DATA / "langfuse-scores.json"
    store = open_store(store_url)
    try:
        first = ingest_file(store.engine, path, fmt="langfuse",
                            options=FormatOptions(judge="lf-judge"))
        assert _counts(first) == (10, 5, 5, 2, 3)
        assert _problems(first) == [
            (65, "data[3].stringValue", "CATEGORICAL score 'partially' has no numeric value: "
             "map it with --value-map partially=NUMBER (or link the score to a Langfuse "
             "score config)"),
            (147, "data[7].value", "value is missing"),
        ]
        assert all(p.file == str(path) for p in first.problems)
        assert first.skipped_by_reason == {"source ANNOTATION": 1, "source API": 1,
                                           "dataType TEXT": 1}
        assert _skips(first) == [
            (107, "data[5]", f"skipped: source ANNOTATION {LF_SKIP}"),
            (127, "data[6]", f"skipped: source API {LF_SKIP}"),
            (167, "data[8]", "skipped: dataType TEXT: free text, not a score"),
        ]
        assert _stored(store.engine) == LF_ROWS
        again = ingest_file(store.engine, path, fmt="langfuse",
                            options=FormatOptions(judge="lf-judge"))
        assert (again.inserted, again.duplicates, again.bad_rows, again.skipped) == (0, 5, 2, 3)
        assert _stored(store.engine) == LF_ROWS
        # the category mapped, the annotation kept, the session as the trace
        mapped = ingest_file(store.engine, path, fmt="langfuse", options=FormatOptions(
            judge="lf-judge", value_map={"Partially": 0.5}, trace_field="sessionId",
            include_sources=frozenset({"EVAL", "ANNOTATION"})))
        assert (mapped.inserted, mapped.bad_rows, mapped.skipped) == (2, 1, 2)
        new = {r[0]: r for r in _stored(store.engine)}
        assert new[f"{LF}4"][5:] == (0.5, None, None, None)  # no session: no trace
        assert new["ann-4410"][2:] == ("lf-judge", None, "helpfulness", 0.4, None, None, None)
    finally:
        store.close()


def test_langfuse_ui_csv_and_fields(store_url: str) -> None:
    path = DATA / "langfuse-scores.csv"
    store = open_store(store_url)
    try:
        result = ingest_file(store.engine, path, fmt="langfuse", options=FormatOptions(
            judge_field="traceName", value_map={"pass": 1.0}))
        assert _counts(result) == (6, 4, 4, 1, 1)
        # the record on line 3 spans two lines (a quoted newline): the next starts on 5
        assert _problems(result) == [
            (7, "timestamp", "timestamp 'not a time' is not an ISO-8601 instant")]
        assert _skips(result) == [(5, None, f"skipped: source ANNOTATION {LF_SKIP}")]
        assert _stored(store.engine) == [
            ("b41f0c6e-1d2a-4e8b-a5f3-7c9d0e2b6a11", _t("2026-02-02T10:21:05.118Z"),
             "support-answer", "cfg:a93b1c0d2e4f/served:claude-3-5-haiku-20241022",
             "faithfulness", 0.92, "northwind", "rag", "e7c2a9f04b6d4f1e8a3c5b7d9e0f1a24"),
            ("b41f0c6e-1d2a-4e8b-a5f3-7c9d0e2b6a12", _t("2026-02-02T10:21:05.540Z"),
             "support-answer", None, "toxicity", 0.0, None, None,
             "e7c2a9f04b6d4f1e8a3c5b7d9e0f1a24"),
            ("b41f0c6e-1d2a-4e8b-a5f3-7c9d0e2b6a14", _t("2026-02-02T12:00:01.250Z"),
             "support-answer", None, "verdict", 1.0, "northwind", None,
             "3a5c7e9b1d0f42a6b8c0e2d4f6a8b0c1"),
            ("b41f0c6e-1d2a-4e8b-a5f3-7c9d0e2b6a16", _t("2026-02-03T08:30:00Z"),
             "support-answer", None, "fidélité", 3.0, "Café Zoë", "fr-FR",
             "9d1b3f5a7c0e42b4a6c8e0f2a4b6c8d0"),
        ]
        # atomic: one bad row and nothing of the file is kept
        atomic = ingest_file(store.engine, path, fmt="langfuse", atomic=True,
                             options=FormatOptions(judge="other-judge", value_map={"pass": 1}))
        assert (atomic.committed, atomic.inserted, atomic.bad_rows) == (False, 0, 1)
        assert len(_stored(store.engine)) == 4
    finally:
        store.close()


def test_langfuse_needs_a_judge(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.raises(InputError, match="--judge NAME"):
            ingest_file(store.engine, DATA / "langfuse-scores.json", fmt="langfuse")
        with pytest.raises(InputError, match="--format langfuse"):
            ingest_file(store.engine, DATA / "langfuse-scores.csv",
                        options=FormatOptions(judge="x"))
    finally:
        store.close()


# -- MLflow ------------------------------------------------------------------------------------
A = "a-3c9e1f5b7d0a4c2e8f6b1d3a5c7e9f"
T1 = "tr-4f1a8c2e9b7d40e6a3c5f7e9d1b3a5c7"
T2 = "tr-0b2d4f6a8c0e42a4b6d8f0a2c4e6a8b0"
ML_ROWS = [
    (f"{A}02", _t("2026-01-12T16:03:28.007Z"), "support_relevance",
     "v3/anthropic:/claude-3-5-sonnet-20241022", "relevance", 4.0, "globex", "enterprise", T1),
    (f"{A}03", _t("2026-01-12T16:03:28.250Z"), "safety", "openai:/gpt-4o-mini", "safety", 1.0,
     None, None, T1),
    (f"{A}08", _t("2026-01-12T16:05:06.123Z"), "groundedness", "databricks", "groundedness",
     0.75, None, None, T2),
    (f"{A}11", _t("2026-01-12T16:05:04.999999Z"), "fidélité_réponse", "openai:/gpt-4o-mini",
     "fidélité_réponse", 4.5, "Café Zoë", None, T2),
]
ML_SKIP = "(kept: LLM_JUDGE; --include-sources to keep others)"


def test_mlflow_assessments(store_url: str) -> None:
    path = DATA / "mlflow-assessments.jsonl"
    store = open_store(store_url)
    try:
        first = ingest_file(store.engine, path, fmt="mlflow")
        assert _counts(first) == (11, 4, 4, 3, 4)
        assert _problems(first) == [
            (1, "feedback.value", "feedback value 'yes' is a label, not a number: map it with "
             "--value-map yes=NUMBER"),
            (9, "feedback.value", "feedback value 'partially' is a label, not a number: map "
             "it with --value-map partially=NUMBER"),
            (10, "feedback.value", "feedback value '[\"yes\", \"no\", \"yes\"]' is a list, not one "
             "score"),
        ]
        assert first.skipped_by_reason == {"source_type HUMAN": 1, "source_type CODE": 1,
                                           "expectation": 1, "judge error": 1}
        assert _skips(first) == [
            (4, None, f"skipped: source_type HUMAN {ML_SKIP}"),
            (5, None, f"skipped: source_type CODE {ML_SKIP}"),
            (6, None, "skipped: an expectation (a ground-truth label), not feedback"),
            (7, None, "skipped: the judge failed (RateLimitError: 'Rate limit reached for "
             "gpt-4o-mini'), no value"),
        ]
        assert _stored(store.engine) == ML_ROWS
        again = ingest_file(store.engine, path, fmt="mlflow")
        assert (again.inserted, again.duplicates, again.bad_rows) == (0, 4, 3)
        assert _stored(store.engine) == ML_ROWS
        # MLflow's built-in judges answer yes/no; a value map makes them scores
        mapped = ingest_file(store.engine, path, fmt="mlflow", options=FormatOptions(
            value_map={"yes": 1, "no": 0}, include_sources=frozenset({"LLM_JUDGE", "HUMAN"})))
        assert (mapped.inserted, mapped.duplicates, mapped.bad_rows, mapped.skipped) == (
            2, 4, 2, 3)
        new = {r[0]: r for r in _stored(store.engine)}
        assert new[f"{A}01"][2:] == ("correctness", "openai:/gpt-4o-mini", "correctness", 1.0,
                                     None, None, T1)
        assert new[f"{A}04"][2:6] == ("correctness", "reviewer@globex.example", "correctness",
                                      0.0)
        # the same score id with another judge is a conflict, reported by line; the first
        # stored row is kept
        other = ingest_file(store.engine, path, fmt="mlflow",
                            options=FormatOptions(judge="another-name"))
        assert (other.inserted, other.bad_rows) == (0, 7)
        assert _problems(other)[1] == (
            2, "score_id", f"score_id '{A}02' is already stored (by an earlier row or ingest) "
            "with another judge: 'support_relevance' there, 'another-name' here; the stored "
            "row is kept")
        assert {r[0]: r for r in _stored(store.engine)}[f"{A}02"] == ML_ROWS[0]
    finally:
        store.close()


def test_mlflow_traces_json(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        result = ingest_file(store.engine, DATA / "mlflow-traces.json",
                             options=FormatOptions(value_map={"yes": 1, "no": 0}))
        assert result.format == "mlflow"  # a .json file: the adapter from its content
        assert (result.inserted, result.skipped) == (1, 1)
        assert _skips(result) == [(41, "[0].info.assessments[1]",
                                   f"skipped: source_type HUMAN {ML_SKIP}")]
        assert _stored(store.engine) == [
            ("a-7e5c3a1f9d8b46a2b0c4e6d8f0a2b401", _t("2026-01-14T08:12:05Z"), "correctness",
             "v2/openai:/gpt-4o-mini", "correctness", 0.0, None, None,
             "tr-7e5c3a1f9d8b46a2b0c4e6d8f0a2b4c6")]
    finally:
        store.close()


# -- OpenTelemetry -----------------------------------------------------------------------------
OT1 = "5b8efff798038103d269b633813fc60c"
OT2 = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
LOGS = "resourceLogs[0].scopeLogs[0].logRecords"


def test_otel_log_events(store_url: str) -> None:
    path = DATA / "otel-logs.json"
    store = open_store(store_url)
    try:
        options = FormatOptions(judge_field="judge.name", customer_field="app.customer")
        first = ingest_file(store.engine, path, fmt="otel", options=options)
        assert _counts(first) == (9, 4, 4, 3, 2)
        assert _problems(first) == [
            (1, f"{LOGS}[3].attributes.gen_ai.evaluation.score.label",
             "no gen_ai.evaluation.score.value, and the label 'coherent' has no numeric value: "
             "map it with --value-map coherent=NUMBER"),
            (2, f"{LOGS}[1].attributes.gen_ai.evaluation.score.value",
             "gen_ai.evaluation.score.value is missing (and there is no "
             "gen_ai.evaluation.score.label)"),
            (2, f"{LOGS}[3].attributes.gen_ai.evaluation.score.value",
             "gen_ai.evaluation.score.value 'nan' is not a finite number"),
        ]
        assert _skips(first) == [
            (1, f"{LOGS}[2]", "skipped: 'gen_ai.client.inference.operation.details' is not a "
             "gen_ai.evaluation.result event"),
            (2, f"{LOGS}[0]", "skipped: the evaluation failed (error.type 'timeout'), no score"),
        ]
        rows = _stored(store.engine)
        assert all(r[0].startswith("otel-") and len(r[0]) == 37 for r in rows)
        assert sorted(r[1:] for r in rows) == [
            # nanoseconds floored to the microsecond; the judge from the record's attribute
            (datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC), "relevance-judge-gpt-4.1",
             None, "Relevance", 0.9, "initech", None, OT1),
            (datetime(2026, 1, 1, 10, 0, 0, 987654, tzinfo=UTC), "relevance-judge-gpt-4.1",
             None, "Groundedness", 4.0, None, None, OT1),  # event.name attribute, intValue
            # ... or from the resource; timeUnixNano 0: the observed time
            (datetime(2026, 1, 2, 10, 0, 2, tzinfo=UTC), "nightly-evaluator", None,
             "Relevanz ✓ — 关联性", 0.25, None, None, OT2),
            (datetime(2026, 1, 2, 10, 0, 4, tzinfo=UTC), "nightly-evaluator", None, "Fluency",
             3.0, None, None, OT2),
        ]
        again = ingest_file(store.engine, path, fmt="otel", options=options)
        assert (again.inserted, again.duplicates, again.bad_rows, again.skipped) == (0, 4, 3, 2)
        assert _stored(store.engine) == rows
        labelled = ingest_file(store.engine, path, fmt="otel", options=FormatOptions(
            judge_field="judge.name", customer_field="app.customer",
            value_map={"coherent": 1.0}))
        assert (labelled.inserted, labelled.bad_rows) == (1, 2)
    finally:
        store.close()


def test_otel_span_events(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        result = ingest_file(store.engine, DATA / "otel-spans.json",
                             options=FormatOptions(judge="span-judge"))
        assert result.format == "otel"
        assert (result.inserted, result.bad_rows, result.skipped) == (2, 0, 1)
        assert _skips(result) == [(50, "resourceSpans[0].scopeSpans[0].spans[0].events[1]",
                                   "skipped: 'exception' is not a gen_ai.evaluation.result "
                                   "event")]
        trace = "d4c3b2a1f0e9d8c7b6a5948372615049"
        assert sorted(r[1:] for r in _stored(store.engine)) == [
            (datetime(2026, 1, 3, 10, 0, 1, 300000, tzinfo=UTC), "span-judge", None,
             "Relevance", 0.7, None, None, trace),
            (datetime(2026, 1, 3, 10, 0, 2, tzinfo=UTC), "span-judge", None, "Toxicity", 0.0,
             None, None, trace),
        ]
    finally:
        store.close()


def test_broken_json_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    broken = tmp_path / "scores.json"
    text = (DATA / "langfuse-scores.json").read_text(encoding="utf-8")
    broken.write_text(text.replace('"value": 4', '"value": 4,,'), encoding="utf-8")
    try:
        with pytest.raises(InputError) as err:
            ingest_file(store.engine, broken, fmt="langfuse",
                        options=FormatOptions(judge="j"))
        assert err.value.problems[0].line == 206
        assert "not valid JSON" in err.value.problems[0].message
        assert _stored(store.engine) == []
        # JSON Lines: a broken line is a bad row of its own, the others are read
        lines = tmp_path / "a.jsonl"
        good = (DATA / "mlflow-assessments.jsonl").read_text(encoding="utf-8").splitlines()
        lines.write_text("\n".join([good[1], "{not json", good[2]]) + "\n", encoding="utf-8")
        result = ingest_file(store.engine, lines, fmt="mlflow")
        assert (result.inserted, result.bad_rows) == (2, 1)
        assert _problems(result)[0][:2] == (2, None)
        unknown = tmp_path / "other.json"
        unknown.write_text(json.dumps({"rows": []}))
        with pytest.raises(InputError, match="give --format"):
            ingest_file(store.engine, unknown)
    finally:
        store.close()


def test_cli_ingest_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    base = ["--store", store, "scores", "ingest"]
    code, out, err = run_main([*base, str(DATA / "otel-logs.json"), "--judge-field",
                               "judge.name", "--value-map", "coherent=1"], capsys)
    assert code == 10, err
    assert ("9 rows read, 5 new, 0 already present, 2 bad, 2 skipped (evaluation failed: 1, "
            "not an evaluation event: 1); committed") in out
    assert f"bad row: {DATA / 'otel-logs.json'}:2: field '{LOGS}[1]" in err
    code, out, _ = run_main([*base, str(DATA / "mlflow-assessments.jsonl"), "--format",
                             "mlflow", "--value-map", "yes=1", "--value-map", "no=0",
                             "--value-map", "partially=0.5", "--include-sources",
                             "llm_judge,code", "--json"], capsys)
    data = json.loads(out)
    assert code == 10  # the list value stays a bad row
    assert (data["inserted"], data["bad_rows"], data["skipped"]) == (7, 1, 3)
    assert data["skipped_by_reason"] == {"source_type HUMAN": 1, "expectation": 1,
                                         "judge error": 1}
    assert data["skipped_shown"][0]["line"] == 4
    code, _, err = run_main([*base, str(DATA / "langfuse-scores.json"), "--format",
                             "langfuse"], capsys)
    assert code == 2 and "--judge NAME" in err
    code, _, err = run_main([*base, str(DATA / "langfuse-scores.csv"), "--judge", "x"], capsys)
    assert code == 2 and "--format langfuse|mlflow|otel" in err
    code, _, err = run_main([*base, str(DATA / "otel-logs.json"), "--judge", "x",
                             "--value-map", "pass"], capsys)
    assert code == 2 and "LABEL=NUMBER" in err


# -- a folder of Parquet files read in place through DuckDB --------------------------------------
def _drop_volatile(result: dict[str, Any]) -> dict[str, Any]:
    """A link result without where and when it was computed."""
    return {k: v for k, v in result.items() if k not in ("source", "summary", "computed_at")}


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-6 (sums by another engine differ in the last bits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    return bool(a == b)


def test_parquet_folder_read_in_place(store_url: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("duckdb_engine")
    from datetime import timedelta

    import pyarrow.compute as pc

    from judgecal.scores import (
        Window,
        blast_radius,
        export_affected,
        find_onset,
        judge_shift,
        open_source,
    )
    from judgecal.scores.generate import generate, write_history

    h = generate(4_000, days=10, customers=20, seed=5, switch_day=6.3)
    folder = tmp_path / "exports" / "scores"
    (folder / "month=2026-01").mkdir(parents=True)
    days = pc.day(h.table.column("scored_at"))
    parts = [folder / "early.parquet", folder / "month=2026-01" / "late.parquet"]
    cut = pc.less(pc.subtract(days, pc.min(days)), 5)
    write_history(h.table.filter(cut), parts[0])
    write_history(h.table.filter(pc.invert(cut)), parts[1])
    config = tmp_path / "conf" / "source.yaml"
    config.parent.mkdir()
    config.write_text("score_source:\n  parquet: ../exports/scores\n", encoding="utf-8")

    store = open_store(store_url)
    src = open_source(config)
    try:
        for part in parts:
            assert ingest_file(store.engine, part).bad_rows == 0
        stored = store_source(store.engine)
        healthy = h.switch_at - timedelta(days=1)
        onset = find_onset(src, "quality-judge", last_healthy_at=healthy)
        assert onset.to_json() == find_onset(stored, "quality-judge",
                                             last_healthy_at=healthy).to_json()
        assert onset.at == h.first_new_score_at
        in_place = blast_radius(src, onset, "quality-judge", end=h.end)
        ingested = blast_radius(stored, onset, "quality-judge", end=h.end)
        assert in_place["affected_scores"] > 0
        assert _same(_drop_volatile(in_place), _drop_volatile(ingested))
        assert "Parquet files" in in_place["source"] and "DuckDB" in in_place["source"]
        window = Window("quality-judge", onset.at, h.end, onset.fingerprints)
        assert export_affected(src, window, tmp_path / "a.csv") == in_place["affected_scores"]
        shift = judge_shift(store, "quality-judge", since=h.switch_at, until=h.end, source=src)
        same = judge_shift(store, "quality-judge", since=h.switch_at, until=h.end)
        assert (shift["before"]["scores"], shift["after"]["scores"]) == (
            same["before"]["scores"], same["after"]["scores"])
    finally:
        src.close()
        store.close()
    # the command line, from another working directory: the path is the YAML file's
    code, out, err = run_main(["--store", store_url, "scores", "link", "--judge",
                               "quality-judge", "--onset", onset.at.isoformat(), "--until",
                               h.end.isoformat(), "--source", str(config), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["scores_in_window"] == ingested["scores_in_window"]


def test_parquet_source_config_errors(tmp_path: Path) -> None:
    from judgecal.errors import ConfigError
    from judgecal.scores import load_source_config

    config = tmp_path / "source.yaml"
    config.write_text("score_source:\n  parquet: nowhere/\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="does not exist"):
        load_source_config(config)
    (tmp_path / "empty").mkdir()
    config.write_text("score_source:\n  parquet: empty\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no Parquet file matches"):
        load_source_config(config)
    config.write_text("score_source:\n  parquet: empty\n  url: sqlite://\n  table: t\n",
                      encoding="utf-8")
    with pytest.raises(ConfigError, match="not both"):
        load_source_config(config)
    config.write_text("score_source:\n  table: t\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="or parquet"):
        load_source_config(config)
