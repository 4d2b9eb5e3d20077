"""What a run costs, and a night that never passes its budget (real HTTP, recorded judge).

The recorded judge reports estimated token counts; the expected costs are recomputed here
from the stored replies, independently of :mod:`judgecal.runs.cost`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from judgecal.calibration import CalibrationSet
from judgecal.config import RunConfig
from judgecal.recorded.server import RunningServer
from judgecal.runs.cost import BudgetGate
from judgecal.runs.replay import execute_run
from judgecal.store import open_store
from tests.helpers import run_config, run_main, write_config

PRICES = {"gpt-3.5-turbo": {"prompt_per_million": 0.5, "completion_per_million": 1.5},
          "other-model": {"prompt_per_million": 100.0, "completion_per_million": 100.0}}


def _config(base_url: str, store: str, **cost: Any) -> RunConfig:
    cfg = run_config(base_url, store, concurrency=16, run={"limit": 200})
    data = cfg.model_dump()
    data["judge"] = cfg.judge
    data["cost"] = {"prices": PRICES, **cost}
    return RunConfig.model_validate(data)


def _expected(replies: list[dict[str, Any]]) -> float:
    total = 0.0
    for r in replies:
        if r["prompt_tokens"] is None or r["completion_tokens"] is None:
            continue
        p = PRICES[r["served_model"] if r["served_model"] in PRICES else "gpt-3.5-turbo"]
        total += (r["prompt_tokens"] * p["prompt_per_million"]
                  + r["completion_tokens"] * p["completion_per_million"]) / 1e6
    return total


def test_a_run_records_its_cost(recorded: RunningServer, pandalm_set: CalibrationSet,
                                tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        result = execute_run(_config(recorded.url, url), store, pandalm_set)
        cost = result.summary["cost"]
        replies = store.replies(result.run_id)
    finally:
        store.close()
    assert cost["currency"] == "USD" and cost["priced"] == 200 and cost["unpriced"] == 0
    assert cost["total"] == pytest.approx(_expected(replies), rel=1e-12)
    assert cost["total"] > 0 and set(cost["by_model"]) == {"gpt-3.5-turbo"}


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_the_budget_is_never_passed(recorded: RunningServer, pandalm_set: CalibrationSet,
                                    tmp_path: Path, share: float) -> None:
    """A budget below the whole run's cost: the run stops before passing it, inconclusive,
    saying why; what it spent (recomputed from the stored replies) is within the budget."""
    full_url = f"sqlite:///{tmp_path / 'full.db'}"
    store = open_store(full_url)
    try:
        whole = execute_run(_config(recorded.url, full_url), store, pandalm_set)
    finally:
        store.close()
    budget = whole.summary["cost"]["total"] * share
    url = f"sqlite:///{tmp_path / 'capped.db'}"
    store = open_store(url)
    try:
        recorded.reset_stats()
        result = execute_run(_config(recorded.url, url, budget_per_night=budget), store,
                             pandalm_set)
        replies = store.replies(result.run_id)
    finally:
        store.close()
    assert result.status == "inconclusive"
    assert "budget" in result.summary["stopped_because"]
    spent = _expected(replies)
    assert spent <= budget
    assert result.summary["cost"]["total"] == pytest.approx(spent)
    # Every reply the judge served is stored (a re-asked one counts its attempts).
    assert 0 < len(replies) < 200
    assert recorded.stats()["replies"] == sum(r["attempts"] for r in replies)
    assert result.summary["cost"]["requests_refused"] == 200 - len(replies)


def test_a_budget_needs_the_judge_model_priced() -> None:
    cfg = run_config("http://127.0.0.1:9/v1", "sqlite://")
    data = {**cfg.model_dump(), "judge": cfg.judge, "cost": {"budget_per_night": 1.0}}
    with pytest.raises(ValidationError, match="needs a price for the judge's model"):
        RunConfig.model_validate(data)


def test_cli_budget_exit_and_runs_show(recorded: RunningServer, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    config = write_config(tmp_path / "nightly.yaml", recorded.url, store, limit=100)
    text = config.read_text()
    config.write_text(text + "cost:\n  budget_per_night: 0.000001\n  prices:\n"
                      "    gpt-3.5-turbo: {prompt_per_million: 0.5, completion_per_million: 1.5}\n")
    code, out, err = run_main(["run", "--config", str(config), "--json"], capsys)
    assert code == 3, err  # inconclusive: stopped by the budget, never half-judged silently
    code, out, err = run_main(["--store", store, "runs", "show", "latest"], capsys)
    assert code == 0, err
    assert "cost:" in out and "budget" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "cost:\n  budget_per_night: 5\n")
    code, _, err = run_main(["run", "--config", str(bad)], capsys)
    assert code == 2 and "bad.yaml" in err and "cost" in err and "gpt-3.5-turbo" in err


def test_gate_reserves_the_worst_case() -> None:
    from judgecal.config import Price

    price = Price(prompt_per_million=1.0, completion_per_million=2.0)
    gate = BudgetGate(limit=1e-3, price=price, max_completion=100, attempts=2)
    first = gate.reserve(400)  # 400 chars at 2 chars/token: 200 tokens; 2 attempts
    assert first == pytest.approx(2 * (200 * 1.0 + 100 * 2.0) / 1e6)
    gate.settle(first or 0.0, 400, 100, 5, price)  # the reply reports 1 token per 4 chars
    assert gate.spent == pytest.approx((100 * 1.0 + 5 * 2.0) / 1e6)
    assert gate.reserved == pytest.approx(0.0)
    second = gate.reserve(400)  # now 0.25 tokens/char seen: 100 tokens
    assert second == pytest.approx(2 * (100 * 1.0 + 100 * 2.0) / 1e6)
    while gate.reserve(400) is not None:
        pass
    assert gate.spent + gate.reserved <= gate.limit and gate.refused == 1


def test_report_shows_cost_per_run_and_month(recorded: RunningServer,
                                             pandalm_set: CalibrationSet, tmp_path: Path) -> None:
    from judgecal.reports.data import trust_report_data
    from judgecal.reports.trust import render_html

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        costs = []
        for limit in (120, 80):
            cfg = _config(recorded.url, url)
            cfg.run.limit = limit
            costs.append(execute_run(cfg, store, pandalm_set).summary["cost"]["total"])
        data = trust_report_data(store, verify=False)
        html = render_html(data)
    finally:
        store.close()
    (judge,) = data["judges"]
    assert sorted(r["cost"] for r in judge["runs"]) == sorted(costs)
    (month,) = judge["monthly_cost"]
    assert month["runs"] == 2 and month["total"] == pytest.approx(sum(costs))
    assert "Judge cost per month" in html and f"{sum(costs):.4f} USD" in html


def test_a_budget_the_run_fits_in_is_not_refused_for_its_worst_cases(
    recorded: RunningServer, pandalm_set: CalibrationSet, tmp_path: Path
) -> None:
    """Reservations are worst cases (a prompt at 2 characters per token before any count,
    max_tokens, every re-ask). A request that does not fit waits for those in flight to
    settle instead of being refused: a budget of the run's cost plus one worst case per
    slot in flight lets the whole run through."""
    probe_url = f"sqlite:///{tmp_path / 'probe.db'}"
    store = open_store(probe_url)
    try:
        whole = execute_run(_config(recorded.url, probe_url), store, pandalm_set)
        longest = max(r["prompt_tokens"] for r in store.replies(whole.run_id))
    finally:
        store.close()
    # 16 in flight, prompt counted twice over, max_tokens 256, 1 + 2 re-asks per reply.
    budget = whole.summary["cost"]["total"] + 16 * 3 * (2 * longest * 0.5 + 256 * 1.5) / 1e6
    url = f"sqlite:///{tmp_path / 'fits.db'}"
    store = open_store(url)
    try:
        result = execute_run(_config(recorded.url, url, budget_per_night=budget), store,
                             pandalm_set)
        replies = store.replies(result.run_id)
    finally:
        store.close()
    assert result.status == "completed", result.summary.get("stopped_because")
    assert len(replies) == 200 and result.summary["cost"]["requests_refused"] == 0
    assert _expected(replies) <= budget
