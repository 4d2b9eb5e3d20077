"""`judgecal audit export` and the `audit` commands: the bundle verifies with standard tools
(`sha256sum -c`, and the documented Python-standard-library recipe), and breaks when touched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from judgecal import audit
from judgecal.errors import InputError
from judgecal.store import Store, open_store
from tests.helpers import run_main
from tests.test_report_data import add_run, hostile_rows, hostile_set

SHA256SUM = shutil.which("sha256sum")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    db = tmp / "store.db"
    store = open_store(f"sqlite:///{db}")
    cs = hostile_set(tmp / "set", n_items=16)
    add_run(store, cs, hostile_rows(cs, 0), tmp, judge="j", model="m1", n_boot=50,
            at="2026-10-01T01:00:00Z")
    add_run(store, cs, hostile_rows(cs, 1), tmp, judge="j", model="m2", n_boot=50,
            at="2026-10-02T01:00:00Z")
    store.close()
    return db


@pytest.fixture
def store(store_path: Path, tmp_path: Path) -> Store:
    copy = tmp_path / "store.db"
    shutil.copy(store_path, copy)
    s = open_store(f"sqlite:///{copy}")
    yield s  # type: ignore[misc]
    s.close()


@pytest.fixture(scope="module")
def bundle(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    s = open_store(f"sqlite:///{store_path}")
    try:
        from judgecal.reports import render_trust_report

        result = audit.export_bundle(
            s, out, report=lambda verification: render_trust_report(s, verification=verification))
    finally:
        s.close()
    assert result.verification.ok
    assert (out / "trust_report.html").is_file()
    return out


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def _recipe() -> str:
    return audit.CHAIN_RECIPE


@pytest.mark.skipif(SHA256SUM is None, reason="sha256sum (GNU coreutils) is not installed")
def test_manifest_verifies_with_sha256sum(bundle: Path) -> None:
    done = _run([str(SHA256SUM), "-c", "SHA256SUMS"], bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = {line.split("  ", 1)[1] for line in (bundle / "SHA256SUMS").read_text().splitlines()}
    on_disk = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    assert on_disk - listed == {"SHA256SUMS"}
    assert {"audit_log.jsonl", "HEAD", "README.txt", "trust_report.html", "verification.json",
            "verify_bundle.py", "records/index.json"} <= listed


def test_chain_recipe_and_bundle_script_use_only_the_standard_library(bundle: Path) -> None:
    done = _run(["bash", "-c", _recipe()], bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    head = (bundle / "HEAD").read_text().split()
    assert f"head: {head[1]} broken: 0" in done.stdout
    # -I -S: isolated, no site-packages — the script cannot import judgecal or anything else
    done = _run([sys.executable, "-I", "-S", "verify_bundle.py", "."], bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("OK")
    # the README documents the same recipe
    assert _recipe() in (bundle / "README.txt").read_text()


def test_record_files_match_the_log(bundle: Path) -> None:
    newest = {}
    for line in (bundle / "audit_log.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        newest[(entry["kind"], entry["ref"])] = entry
    index = json.loads((bundle / "records" / "index.json").read_text())
    assert {(r["kind"], r["ref"]) for r in index} == set(newest)
    import hashlib

    for rec in index:
        data = (bundle / rec["file"]).read_bytes()
        logged = newest[(rec["kind"], rec["ref"])]
        assert hashlib.sha256(data).hexdigest() == logged["record_sha256"]
        if rec["kind"] == "run":
            replies = (bundle / rec["replies_file"]).read_bytes()
            assert hashlib.sha256(replies).hexdigest() == json.loads(data)["replies"]["sha256"]
            assert len(replies.splitlines()) == json.loads(data)["replies"]["count"] == 32


def test_a_touched_bundle_fails(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    index = json.loads((copy / "records" / "index.json").read_text())
    run_file = next(r for r in index if r["kind"] == "run")["replies_file"]
    replies = (copy / run_file).read_text(encoding="utf-8").replace('"score":1.0', '"score":2.0', 1)
    (copy / run_file).write_text(replies, encoding="utf-8")
    if SHA256SUM:
        done = _run([SHA256SUM, "-c", "--quiet", "SHA256SUMS"], copy)
        assert done.returncode == 1 and f"{run_file}: FAILED" in done.stdout
    done = _run([sys.executable, "-I", "-S", "verify_bundle.py", "."], copy)
    assert done.returncode == 1 and "replies of run" in done.stdout
    # an edited log line: the recipe names the entry even if SHA256SUMS were regenerated
    lines = (copy / "audit_log.jsonl").read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[1])
    entry["created_at"] = "2020-01-01T00:00:00Z"
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    (copy / "audit_log.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = _run(["bash", "-c", _recipe()], copy)
    assert done.returncode == 1
    assert f"2 {entry['kind']} {entry['ref']} BROKEN" in done.stdout


def test_export_refuses_a_non_empty_directory(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("keep me")
    with pytest.raises(InputError, match="must be new or empty"):
        audit.export_bundle(store, out)
    assert (out / "x").read_text() == "keep me"


def test_export_of_a_tampered_store_says_so(store: Store, tmp_path: Path) -> None:
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM metric_reports WHERE report_id = 1"))
    result = audit.export_bundle(store, tmp_path / "b")
    assert not result.verification.ok
    verification = json.loads((tmp_path / "b" / "verification.json").read_text())
    assert verification["problems"][0]["code"] == audit.RECORD_DELETED
    assert "1 PROBLEM(S)" in (tmp_path / "b" / "README.txt").read_text()


# -- the commands ---------------------------------------------------------------------------


def test_cli_verify_exit_codes_and_names(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(store.engine.url)
    code, out, _ = run_main(["--store", url, "audit", "verify"], capsys)
    assert code == 0 and out.startswith("audit log intact: 7 entries")
    code, out, _ = run_main(["--store", url, "audit", "head"], capsys)
    anchor = out.strip()
    assert code == 0 and anchor.startswith("7:")
    from sqlalchemy import text

    with store.engine.begin() as conn:
        run_id = conn.execute(text("SELECT ref FROM audit_log WHERE seq = 6")).scalar()
        conn.execute(text("UPDATE runs SET judge_name = 'someone else' WHERE run_id = :r"),
                     {"r": run_id})
    code, out, _ = run_main(["--store", url, "audit", "verify"], capsys)
    assert code == 1
    assert f"entry 6 (run {run_id}): the run record was changed after it was logged" in out
    assert "judge_name" in out
    code, out, _ = run_main(["--store", url, "audit", "verify", "--json", "--anchor", anchor],
                         capsys)
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    assert data["problems"] == [{"seq": 6, "kind": "run", "ref": run_id, "code": "record_edited",
                                 "message": data["problems"][0]["message"]}]


def test_cli_export(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(store.engine.url)
    out_dir = tmp_path / "bundle"
    code, out, _ = run_main(["--store", url, "audit", "export", "--out", str(out_dir),
                          "--no-report", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["entries"] == 7 and "SHA256SUMS" in data["files"]
    assert not (out_dir / "trust_report.html").exists()
    code, _, err = run_main(["--store", url, "audit", "export", "--out", str(out_dir)], capsys)
    assert code == 2 and "must be new or empty" in err
