"""`judgecal scores ingest|link|export|shift` end to end, through the real entry point."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from judgecal.scores.generate import NEW_FINGERPRINT, GeneratedHistory, generate, write_history
from judgecal.store import open_store
from tests.helpers import run_main
from tests.test_scores import JUDGE, expected, make_incident


@pytest.fixture(scope="module")
def small() -> GeneratedHistory:
    return generate(6_000, days=10, customers=25, seed=21, switch_day=6.3)


def test_ingest_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    small: GeneratedHistory) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    path = write_history(small, tmp_path / "h.parquet")
    code, out, _ = run_main(["--store", store, "scores", "ingest", str(path), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert (data["inserted"], data["bad_rows"], data["committed"]) == (6_000, 0, True)
    code, out, _ = run_main(["--store", store, "scores", "ingest", str(path)], capsys)
    assert code == 0 and "0 new, 6,000 already present" in out

    bad = tmp_path / "bad.csv"
    bad.write_text("id,ts,judge,fingerprint,dimension,score\n"
                   "b1,2026-03-01T00:00:00Z,j,f,tone,0.5\n"
                   "b2,not-a-time,j,f,tone,0.5\n")
    args = ["--store", store, "scores", "ingest", str(bad), "--map", "score_id=id",
            "--map", "scored_at=ts"]
    code, _, err = run_main([*args, "--atomic"], capsys)
    assert code == 2 and f"{bad}:3: field 'scored_at'" in err
    code, out, err = run_main(args, capsys)
    assert code == 10 and "1 new" in out and f"{bad}:3" in err
    code, _, err = run_main(["--store", store, "scores", "ingest", str(bad), "--map", "nope=x"],
                            capsys)
    assert code == 2 and "unknown column 'nope'" in err


def test_link_export_shift_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    small: GeneratedHistory) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    path = write_history(small, tmp_path / "h.csv")
    assert run_main(["--store", url, "scores", "ingest", str(path)], capsys)[0] == 0
    healthy = small.switch_at - timedelta(days=1)
    store = open_store(url)
    incident_id = make_incident(store, last_healthy=healthy)
    store.close()
    until = small.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    exp = expected(small, small.first_new_score_at, small.end, (NEW_FINGERPRINT,))

    code, out, _ = run_main(["--store", url, "scores", "link", incident_id, "--until", until,
                             "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["affected_scores"] == exp["affected"] and data["event_seq"] == 1
    assert data["incident_id"] == incident_id

    code, out, _ = run_main(["--store", url, "scores", "link", incident_id, "--until", until],
                            capsys)
    assert code == 0
    assert f"{exp['affected']:,} of {exp['total']:,}" in out
    assert "factual_consistency" in out and "recorded on incident" in out

    code, out, _ = run_main(["--store", url, "scores", "link", "--judge", JUDGE,
                             "--last-healthy", healthy.isoformat(), "--until", until, "--json"],
                            capsys)
    assert code == 0 and json.loads(out)["affected_scores"] == exp["affected"]
    assert "event_seq" not in json.loads(out)

    code, _, err = run_main(["--store", url, "scores", "link", "--judge", JUDGE], capsys)
    assert code == 2 and "--last-healthy" in err
    code, _, err = run_main(["--store", url, "scores", "link", "no-such-incident"], capsys)
    assert code == 2 and "no incident" in err

    out_file = tmp_path / "affected.parquet"
    code, out, _ = run_main(["--store", url, "scores", "export", incident_id, "--until", until,
                             "--out", str(out_file), "--json"], capsys)
    assert code == 0 and json.loads(out)["rows"] == exp["affected"]
    assert set(pq.read_table(out_file).column("score_id").to_pylist()) == exp["ids"]

    since = (small.switch_at + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, _ = run_main(["--store", url, "scores", "shift", "--judge", JUDGE, "--since",
                             since, "--until", until, "--json"], capsys)
    assert code == 0
    shift = json.loads(out)
    assert shift["verdict"] == "judge_drift"
    assert shift["incidents"][0]["incident_id"] == incident_id
    code, out, _ = run_main(["--store", url, "scores", "shift", "--judge", JUDGE, "--since",
                             since], capsys)
    assert code == 0 and "verdict: judge_drift" in out and "segment" in out
    code, _, err = run_main(["--store", url, "scores", "shift", "--judge", JUDGE, "--since",
                             "last tuesday"], capsys)
    assert code == 2 and "ISO-8601" in err


def test_link_reads_a_table_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     small: GeneratedHistory) -> None:
    import sqlalchemy as sa

    wh = f"sqlite:///{tmp_path / 'warehouse.db'}"
    df = small.table.to_pandas()
    df["scored_at"] = df["scored_at"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    df = df.rename(columns={"score_id": "id"})
    for col in ("judge", "fingerprint", "dimension", "customer", "segment"):
        df[col] = df[col].astype(object)
    engine = sa.create_engine(wh)
    df.to_sql("prod_scores", engine, index=False)
    engine.dispose()
    config = tmp_path / "source.yaml"
    config.write_text(f"score_source:\n  url: {wh}\n  table: prod_scores\n"
                      "  columns:\n    score_id: id\n")
    until = small.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, _ = run_main(["--store", f"sqlite:///{tmp_path / 's.db'}", "scores", "link",
                             "--judge", JUDGE, "--new-fingerprint", NEW_FINGERPRINT,
                             "--until", until, "--source", str(config), "--json"], capsys)
    assert code == 0, out
    data = json.loads(out)
    exp = expected(small, small.first_new_score_at, small.end, (NEW_FINGERPRINT,))
    assert data["affected_scores"] == exp["affected"]
    assert "prod_scores read in place" in data["source"]


def test_ingest_reports_a_line_that_is_not_utf8_and_reads_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = generate(1_000, days=2, customers=5, seed=41, switch_day=1.0)
    path = write_history(h, tmp_path / "h.csv")
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"-", b"\xff-", 1)
    path.write_bytes(b"\n".join(lines))
    store = f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = run_main(["--store", store, "scores", "ingest", str(path), "--atomic"],
                              capsys)
    assert code == 2 and "NOT committed" in out and f"{path}:5: not valid UTF-8" in err
    code, out, err = run_main(["--store", store, "scores", "ingest", str(path)], capsys)
    assert code == 10, err
    assert "1,000 rows read, 999 new, 0 already present, 1 bad; committed" in out
    assert err.count("bad row:") == 1 and f"{path}:5: not valid UTF-8" in err


def test_ingest_messages_quote_a_huge_value_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.csv"
    huge = "x\x1b" + "x" * 5_000_000
    path.write_text("score_id,scored_at,judge,fingerprint,dimension,score\n"
                    f"a,2026-03-01T00:00:00Z,j,f,tone,{huge}\nb,{huge},j,f,tone,0.5\n"
                    "c,2026-03-01T00:00:00Z,j,f,tone,1\n")
    code, out, err = run_main(["--store", f"sqlite:///{tmp_path / 's.db'}", "scores", "ingest",
                               str(path)], capsys)
    assert code == 10 and "1 new" in out
    assert len(err) < 600, err[:600]
    assert "score is not a number ('x\\x1bxxx" in err
    assert "scored_at 'x\\x1bxxx" in err and "(5,000,002 characters)" in err
