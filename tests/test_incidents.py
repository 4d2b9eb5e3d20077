"""Incident records: opened from a drift check, immutable evidence, append-only lifecycle,
audit, JSON schema, Markdown and the customer postmortem. The lifecycle runs on SQLite and on a
real PostgreSQL (``store_url``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from judgecal import audit, drift, incidents
from judgecal.calibration import CalibrationSet, load_set
from judgecal.config import DriftSettings
from judgecal.errors import InputError, NotFoundError
from judgecal.runs.imported import import_judgments
from judgecal.store import Store, open_store, schema
from tests.conftest import SETS
from tests.helpers import llmbar_recording_names, llmbar_winners


@pytest.fixture(scope="module")
def llmbar() -> CalibrationSet:
    return load_set(SETS / "llmbar")


@pytest.fixture(scope="module")
def verdicts() -> dict[str, dict[str, int | None]]:
    """Real LLMBar verdicts (original order): ``JUDGE/STRATEGY`` -> {item: 1, 2 or None}."""
    return {name: llmbar_winners(name) for name in llmbar_recording_names()}


def _import(store: Store, cs: CalibrationSet, tmp: Path, verdicts: dict[str, int | None],
            model: str, served: str | None = None) -> str:
    path = tmp / f"imp-{len(list(tmp.glob('imp-*')))}.jsonl"
    path.write_text("".join(
        json.dumps({"item_id": i.id, "dimension": "preference",
                    "score": "" if verdicts.get(i.id) is None else verdicts[i.id]}) + "\n"
        for i in cs.items))
    return str(import_judgments(store, cs, path, judge_name="llmbar-judge", model=model,
                                prompt_text="Which output is better?",
                                served_model=served)["run_id"])


def _drifted(store: Store, cs: CalibrationSet, tmp: Path,
             verdicts: dict[str, dict[str, int | None]]) -> tuple[str, incidents.CheckOutcome]:
    base = _import(store, cs, tmp, verdicts["GPT-4/Vanilla"], "gpt-4", served="gpt-4-0613")
    drift.accept_baseline(store, base, actor="alice", reason="first healthy run")
    bad = _import(store, cs, tmp, verdicts["ChatGPT/Vanilla"], "gpt-4",
                  served="gpt-3.5-turbo-0613")
    check = drift.check_run(store, bad, DriftSettings(), n_boot=300)
    return base, incidents.record_check(store, check)


def test_incident_lifecycle(
    store_url: str, tmp_path: Path, llmbar: CalibrationSet,
    verdicts: dict[str, dict[str, int | None]],
) -> None:
    store = open_store(store_url)
    try:
        base, outcome = _drifted(store, llmbar, tmp_path, verdicts)
        assert outcome.verdict == "incident" and outcome.incident_action == "opened"
        incident_id = outcome.incident_id
        assert incident_id is not None and re.match(r"^INC-\d{8}-[0-9a-f]{6}$", incident_id)
        inc = incidents.get_incident(store, incident_id)
        incidents.validate_incident(json.loads(json.dumps(inc)))
        assert inc["schema_version"] == 1 and inc["status"] == "open"
        assert inc["baseline_run_id"] == base
        assert inc["severity"]["level"] == "SEV0"
        assert inc["severity"]["blast_radius"] is None
        assert inc["root_cause"]["code"] == "silent_provider_update"
        assert inc["last_healthy_run_at"] == store.get_run(base)["finished_at"]
        assert [e["kind"] for e in inc["events"]] == ["opened"]
        with store.engine.connect() as conn:
            evidence = conn.execute(select(schema.incidents.c.record)).scalar_one()

        with pytest.raises(InputError, match="who"):
            incidents.add_event(store, incident_id, "acknowledged", {}, actor="", reason="x")
        with pytest.raises(InputError, match="lowercase"):
            incidents.add_event(store, incident_id, "Bad Kind", {})
        with pytest.raises(InputError, match="written when the incident is opened"):
            incidents.add_event(store, incident_id, "opened", {})
        with pytest.raises(NotFoundError):
            incidents.add_event(store, "INC-nope", "note", {})
        ack = incidents.acknowledge(store, incident_id, "bob", "on call, looking")
        assert ack["seq"] == 2 and ack["kind"] == "acknowledged"
        with pytest.raises(InputError, match="only an open incident can be acknowledged"):
            incidents.acknowledge(store, incident_id, "carol", "me too")
        incidents.add_event(store, incident_id, "blast_radius",
                            {"traffic_pct": 40.0, "customers_pct": 55.0})
        incidents.add_event(store, incident_id, "blast_radius",
                            {"traffic_pct": 12.5, "customers_pct": 30.0, "affected_scores": 1234,
                             "window": {"start": "2026-11-20T00:00:00Z",
                                        "end": "2026-11-27T00:00:00Z"},
                             "customers": {"acme": 17}})
        assert incidents.get_incident(store, incident_id)["status"] == "acknowledged"
        incidents.resolve(store, incident_id, "bob", "pinned gpt-4-0613, re-graded the window")
        with pytest.raises(InputError, match="already resolved"):
            incidents.resolve(store, incident_id, "bob", "again")
        with pytest.raises(InputError, match="a new drift opens a new incident"):
            incidents.add_event(store, incident_id, "recheck", {})
        incidents.add_event(store, incident_id, "note", {"link": "https://example.org/pm"},
                            actor="bob", reason="postmortem sent")

        inc = incidents.get_incident(store, incident_id[:15])  # a unique prefix works
        incidents.validate_incident(json.loads(json.dumps(inc)))
        assert inc["status"] == "resolved"
        assert [e["seq"] for e in inc["events"]] == [1, 2, 3, 4, 5, 6]
        assert [e["kind"] for e in inc["events"]] == [
            "opened", "acknowledged", "blast_radius", "blast_radius", "resolved", "note"]
        assert inc["severity"]["blast_radius"]["traffic_pct"] == 12.5  # the latest one
        assert inc["severity"]["blast_radius"]["customers_pct"] == 30.0
        assert inc["acknowledged"]["by"] == "bob" and inc["resolved"]["reason"].startswith("pinned")
        assert inc["resolved_at"] == inc["events"][4]["at"]
        # The evidence is untouched by the lifecycle.
        with store.engine.connect() as conn:
            assert conn.execute(select(schema.incidents.c.record)).scalar_one() == evidence
        assert [i["incident_id"] for i in incidents.list_incidents(store, status="resolved")] == [
            incident_id]
        assert incidents.list_incidents(store, status="open") == []
        assert incidents.list_incidents(store, judge_name="other") == []
        # Every record is in the audit chain and verifies; an edit made in SQL is caught.
        result = audit.verify(store.engine)
        assert result.ok, [str(p) for p in result.problems]
        for kind in ("baseline", "drift_check", "incident", "incident_event"):
            assert result.records_checked.get(kind), kind
        with store.engine.begin() as conn:
            conn.execute(update(schema.incident_events)
                         .where(schema.incident_events.c.seq == 2)
                         .values(actor="mallory"))
        assert not audit.verify(store.engine).ok
    finally:
        store.close()


def test_nightly_repeats_add_evidence_and_a_resolved_incident_is_not_reused(
    tmp_path: Path, llmbar: CalibrationSet, verdicts: dict[str, dict[str, int | None]],
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'i.db'}")
    try:
        _, first = _drifted(store, llmbar, tmp_path, verdicts)
        night = _import(store, llmbar, tmp_path, verdicts["ChatGPT/Vanilla"], "gpt-4",
                        served="gpt-3.5-turbo-0613")
        again = incidents.record_check(
            store, drift.check_run(store, night, DriftSettings(), n_boot=300))
        assert (again.incident_id, again.incident_action) == (first.incident_id, "recheck")
        assert again.notifications == [f"incident.recheck:{first.incident_id}:{again.check_id}"]
        assert first.incident_id is not None
        incidents.resolve(store, first.incident_id, "bob", "accepted as known")
        later = _import(store, llmbar, tmp_path, verdicts["ChatGPT/Vanilla"], "gpt-4",
                        served="gpt-3.5-turbo-0613")
        new = incidents.record_check(
            store, drift.check_run(store, later, DriftSettings(), n_boot=300))
        assert new.incident_action == "opened" and new.incident_id != first.incident_id
        assert len(incidents.list_incidents(store)) == 2
    finally:
        store.close()


@pytest.fixture
def resolved_incident(
    tmp_path: Path, llmbar: CalibrationSet, verdicts: dict[str, dict[str, int | None]],
) -> Iterator[dict[str, Any]]:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    _, outcome = _drifted(store, llmbar, tmp_path, verdicts)
    assert outcome.incident_id is not None
    incidents.add_event(store, outcome.incident_id, "blast_radius",
                        {"traffic_pct": 12.5, "customers_pct": 30.0, "affected_scores": 1234,
                         "window": {"start": "2026-11-20T00:00:00Z",
                                    "end": "2026-11-27T00:00:00Z"},
                         "customers": {"acme": 17}})
    incidents.acknowledge(store, outcome.incident_id, "bob <b|ob>", "on call | <script>x</script>")
    incidents.resolve(store, outcome.incident_id, "bob", "We pinned the model version.")
    yield incidents.get_incident(store, outcome.incident_id)
    store.close()


def test_markdown_for_engineers(resolved_incident: dict[str, Any]) -> None:
    text = incidents.render_markdown(resolved_incident)
    for heading in ("## Severity", "## Root cause", "## Fingerprint diff", "## Evidence",
                    "### Worst-flipped items: preference", "## Timeline"):
        assert heading in text
    assert "**Magnitude: SEV0**" in text and "-84.0 points" in text
    assert "95% interval" in text
    assert "12.5% of traffic; 30.0% of named customers" in text
    assert "| served model ids | gpt-4-0613 (100%) | gpt-3.5-turbo-0613 (100%) | **yes** |" in text
    assert "silent provider update" in text
    # Text from people and data is escaped: no raw HTML, no broken table cells.
    assert "<script>" not in text and "\\<script\\>" in text
    assert "on call \\| " in text


JARGON = re.compile(
    r"κ|kappa|\bCI\b|confidence interval|bootstrap|p-value|\bSEV\d|fingerprint|alpha|"
    r"calibration|baseline|metric|statistic|interval", re.IGNORECASE)


def test_customer_postmortem_is_plain(resolved_incident: dict[str, Any]) -> None:
    text = incidents.render_postmortem(resolved_incident, customer="acme")
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == ["What changed", "How big", "Who was affected", "What we did",
                        "What we will do"]
    assert not JARGON.search(text), JARGON.search(text)
    assert "without notice" in text  # silent provider update, in plain words
    assert "83 out of 100" in text and "41 out of 100" in text
    assert "from 66 to -18" in text
    m = re.search(r"the true drop is most likely between (\d+) and (\d+) points", text)
    assert m and 70 <= int(m.group(1)) < 84 < int(m.group(2)) <= 97
    assert "critical" in text
    assert "About 12 in 100 of the grades" in text and "30 in 100 of our customers" in text
    assert "For acme, 17 grade(s)" in text
    assert "we resolved the incident" in text and "started investigating" in text
    with pytest.raises(InputError, match="'globex': the customer is unknown or has no "
                       r"affected scores .* \(affected customers: acme\)"):
        incidents.render_postmortem(resolved_incident, customer="globex")
    known = json.loads(json.dumps(resolved_incident))
    known["severity"]["blast_radius"]["customers"]["globex"] = 0
    other = incidents.render_postmortem(known, customer="globex")
    assert "None of globex's grades" in other
    generic = incidents.render_postmortem(resolved_incident)
    assert "Prepared for" not in generic and "For acme" not in generic


@pytest.mark.parametrize("code", [drift.PLANNED_MODEL_MIGRATION, drift.RUBRIC_PROMPT_CHANGE,
                                  drift.DECODING_CHANGE, drift.UNEXPLAINED_PROVIDER_CHANGE])
def test_postmortem_plain_for_every_cause(resolved_incident: dict[str, Any], code: str) -> None:
    inc = json.loads(json.dumps(resolved_incident))
    inc["root_cause"]["code"] = code
    inc["severity"]["blast_radius"] = None
    inc["status"] = "open"
    inc["events"] = inc["events"][:1]
    text = incidents.render_postmortem(inc)
    assert not JARGON.search(text), JARGON.search(text)
    assert "still identifying" in text and "still open" in text


def test_blast_radius_in_the_score_link_format(resolved_incident: dict[str, Any]) -> None:
    """The keys `judgecal scores link` writes (pct_traffic, pct_customers, top_customers)."""
    inc = json.loads(json.dumps(resolved_incident))
    inc["severity"]["blast_radius"] = {
        "affected_scores": 125, "scores_in_window": 1000, "pct_traffic": 12.5,
        "customers_affected": 3, "customers_active": 10, "pct_customers": 30.0,
        "window": {"start": "2026-11-20T00:00:00Z", "end": "2026-11-27T00:00:00Z"},
        "top_customers": [{"customer": "acme", "affected_scores": 17, "scores_in_window": 90}],
    }
    text = incidents.render_markdown(inc)
    assert ("12.5% of traffic; 30.0% of named customers; 125 affected score(s) of 1000; "
            "3 customer(s) of 10") in text
    pm = incidents.render_postmortem(inc, customer="acme")
    assert "About 12 in 100 of the grades" in pm and "For acme, 17 grade(s)" in pm
    other = incidents.render_postmortem(inc, customer="globex")
    assert "confirming exactly which of globex's grades" in other


def test_the_schema_refuses_what_is_not_an_incident() -> None:
    from pydantic import ValidationError

    good_event = {"seq": 1, "kind": "opened", "at": "2026-01-01T00:00:00Z", "actor": "judgecal",
                  "reason": None, "data": {}}
    with pytest.raises(ValidationError):
        incidents.validate_incident({"incident_id": "INC-1", "events": [good_event]})
    assert incidents.INCIDENT_SCHEMA["title"] == "Incident"
    assert "severity" in incidents.INCIDENT_SCHEMA["required"]
