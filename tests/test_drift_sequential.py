"""Evidence across nights in the nightly check (:mod:`judgecal.drift.sequential`), on real
judges' verdicts: LLMBar's recorded GPT-4 (Vanilla) verdicts, re-drawn every night from their
two recorded orders (original and swapped, as ``benchmarks/bench_sequential.py`` does), and a
small persistent drop made by mixing in the recorded ChatGPT (Vanilla) verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judgecal import audit, drift, incidents, nightly
from judgecal.calibration import CalibrationSet, load_set
from judgecal.config import DriftSettings
from judgecal.recorded.server import RunningServer, start_server
from judgecal.runs.imported import import_judgments
from judgecal.runs.replay import execute_run
from judgecal.stats.sequential import SequentialState
from judgecal.store import Store, open_store
from tests.conftest import SETS
from tests.helpers import run_config

N_BOOT = 300
MIX = 0.07
"""Share of items judged by ChatGPT on a drifted night: κ falls by about 5 points."""
ONSET = 4
"""The first drifted night."""
SEED = 2


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'seq.db'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def llmbar() -> CalibrationSet:
    return load_set(SETS / "llmbar")


def _recorded(strategy: str) -> dict[str, tuple[int | None, int | None]]:
    path = SETS / "llmbar" / "recorded" / f"{strategy}.jsonl"
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return {r["id"]: (r["winner"], r["winner_swapped"]) for r in rows}


class Nights:
    """Imports one night after another for judge ``jd`` against one accepted baseline."""

    def __init__(self, store: Store, cs: CalibrationSet, tmp: Path, seed: int = SEED,
                 settings: DriftSettings | None = None) -> None:
        self.store, self.cs, self.tmp = store, cs, tmp
        self.rng = np.random.default_rng(seed)
        self.good, self.bad = _recorded("GPT-4/Vanilla"), _recorded("ChatGPT/Vanilla")
        self.settings = settings or DriftSettings()
        self.runs: list[str] = []

    def verdicts(self, mix: float) -> dict[str, int | None]:
        """One night: each verdict from the original or (half the time) the swapped order;
        with probability ``mix`` the ChatGPT recording judges the item instead."""
        out = {}
        for item in self.cs.items:
            judge = self.bad if mix and self.rng.random() < mix else self.good
            original, swapped = judge[item.id]
            out[item.id] = swapped if swapped is not None and self.rng.random() < 0.5 \
                else original
        return out

    def run(self, verdicts: dict[str, int | None]) -> str:
        path = self.tmp / f"night-{len(self.runs)}.jsonl"
        path.write_text("".join(
            json.dumps({"item_id": i, "dimension": "preference",
                        "score": "" if v is None else v}) + "\n"
            for i, v in verdicts.items()), encoding="utf-8")
        run_id = str(import_judgments(self.store, self.cs, path, judge_name="jd", model="gpt-4",
                                      prompt_text="p")["run_id"])
        self.runs.append(run_id)
        return run_id

    def baseline(self) -> str:
        self.baseline_verdicts = self.verdicts(0.0)
        run_id = self.run(self.baseline_verdicts)
        drift.accept_baseline(self.store, run_id, actor="test", reason="reviewed")
        return run_id

    def night(self, mix: float = 0.0, verdicts: dict[str, int | None] | None = None
              ) -> tuple[drift.DriftCheck, incidents.CheckOutcome]:
        run_id = self.run(verdicts if verdicts is not None else self.verdicts(mix))
        check = drift.check_run(self.store, run_id, self.settings, n_boot=N_BOOT)
        return check, incidents.record_check(self.store, check)


def _seq(check: drift.DriftCheck) -> dict[str, Any]:
    (entry,) = check.dimensions
    return dict(entry["sequential"])


def test_defaults_split_the_false_alarm_budget() -> None:
    d = DriftSettings()
    assert d.sequential is True and d.sequential_alpha == pytest.approx(0.03)
    assert (1 - d.confidence) + d.sequential_alpha == pytest.approx(0.05)
    assert DriftSettings(sequential=False).sequential is False


def test_a_small_persistent_drop_is_found_by_accumulated_evidence_with_its_onset(
    store: Store, llmbar: CalibrationSet, tmp_path: Path
) -> None:
    nights = Nights(store, llmbar, tmp_path)
    nights.baseline()
    checks = [nights.night() for _ in range(ONSET - 1)]
    assert [c.verdict for c, _ in checks] == ["healthy"] * (ONSET - 1)
    first_drifted, _ = nights.night(MIX)
    onset_run = nights.runs[-1]
    # The night the drop begins, the per-night rule cannot tell it from noise.
    assert first_drifted.verdict == "healthy"
    assert first_drifted.dimensions[0]["real"] is False
    assert first_drifted.dimensions[0]["delta_points"] < 0
    opened = None
    for night in range(ONSET + 1, ONSET + 8):
        check, outcome = nights.night(MIX)
        if outcome.incident_action == "opened":
            opened = (night, check, outcome)
            break
        assert check.verdict == "healthy"  # nothing before the evidence is enough
    assert opened is not None, "the accumulated evidence never crossed"
    night, check, outcome = opened
    assert night > ONSET  # found on a later night than the one the drop began
    q = _seq(check)
    assert q["crossed"] and q["newly_crossed"] and q["crossed_at"] == night
    assert q["change_point_run_id"] == onset_run and q["change_point"] == ONSET
    assert q["drop_points"] >= 4.0 and q["severity"] == "SEV2"
    assert q["e_value"] >= q["threshold"] == pytest.approx(1 / 0.03)
    entry = check.dimensions[0]
    assert entry["found_by"] == [drift.ACCUMULATED]  # tonight alone: not real
    assert check.sequential is not None and check.sequential["found_by_evidence"] is True
    assert check.sequential["onset"]["run_id"] == onset_run
    assert check.verdict == "incident" and check.severity == "SEV2"
    assert "found by accumulated evidence across nights" in check.message
    assert f"from run {onset_run} on (night {ONSET} of the {night}" in check.message
    inc = incidents.get_incident(store, outcome.incident_id or "")
    incidents.validate_incident(inc)
    assert inc["found_by"] == "accumulated evidence across nights"
    assert inc["onset"]["run_id"] == onset_run
    assert inc["onset"]["method"] == "change point of the accumulated evidence"
    onset = store.get_run(onset_run)
    assert inc["onset"]["started_at"] == onset["started_at"]
    # The blast radius starts after the last healthy run *before* the change point, not
    # after the night before the incident.
    before = store.get_run(nights.runs[ONSET - 1])
    assert inc["last_healthy_run_id"] == before["run_id"]
    assert inc["last_healthy_run_at"] == before["finished_at"] <= onset["started_at"]
    mag = inc["severity"]["magnitude"]
    assert mag["found_by"] == [drift.ACCUMULATED]
    assert mag["estimated_drop_points"] == pytest.approx(q["drop_points"])
    assert mag["change_point_run_id"] == onset_run
    text = incidents.render_markdown(inc)
    assert "Found by accumulated evidence" in text and onset_run in text
    # The drop persists: the next night adds evidence to the same incident.
    again, outcome2 = nights.night(MIX)
    assert _seq(again)["crossed"] and not _seq(again)["newly_crossed"]
    assert again.verdict == "incident"
    assert outcome2.incident_action == "recheck"
    assert outcome2.incident_id == outcome.incident_id
    assert not audit.verify(store.engine).problems


def test_identical_nights_never_cross(tmp_path: Path) -> None:
    """The recorded judge over real HTTP gives the same verdicts every night: no evidence,
    never a crossing, and every verdict says what it could have seen."""
    store = open_store(f"sqlite:///{tmp_path / 'identical.db'}")
    recordings = {"gpt-4": "llmbar:GPT-4/Vanilla"}
    try:
        with start_server(recordings=recordings, sets_dir=SETS) as srv:
            cfg = _http_config(srv, store)
            cs = load_set(SETS / "llmbar")
            kinds, states = [], []
            for _ in range(4):
                result = execute_run(cfg, store, cs)
                after = nightly.after_run(store, result.run_id, cfg)
                kinds.append(after.check["verdict"])
                if after.check["verdict"] == "healthy":
                    (entry,) = after.check["dimensions"]
                    q = entry["sequential"]
                    assert q["crossed"] is False and q["nights"] == 0
                    assert q["skipped"].startswith("identical verdicts")
                    assert "weighed_by" not in q  # no evidence: weighed by nothing
                    states.append(q["state"]["skipped"])
                    assert "The smallest drop it could have seen" in after.check["message"]
    finally:
        store.close()
    assert kinds == ["baseline_accepted", "healthy", "healthy", "healthy"]
    assert states == [1, 2, 3]


def _http_config(srv: RunningServer, store: Store) -> Any:
    cfg = run_config(srv.url, store.url, judge_file="llmbar-gpt4-vanilla.yaml",
                     set_name="llmbar", run={"bootstrap": N_BOOT}, concurrency=32)
    return cfg.model_copy(update={"drift": DriftSettings(auto_baseline=True,
                                                         bootstrap=N_BOOT)})


def test_noisy_healthy_nights_do_not_cross(
    store: Store, llmbar: CalibrationSet, tmp_path: Path
) -> None:
    nights = Nights(store, llmbar, tmp_path, seed=5)
    nights.baseline()
    for n in range(1, 11):
        check, _ = nights.night()
        q = _seq(check)
        assert check.verdict == "healthy" and not q["crossed"]
        assert q["nights"] == n and q["e_value"] < q["threshold"]
        assert check.dimensions[0]["mdc_points"] == pytest.approx(q["mdc_points"])
        assert q["mdc_points"] > 0
        assert "The smallest drop it could have seen by tonight: about" in check.message


def test_an_accepted_baseline_resets_the_evidence(
    store: Store, llmbar: CalibrationSet, tmp_path: Path
) -> None:
    nights = Nights(store, llmbar, tmp_path, seed=3)
    base = nights.baseline()
    for _ in range(3):
        check, _ = nights.night(0.2)  # a large drop: the per-night rule sees it as well
    q = _seq(check)
    assert q["crossed"] and q["nights"] == 3
    assert q["state"]["baseline_run_id"] == base
    drifted_run = nights.runs[-1]
    # The judge is back to its baseline's verdicts: past nights raise no new alarm.
    back, outcome = nights.night(verdicts=nights.baseline_verdicts)
    q = _seq(back)
    assert q["crossed"] and q["severity"] == "notice" and q["skipped"]
    assert back.verdict == "notice" and outcome.incident_action is None
    assert "no new alarm" in back.message
    # Someone reviews the drifted judge and accepts one of its runs as the new baseline.
    new_base = drifted_run
    drift.accept_baseline(store, new_base, actor="test", reason="the new judge is reviewed")
    check, outcome = nights.night(0.2)
    q = _seq(check)
    assert q["state"]["baseline_run_id"] == new_base
    assert q["nights"] == 1 and not q["crossed"] and q["state"]["crossed_at"] is None
    assert check.verdict == "healthy" and outcome.incident_id is None
    # The old baseline's state is still in its checks, untouched.
    old = drift.previous_states(store, "jd", llmbar.version, base, "none", ["preference"])
    assert len(old["preference"].nights) == 3 and old["preference"].crossed_at is not None
    assert old["preference"].skipped == 1


def test_the_state_round_trips_through_the_store(
    store: Store, llmbar: CalibrationSet, tmp_path: Path
) -> None:
    nights = Nights(store, llmbar, tmp_path, seed=4)
    base = nights.baseline()
    for _ in range(3):
        check, _ = nights.night()
    saved = drift.get_check(store, check.check_id)["record"]
    state = saved["dimensions"][0]["sequential"]["state"]
    assert SequentialState.from_json(state).to_json() == state
    loaded = drift.previous_states(store, "jd", llmbar.version, base, "none", ["preference"])
    assert loaded["preference"] == SequentialState.from_json(state)
    assert [n.run_id for n in loaded["preference"].nights] == nights.runs[1:]
    assert loaded["preference"].alpha == pytest.approx(0.03)  # one dimension: α / 1
    # Checking the newest run again does not count it twice.
    again = drift.check_run(store, nights.runs[-1], nights.settings, n_boot=N_BOOT)
    assert _seq(again)["nights"] == 3
    assert _seq(again)["e_value"] == pytest.approx(_seq(check)["e_value"])
    # A manual comparison never touches the evidence.
    compared = drift.compare_runs(store, base, nights.runs[-1], nights.settings, n_boot=N_BOOT)
    assert compared.sequential is None and "sequential" not in compared.dimensions[0]
    assert not audit.verify(store.engine).problems


def test_sequential_can_be_switched_off(
    store: Store, llmbar: CalibrationSet, tmp_path: Path
) -> None:
    nights = Nights(store, llmbar, tmp_path, settings=DriftSettings(sequential=False))
    nights.baseline()
    check, _ = nights.night()
    assert check.sequential is None and "sequential" not in check.dimensions[0]
    assert check.to_json()["sequential"] is None



def _damage(store: Store, check_id: str, how: str) -> None:
    """Edit the sequential state a check saved, as a hand edit or a damaged store would."""
    from sqlalchemy import text

    from judgecal.db import schema

    c = schema.drift_checks.c
    if how == "not-json":  # SQLite keeps the record as text: anything can be written there
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE drift_checks SET record = '{not json' "
                              "WHERE check_id = :id"), {"id": check_id})
        return
    record = drift.get_check(store, check_id)["record"]
    entry = record["dimensions"][0]
    state = entry["sequential"]["state"]
    if how == "version":  # written by a judgecal whose state this one does not know
        state["version"] = 99
    elif how == "garbage":
        entry["sequential"]["state"] = {"nights": "lots"}
    elif how == "night":
        state["nights"][-1] = ["x"]
    elif how == "reference":
        state["reference"] = 7
    elif how == "dimension":  # valid JSON, unhashable where a name belongs
        entry["dimension"] = ["preference"]
    elif how == "infinite":  # reads back as inf
        state["log_e_value"] = float("inf")
    elif how == "zero-se":
        state["nights"][0][1] = 0.0
    elif how == "crossed-0":  # would forge an alarm
        state["crossed_at"] = 0
    with store.engine.begin() as conn:
        conn.execute(schema.drift_checks.update().where(c.check_id == check_id)
                     .values(record=record))


DAMAGES = ["version", "garbage", "night", "reference", "dimension", "not-json", "infinite",
           "zero-se", "crossed-0"]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_saved_state_never_stops_the_watching(
    store: Store, llmbar: CalibrationSet, tmp_path: Path, how: str
) -> None:
    """The newest saved state cannot be read: the check goes on from the newest older one
    that can, says so, and keeps watching; with none readable the evidence starts afresh."""
    nights = Nights(store, llmbar, tmp_path, seed=6)
    nights.baseline()
    first, _ = nights.night()
    second, _ = nights.night()
    _damage(store, second.check_id, how)
    third, outcome = nights.night()
    q = _seq(third)
    assert third.verdict == "healthy" and outcome.incident_action is None
    assert q["nights"] == 2  # the first night and tonight: the damaged night is passed over
    assert [n[4] for n in q["state"]["nights"]] == [nights.runs[1], nights.runs[3]]
    (note,) = [n for n in q["notes"] if "could not be read" in n]
    assert "goes on from the newest earlier state" in note
    # The state saved tonight reads back: the next night carries it on, with no note.
    fourth, _ = nights.night()
    assert _seq(fourth)["nights"] == 3
    assert not [n for n in _seq(fourth)["notes"] if "could not be read" in n]
    # Every saved state damaged: tonight's evidence starts afresh, and says so.
    for check in (first, third, fourth):
        _damage(store, check.check_id, how)
    fifth, _ = nights.night()
    q = _seq(fifth)
    assert q["nights"] == 1 and fifth.verdict == "healthy"
    assert any("it starts afresh tonight" in n for n in q["notes"])
    # The edits themselves are what the audit chain is for.
    assert audit.verify(store.engine).problems


def test_a_state_that_reads_but_cannot_be_carried_on_falls_back_to_an_older_one(
    store: Store, llmbar: CalibrationSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from judgecal.drift import sequential as drift_sequential
    from judgecal.stats import sequential as seq

    nights = Nights(store, llmbar, tmp_path, seed=6)
    nights.baseline()
    for _ in range(3):
        nights.night()
    real = seq.update

    def update(state: SequentialState, observation: Any) -> Any:
        if len(state.nights) == 3:  # the newest saved state breaks on the way
            raise ZeroDivisionError("float division by zero")
        return real(state, observation)

    monkeypatch.setattr(drift_sequential.seq, "update", update)
    check, _ = nights.night()
    q = _seq(check)
    assert q["nights"] == 3  # nights 1, 2 and tonight: night 3's state was passed over
    (note,) = [n for n in q["notes"] if "could not be read" in n]
    assert "ZeroDivisionError" in note and "goes on from the newest earlier state" in note


def test_the_change_point_run_is_looked_up_by_its_exact_id(
    store: Store, llmbar: CalibrationSet, tmp_path: Path
) -> None:
    from judgecal.drift.sequential import _run_times

    nights = Nights(store, llmbar, tmp_path, seed=6)
    base = nights.baseline()
    assert _run_times(store, base)["run_id"] == base
    assert _run_times(store, "latest") is None and _run_times(store, base[:8]) is None
    assert _run_times(store, "never-stored") is None


def test_the_nightly_job_gets_past_a_check_record_that_is_not_json(tmp_path: Path) -> None:
    """A check record overwritten with text that is not JSON (SQLite holds anything): the
    nightly job over real HTTP still checks its night, the evidence carries on from the
    newest readable state, and `audit verify` names the edited record."""
    from sqlalchemy import text

    store = open_store(f"sqlite:///{tmp_path / 'edited.db'}")
    try:
        with start_server(recordings={"gpt-4": "llmbar:GPT-4/Vanilla"}, sets_dir=SETS,
                          faults={"rescore": 0.1}) as srv:
            cfg = _http_config(srv, store)
            cs = load_set(SETS / "llmbar")
            checks = [nightly.run_nightly(cfg, store, cs).watch.check for _ in range(3)]
            assert [c["verdict"] for c in checks] == ["baseline_accepted", "healthy", "healthy"]
            with store.engine.begin() as conn:
                conn.execute(text("UPDATE drift_checks SET record = '{not json' "
                                  "WHERE check_id = :id"), {"id": checks[-1]["check_id"]})
            tonight = nightly.run_nightly(cfg, store, cs).watch.check
        assert tonight["verdict"] == "healthy"
        (entry,) = tonight["dimensions"]
        q = entry["sequential"]
        assert q["nights"] == 2  # night 1 and tonight
        assert any("is not JSON" in n and "goes on from the newest earlier state" in n
                   for n in q["notes"])
        problems = audit.verify(store.engine).problems
        assert [p.ref for p in problems] == [checks[-1]["check_id"]]
    finally:
        store.close()
