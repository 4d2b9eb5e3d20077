"""Drift scenarios on real recorded judges, served over real HTTP by the recorded server.

Reference numbers (from the real judges' verdicts released with LLMBar, Zeng et al. ICLR 2024,
and PandaLM, Wang et al. ICLR 2024; recomputed from the recordings): LLMBar GPT-4 Vanilla
kappa 0.657 vs gold on 419 items, ChatGPT Vanilla -0.184, GPT-4 CoT 0.623; PandaLM
gpt-3.5-turbo 0.493 on its 974 parseable items, PandaLM-7B 0.440 on those items.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from judgecal import drift, incidents, nightly
from judgecal.calibration import CalibrationSet, load_set
from judgecal.cli.main import cli
from judgecal.config import DriftSettings, RunConfig
from judgecal.recorded.server import RunningServer, start_server
from judgecal.runs.replay import execute_run
from judgecal.store import Store, open_store
from tests.conftest import ROOT, SETS
from tests.helpers import run_config

RECORDINGS = {
    "gpt-4": "llmbar:GPT-4/Vanilla",
    "gpt-3.5-turbo": "pandalm:gpt-3.5-turbo",
    "pandalm-7b": "pandalm:pandalm-7b",
}


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with start_server(recordings=dict(RECORDINGS), sets_dir=SETS) as srv:
        yield srv


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'drift.db'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def llmbar() -> CalibrationSet:
    return load_set(SETS / "llmbar")


@pytest.fixture(scope="module")
def pandalm() -> CalibrationSet:
    return load_set(SETS / "pandalm")


def _config(srv: RunningServer, store: Store, judge_file: str, set_name: str,
            **drift_settings: Any) -> RunConfig:
    cfg = run_config(srv.url, store.url, judge_file=judge_file, set_name=set_name,
                     run={"bootstrap": 1000}, concurrency=32)
    return cfg.model_copy(update={"drift": DriftSettings(**drift_settings)})


def _night(srv: RunningServer, store: Store, cs: CalibrationSet, judge_file: str,
           **drift_settings: Any) -> nightly.AfterRun:
    cfg = _config(srv, store, judge_file, cs.name, **drift_settings)
    result = execute_run(cfg, store, cs)
    assert result.status == "completed"
    return nightly.after_run(store, result.run_id, cfg)


def _swap(srv: RunningServer, **changes: Any) -> None:
    srv.configure(recordings={**RECORDINGS, **changes.pop("recordings", {})}, **changes)


def test_silent_provider_swap_opens_sev0_incident(
    server: RunningServer, store: Store, llmbar: CalibrationSet
) -> None:
    first = _night(server, store, llmbar, "llmbar-gpt4-vanilla.yaml", auto_baseline=True)
    assert first.check["verdict"] == "baseline_accepted" and first.kind == "healthy"
    # The provider silently serves ChatGPT behind the same alias and names it.
    _swap(server, recordings={"gpt-4": "llmbar:ChatGPT/Vanilla"}, model_id="gpt-3.5-turbo-0613")
    night = _night(server, store, llmbar, "llmbar-gpt4-vanilla.yaml")
    assert night.kind == "incident"
    assert night.outcome.incident_action == "opened"
    inc = incidents.get_incident(store, night.outcome.incident_id or "")
    assert inc["status"] == "open"
    assert inc["severity"]["level"] == "SEV0"
    assert inc["root_cause"]["code"] == drift.SILENT_PROVIDER_UPDATE
    assert inc["root_cause"]["title"] == "silent provider update"
    assert inc["root_cause"]["cause_family"] == "judge drift"
    mag = inc["severity"]["magnitude"]
    assert mag["baseline"]["value"] == pytest.approx(0.657, abs=5e-4)
    assert mag["current"]["value"] == pytest.approx(-0.184, abs=5e-4)
    assert mag["n_common"] == 419
    lo, hi = mag["interval95_points"]
    assert lo < mag["points"] < hi < -8  # a real drop far beyond the SEV0 threshold
    assert inc["severity"]["dimensions"][0]["dimension"] == "preference"
    changed = inc["fingerprint_diff"]["changed"]
    assert changed == ["observed.served_models"]
    assert inc["production_tags"]["before"].endswith("/served:gpt-4")
    assert inc["production_tags"]["after"].endswith("/served:gpt-3.5-turbo-0613")
    assert inc["last_healthy_run_at"] == first.check["runs"]["current"]["finished_at"]
    flipped = inc["evidence"]["worst_flipped_items"]["preference"]
    assert flipped and flipped[0]["effect"] == "worse"
    # The next night confirms it: evidence added to the same incident, no second incident.
    again = _night(server, store, llmbar, "llmbar-gpt4-vanilla.yaml")
    assert again.outcome.incident_id == inc["incident_id"]
    assert again.outcome.incident_action == "recheck"
    assert again.check["alarm_level"]["kind"] == "routine"
    assert len(incidents.list_incidents(store)) == 1
    assert [e["kind"] for e in incidents.get_incident(store, inc["incident_id"])["events"]] == [
        "opened", "recheck"]


def test_prompt_change_is_classified_with_its_interval(
    server: RunningServer, store: Store, llmbar: CalibrationSet
) -> None:
    _night(server, store, llmbar, "llmbar-gpt4-vanilla.yaml", auto_baseline=True)
    _swap(server, recordings={"gpt-4": "llmbar:GPT-4/CoT"})
    night = _night(server, store, llmbar, "llmbar-gpt4-cot.yaml")
    check = night.check
    assert check["root_cause"]["code"] == drift.RUBRIC_PROMPT_CHANGE
    assert check["fingerprint_diff"]["changed"] == ["configured.prompt"]
    assert check["alarm_level"]["kind"] == "change_event"
    (dim,) = check["dimensions"]
    assert dim["baseline"]["value"] == pytest.approx(0.657, abs=5e-4)
    assert dim["current"]["value"] == pytest.approx(0.623, abs=5e-4)
    assert dim["delta_points"] == pytest.approx(-3.34, abs=0.05)
    lo, hi = dim["interval95_points"]
    assert lo < dim["delta_points"] < hi
    # What the rule gives: the interval includes 0, so no severity and no incident — but the
    # prompt changed, so the night is "judge changed" (exit 11) until a baseline is accepted.
    assert lo < 0 < hi
    assert dim["real"] is False and dim["severity"] is None
    assert check["verdict"] == "judge_changed" and night.kind == "judge_changed"
    assert night.outcome.incident_id is None
    assert "-9." in check["message"] or "-8." in check["message"]  # the interval is shown
    assert "prompt text was edited" in check["root_cause"]["summary"]


def test_pandalm_migration_is_borderline_and_says_so(
    server: RunningServer, store: Store, pandalm: CalibrationSet
) -> None:
    _night(server, store, pandalm, "pandalm-gpt35.yaml", auto_baseline=True)
    night = _night(server, store, pandalm, "pandalm-7b.yaml")
    check = night.check
    assert check["root_cause"]["code"] == drift.PLANNED_MODEL_MIGRATION
    (dim,) = check["dimensions"]
    assert dim["n_common"] == 974
    assert dim["scored_only_by_baseline"] == 0 and dim["scored_only_by_run"] == 25
    assert dim["baseline"]["value"] == pytest.approx(0.493, abs=5e-4)
    assert dim["current"]["value"] == pytest.approx(0.440, abs=5e-4)
    lo, hi = dim["interval95_points"]
    assert -12 < lo < -8 and -1.5 < hi < 2  # roughly −10 to 0 points
    # No more certainty than the data gives: not a real move, no severity, no incident.
    assert dim["real"] is False and dim["severity"] is None
    assert night.outcome.incident_id is None
    mdc = dim["minimum_detectable_change_points"]
    assert 2 < mdc["set"] < 8 and mdc["pair"] > mdc["set"]
    assert "cannot tell whether agreement really moved" in check["message"]
    assert f"{mdc['set']:.1f} points" in check["message"]
    # The judge's own verdicts did shift on the same items (PandaLM-7B calls more ties):
    (shift,) = check["watches"]["distribution"]
    assert shift["real"] and shift["after"]["tie"] > shift["before"]["tie"]


def test_same_judge_twice_is_healthy(
    server: RunningServer, store: Store, llmbar: CalibrationSet
) -> None:
    _night(server, store, llmbar, "llmbar-gpt4-vanilla.yaml", auto_baseline=True)
    night = _night(server, store, llmbar, "llmbar-gpt4-vanilla.yaml")
    assert night.check["verdict"] == "healthy" and night.kind == "healthy"
    assert night.check["root_cause"]["code"] == drift.JUDGE_STABLE
    assert night.check["root_cause"]["cause_family"] == "not judge drift"
    (dim,) = night.check["dimensions"]
    assert dim["n_changed"] == 0 and dim["delta_points"] == 0 and not dim["real"]
    assert incidents.list_incidents(store) == []


def _write_config(tmp_path: Path, srv: RunningServer, judge_file: str, **extra: Any) -> Path:
    judge = yaml.safe_load((ROOT / "configs" / "judges" / judge_file).read_text())
    judge["base_url"] = srv.url
    judge["concurrency"] = 32
    data = {
        "store": f"sqlite:///{tmp_path / 'cli.db'}",
        "calibration_set": str(SETS / "llmbar"),
        "judge": judge,
        "run": {"bootstrap": 500},
        "drift": {"auto_baseline": True},
        **extra,
    }
    path = tmp_path / f"{judge_file}.run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_run_exit_codes_and_json(server: RunningServer, tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = _write_config(tmp_path, server, "llmbar-gpt4-vanilla.yaml",
                        notify={"prometheus_textfile": str(tmp_path / "prom" / "jc.prom")})
    first = runner.invoke(cli, ["run", "--config", str(cfg), "--json"])
    assert first.exit_code == 0, first.output
    assert '"verdict": "baseline_accepted"' in first.output
    same = runner.invoke(cli, ["run", "--config", str(cfg), "--json"])
    assert same.exit_code == 0 and '"verdict": "healthy"' in same.output
    _swap(server, recordings={"gpt-4": "llmbar:ChatGPT/Vanilla"}, model_id="gpt-3.5-turbo-0613")
    swapped = runner.invoke(cli, ["run", "--config", str(cfg)])
    assert swapped.exit_code == 20, swapped.output
    assert "silent provider update" in swapped.output and "SEV0" in swapped.output
    store_opt = ["--store", f"sqlite:///{tmp_path / 'cli.db'}"]
    listed = runner.invoke(cli, [*store_opt, "incidents", "list", "--json"])
    incident_id = yaml.safe_load(listed.output)[0]["incident_id"]
    again = runner.invoke(cli, ["run", "--config", str(cfg)])
    assert again.exit_code == 20  # still open, confirmed again
    ack = runner.invoke(cli, [*store_opt, "incidents", "ack", incident_id, "--by", "alice",
                              "--reason", "on call, pinning the model"])
    assert ack.exit_code == 0, ack.output
    acked = runner.invoke(cli, ["run", "--config", str(cfg)])
    assert acked.exit_code == 10  # someone owns it: a warning, not another page
    prom = (tmp_path / "prom" / "jc.prom").read_text()
    assert 'judgecal_open_incidents{judge="llmbar-judge",severity="SEV0"} 1.0' in prom
    shown = runner.invoke(cli, [*store_opt, "incidents", "show", incident_id])
    assert "## Root cause" in shown.output and "acknowledged" in shown.output
    # compare works on any two runs, item by item.
    runs = runner.invoke(cli, [*store_opt, "runs", "list", "--json"])
    ids = [r["run_id"] for r in yaml.safe_load(runs.output)]
    compared = runner.invoke(cli, [*store_opt, "compare", ids[-1], ids[0], "--items", "3"])
    assert compared.exit_code == 0, compared.output
    assert "served model ids: gpt-4 (100%) → gpt-3.5-turbo-0613 (100%)" in compared.output
    assert "flipped items (preference)" in compared.output
