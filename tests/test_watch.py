"""A judge that is not watched is loud: no baseline, stale, changed — exit codes, webhook
events, Prometheus gauges and `judgecal status`, over real HTTP and a real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgecal.calibration import CalibrationSet
from judgecal.cli.main import cli
from judgecal.config import RunConfig, load_config, store_relative_to
from judgecal.drift import accept_baseline
from judgecal.drift.watch import watch_states
from judgecal.nightly import EXIT_CODES, run_nightly
from judgecal.notify import outbox
from judgecal.recorded.server import RunningServer
from judgecal.records import simulated_clock
from judgecal.reports.prometheus import prometheus_text
from judgecal.store import Store, open_store
from tests.conftest import ROOT
from tests.helpers import run_config


def _config(recorded: RunningServer, url: str, **judge: Any) -> RunConfig:
    cfg = run_config(recorded.url, url, run={"limit": 60, "min_items": 5}, **judge)
    return cfg.model_copy(update={"notify": cfg.notify.model_validate(
        {"webhook": {"url": "http://127.0.0.1:9/hook", "tries_per_run": 1, "timeout_s": 0.2}}
    )})


def _events(store: Store) -> list[str]:
    return [n["event"] for n in outbox(store)]


def _status(url: str) -> tuple[int, dict[str, Any]]:
    out = CliRunner().invoke(cli, ["--store", url, "status", "--json"])
    return out.exit_code, json.loads(out.output)


def test_no_baseline_then_healthy_then_judge_changed_until_accepted(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    cfg = _config(recorded, url)

    first = run_nightly(cfg, store, pandalm_set)
    assert first.kind == "not_monitored" and EXIT_CODES[first.kind] == 5
    assert "watch.not_monitored" in _events(store)
    code, status = _status(url)
    assert code == 5 and status["judges"][0]["state"] == "not_monitored"
    prom = prometheus_text(store)
    assert 'judgecal_watch_state{judge="pandalm-judge",set="pandalm",state="not_monitored"} 1.0' \
        in prom
    assert 'judgecal_last_conclusive_check_timestamp_seconds{judge="pandalm-judge",' \
        'set="pandalm"} 0.0' in prom

    accept_baseline(store, first.result.run_id, actor="test", reason="reviewed")
    second = run_nightly(cfg, store, pandalm_set)
    assert second.kind == "healthy" and EXIT_CODES[second.kind] == 0
    assert _status(url)[0] == 0
    assert 'state="healthy"} 1.0' in prometheus_text(store)

    # A one-line prompt edit that leaves agreement where it was: never silent.
    spec = cfg.judge.prompts["preference"]
    edited = cfg.judge.model_copy(update={"prompts": {"preference": spec.model_copy(
        update={"template": spec.template + "\nJudge carefully."})}})
    changed_cfg = cfg.model_copy(update={"judge": edited})
    third = run_nightly(changed_cfg, store, pandalm_set)
    assert third.kind == "judge_changed" and EXIT_CODES[third.kind] == 11
    assert "prompt text" in third.watch.check["message"]
    assert "drift.judge_changed" in _events(store)
    code, status = _status(url)
    assert code == 11 and status["judges"][0]["state"] == "changed"
    # ... and again the next night, until someone accepts the change.
    fourth = run_nightly(changed_cfg, store, pandalm_set)
    assert fourth.kind == "judge_changed"
    accept_baseline(store, fourth.result.run_id, actor="test", reason="prompt edit reviewed")
    assert run_nightly(changed_cfg, store, pandalm_set).kind == "healthy"


def test_a_judge_without_a_conclusive_check_for_too_long_is_stale(
    recorded: RunningServer, tmp_path: Path, pandalm_set: CalibrationSet
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    cfg = _config(recorded, url)
    real_now = datetime.now(UTC)
    with simulated_clock(real_now - timedelta(hours=72)):
        night = run_nightly(cfg, store, pandalm_set)
        accept_baseline(store, night.result.run_id, actor="test", reason="reviewed")
        assert run_nightly(cfg, store, pandalm_set).kind == "healthy"
    # Two nights later the endpoint fails everything: inconclusive, and now stale.
    recorded.configure(faults={"503": 1.0})
    failing = cfg.model_copy(update={"judge": cfg.judge.model_copy(
        update={"max_retries": 0, "backoff_base_s": 0.0})})
    with simulated_clock(real_now - timedelta(minutes=1)):
        broken = run_nightly(failing, store, pandalm_set)
    assert broken.result.status == "inconclusive"
    assert broken.kind == "stale" and EXIT_CODES[broken.kind] == 6
    assert broken.watch.stale is not None
    assert "watch.stale" in _events(store)
    code, status = _status(url)
    assert code == 6
    judge = status["judges"][0]
    assert judge["state"] == "stale" and judge["hours_since_conclusive"] > 36
    # An inconclusive night of a judge first seen within the interval is only inconclusive.
    fresh = run_nightly(failing, open_store(f"sqlite:///{tmp_path / 'fresh.db'}"), pandalm_set)
    assert fresh.kind == "inconclusive" and EXIT_CODES[fresh.kind] == 3


def test_status_of_an_empty_store_is_not_healthy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    out = CliRunner().invoke(cli, ["--store", url, "status"])
    assert out.exit_code == 5
    assert "nothing is watched" in out.output
    assert watch_states(open_store(url)) == []


def test_relative_paths_in_a_config_are_the_config_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    cfg = folder / "nightly.yaml"
    text = (ROOT / "configs" / "nightly.yaml").read_text()
    text = text.replace("../calibration_sets/pandalm", str(ROOT / "calibration_sets" / "pandalm"))
    cfg.write_text(text)
    seen = set()
    for cwd in (tmp_path, folder, ROOT):
        monkeypatch.chdir(cwd)
        seen.add(load_config(cfg).store)
        seen.add(load_config(Path("/") / cfg.relative_to("/")).store)
    assert seen == {f"sqlite:///{folder / '.judgecal' / 'judgecal.db'}"}
    cfg.write_text("\n".join(line for line in text.splitlines()
                             if not line.startswith("store:")))
    assert load_config(cfg).store == f"sqlite:///{folder / '.judgecal' / 'judgecal.db'}"
    assert store_relative_to("runs.db", folder) == f"sqlite:///{folder / 'runs.db'}"
    assert store_relative_to("sqlite:////abs/x.db", folder) == "sqlite:////abs/x.db"
    assert store_relative_to("sqlite:///:memory:", folder) == "sqlite:///:memory:"
    assert store_relative_to("postgresql://h/db", folder) == "postgresql://h/db"
