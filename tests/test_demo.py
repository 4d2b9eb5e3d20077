"""The demo end to end (a short month), and its numbers checked against the data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from judgecal.demo import DemoResult, run_demo
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    out = tmp_path_factory.mktemp("demo")
    steps: list[str] = []
    result = run_demo(out, configs_dir=ROOT / "configs", sets_dir=ROOT / "calibration_sets",
                      nights=6, swap_night=3, history_rows=30_000, on_step=steps.append)
    result.artifacts["steps"] = "\n".join(steps)
    return result


def test_first_look_reproduces_the_reference_kappa(demo: DemoResult) -> None:
    first = demo.first_look
    assert (first["expected"], first["scored"], first["unscored"]) == (999, 974, 25)
    assert first["unscored_reasons"] == {"no_verdict_found": 25}
    assert first["metrics"]["preference"]["kappa"]["value"] == pytest.approx(0.493, abs=0.002)
    assert first["metrics"]["preference"]["accuracy"]["value"] == pytest.approx(0.716, abs=0.001)


def test_the_swap_night_opens_a_sev0_silent_provider_update(demo: DemoResult) -> None:
    outcomes = [n["outcome"] for n in demo.nights]
    assert outcomes[:2] == ["healthy", "healthy"]
    assert outcomes[2] == "incident"
    # The pinned model is a visible (planned) change: "judge changed" until its run is
    # accepted as the new baseline that same morning; healthy from then on.
    assert outcomes[4] == "judge_changed", "pinned judge: agreement back, change announced"
    assert outcomes[5:] == ["healthy"], "pinned judge is healthy again"
    swap = demo.nights[2]
    assert swap["metrics"]["preference"]["kappa"]["value"] == pytest.approx(-0.184, abs=0.002)
    assert demo.nights[0]["metrics"]["preference"]["kappa"]["value"] == pytest.approx(0.657,
                                                                                       abs=0.002)
    inc = demo.incident
    assert inc is not None
    assert inc["severity"]["magnitude"]["level"] == "SEV0"
    assert inc["root_cause"]["code"] == "silent_provider_update"
    assert inc["status"] == "resolved"
    kinds = [e["kind"] for e in inc["events"]]
    assert kinds.count("blast_radius") == 2 and "acknowledged" in kinds and "resolved" in kinds


def test_blast_radius_matches_the_generated_history(demo: DemoResult) -> None:
    import pandas as pd

    link: dict[str, Any] = demo.blast_radius or {}
    frames = [pd.read_parquet(demo.artifacts[k])
              for k in ("production_scores", "production_scores_later")]
    df = pd.concat(frames)
    df["scored_at"] = pd.to_datetime(df["scored_at"], utc=True)
    start = pd.Timestamp(link["window"]["start"])
    end = pd.Timestamp(link["window"]["end"])
    window = df[(df.scored_at >= start) & (df.scored_at < end)]
    tags = set(link["onset"]["fingerprints"]) if link["onset"].get("fingerprints") else None
    affected = window[window.judge == "support-judge"]
    if tags:
        affected = affected[affected.fingerprint.astype(str).isin(tags)]
    assert link["affected_scores"] == len(affected)
    assert link["pct_traffic"] == pytest.approx(100 * len(affected) / len(window), abs=1e-9)
    named_window = window.customer.dropna()
    named_window = named_window[named_window.astype(str) != ""]
    named_affected = affected.customer.dropna()
    named_affected = named_affected[named_affected.astype(str) != ""]
    assert link["pct_customers"] == pytest.approx(
        100 * named_affected.nunique() / named_window.nunique(), abs=1e-9)


def test_artifacts_audit_and_plain_language(demo: DemoResult) -> None:
    assert demo.audit is not None and demo.audit["ok"], demo.audit
    report = Path(demo.artifacts["report"])
    assert report.exists() and report.stat().st_size > 10_000
    postmortem = Path(demo.artifacts["postmortem"]).read_text()
    for jargon in ("κ", "kappa", "Krippendorff", "bootstrap", "confidence interval", "p ="):
        assert jargon not in postmortem
    assert "What changed" in postmortem and "Who was affected" in postmortem
    assert "3. The swap" in demo.artifacts["steps"]
    # the affected hours in words, and none of our internal ids or commands
    assert re.search(r"The affected period ran from \d+ \w+ \d{4} at \d\d:\d\d UTC to "
                     r"\d+ \w+ \d{4} at \d\d:\d\d UTC \(about \d+ hours\)", postmortem)
    internal = re.compile(r"\br\d{8}T\d{6}-[0-9a-f]{6}|INC-\d{8}-|COR-|sha256:|cfg:|"
                          r"judgecal |score_id")
    assert not internal.search(postmortem), internal.search(postmortem)
    # an outcome is not repeated as its own verdict ("→ incident (incident)")
    assert not re.search(r"→ (\w+) \(\1\)", demo.artifacts["steps"])
    assert "→ incident" in demo.artifacts["steps"]
    # no lock file left beside the store
    assert list(report.parent.glob("*.lock")) == []


def test_remedy_corrects_the_swap_window_against_the_human_labels(demo: DemoResult) -> None:
    """Real data: ChatGPT's verdicts in the swap window, corrected with the calibration pairs
    (human label, ChatGPT verdict) and a labelled window sample; the truth of the window is the
    human label of the LLMBar item behind every affected score."""
    corr = demo.correction
    assert corr is not None and corr["stored"]["version"] == 2
    (fig,) = corr["figures"]
    truth = corr["truth"]
    shown, sample = fig["shown"], fig["window_sample"]
    assert not shown["ci_low"] <= truth <= shown["ci_high"], "the raw figure is off"
    assert fig["ppi"]["ci_low"] <= truth <= fig["ppi"]["ci_high"]
    assert sample["ci_low"] <= truth <= sample["ci_high"]
    assert fig["corrected"]["method"] == "window_sample_ppi++"
    postmortem = Path(demo.artifacts["postmortem"]).read_text()
    assert "What the affected grades should have been" in postmortem
    assert "our corrected estimate is" in postmortem
    assert "Re-check the grades" not in postmortem
    assert "Corrected figures" in Path(demo.artifacts["incident"]).read_text()
