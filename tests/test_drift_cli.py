"""The drift commands end to end: baseline, compare, incidents, postmortem, schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from judgecal.calibration import load_set
from judgecal.cli.main import cli
from judgecal.runs.imported import import_judgments
from judgecal.schedule import schedule_lines, unit_name
from judgecal.store import open_store
from tests.conftest import ROOT, SETS
from tests.helpers import llmbar_verdicts


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[str, str, str]:
    """A store with LLMBar GPT-4 (served gpt-4-0613) and ChatGPT behind the same name."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    cs = load_set(SETS / "llmbar")
    store = open_store(url)
    ids = []
    for strategy, served in (("GPT-4/Vanilla", "gpt-4-0613"),
                             ("ChatGPT/Vanilla", "gpt-3.5-turbo-0613")):
        verdicts = llmbar_verdicts(strategy)
        path = tmp_path / f"{served}.jsonl"
        path.write_text("".join(json.dumps({"item_id": i.id, "dimension": "preference",
                                            "score": verdicts[i.id]}) + "\n" for i in cs.items))
        ids.append(str(import_judgments(store, cs, path, judge_name="llmbar-judge",
                                        model="gpt-4", prompt_text="p",
                                        served_model=served)["run_id"]))
    store.close()
    return url, ids[0], ids[1]


def test_baseline_compare_incident_commands(two_runs: tuple[str, str, str]) -> None:
    url, good, bad = two_runs
    runner = CliRunner()
    store = ["--store", url]
    empty = runner.invoke(cli, [*store, "baseline", "show"])
    assert "no baseline accepted yet" in empty.output
    refused = runner.invoke(cli, [*store, "baseline", "accept", good])
    assert refused.exit_code == 2 and "--reason" in refused.output
    ok = runner.invoke(cli, [*store, "baseline", "accept", good, "--by", "alice",
                             "--reason", "reviewed"])
    assert ok.exit_code == 0 and good in ok.output
    shown = json.loads(runner.invoke(cli, [*store, "baseline", "show", "--json"]).output)
    assert shown[0]["run_id"] == good and shown[0]["actor"] == "alice"

    compared = runner.invoke(cli, [*store, "compare", good, bad, "--json", "--bootstrap", "300",
                                   "--items", "-1"])
    assert compared.exit_code == 0, compared.output
    data = json.loads(compared.output)
    assert data["verdict"] == "incident" and data["severity"] == "SEV0"
    assert data["alarm_level"]["kind"] == "comparison"
    assert data["root_cause"]["code"] == "silent_provider_update"
    assert len(data["flipped_items"]["preference"]) == 187  # every flipped item
    text = runner.invoke(cli, [*store, "compare", good, bad, "--items", "2",
                               "--bootstrap", "300"]).output
    assert "served model ids: gpt-4-0613 (100%) → gpt-3.5-turbo-0613 (100%)" in text
    assert "root cause: silent provider update" in text
    assert text.count("worse") >= 2


def test_compare_json_honours_items(two_runs: tuple[str, str, str]) -> None:
    url, good, bad = two_runs
    out = CliRunner().invoke(cli, ["--store", url, "compare", good, bad, "--json", "--items",
                                   "5", "--bootstrap", "200"])
    assert len(json.loads(out.output)["flipped_items"]["preference"]) == 5


def test_schedule_prints_cron_and_systemd(tmp_path: Path) -> None:
    cfg = tmp_path / "nightly.yaml"
    data = yaml.safe_load((ROOT / "configs" / "nightly.yaml").read_text())
    data["calibration_set"] = str(SETS / "pandalm")
    cfg.write_text(yaml.safe_dump(data))
    out = CliRunner().invoke(cli, ["schedule", "--config", str(cfg), "--at", "02:30"])
    assert out.exit_code == 0, out.output
    assert "30 2 * * * cd " in out.output
    assert f"--config {cfg.resolve()} --quiet" in out.output
    assert "OnCalendar=*-*-* 02:30:00" in out.output and "Persistent=true" in out.output
    assert "Type=oneshot" in out.output and "--json" in out.output
    assert "EnvironmentFile=-/etc/judgecal/judgecal-prod-pairwise-judge.env" in out.output
    assert "OPENAI_API_KEY=" not in out.output.replace("export OPENAI_API_KEY=...", "")
    bad = CliRunner().invoke(cli, ["schedule", "--config", str(cfg), "--at", "25:00"])
    assert bad.exit_code != 0
    lines = schedule_lines(cfg, judge_name="x y/z", python="/opt/venv/bin/python")
    assert lines["unit"] == "judgecal-x-y-z" == unit_name("x y/z")
    assert lines["command"][:3] == ["/opt/venv/bin/python", "-m", "judgecal"]
    assert "exited with code $?" in lines["cron"]


def test_incident_commands(two_runs: tuple[str, str, str], tmp_path: Path) -> None:
    url, good, bad = two_runs
    from judgecal import drift, incidents
    from judgecal.config import DriftSettings

    store = open_store(url)
    drift.accept_baseline(store, good, actor="alice", reason="r")
    outcome = incidents.record_check(store, drift.check_run(store, bad, DriftSettings(),
                                                            n_boot=300))
    store.close()
    incident_id = outcome.incident_id
    assert incident_id
    runner = CliRunner()
    opt = ["--store", url]
    listed = runner.invoke(cli, [*opt, "incidents", "list"])
    assert incident_id in listed.output and "silent provider update" in listed.output
    assert runner.invoke(cli, [*opt, "incidents", "ack", incident_id]).exit_code == 2
    acked = runner.invoke(cli, [*opt, "incidents", "ack", incident_id, "--by", "bob",
                                "--reason", "on it", "--json"])
    assert json.loads(acked.output)["event"]["kind"] == "acknowledged"
    assert runner.invoke(cli, [*opt, "incidents", "list", "--status", "open", "--json"]
                         ).output.strip() == "[]"
    note = runner.invoke(cli, [*opt, "incidents", "note", incident_id, "--reason", "ping"])
    assert note.exit_code == 0
    resolved = runner.invoke(cli, [*opt, "incidents", "resolve", incident_id, "--by", "bob",
                                   "--reason", "pinned the model"])
    assert resolved.exit_code == 0 and "resolved by bob" in resolved.output
    shown = json.loads(runner.invoke(cli, [*opt, "incidents", "show", incident_id, "--json"]
                                     ).output)
    assert [e["kind"] for e in shown["events"]] == ["opened", "acknowledged", "note", "resolved"]
    pm = runner.invoke(cli, [*opt, "incidents", "postmortem", incident_id, "--customer", "acme"])
    assert pm.exit_code == 0 and "## What we will do" in pm.output and "acme" in pm.output
    md = runner.invoke(cli, [*opt, "incidents", "show", incident_id])
    assert md.output.startswith(f"# {incident_id} — SEV0 judge drift: silent provider update")
    missing = runner.invoke(cli, [*opt, "incidents", "show", "INC-nope"])
    assert missing.exit_code != 0


def test_schedule_only_cron_is_a_valid_crontab_fragment(tmp_path: Path) -> None:
    cfg = tmp_path / "nightly.yaml"
    data = yaml.safe_load((ROOT / "configs" / "nightly.yaml").read_text())
    data["calibration_set"] = str(SETS / "pandalm")
    cfg.write_text(yaml.safe_dump(data))
    out = CliRunner().invoke(cli, ["schedule", "--config", str(cfg), "--only", "cron"])
    lines = [x for x in out.output.splitlines() if x.strip()]
    entries = [x for x in lines if not x.startswith("#")]
    assert len(entries) == 1 and entries[0].startswith("17 3 * * * ")
    timer = CliRunner().invoke(cli, ["schedule", "--config", str(cfg), "--only", "timer"])
    assert timer.output.startswith("[Unit]") and "[Timer]" in timer.output
