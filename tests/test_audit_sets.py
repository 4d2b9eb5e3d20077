"""The stored calibration sets are in the audit chain: an UPDATE, DELETE or INSERT made in SQL
on a set's items or human labels fails `audit verify`, naming the table and the row.

Runs on SQLite and, with JUDGECAL_TEST_PG_URL, on a real PostgreSQL database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, text, update

from judgecal import audit
from judgecal.agreement import agreement_report
from judgecal.audit import sets as audit_sets
from judgecal.calibration import CalibrationSet, StoredSet, load_set
from judgecal.store import Store, open_store, schema
from tests.conftest import SETS
from tests.helpers import llmbar_verdicts, run_main
from tests.test_report_data import add_run, hostile_rows, hostile_set

KIND = audit_sets.KIND


@dataclass
class Covered:
    """A store holding one hostile set (entry 1) and one run on it (entries 2 and 3)."""

    store: Store
    cs: CalibrationSet
    run: str


@pytest.fixture
def covered(store_url: str, tmp_path: Path) -> Iterator[Covered]:
    store = open_store(store_url)
    cs = hostile_set(tmp_path / "set", n_items=12)
    run = add_run(store, cs, hostile_rows(cs, 0), tmp_path, judge="j", model="m", n_boot=20)
    try:
        yield Covered(store, cs, run)
    finally:
        store.close()


def _sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def _problems(store: Store) -> list[tuple[int | None, str, str, str]]:
    return [(p.seq, p.kind, p.ref, p.code) for p in audit.verify(store.engine).problems]


def _set_entries(store: Store) -> list[tuple[int, str]]:
    a = schema.audit_log.c
    with store.engine.connect() as conn:
        return [(int(s), str(r)) for s, r in conn.execute(
            select(a.seq, a.ref).where(a.kind == KIND).order_by(a.seq))]


# -- coverage ---------------------------------------------------------------------------------
def test_untouched_store_is_intact_and_the_set_is_entry_1(covered: Covered) -> None:
    result = audit.verify(covered.store.engine)
    assert result.ok, result.problems
    assert result.records_checked[KIND] == 1 and result.warnings == []
    assert _set_entries(covered.store) == [(1, covered.cs.version)]
    with covered.store.engine.connect() as conn:
        record = conn.execute(select(schema.audit_log.c.record)
                              .where(schema.audit_log.c.seq == 1)).scalar_one()
    record = json.loads(record) if isinstance(record, str) else record
    assert set(record) == {"set", "items", "labels"}
    assert set(record["set"]) == {c.name for c in schema.calibration_sets.columns}
    assert record["items"]["count"] == 12 and len(record["items"]["rows"]) == 12
    assert record["labels"]["count"] == 12 * 3 * 2
    assert record["labels"]["rows"]["item-3"]["quality"]["bob"] == 5.0


def test_save_set_twice_logs_one_entry(covered: Covered, tmp_path: Path) -> None:
    assert covered.store.save_set(covered.cs) is False
    assert covered.store.save_set(covered.cs) is False
    add_run(covered.store, covered.cs, hostile_rows(covered.cs, 1), tmp_path, judge="j",
            model="m2", n_boot=20, report=False)
    assert _set_entries(covered.store) == [(1, covered.cs.version)]
    assert audit.verify(covered.store.engine).ok


# -- UPDATE, DELETE, INSERT on the set's tables -------------------------------------------------
def test_update_of_one_label_is_named(covered: Covered) -> None:
    _sql(covered.store, "UPDATE set_labels SET code = 2 WHERE item_id = 'item-3' "
         "AND dimension = 'quality' AND rater_id = 'bob'")
    result = audit.verify(covered.store.engine)
    assert [(p.seq, p.kind, p.ref, p.code) for p in result.problems] == [
        (1, KIND, covered.cs.version, audit.ROW_EDITED)]
    problem = result.problems[0]
    assert ("set_labels row (item 'item-3', dimension 'quality', rater 'bob') was changed"
            in problem.message)
    assert "code 5.0 → 2.0" in problem.message
    assert problem.to_json()["row"] == {"table": "set_labels", "item_id": "item-3",
                                        "dimension": "quality", "rater_id": "bob"}


def test_delete_of_an_item_is_named(covered: Covered) -> None:
    _sql(covered.store, "DELETE FROM set_items WHERE item_id = 'item-5'")
    result = audit.verify(covered.store.engine)
    assert [(p.seq, p.code) for p in result.problems] == [(1, audit.ROW_DELETED)]
    assert "set_items row (item 'item-5') was deleted" in result.problems[0].message
    assert result.problems[0].row == {"table": "set_items", "item_id": "item-5"}


def test_insert_of_an_extra_label_is_named(covered: Covered) -> None:
    with covered.store.engine.begin() as conn:
        conn.execute(insert(schema.set_labels).values(
            set_version=covered.cs.version, item_id="item-2", dimension="quality",
            rater_id="mallory", code=1.0))
    result = audit.verify(covered.store.engine)
    assert [(p.seq, p.code) for p in result.problems] == [(1, audit.ROW_INSERTED)]
    assert ("set_labels row (item 'item-2', dimension 'quality', rater 'mallory') was "
            "inserted" in result.problems[0].message)


def test_edited_item_fields_and_order_are_named(covered: Covered) -> None:
    items = schema.set_items
    with covered.store.engine.begin() as conn:
        fields = conn.execute(select(items.c.fields).where(items.c.item_id == "item-4")
                              ).scalar_one()
        fields = json.loads(fields) if isinstance(fields, str) else fields
        conn.execute(update(items).where(items.c.item_id == "item-4")
                     .values(fields={**fields, "answer": "a better answer"}))
        # item-7 and item-8 swap places
        conn.execute(update(items).where(items.c.item_id == "item-7").values(position=-1))
        conn.execute(update(items).where(items.c.item_id == "item-8").values(position=7))
        conn.execute(update(items).where(items.c.item_id == "item-7").values(position=8))
    result = audit.verify(covered.store.engine)
    assert [(p.code, p.row) for p in result.problems] == [
        (audit.ROW_EDITED, {"table": "set_items", "item_id": f"item-{i}"}) for i in (4, 7, 8)]


def test_edited_set_row_is_named(covered: Covered) -> None:
    sets = schema.calibration_sets
    with covered.store.engine.begin() as conn:
        manifest = conn.execute(select(sets.c.manifest)).scalar_one()
        manifest = json.loads(manifest) if isinstance(manifest, str) else manifest
        manifest["dimensions"][0]["scale"]["max"] = 10
        conn.execute(update(sets).values(manifest=manifest))
    result = audit.verify(covered.store.engine)
    assert [(p.seq, p.code) for p in result.problems] == [(1, audit.RECORD_EDITED)]
    assert "calibration_sets row was changed after it was logged (differs in: manifest)" in (
        result.problems[0].message)


def test_deleted_set_is_named(covered: Covered) -> None:
    with covered.store.engine.begin() as conn:
        for table in (schema.set_labels, schema.set_items):
            conn.execute(delete(table))
        conn.execute(delete(schema.calibration_sets))
    assert _problems(covered.store) == [(1, KIND, covered.cs.version, audit.RECORD_DELETED)]


def test_the_kappa_attack_is_caught(store_url: str, tmp_path: Path) -> None:
    """The real LLMBar set and GPT-4's real verdicts: 150 human labels flipped in SQL move κ
    far down; verification names the rows (the first 50 one by one, then a count)."""
    store = open_store(store_url)
    try:
        cs = load_set(SETS / "llmbar")
        verdicts = llmbar_verdicts("GPT-4/Vanilla")
        rows = [{"item_id": item.id, "dimension": "preference", "score": verdicts[item.id]}
                for item in cs.items]
        run = add_run(store, cs, rows, tmp_path, judge="j", model="gpt-4", n_boot=20)

        def kappa() -> float:
            report = agreement_report(StoredSet.load(store, cs.version), store.replies(run),
                                      n_boot=20)
            return float(report["dimensions"]["preference"]["metrics"]["kappa"]["value"])

        before = kappa()
        assert audit.verify(store.engine).ok
        first = [item.id for item in cs.items[:150]]
        with store.engine.begin() as conn:
            labels = schema.set_labels
            conn.execute(update(labels).where(labels.c.item_id.in_(first))
                         .values(code=3 - labels.c.code))
        assert kappa() < before - 0.3
        problems = audit.verify(store.engine).problems
        assert len(problems) == audit_sets.MAX_ROWS_NAMED + 1
        assert {p.code for p in problems} == {audit.ROW_EDITED}
        assert {p.row["item_id"] for p in problems if p.row} < set(first)
        assert problems[-1].message.startswith("and 100 more rows of set_labels differ")
    finally:
        store.close()


# -- the command --------------------------------------------------------------------------------
def test_cli_verify_names_the_row_and_exits_1(
    covered: Covered, capsys: pytest.CaptureFixture[str]
) -> None:
    url = covered.store.engine.url.render_as_string(hide_password=False)
    code, out, _ = run_main(["--store", url, "audit", "verify"], capsys)
    assert code == 0 and out.startswith("audit log intact: 3 entries")
    assert f"1 {KIND}" in out
    _sql(covered.store, "UPDATE set_labels SET code = 1 WHERE item_id = 'item-1' "
         "AND dimension = 'safe' AND rater_id = 'cy'")
    code, out, _ = run_main(["--store", url, "audit", "verify"], capsys)
    assert code == 1
    assert (f"entry 1 ({KIND} {covered.cs.version}): set_labels row (item 'item-1', "
            "dimension 'safe', rater 'cy') was changed") in out
    code, out, _ = run_main(["--store", url, "audit", "verify", "--json"], capsys)
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["warnings"] == []
    assert [(p["seq"], p["code"], p["row"]) for p in data["problems"]] == [
        (1, audit.ROW_EDITED, {"table": "set_labels", "item_id": "item-1", "dimension": "safe",
                               "rater_id": "cy"})]


# -- sets stored before set auditing --------------------------------------------------------------
def test_set_stored_before_set_auditing_warns_then_is_covered_by_the_next_save(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = open_store(store_url)
    try:
        cs = hostile_set(tmp_path / "set", n_items=12)
        with monkeypatch.context() as m:  # judgecal before set auditing
            m.setattr(audit_sets, "log_stored_set", lambda conn, version: 0)
            assert store.save_set(cs) is True
        assert _set_entries(store) == []
        result = audit.verify(store.engine)
        assert result.ok
        assert [(w.seq, w.kind, w.ref, w.code) for w in result.warnings] == [
            (None, KIND, cs.version, audit.RECORD_UNCOVERED)]
        url = store.engine.url.render_as_string(hide_password=False)
        code, out, _ = run_main(["--store", url, "audit", "verify"], capsys)
        assert code == 0 and out.startswith("audit log intact: 0 entries")
        assert f"warning: {KIND} {cs.version} not covered: stored before set auditing" in out
        # Labels changed while the set was not covered: the entry the next save appends
        # commits to the labels its version names, so the change shows at once.
        _sql(store, "UPDATE set_labels SET code = 1 WHERE item_id = 'item-6' "
             "AND dimension = 'quality' AND rater_id = 'ann<script>'")
        assert store.save_set(cs) is False
        assert store.save_set(cs) is False
        assert _set_entries(store) == [(1, cs.version)]
        result = audit.verify(store.engine)
        assert result.warnings == []
        assert [(p.seq, p.code, p.row) for p in result.problems] == [
            (1, audit.ROW_EDITED, {"table": "set_labels", "item_id": "item-6",
                                   "dimension": "quality", "rater_id": "ann<script>"})]
        assert "code 2.0 → 1.0" in result.problems[0].message
    finally:
        store.close()


def test_uncovered_untouched_set_is_covered_intact(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(store_url)
    try:
        cs = load_set(SETS / "pandalm")
        with monkeypatch.context() as m:
            m.setattr(audit_sets, "log_stored_set", lambda conn, version: 0)
            store.save_set(cs)
        assert store.save_set(cs) is False
        result = audit.verify(store.engine)
        assert result.ok and result.warnings == [] and result.records_checked == {KIND: 1}
    finally:
        store.close()


# -- concurrency --------------------------------------------------------------------------------
def _together(n: int, fn: Callable[[], None]) -> list[BaseException]:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def one() -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


@pytest.mark.parametrize("legacy", [False, True], ids=["first-save", "uncovered"])
def test_runs_starting_together_log_one_entry(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    cs = hostile_set(tmp_path / "set", n_items=30)
    if legacy:
        first = open_store(store_url)
        with monkeypatch.context() as m:
            m.setattr(audit_sets, "log_stored_set", lambda conn, version: 0)
            first.save_set(cs)
        first.close()
    stores = [open_store(store_url) for _ in range(3)]
    lock = threading.Lock()
    it = iter(stores)

    def one() -> None:
        with lock:
            store = next(it)
        store.save_set(cs)

    try:
        assert _together(3, one) == []
        assert _set_entries(stores[0]) == [(1, cs.version)]
        assert audit.verify(stores[0].engine).ok
    finally:
        for s in stores:
            s.close()


# -- the auditor's bundle -----------------------------------------------------------------------
def test_bundle_checks_each_set_file_against_its_entry(covered: Covered, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = audit.export_bundle(covered.store, out)
    assert result.verification.ok
    index = json.loads((out / "records" / "index.json").read_text())
    (entry,) = [r for r in index if r["kind"] == KIND]
    assert entry["ref"] == covered.cs.version and (out / entry["set_file"]).is_file()
    done = subprocess.run([sys.executable, "-I", "-S", "verify_bundle.py", "."], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stdout
    set_file = out / entry["set_file"]
    data = json.loads(set_file.read_text(encoding="utf-8"))
    label = next(r for r in data["labels"] if r["item_id"] == "item-3")
    label["code"] = 1.0 if label["code"] != 1.0 else 2.0
    set_file.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                        encoding="utf-8")
    done = subprocess.run([sys.executable, "-I", "-S", "verify_bundle.py", "."], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"calibration set {covered.cs.version}: {entry['set_file']} does not match" in (
        done.stdout)
