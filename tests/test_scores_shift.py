"""`scores shift` blames the judge only for incidents that overlap the later period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from judgecal import incidents
from judgecal.records import simulated_clock
from judgecal.scores.generate import generate
from judgecal.scores.shift import judge_shift
from tests.test_scores import JUDGE, _add_check, _ingested, make_incident


def test_an_incident_of_the_earlier_period_only_is_not_blamed(tmp_path: Path) -> None:
    h = generate(6_000, days=20, customers=30, seed=5, switch=False)
    store = _ingested(f"sqlite:///{tmp_path / 's.db'}", h, tmp_path)
    try:
        since = h.start + timedelta(days=10)
        _add_check(store, h.start + timedelta(days=8), "healthy", "c1")
        _add_check(store, h.start + timedelta(days=15), "healthy", "c2")
        # drifted from day 2, resolved on day 4: the earlier period [day 0, day 10) only
        inc = make_incident(store, last_healthy=h.start + timedelta(days=2),
                            opened_at=h.start + timedelta(days=3), incident_id="inc-early")
        with simulated_clock(h.start + timedelta(days=4)):
            incidents.add_event(store, inc, "resolved", {}, "oncall", "pinned the model")
        r = judge_shift(store, JUDGE, since=since, until=h.end)
        assert r["verdict"] != "judge_drift", r["explanation"]
        assert r["verdict"] == "undetermined"
        assert r["incidents"] == []
        assert [i["incident_id"] for i in r["earlier_incidents"]] == ["inc-early"]
        assert "only the earlier period" in r["explanation"]
        # the same question asked of a later period that starts after day 4 but whose earlier
        # period no longer reaches the incident: not the judge
        clean = judge_shift(store, JUDGE, since=h.start + timedelta(days=12), until=h.end,
                            before_start=h.start + timedelta(days=5))
        assert clean["verdict"] == "judge_not_the_cause", clean["explanation"]
        assert clean["earlier_incidents"] == []
        # an incident running into the later period is a cause
        make_incident(store, last_healthy=h.start + timedelta(days=9),
                      opened_at=h.start + timedelta(days=9, hours=12), incident_id="inc-late")
        late = judge_shift(store, JUDGE, since=since, until=h.end)
        assert late["verdict"] == "judge_drift"
        assert [i["incident_id"] for i in late["incidents"]] == ["inc-late"]
        assert "later period" in late["explanation"]
    finally:
        store.close()
