"""The drift rule on imported real judgments: baselines, Holm across dimensions, the alarm
level across nights, rises, the unscored watch, set versions, inconclusive runs."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from judgecal import audit, drift
from judgecal.calibration import CalibrationSet, load_set
from judgecal.config import DriftSettings
from judgecal.db import schema
from judgecal.errors import InputError
from judgecal.runs.imported import import_judgments
from judgecal.store import Store, open_store
from tests.conftest import SETS, TEST_DATA
from tests.helpers import llmbar_recording_names, llmbar_winners

ALPHA = 1 - DriftSettings().confidence  # the nightly rule's share (0.02)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'drift.db'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def hanna() -> CalibrationSet:
    return load_set(SETS / "hanna")


@pytest.fixture(scope="module")
def llmbar() -> CalibrationSet:
    return load_set(SETS / "llmbar")


@pytest.fixture(scope="module")
def hanna_scores() -> dict[str, dict[str, float]]:
    """Real HANNA judge scores (prompt 1), clipped to the 1..5 scale: column -> {story: x}."""
    out: dict[str, dict[str, float]] = {}
    with open(TEST_DATA / "hanna" / "llm_judge_scores.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for col, value in row.items():
                if "|prompt1|" in col:
                    out.setdefault(col, {})[row["story_id"]] = min(5.0, max(1.0, float(value)))
    return out


@pytest.fixture(scope="module")
def llmbar_verdicts() -> dict[str, dict[str, int | None]]:
    """Real LLMBar verdicts (original order): ``JUDGE/STRATEGY`` -> {item: 1, 2 or None}."""
    return {name: llmbar_winners(name) for name in llmbar_recording_names()}


def _import(store: Store, cs: CalibrationSet, tmp: Path, rows: list[dict[str, Any]],
            model: str = "m", prompt: str = "p", judge: str = "jd") -> str:
    path = tmp / f"imp-{len(list(tmp.glob('imp-*')))}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(import_judgments(store, cs, path, judge_name=judge, model=model,
                                prompt_text=prompt)["run_id"])


def _hanna_rows(scores: dict[str, dict[str, float]], cs: CalibrationSet,
                judge_for: Callable[[str], str]) -> list[dict[str, Any]]:
    return [
        {"item_id": item.id, "dimension": dim,
         "score": scores[f"{judge_for(dim)}|prompt1|{dim}"][item.id]}
        for item in cs.items for dim in cs.dimensions
    ]


def _llmbar_rows(verdicts: dict[str, int | None], cs: CalibrationSet,
                 blank: set[str] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    return [
        {"item_id": item.id, "dimension": "preference",
         "score": "" if item.id in blank or verdicts.get(item.id) is None
         else verdicts[item.id]}
        for item in cs.items
    ]


def test_holm_across_six_dimensions_finds_the_one_that_moved(
    store: Store, hanna: CalibrationSet, hanna_scores: dict[str, dict[str, float]],
    tmp_path: Path,
) -> None:
    base = _import(store, hanna, tmp_path, _hanna_rows(
        hanna_scores, hanna, lambda d: "Beluga-13B" if d == "coherence" else "ChatGPT"))
    drift.accept_baseline(store, base, actor="test", reason="first")
    night = _import(store, hanna, tmp_path, _hanna_rows(hanna_scores, hanna, lambda d: "ChatGPT"))
    check = drift.check_run(store, night, DriftSettings(), n_boot=500)
    assert check.alarm_level is not None
    # Same configuration, nothing observed: a routine night, alpha shared by 30 nights.
    assert check.alarm_level.kind == "routine"
    assert check.alarm_level.alpha == pytest.approx(ALPHA / 30)
    by_dim = {e["dimension"]: e for e in check.dimensions}
    assert set(by_dim) == set(hanna.dimensions)
    coherence = by_dim.pop("coherence")
    assert coherence["metric"] == "kappa" and coherence["scale"] == "ordinal 1..5"
    assert coherence["real"] and coherence["direction"] == "drop"
    assert coherence["delta_points"] == pytest.approx(-6.88, abs=0.01)
    # Holm: first step at alpha / 6; the five unchanged dimensions are re-tested at alpha / 5.
    assert coherence["decision_confidence"] == pytest.approx(1 - ALPHA / 30 / 6)
    for e in by_dim.values():
        assert not e["real"] and e["n_changed"] == 0
        assert e["decision_confidence"] == pytest.approx(1 - ALPHA / 30 / 5)
    assert coherence["severity"] == "SEV2"  # 4 <= 6.9 < 8
    assert check.verdict == drift.INCIDENT and check.severity == "SEV2"
    assert check.root_cause["code"] == drift.UNEXPLAINED_PROVIDER_CHANGE
    lo, hi = coherence["decision_interval_points"]
    assert lo < coherence["delta_points"] < hi < 0
    assert coherence["severity_range"][1] in ("SEV2", "SEV0")
    shift = next(w for w in check.watches["distribution"] if w["dimension"] == "coherence")
    assert shift["kind"] == "mean score" and shift["direction"] == "harsher" and shift["real"]


@pytest.mark.parametrize(("rises", "verdict", "severity"), [
    ("warning", drift.WARNING, "warning"),
    ("notice", drift.WARNING, "warning"),  # the shift of its own scores still warns
    ("incident", drift.INCIDENT, "SEV2"),
])
def test_a_real_rise_is_reported(
    store: Store, hanna: CalibrationSet, hanna_scores: dict[str, dict[str, float]],
    tmp_path: Path, rises: str, verdict: str, severity: str | None,
) -> None:
    base = _import(store, hanna, tmp_path, _hanna_rows(hanna_scores, hanna, lambda d: "ChatGPT"))
    drift.accept_baseline(store, base, actor="test", reason="first")
    night = _import(store, hanna, tmp_path, _hanna_rows(
        hanna_scores, hanna, lambda d: "Beluga-13B" if d == "coherence" else "ChatGPT"))
    check = drift.check_run(store, night, DriftSettings(rises=rises), n_boot=500)
    coherence = next(e for e in check.dimensions if e["dimension"] == "coherence")
    assert coherence["real"] and coherence["direction"] == "rise"
    assert coherence["severity"] == {"warning": "warning", "notice": "notice",
                                     "incident": "SEV2"}[rises]
    assert check.verdict == verdict and check.severity == severity
    assert "coherence: agreement rose by 6.9 points" in check.message


def test_change_event_is_tested_once_at_the_full_level(
    store: Store, llmbar: CalibrationSet, llmbar_verdicts: dict[str, dict[str, int | None]],
    tmp_path: Path,
) -> None:
    settings = DriftSettings()
    base = _import(store, llmbar, tmp_path, _llmbar_rows(llmbar_verdicts["GPT-4/Vanilla"],
                                                         llmbar), model="gpt-4")
    drift.accept_baseline(store, base, actor="test", reason="first")
    first = _import(store, llmbar, tmp_path, _llmbar_rows(llmbar_verdicts["GPT-4/Vanilla"],
                                                          llmbar), model="gpt-4o")
    check = drift.check_run(store, first, settings, n_boot=500)
    assert check.alarm_level is not None and check.alarm_level.kind == "change_event"
    assert check.alarm_level.alpha == pytest.approx(ALPHA)
    assert check.root_cause["code"] == drift.PLANNED_MODEL_MIGRATION
    assert check.verdict == drift.JUDGE_CHANGED  # a visible change, agreement unchanged
    drift.save_check(store, check)
    # The same difference the next night is no longer news: routine level.
    second = _import(store, llmbar, tmp_path, _llmbar_rows(llmbar_verdicts["GPT-4/Vanilla"],
                                                           llmbar), model="gpt-4o")
    level = drift.alarm_level(store, store.get_run(base), store.get_run(second), settings)
    assert level.kind == "routine" and level.alpha == pytest.approx(ALPHA / 30)


def test_unscored_items_never_stop_a_comparison_and_a_jump_is_watched(
    store: Store, llmbar: CalibrationSet, llmbar_verdicts: dict[str, dict[str, int | None]],
    tmp_path: Path,
) -> None:
    verdicts = llmbar_verdicts["GPT-4/Vanilla"]
    base = _import(store, llmbar, tmp_path, _llmbar_rows(verdicts, llmbar))
    drift.accept_baseline(store, base, actor="test", reason="first")
    blank = {item.id for item in llmbar.items[:40]}
    night = _import(store, llmbar, tmp_path, _llmbar_rows(verdicts, llmbar, blank))
    check = drift.check_run(store, night, DriftSettings(), n_boot=500)
    (dim,) = check.dimensions
    assert dim["n_common"] == 379 and dim["scored_only_by_baseline"] == 40
    assert dim["scored_only_by_run"] == 0
    assert dim["delta_points"] is not None
    (watch,) = check.watches["unscored"]
    assert watch["newly_unscored"] == 40 and watch["change_points"] == pytest.approx(100 * 40 / 419)
    assert watch["real"] and watch["severity"] == "warning"
    assert check.verdict == drift.WARNING
    assert "unparseable replies rose from 0.0% to 9.5%" in check.message


def test_thresholds_are_configurable_and_ordered() -> None:
    with pytest.raises(ValueError, match="warning_points <= sev2_points <= sev0_points"):
        DriftSettings(sev2_points=10, sev0_points=8)
    s = DriftSettings(warning_points=0.5, sev2_points=2, sev0_points=3)
    assert drift.severity_for(-2.5, True, s) == "SEV2"
    assert drift.severity_for(-3.5, True, s) == "SEV0"
    assert drift.severity_for(-0.6, True, s) == "warning"
    assert drift.severity_for(-0.4, True, s) == "notice"
    d = DriftSettings()
    assert (d.warning_points, d.sev2_points, d.sev0_points) == (1.0, 4.0, 8.0)
    assert d.confidence == 0.98 and d.horizon_nights == 30 and d.auto_baseline is False


def _copy_set_with_one_label_less(tmp_path: Path) -> CalibrationSet:
    target = tmp_path / "llmbar-v2"
    shutil.copytree(SETS / "llmbar", target, ignore=shutil.ignore_patterns("recorded"))
    labels = (target / "labels.csv").read_text().splitlines()
    (target / "labels.csv").write_text("\n".join(labels[:-1]) + "\n")
    return load_set(target)


def test_a_new_set_version_needs_a_new_baseline(
    store: Store, llmbar: CalibrationSet, llmbar_verdicts: dict[str, dict[str, int | None]],
    tmp_path: Path,
) -> None:
    verdicts = llmbar_verdicts["GPT-4/Vanilla"]
    v1 = _import(store, llmbar, tmp_path, _llmbar_rows(verdicts, llmbar))
    drift.accept_baseline(store, v1, actor="test", reason="first")
    v2_set = _copy_set_with_one_label_less(tmp_path)
    assert v2_set.version != llmbar.version
    v2 = _import(store, v2_set, tmp_path, _llmbar_rows(verdicts, v2_set))
    check = drift.check_run(store, v2, DriftSettings())
    assert check.verdict == drift.NOT_COMPARABLE and not check.dimensions
    assert "never compared with an old one" in check.message
    assert f"judgecal baseline accept {v2}" in check.message
    assert check.root_cause["code"] == drift.CALIBRATION_SET_CHANGE
    with pytest.raises(drift.NotComparableError, match="different calibration-set versions"):
        drift.compare_runs(store, v1, v2, DriftSettings())
    auto = drift.check_run(store, v2, DriftSettings(auto_baseline=True))
    assert auto.verdict == drift.BASELINE_ACCEPTED
    assert "not comparable" in auto.message
    assert drift.current_baseline(store, "jd", v2_set.version)["run_id"] == v2  # type: ignore[index]


def test_baselines_are_append_only_and_audited(
    store: Store, llmbar: CalibrationSet, llmbar_verdicts: dict[str, dict[str, int | None]],
    tmp_path: Path,
) -> None:
    verdicts = llmbar_verdicts["GPT-4/Vanilla"]
    a = _import(store, llmbar, tmp_path, _llmbar_rows(verdicts, llmbar))
    b = _import(store, llmbar, tmp_path, _llmbar_rows(verdicts, llmbar))
    first = drift.accept_baseline(store, a, actor="alice", reason="first healthy run")
    assert drift.accept_baseline(store, a, actor="alice", reason="again") == first  # no-op
    second = drift.accept_baseline(store, b, actor="bob", reason="new prompt reviewed")
    assert second["replaces_run_id"] == a
    assert [r["run_id"] for r in drift.baselines(store)] == [b]
    assert [r["run_id"] for r in drift.baselines(store, history=True)] == [b, a]
    with pytest.raises(InputError, match="who"):
        drift.accept_baseline(store, a, actor=" ", reason="x")
    _count, problems = audit.verify_chain(store.engine)
    assert not problems
    with store.engine.connect() as conn:
        kinds = [r[0] for r in conn.execute(
            schema.audit_log.select().with_only_columns(schema.audit_log.c.kind))]
    assert kinds.count("baseline") == 2


def test_inconclusive_runs_are_never_compared_nor_baselines(
    store: Store, llmbar: CalibrationSet, tmp_path: Path,
) -> None:
    rows = [{"item_id": item.id, "dimension": "preference", "score": ""} for item in llmbar.items]
    run_id = _import(store, llmbar, tmp_path, rows)
    assert store.get_run(run_id)["status"] == "inconclusive"
    with pytest.raises(InputError, match="only a completed run can be a baseline"):
        drift.accept_baseline(store, run_id, actor="t", reason="r")
    check = drift.check_run(store, run_id, DriftSettings(auto_baseline=True))
    assert check.verdict == drift.INCONCLUSIVE
    assert drift.baselines(store) == []


def test_last_healthy_run_is_the_newest_healthy_one_before(
    store: Store, llmbar: CalibrationSet, llmbar_verdicts: dict[str, dict[str, int | None]],
    tmp_path: Path,
) -> None:
    good = llmbar_verdicts["GPT-4/Vanilla"]
    bad = llmbar_verdicts["ChatGPT/Vanilla"]
    base = _import(store, llmbar, tmp_path, _llmbar_rows(good, llmbar))
    drift.accept_baseline(store, base, actor="t", reason="r")
    healthy = _import(store, llmbar, tmp_path, _llmbar_rows(good, llmbar))
    drift.save_check(store, drift.check_run(store, healthy, DriftSettings(), n_boot=200))
    drifted = _import(store, llmbar, tmp_path, _llmbar_rows(bad, llmbar))
    check = drift.check_run(store, drifted, DriftSettings(), n_boot=200)
    assert check.verdict == drift.INCIDENT and check.severity == "SEV0"
    last = drift.last_healthy_run(store, "jd", before=store.get_run(drifted)["started_at"])
    assert last is not None and last["run_id"] == healthy


def test_primary_metric_is_configurable_and_checked(
    store: Store, llmbar: CalibrationSet, llmbar_verdicts: dict[str, dict[str, int | None]],
    tmp_path: Path,
) -> None:
    from judgecal.errors import ConfigError

    base = _import(store, llmbar, tmp_path, _llmbar_rows(llmbar_verdicts["GPT-4/Vanilla"],
                                                         llmbar))
    drift.accept_baseline(store, base, actor="t", reason="r")
    night = _import(store, llmbar, tmp_path, _llmbar_rows(llmbar_verdicts["GPT-4/CoT"], llmbar))
    check = drift.check_run(store, night, DriftSettings(primary_metric={"preference": "accuracy"}),
                            n_boot=200)
    assert check.dimensions[0]["metric"] == "accuracy"
    assert check.dimensions[0]["delta_points"] == pytest.approx(100 * (0.811 - 0.828), abs=0.2)
    with pytest.raises(ConfigError, match="'spearman' is not reported for the pairwise"):
        drift.check_run(store, night, DriftSettings(primary_metric={"pairwise": "spearman"}))
