"""Wrong but plausible input gets exit 2 and a plain sentence, never `unexpected SomeError`:
unknown store URLs, run ids, segment fields and customers, broken prompt templates (named by
file and line) and output paths that cannot be written."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest

from judgecal import incidents
from judgecal.errors import InputError, NotFoundError, Problem
from judgecal.store import Store
from tests.conftest import ROOT
from tests.helpers import run_main
from tests.test_report_data import pandalm_store

JUDGE_FILE = ROOT / "configs" / "judges" / "pandalm-gpt35.yaml"
SET_DIR = ROOT / "calibration_sets" / "pandalm"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, str]]:
    """Four real PandaLM runs and one incident (acknowledged, blast radius, resolved)."""
    return pandalm_store(tmp_path_factory.mktemp("errors"), n_boot=20, incident=True)


def _plain(err: str) -> None:
    """One plain message: no traceback, no last-resort `unexpected` error."""
    assert err.startswith("Error: ") or err.startswith("Usage: "), err
    assert "Error: unexpected" not in err and "Traceback" not in err and "sqlalche.me" not in err
    assert "<input>" not in err and "Value error" not in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- 1. store URLs


@pytest.mark.parametrize(("url", "shown", "words"), [
    ("foo://x", "'foo://x'", "does not know the database type 'foo'"),
    ("postgresql+nosuchdriver://u:hunter2@h/db", "u:***@h/db",
     "does not know the database type 'postgresql+nosuchdriver'"),
    ("postgresql://u:hunter2@h:notaport/db", "u:***@h:notaport/db", "port is not a number"),
    ("://u:hunter2@x", "'://u:***@x'", "not a database URL"),
])
def test_a_store_url_judgecal_cannot_use_is_bad_input(
    url: str, shown: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["--store", url, "runs", "list"], capsys)
    assert code == 2, err
    _plain(err)
    assert "cannot use the store" in err and shown in err and words in err
    assert "hunter2" not in err
    assert "sqlite:///" in err and "postgresql://" in err  # says what would work


def test_a_store_url_without_its_driver_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("the MySQL driver is installed here")
    code, _, err = run_main(["--store", "mysql://u:hunter2@db.example/judgecal", "runs",
                             "list"], capsys)
    assert code == 2, err
    _plain(err)
    assert "'mysql://u:***@db.example/judgecal'" in err
    assert "needs the Python package 'MySQLdb'" in err and "hunter2" not in err
    assert "postgres]" not in err  # no advice to install the PostgreSQL extra for MySQL


def test_a_store_path_that_is_no_database_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    code, _, err = run_main(["--store", f"sqlite:///{folder}", "audit", "verify"], capsys)
    assert code == 2 and f"{folder}: the store is a directory" in err, err
    _plain(err)
    code, _, err = run_main(["--store", str(folder), "runs", "list"], capsys)
    assert code == 2 and f"{folder}: the store is a directory" in err, err
    code, _, err = run_main(["--store", str(text), "runs", "list"], capsys)
    assert code == 2 and f"{text}: cannot open the store: the file is not a SQLite database" \
        in err, err
    _plain(err)
    code, _, err = run_main(["--store", str(text / "runs.db"), "runs", "list"], capsys)
    assert code == 2 and f"{text} is a file, not a folder" in err, err
    _plain(err)


def test_an_unreachable_store_server_is_an_error_not_bad_input(
    capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("no PostgreSQL driver")
    url = f"postgresql://u:hunter2@127.0.0.1:{_closed_port()}/db"
    code, _, err = run_main(["--store", url, "runs", "list"], capsys)
    assert code == 1, err
    _plain(err)
    assert "cannot open the store" in err and "u:***@127.0.0.1" in err
    assert "hunter2" not in err


# --------------------------------------------------------------------------- 2. run ids


@pytest.mark.parametrize("args", [
    ["runs", "show", "nosuchrun"],
    ["metrics", "nosuchrun"],
    ["compare", "nosuchrun", "latest"],
    ["compare", "latest", "nosuchrun"],
    ["explain", "nosuchrun"],
    ["explain", "latest", "--vs", "nosuchrun"],
    ["baseline", "accept", "nosuchrun", "--reason", "r", "--by", "me"],
])
def test_an_unknown_run_id_is_bad_input(
    args: list[str], demo: tuple[Store, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = demo
    code, _, err = run_main(["--store", str(store.engine.url), *args], capsys)
    assert code == 2, err
    _plain(err)
    assert "no run 'nosuchrun' in the store" in err and "judgecal runs list" in err


def test_latest_beyond_the_runs_is_bad_input_and_says_how_many(
    demo: tuple[Store, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = demo
    url = str(store.engine.url)
    code, out, _ = run_main(["--store", url, "runs", "show", "latest~3", "--json"], capsys)
    assert code == 0 and out
    code, _, err = run_main(["--store", url, "runs", "show", "latest~4"], capsys)
    assert code == 2, err
    _plain(err)
    assert "latest~4: the store" in err and "holds 4 run(s) (latest to latest~3)" in err
    code, _, err = run_main(["--store", f"sqlite:///{tmp_path / 'empty.db'}", "metrics",
                             "latest"], capsys)
    assert code == 2 and "latest: there are no runs in the store" in err, err


def test_latest_can_be_scoped_to_a_judge(
    demo: tuple[Store, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = demo
    url = str(store.engine.url)
    runs = store.list_runs(limit=100)
    judge = runs[-1]["judge_name"]
    mine = [r["run_id"] for r in runs if r["judge_name"] == judge]
    for n, run_id in enumerate(mine):
        ref = f"latest~{n}@{judge}" if n else f"latest@{judge}"
        code, out, err = run_main(["--store", url, "runs", "show", ref, "--json"], capsys)
        assert code == 0, err
        assert json.loads(out)["run_id"] == run_id
    code, _, err = run_main(["--store", url, "runs", "show", f"latest~{len(mine)}@{judge}"],
                            capsys)
    assert code == 2 and f"holds {len(mine)} run(s) of judge '{judge}'" in err, err
    code, _, err = run_main(["--store", url, "runs", "show", "latest@nobody"], capsys)
    assert code == 2 and "no run of judge 'nobody'" in err and judge in err, err


def test_run_id_prefixes_are_not_wildcards(
    demo: tuple[Store, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, runs = demo
    url = str(store.engine.url)
    for ref in ("%", "_", runs["gpt_a"][:3] + "%"):
        code, _, err = run_main(["--store", url, "runs", "show", ref], capsys)
        assert code == 2 and f"no run '{ref}'" in err, (ref, err)
    code, _, err = run_main(["--store", url, "runs", "show", "r"], capsys)
    assert code == 2 and "run id prefix 'r' is ambiguous" in err and "give more" in err, err
    with pytest.raises(NotFoundError):
        store.get_run("nosuchrun")


@pytest.mark.parametrize("args", [
    ["incidents", "show", "nosuch"],
    ["incidents", "postmortem", "nosuch"],
    ["incidents", "ack", "nosuch", "--reason", "r"],
    ["scores", "link", "nosuch"],
    ["scores", "export", "nosuch", "--out", "x.csv"],
])
def test_an_unknown_incident_is_bad_input(
    args: list[str], demo: tuple[Store, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = demo
    code, _, err = run_main(["--store", str(store.engine.url), *args], capsys)
    assert code == 2, err
    _plain(err)
    assert "no incident 'nosuch'" in err
    assert not Path("x.csv").exists()


# --------------------------------------------------------------------------- 3. --by


def test_an_unknown_segment_field_lists_the_valid_ones(
    demo: tuple[Store, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = demo
    url = str(store.engine.url)
    code, _, err = run_main(["--store", url, "metrics", "latest", "--by", "nosuch",
                             "--bootstrap", "0"], capsys)
    assert code == 2, err
    _plain(err)
    assert "unknown segment field 'nosuch' for --by" in err
    assert "(the set pandalm has: cmp_key, motivation_app)" in err
    code, out, _ = run_main(["--store", url, "metrics", "latest", "--by", "motivation_app",
                             "--bootstrap", "0"], capsys)
    assert code == 0 and "[motivation_app=" in out


# --------------------------------------------------------------------------- 4. --customer


def test_a_postmortem_for_an_unknown_customer_is_bad_input(
    demo: tuple[Store, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, runs = demo
    url = str(store.engine.url)
    incident_id = runs["incident"]
    # Every affected customer is listed (2 of 2): any other name had no affected score.
    incidents.add_event(store, incident_id, "blast_radius", {
        "pct_traffic": 12.5, "customers_affected": 2, "customers_active": 5,
        "pct_customers": 40.0, "top_customers": [
            {"customer": "acme", "affected_scores": 30},
            {"customer": "globex", "affected_scores": 3}]},
        actor="judgecal", reason="scores link")
    code, _, err = run_main(["--store", url, "incidents", "postmortem", incident_id,
                             "--customer", "acme-typo"], capsys)
    assert code == 2, err
    _plain(err)
    assert "--customer 'acme-typo': the customer is unknown or has no affected scores" in err
    assert f"incident {incident_id}" in err and "(affected customers: acme, globex)" in err
    code, out, _ = run_main(["--store", url, "incidents", "postmortem", incident_id,
                             "--customer", "acme"], capsys)
    assert code == 0 and "For acme, 30 grade(s) came from the changed grader." in out

    # A complete per-customer map: a customer with none affected is known, a typo is not.
    incidents.add_event(store, incident_id, "blast_radius", {
        "pct_traffic": 12.5, "customers": {"acme": 30, "globex": 3, "initech": 0}},
        actor="judgecal", reason="scores link")
    code, out, _ = run_main(["--store", url, "incidents", "postmortem", incident_id,
                             "--customer", "initech"], capsys)
    assert code == 0 and "None of initech's grades came from the changed grader." in out
    code, _, err = run_main(["--store", url, "incidents", "postmortem", incident_id,
                             "--customer", "initek"], capsys)
    assert code == 2 and "'initek': the customer is unknown or has no affected" in err, err
    assert "(affected customers: acme, globex)" in err


# --------------------------------------------------------------------------- 5. file and line


def _judge_with(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """A copy of the demo judge with ``old`` replaced; the 1-based line of the change."""
    text = JUDGE_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "judge.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path, text[: text.index(old)].count("\n") + 1


def _run_config(tmp_path: Path, judge: str) -> Path:
    path = tmp_path / "nightly.yaml"
    path.write_text(f"store: sqlite:///{tmp_path / 's.db'}\ncalibration_set: {SET_DIR}\n"
                    f"judge: {judge}\nrun:\n  limit: 5\n", encoding="utf-8")
    return path


def test_a_template_syntax_error_names_the_judge_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    judge, line = _judge_with(tmp_path, "{{ response2 }}", "{{ response2 }")
    code, _, err = run_main(["run", "--config", str(_run_config(tmp_path, str(judge)))],
                            capsys)
    assert code == 2, err
    _plain(err)
    assert (f"{judge}:{line}: field 'prompts.preference.template': "
            "template syntax error: unexpected '}'") in err
    assert "judge 'pandalm-judge'" not in err


def test_a_template_syntax_error_in_an_inline_judge_names_the_run_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    judge_lines = JUDGE_FILE.read_text(encoding="utf-8").splitlines()
    body = [("  " + ln if ln.strip() else "") for ln in judge_lines if not ln.startswith("#")]
    config = tmp_path / "inline.yaml"
    head = [f"store: sqlite:///{tmp_path / 's.db'}", f"calibration_set: {SET_DIR}", "judge:"]
    text = "\n".join(head + body)
    line = text[: text.index("{{ response1 }}")].count("\n") + 1
    config.write_text(text.replace("{{ response1 }}", "{{ response1 }") + "\n",
                      encoding="utf-8")
    code, _, err = run_main(["run", "--config", str(config)], capsys)
    assert code == 2, err
    _plain(err)
    assert (f"{config}:{line}: field 'judge.prompts.preference.template': "
            "template syntax error: unexpected '}'") in err


def test_a_template_naming_a_missing_field_names_the_judge_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    judge, _ = _judge_with(tmp_path, "{{ response2 }}", "{{ response3 }}")
    code, _, err = run_main(["run", "--config", str(_run_config(tmp_path, str(judge)))],
                            capsys)
    assert code == 2, err
    _plain(err)
    assert f"{judge}:" in err and "field 'prompts.preference.template'" in err
    assert "'response3' is undefined" in err


def test_a_folded_template_names_the_template_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A ``>`` block joins lines: the key's line is given, and the line in the template."""
    judge, _ = _judge_with(tmp_path, "template: |", "template: >")
    text = judge.read_text(encoding="utf-8").replace("{{ input }}", "{{ input }")
    judge.write_text(text, encoding="utf-8")
    key_line = text[: text.index("template: >")].count("\n") + 1
    code, _, err = run_main(["run", "--config", str(_run_config(tmp_path, str(judge)))],
                            capsys)
    assert code == 2, err
    assert f"{judge}:{key_line}: field 'prompts.preference.template'" in err
    assert "(line " in err and "of the template)" in err


def test_no_pydantic_prefix_in_config_messages(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    judge, line = _judge_with(tmp_path, "http://127.0.0.1:8765/v1", "ftp://127.0.0.1/v1")
    code, _, err = run_main(["run", "--config", str(_run_config(tmp_path, str(judge)))],
                            capsys)
    assert code == 2, err
    _plain(err)
    assert f"{judge}:{line}: field 'base_url': base_url must start with http://" in err


def test_a_problem_outside_any_file_has_no_placeholder() -> None:
    assert str(InputError("--at '3pm': expected HH:MM")) == "--at '3pm': expected HH:MM"
    assert str(Problem(file="", field="x", message="m")) == "field 'x': m"
    assert str(Problem(file="a.yaml", line=3, field="x", message="m")) == "a.yaml:3: field 'x': m"


# --------------------------------------------------------------------------- 6. the rest


def test_output_paths_that_cannot_be_written_are_bad_input(
    demo: tuple[Store, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, runs = demo
    url = str(store.engine.url)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run_main(["--store", url, "report", "--skip-audit", "--out",
                             str(blocker / "dir" / "trust.html")], capsys)
    assert code == 2, err
    _plain(err)
    assert f"{blocker}/dir/trust.html: cannot write the report: {blocker} is a file" in err
    code, _, err = run_main(["--store", url, "audit", "export", "--no-report", "--out",
                             str(blocker / "bundle")], capsys)
    assert code == 2 and f"cannot write the bundle: {blocker} is a file" in err, err
    _plain(err)
    code, _, err = run_main(["--store", url, "scores", "export", runs["incident"], "--out",
                             str(blocker / "x.csv")], capsys)
    assert code == 2, err
    _plain(err)
    # A missing folder is still created.
    code, _, err = run_main(["--store", url, "report", "--skip-audit", "--out",
                             str(tmp_path / "new" / "trust.html")], capsys)
    assert code == 0 and (tmp_path / "new" / "trust.html").exists(), err


@pytest.mark.parametrize(("args", "option"), [
    (["metrics", "latest", "--bootstrap", "-5"], "--bootstrap"),
    (["metrics", "latest", "--by", "cmp_key", "--min-segment-items", "0"], "--min-segment-items"),
    (["compare", "latest", "latest~1", "--bootstrap", "-1"], "--bootstrap"),
    (["compare", "latest", "latest~1", "--items", "-2"], "--items"),
    (["explain", "latest", "--limit", "-1"], "--limit"),
    (["runs", "list", "--limit", "0"], "--limit"),
    (["report", "--worst", "-1"], "--worst"),
    (["run", "--config", str(ROOT / "configs" / "demo.yaml"), "--limit", "0"], "--limit"),
])
def test_out_of_range_numbers_are_usage_errors(
    args: list[str], option: str, demo: tuple[Store, dict[str, str]],
    capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = demo
    code, _, err = run_main(["--store", str(store.engine.url), *args], capsys)
    assert code == 2, err
    _plain(err)
    assert f"Invalid value for '{option}'" in err


def test_metrics_shows_the_stored_report_and_recomputes_when_asked(
    demo: tuple[Store, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """One interval per figure: `metrics` shows the report stored with the run (the one its
    drift check and the trust report used, here with 20 resamples), recomputing only when
    asked; the two differ only in their bootstrap."""
    store, runs = demo
    url = str(store.engine.url)
    stored = store.latest_metric_report(runs["gpt_a"])
    assert stored is not None
    code, out, err = run_main(["--store", url, "metrics", runs["gpt_a"], "--json"], capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["report"] == "stored with the run"
    assert shown["dimensions"] == json.loads(json.dumps(stored["dimensions"]))
    code, out, err = run_main(["--store", url, "metrics", runs["gpt_a"], "--recompute",
                               "--json"], capsys)
    assert code == 0, err
    again = json.loads(out)
    assert again["report"] == "computed now"
    for dim, d in again["dimensions"].items():
        for name, m in d["metrics"].items():
            old = shown["dimensions"][dim]["metrics"][name]
            assert m["value"] == pytest.approx(old["value"])  # same point estimate
    kappa_old = next(iter(shown["dimensions"].values()))["metrics"]["kappa"]
    kappa_new = next(iter(again["dimensions"].values()))["metrics"]["kappa"]
    assert (kappa_old["ci_low"], kappa_old["ci_high"]) != (kappa_new["ci_low"],
                                                           kappa_new["ci_high"])
    code, out, err = run_main(["--store", url, "metrics", runs["gpt_a"]], capsys)
    assert code == 0 and "(report stored with the run)" in out, err
