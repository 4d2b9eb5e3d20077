"""`judgecal audit verify`: intact on an untouched store; after an UPDATE, a DELETE or a reorder
done directly in SQL — on the log and on every covered table — it fails and names the entry.

Runs on SQLite and, with JUDGECAL_TEST_PG_URL, on a real PostgreSQL database.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update

from judgecal import audit
from judgecal.store import Store, open_store, schema
from tests.test_report_data import add_run, hostile_rows, hostile_set, pandalm_store


@dataclass
class Logged:
    """A store with one calibration set and two runs with their metric reports: entries
    1 the set, 2 run a, 3 report 1, 4 run b, 5 report 2."""

    store: Store
    a: str
    b: str
    item: str


@pytest.fixture
def logged(store_url: str, tmp_path: Path) -> Iterator[Logged]:
    store = open_store(store_url)
    cs = hostile_set(tmp_path / "set", n_items=12)
    a = add_run(store, cs, hostile_rows(cs, 0), tmp_path, judge="j", model="m1", n_boot=50)
    b = add_run(store, cs, hostile_rows(cs, 1), tmp_path, judge="j", model="m2", n_boot=50)
    try:
        yield Logged(store, a, b, cs.items[3].id)
    finally:
        store.close()


def _sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def _problems(store: Store) -> list[tuple[int | None, str, str, str]]:
    result = audit.verify(store.engine)
    return [(p.seq, p.kind, p.ref, p.code) for p in result.problems]


def test_untouched_store_verifies(logged: Logged) -> None:
    result = audit.verify(logged.store.engine)
    assert result.ok, result.problems
    assert result.entries == 5
    assert result.records_checked == {"calibration_set": 1, "run": 2, "metric_report": 2}
    assert result.warnings == []
    assert result.head == audit.head(logged.store.engine)[1]
    count, problems = audit.verify_chain(logged.store.engine)
    assert (count, problems) == (5, [])


# -- UPDATE ---------------------------------------------------------------------------------
def test_update_of_an_audit_entry_is_named(logged: Logged) -> None:
    _sql(logged.store, "UPDATE audit_log SET created_at = '2020-01-01T00:00:00Z' WHERE seq = 4")
    assert _problems(logged.store) == [(4, "run", logged.b, audit.ENTRY_EDITED)]


def test_update_of_a_logged_snapshot_is_named(logged: Logged) -> None:
    with logged.store.engine.begin() as conn:
        record = conn.execute(text("SELECT record FROM audit_log WHERE seq = 3")).scalar()
        record = json.loads(record) if isinstance(record, str) else record
        record["report"]["dimensions"]["quality"]["metrics"]["kappa"]["value"] = 0.99
        conn.execute(update(schema.audit_log).where(schema.audit_log.c.seq == 3)
                     .values(record=record))
    problems = _problems(logged.store)
    assert (3, "metric_report", "1", audit.SNAPSHOT_EDITED) in problems


def test_update_of_a_run_is_named(logged: Logged) -> None:
    _sql(logged.store, "UPDATE runs SET status = 'completed', n_expected = n_expected + 1 "
         "WHERE run_id = :r", r=logged.a)
    result = audit.verify(logged.store.engine)
    assert [(p.seq, p.kind, p.ref, p.code) for p in result.problems] == [
        (2, "run", logged.a, audit.RECORD_EDITED)]
    assert "n_expected" in result.problems[0].message


def test_update_of_a_reply_is_named_through_the_run_digest(logged: Logged) -> None:
    _sql(logged.store, "UPDATE replies SET score = 5, raw_text = 'Score 5' WHERE run_id = :r "
         "AND item_id = :i AND dimension = 'quality'", r=logged.b, i=logged.item)
    result = audit.verify(logged.store.engine)
    assert [(p.seq, p.kind, p.ref, p.code) for p in result.problems] == [
        (4, "run", logged.b, audit.RECORD_EDITED)]
    assert "replies" in result.problems[0].message


def test_update_of_a_metric_report_is_named(logged: Logged) -> None:
    with logged.store.engine.begin() as conn:
        report = conn.execute(
            text("SELECT report FROM metric_reports WHERE report_id = 2")).scalar()
        report = json.loads(report) if isinstance(report, str) else report
        report["dimensions"]["quality"]["metrics"]["kappa"]["value"] = 0.95
        conn.execute(update(schema.metric_reports).where(schema.metric_reports.c.report_id == 2)
                     .values(report=report))
    assert _problems(logged.store) == [(5, "metric_report", "2", audit.RECORD_EDITED)]


# -- DELETE ---------------------------------------------------------------------------------
def test_delete_of_an_audit_entry_is_named(logged: Logged) -> None:
    _sql(logged.store, "DELETE FROM audit_log WHERE seq = 3")
    problems = _problems(logged.store)
    assert (4, "run", logged.b, audit.SEQUENCE_GAP) in problems
    assert (4, "run", logged.b, audit.BROKEN_LINK) in problems
    # and the record it covered is now a record without an entry
    assert (None, "metric_report", "1", audit.RECORD_UNLOGGED) in problems


def test_delete_of_the_last_entry_is_caught_by_its_record(logged: Logged) -> None:
    _sql(logged.store, "DELETE FROM audit_log WHERE seq = 5")
    assert _problems(logged.store) == [(None, "metric_report", "2", audit.RECORD_UNLOGGED)]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("DELETE FROM metric_reports WHERE report_id = 1",
         lambda lg: [(3, "metric_report", "1", audit.RECORD_DELETED)]),
        ("DELETE FROM runs WHERE run_id = :b",
         lambda lg: [(4, "run", lg.b, audit.RECORD_DELETED)]),
        ("DELETE FROM replies WHERE run_id = :a AND item_id = :i",
         lambda lg: [(2, "run", lg.a, audit.RECORD_EDITED)]),
    ],
    ids=["metric_report", "run", "replies"],
)
def test_delete_of_a_covered_record_is_named(
    logged: Logged, statement: str,
    expected: Callable[[Logged], list[tuple[int | None, str, str, str]]],
) -> None:
    params = {k: v for k, v in {"a": logged.a, "b": logged.b, "i": logged.item}.items()
              if f":{k}" in statement}
    _sql(logged.store, statement, **params)
    assert _problems(logged.store) == expected(logged)


# -- reorder --------------------------------------------------------------------------------
def test_reordered_entries_are_named(logged: Logged) -> None:
    # Swap entries 3 and 4 (the primary key forces a detour through -1).
    _sql(logged.store, "UPDATE audit_log SET seq = -1 WHERE seq = 3")
    _sql(logged.store, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    _sql(logged.store, "UPDATE audit_log SET seq = 4 WHERE seq = -1")
    result = audit.verify(logged.store.engine)
    moved = [(p.seq, p.kind, p.ref, p.code) for p in result.problems]
    assert (3, "run", logged.b, audit.ENTRY_MOVED) in moved
    assert (4, "metric_report", "1", audit.ENTRY_MOVED) in moved
    assert "logged as entry 4" in str(result.problems[0])


def test_reordered_contents_are_named(logged: Logged) -> None:
    # Same order of seq, contents exchanged: entry 2 now holds what entry 4 held and back.
    cols = "created_at, kind, ref, record_sha256, prev_hash, entry_hash"
    with logged.store.engine.begin() as conn:
        two = conn.execute(text(f"SELECT {cols} FROM audit_log WHERE seq = 2")).mappings().one()
        four = conn.execute(text(f"SELECT {cols} FROM audit_log WHERE seq = 4")).mappings().one()
        sets = ", ".join(f"{c} = :{c}" for c in cols.split(", "))
        conn.execute(text(f"UPDATE audit_log SET {sets} WHERE seq = 2"), dict(four))
        conn.execute(text(f"UPDATE audit_log SET {sets} WHERE seq = 4"), dict(two))
    codes = {(p.seq, p.code) for p in audit.verify(logged.store.engine).problems}
    assert (2, audit.ENTRY_MOVED) in codes and (4, audit.ENTRY_MOVED) in codes


def test_reordered_records_in_a_covered_table_are_named(logged: Logged) -> None:
    # The two metric reports swap the runs they belong to.
    _sql(logged.store, "UPDATE metric_reports SET run_id = 'tmp' WHERE report_id = 1")
    _sql(logged.store, "UPDATE metric_reports SET run_id = :a WHERE report_id = 2", a=logged.a)
    _sql(logged.store, "UPDATE metric_reports SET run_id = :b WHERE report_id = 1", b=logged.b)
    assert _problems(logged.store) == [
        (3, "metric_report", "1", audit.RECORD_EDITED),
        (5, "metric_report", "2", audit.RECORD_EDITED),
    ]


# -- what the chain alone cannot see: a cut tail, caught by a published anchor ---------------
def test_anchor_catches_a_cut_tail(logged: Logged) -> None:
    count, last = audit.head(logged.store.engine)
    anchor = f"{count}:{last}"
    assert audit.verify(logged.store.engine, anchor=anchor).ok
    _sql(logged.store, "DELETE FROM audit_log WHERE seq = 5")
    _sql(logged.store, "DELETE FROM metric_reports WHERE report_id = 2")
    assert audit.verify(logged.store.engine).ok  # consistent, but shorter
    result = audit.verify(logged.store.engine, anchor=anchor)
    assert [(p.seq, p.code) for p in result.problems] == [(5, audit.ANCHOR_MISSING)]


def test_unlogged_running_run_is_not_a_problem(logged: Logged) -> None:
    logged.store.create_run(run_id="r-running", judge_name="j", set_name="s", set_version="v",
                            config_hash="h", fingerprint={}, judge_config={}, origin="live",
                            n_expected=1)
    assert audit.verify(logged.store.engine).ok


def test_tampering_with_the_sqlite_file_outside_judgecal(tmp_path: Path) -> None:
    """The sqlite3 module, not SQLAlchemy: an edit made with any SQL client is caught."""
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    cs = hostile_set(tmp_path / "set", n_items=12)
    run = add_run(store, cs, hostile_rows(cs, 0), tmp_path, judge="j", model="m", n_boot=50)
    store.close()
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE replies SET label = 'x' WHERE run_id = ? AND rowid = "
                    "(SELECT min(rowid) FROM replies WHERE run_id = ?)", (run, run))
    con.close()
    store = open_store(f"sqlite:///{db}")
    try:
        assert _problems(store) == [(2, "run", run, audit.RECORD_EDITED)]
    finally:
        store.close()


# -- registry ---------------------------------------------------------------------------------
def test_kinds_without_snapshot_are_reported_as_unchecked(logged: Logged) -> None:
    with logged.store.engine.begin() as conn:
        audit.append(conn, "mystery", "x1", {"a": 1})
    result = audit.verify(logged.store.engine)
    assert result.ok
    assert result.unchecked_kinds == ["mystery"]


def test_registered_kind_is_rechecked_and_listed(
    logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = {"x1": {"v": 1}, "x2": {"v": 2}}
    monkeypatch.setitem(audit.SNAPSHOTS, "thing", lambda conn, ref: state.get(ref))
    monkeypatch.setitem(audit.REFS, "thing", lambda conn: list(state))
    with logged.store.engine.begin() as conn:
        audit.append(conn, "thing", "x1", state["x1"])
        audit.append(conn, "thing", "x2", state["x2"])
    assert audit.verify(logged.store.engine).ok
    state["x1"] = {"v": 10}
    del state["x2"]
    state["x3"] = {"v": 3}
    assert _problems(logged.store) == [
        (6, "thing", "x1", audit.RECORD_EDITED),
        (7, "thing", "x2", audit.RECORD_DELETED),
        (None, "thing", "x3", audit.RECORD_UNLOGGED),
    ]


# -- the drift and incident records (real drift check on real PandaLM verdicts) ----------------
@pytest.fixture(scope="module")
def incident_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("incident")
    store, runs = pandalm_store(tmp, n_boot=20, incident=True)
    store.close()
    return tmp / "demo.db", runs


@pytest.fixture
def incident_store(
    incident_db: tuple[Path, dict[str, str]], tmp_path: Path
) -> Iterator[tuple[Store, dict[str, str]]]:
    copy = tmp_path / "copy.db"
    shutil.copy(incident_db[0], copy)
    store = open_store(f"sqlite:///{copy}")
    try:
        yield store, incident_db[1]
    finally:
        store.close()


def test_incident_records_are_covered(incident_store: tuple[Store, dict[str, str]]) -> None:
    store, _ = incident_store
    result = audit.verify(store.engine)
    assert result.ok, result.problems
    assert result.records_checked == {"calibration_set": 1, "run": 4, "metric_report": 4,
                                      "baseline": 1, "drift_check": 1, "incident": 1,
                                      "incident_event": 4}
    assert result.unlisted_kinds == [] and result.unchecked_kinds == []


def _last(store: Store, kind: str) -> tuple[int, str]:
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT seq, ref FROM audit_log WHERE kind = :k "
                                "ORDER BY seq DESC LIMIT 1"), {"k": kind}).one()
    return int(row[0]), str(row[1])


def test_incident_lifecycle_edit_is_named(incident_store: tuple[Store, dict[str, str]]) -> None:
    store, runs = incident_store
    seq, ref = _last(store, "incident_event")
    assert ref == f"{runs['incident']}#4"  # resolved
    _sql(store, "UPDATE incident_events SET actor = 'mallory', reason = 'nothing happened' "
         "WHERE incident_id = :i AND kind = 'resolved'", i=runs["incident"])
    result = audit.verify(store.engine)
    assert [(p.seq, p.kind, p.ref, p.code) for p in result.problems] == [
        (seq, "incident_event", ref, audit.RECORD_EDITED)]
    assert "actor" in result.problems[0].message and "reason" in result.problems[0].message


def test_deleted_incident_event_entry_is_named(
    incident_store: tuple[Store, dict[str, str]],
) -> None:
    store, _ = incident_store
    seq, ref = _last(store, "incident_event")
    _sql(store, "DELETE FROM audit_log WHERE seq = :s", s=seq)
    problems = _problems(store)
    assert (None, "incident_event", ref, audit.RECORD_UNLOGGED) in problems


@pytest.mark.parametrize(
    ("statement", "kind"),
    [("UPDATE baselines SET actor = 'mallory'", "baseline"),
     ("UPDATE drift_checks SET severity = 'notice'", "drift_check"),
     ("DELETE FROM incidents", "incident")],
)
def test_drift_records_edited_or_deleted_are_named(
    incident_store: tuple[Store, dict[str, str]], statement: str, kind: str
) -> None:
    store, _ = incident_store
    seq, ref = _last(store, kind)
    _sql(store, statement)
    code = audit.RECORD_DELETED if statement.startswith("DELETE") else audit.RECORD_EDITED
    assert _problems(store) == [(seq, kind, ref, code)]


# -- canonical JSON is exactly the documented json.dumps call ---------------------------------
_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                    st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1), st.one_of(_values, st.lists(_values, max_size=3)),
                       max_size=8))
def test_canonical_is_the_documented_dumps(row: dict[str, object]) -> None:
    assert audit.canonical(row) == json.dumps(row, sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=False)
    with pytest.raises(ValueError):
        audit.canonical({"score": float("nan")})


def test_concurrent_legitimate_writes_are_not_tampering(
    logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run re-logged and a report saved *while* verification reads the tables."""
    original = audit.BULK["run"]
    done = []

    def racing_bulk(conn: object) -> object:
        if not done:
            done.append(True)
            with logged.store.engine.begin() as other:
                other.execute(update(schema.runs).where(schema.runs.c.run_id == logged.a)
                              .values(summary={"annotated": True}))
                record = audit.snapshot_run(other, logged.a)
                assert record is not None
                audit.append(other, "run", logged.a, record)
            report = logged.store.latest_metric_report(logged.a)
            assert report is not None
            logged.store.save_metric_report(logged.a, report)
        return original(conn)  # type: ignore[arg-type]

    monkeypatch.setitem(audit.BULK, "run", racing_bulk)
    result = audit.verify(logged.store.engine)
    assert done and result.ok, result.problems
