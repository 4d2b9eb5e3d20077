"""What users see on a terminal and in the customer postmortem: no Markdown escapes on the
terminal (they belong in .md files), the affected hours and no internal ids in the
postmortem, and every --out that cannot be written is exit 2 with a message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from judgecal import incidents
from judgecal.calibration import CalibrationSet, load_set
from judgecal.store import open_store
from tests.conftest import SETS
from tests.helpers import llmbar_recording_names, llmbar_winners, run_main
from tests.test_incidents import _drifted

ESCAPES = re.compile(r"\\[\\`*_\[\]<>&|~#+\-=.!]")
INTERNAL = re.compile(r"\br\d{8}T\d{6}-[0-9a-f]{6}|INC-\d{8}-|COR-|sha256:|cfg:|judgecal ")


@pytest.fixture(scope="module")
def store_with_incident(tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("terminal")
    cs: CalibrationSet = load_set(SETS / "llmbar")
    verdicts = {name: llmbar_winners(name) for name in llmbar_recording_names()}
    url = f"sqlite:///{tmp / 'j.db'}"
    store = open_store(url)
    base, outcome = _drifted(store, cs, tmp, verdicts)
    iid = outcome.incident_id
    assert iid is not None
    incidents.add_event(store, iid, "blast_radius",
                        {"traffic_pct": 12.5, "customers_pct": 30.0, "affected_scores": 1234,
                         "window": {"start": "2026-11-20T06:00:00Z",
                                    "end": "2026-11-21T18:30:00Z"},
                         "customers": {"acme_corp": 17}})
    incidents.acknowledge(store, iid, "on_call", "looking at *the* provider & its model_id")
    inc = incidents.get_incident(store, iid)
    incidents.resolve(store, iid, "bob", f"Pinned gpt-4-0613 (run {inc['run_id']}); figures "
                      f"follow (`judgecal incidents correct {iid}`).")
    yield url, incidents.get_incident(store, iid), {"base": base, "run": inc["run_id"]}
    store.close()


def test_terminal_output_has_no_markdown_escapes(
        store_with_incident: tuple[str, dict[str, Any], dict[str, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    url, inc, runs = store_with_incident
    iid = inc["incident_id"]
    for args in (["incidents", "show", iid],
                 ["incidents", "postmortem", iid, "--customer", "acme_corp"],
                 ["explain", runs["run"], "--vs", runs["base"], "--limit", "3"],
                 ["explain", runs["run"], "--limit", "3"]):
        code, out, err = run_main(["--store", url, *args], capsys)
        assert code == 0, err
        assert not ESCAPES.search(out), (args, ESCAPES.search(out))
    code, out, _ = run_main(["--store", url, "incidents", "show", iid], capsys)
    assert "**blast_radius**" in out and "looking at *the* provider & its model_id" in out
    code, out, _ = run_main(["--store", url, "explain", runs["run"], "--limit", "1"], capsys)
    assert "**output_1**" in out
    # the Markdown itself stays escaped
    assert "blast\\_radius" in incidents.render_markdown(inc)


def test_postmortem_names_the_hours_and_no_internal_ids(
        store_with_incident: tuple[str, dict[str, Any], dict[str, str]],
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url, inc, _ = store_with_incident
    text = incidents.render_postmortem(inc, customer="acme_corp")
    assert ("The affected period ran from 20 November 2026 at 06:00 UTC to 21 November 2026 "
            "at 18:30 UTC (about 36 hours).") in text
    assert not INTERNAL.search(text), INTERNAL.search(text)
    for value in (inc["incident_id"], inc["run_id"], inc["baseline_run_id"], inc["check_id"],
                  inc["production_tags"]["before"], inc["production_tags"]["after"]):
        assert value not in text
    assert "Our note: Pinned gpt-4-0613; figures follow." in text
    assert "Prepared for acme\\_corp." in text  # Markdown: data escaped
    out = tmp_path / "drafts" / "postmortem.md"
    code, said, err = run_main(["--store", url, "incidents", "postmortem", inc["incident_id"],
                                "--customer", "acme_corp", "--out", str(out)], capsys)
    assert code == 0, err
    assert out.read_text(encoding="utf-8") == text and str(out) in said
    open_incident = {**inc, "status": "open", "resolved_at": None,
                     "severity": {**inc["severity"], "blast_radius": None}}
    pending = incidents.render_postmortem(open_incident)
    assert re.search(r"Grades produced from \d+ \w+ \d{4} at \d\d:\d\d UTC until the incident "
                     "is resolved may be affected", pending), pending


def test_every_out_that_cannot_be_written_is_exit_2(
        store_with_incident: tuple[str, dict[str, Any], dict[str, str]],
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Decided: an --out whose folder is missing gets the folder; one that cannot be written
    (a file in the way) is exit 2 naming it, never a traceback."""
    url, inc, _ = store_with_incident
    iid = inc["incident_id"]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    commands = {
        "report": (["report", "--skip-audit", "--out"], "r.html"),
        "postmortem": (["incidents", "postmortem", iid, "--out"], "p.md"),
        "audit export": (["audit", "export", "--no-report", "--out"], "bundle"),
        "demo": (["demo", "--out"], "demo"),
    }
    for name, (args, leaf) in commands.items():
        code, out, err = run_main(["--store", url, *args, str(blocker / leaf)], capsys)
        assert code == 2, (name, code, out, err)
        assert "Traceback" not in err and "not-a-folder" in err, (name, err)
    for name in ("report", "postmortem", "audit export"):
        args, leaf = commands[name]
        target = tmp_path / "missing" / name.replace(" ", "-") / leaf
        code, out, err = run_main(["--store", url, *args, str(target)], capsys)
        assert code == 0, (name, err)
        assert target.exists(), name
