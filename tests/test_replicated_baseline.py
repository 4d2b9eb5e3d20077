"""A replicated baseline (``drift.baseline_replicates``): reference runs taken when a baseline
is accepted sharpen the reference of the evidence across nights.

* the e-process with reference comparisons against a brute-force Gaussian likelihood ratio
  (numerical integration over the drop, explicit covariance);
* a seeded null simulation: false alarms over 30 nights stay under α whatever the number of
  reference runs, and a drop from the first night is found sooner with more of them;
* the nights weighed by the references' noise instead of their own spread (which a drop
  inflates): the formula, its guards, and a seeded item-level simulation (null and power);
* the state machine (JSON, ordering rule) and the nightly check on real judges' verdicts;
* the nightly job over real HTTP through the recorded judge.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import update

from judgecal import drift, incidents, nightly
from judgecal.calibration import CalibrationSet, load_set
from judgecal.config import DriftSettings, RunConfig
from judgecal.db import schema
from judgecal.recorded.server import RunningServer, start_server
from judgecal.stats import sequential as seq
from judgecal.store import Store, open_store
from tests.conftest import SETS
from tests.helpers import run_config, run_main, write_config
from tests.test_drift_sequential import N_BOOT, Nights

ALPHA = 0.03


# --------------------------------------------------------------------------- statistics


def _brute_force_log_e(delta: np.ndarray, se: np.ndarray, ref: int, scale: float) -> float:
    """``log M_T`` from the definition: the Gaussian likelihood ratio of ``Z`` under the
    one-factor covariance (every comparison shares the accepted run's noise), integrated
    over a half-normal prior on the drop, mixed over change points after the references."""
    from scipy.integrate import quad

    t_all = delta.size
    z = delta / se
    a = 1.0 / se
    cov = np.full((t_all, t_all), 0.5) + 0.5 * np.eye(t_all)
    inv = np.linalg.inv(cov)
    monitored = t_all - ref
    total = 1.0 / (monitored + 1.0)  # the prior weight of a change after tonight
    for tau in range(ref + 1, t_all + 1):
        mu = -a * (np.arange(1, t_all + 1) >= tau)
        u, v = float(mu @ inv @ z), float(mu @ inv @ mu)

        def density(d: float, u: float = u, v: float = v) -> float:
            prior = 2.0 / (scale * math.sqrt(2 * math.pi)) * math.exp(-d * d / (2 * scale**2))
            return math.exp(d * u - d * d * v / 2.0) * prior

        m, _ = quad(density, 0.0, np.inf, limit=200)
        rank = tau - ref
        total += m / (rank * (rank + 1.0))
    return math.log(total)


@pytest.mark.parametrize("ref", [0, 1, 2, 4])
def test_the_e_process_with_reference_runs_is_the_likelihood_ratio(ref: int) -> None:
    rng = np.random.default_rng(ref)
    nights = ref + 5
    delta = rng.normal(0, 1.2, nights) - np.r_[np.zeros(ref + 2), np.full(3, 2.5)]
    se = rng.uniform(0.9, 1.5, nights)
    traj = seq.e_process(delta, se, reference=ref)
    for t in range(ref + 1, nights + 1):
        assert traj.log_e[t - 1] == pytest.approx(
            _brute_force_log_e(delta[:t], se[:t], ref, seq.DEFAULT_PRIOR_SCALE_POINTS),
            rel=1e-6, abs=1e-8)
    assert np.all(traj.log_e[:ref] == 0.0)  # M = 1 while only reference runs are in
    assert np.all((traj.change_point == 0) | (traj.change_point > ref))


def test_reference_runs_shrink_the_baseline_noise_by_their_number() -> None:
    """A drop since the first monitored night: its information after T nights is
    ``1 / (σ_b² / K + σ_n² / T)`` with K baseline runs (``s² = σ_b² + σ_n²``, half each)."""
    for k in (1, 2, 3, 5):
        for t in (1, 3, 7):
            traj = seq.e_process(np.zeros(k - 1 + t), np.ones(k - 1 + t), reference=k - 1)
            assert traj.information[-1] == pytest.approx(1.0 / (0.5 / k + 0.5 / t))


def test_correlated_and_one_factor_agree_with_reference_runs() -> None:
    rng = np.random.default_rng(3)
    delta, se = rng.normal(0, 1, 8), rng.uniform(0.8, 1.2, 8)
    corr = np.full((8, 8), 0.5) + 0.5 * np.eye(8)
    a = seq.e_process(delta, se, reference=3)
    b = seq.e_process(delta, se, correlation=corr, reference=3)
    assert np.allclose(a.log_e, b.log_e) and np.array_equal(a.change_point, b.change_point)


def _simulate(k: int, drop: float, sequences: int, nights: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Runs' metric around the item set's mean (σ = 1 point per run): the accepted run, k − 1
    reference runs, then ``nights`` nights (the last ones drifted by ``drop`` from night 1)."""
    rng = np.random.default_rng(seed)
    runs = rng.normal(0.0, 1.0, (sequences, k + nights))
    runs[:, k:] -= drop
    delta = runs[:, 1:] - runs[:, :1]
    se = np.full(delta.shape, math.sqrt(2.0)) * rng.uniform(0.95, 1.05, delta.shape)
    traj = seq.e_process(delta, se, reference=k - 1)
    return seq.alarms(traj, ALPHA, 0.0)[:, k - 1:], traj.log_e


@pytest.mark.parametrize("k", [1, 3, 6])
def test_false_alarms_stay_below_alpha_with_reference_runs(k: int) -> None:
    crossed, _ = _simulate(k, 0.0, 4000, 30, seed=10 + k)
    rate = float(crossed.any(axis=1).mean())
    assert rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / 4000)


def test_more_reference_runs_find_a_drop_from_the_first_night_sooner() -> None:
    caught = [float(_simulate(k, 3.0, 2000, 3, seed=99)[0].any(axis=1).mean())
              for k in (1, 3, 6)]
    assert caught[0] < caught[1] < caught[2]
    assert caught[1] - caught[0] > 0.2


def test_the_state_keeps_the_references_first() -> None:
    s = seq.new_state("j", "v", "run-0", "p")
    s, d = seq.update(s, seq.NightObservation("run-0", 0.4, 1.0, 1000, 1000, "r1",
                                              reference=True))
    assert (d.nights, d.reference_runs, d.crossed, d.mdc_points) == (0, 1, False, None)
    s, d = seq.update(s, seq.NightObservation("run-0", 0.0, 0.0, 1000, 1000, "r2",
                                              reference=True))  # no evidence: not counted
    assert d.reference_runs == 1 and s.skipped == 0
    s, d = seq.update(s, seq.NightObservation("run-0", -3.8, 1.0, 1000, 1000, "n1"))
    assert (d.nights, d.reference_runs) == (1, 1)
    assert d.change_point in (None, 1) and d.mdc_points is not None
    expected = seq.e_process([0.4, -3.8], [1.0, 1.0], reference=1).log_e[-1]
    assert s.log_e_value == pytest.approx(float(expected))
    assert seq.SequentialState.from_json(s.to_json()) == s
    old = s.to_json()
    del old["reference"]  # a state saved before replicated baselines
    assert seq.SequentialState.from_json(old).reference == 0
    with pytest.raises(ValueError, match="before the first monitored night"):
        seq.update(s, seq.NightObservation("run-0", 0.1, 1.0, 1000, 1000, "r3",
                                           reference=True))
    # A floor K times lower in variance: the mean of two runs.
    _, one = seq.update(seq.new_state("j", "v", "run-0", "p"),
                        seq.NightObservation("run-0", -3.8, 1.0, 1000, 1000, "n1"))
    assert d.mdc_floor_points is not None and one.mdc_floor_points is not None
    assert d.mdc_floor_points < one.mdc_floor_points


def test_nights_are_weighed_by_the_noise_of_the_reference_runs() -> None:
    from scipy.stats import chi2

    se = np.array([1.0, 1.4, 1.2, 1.4, 0.0, np.nan, 2.4])
    f = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.25])
    changed = np.array([30, 50, 44, 70, 0, np.nan, 20])
    out = seq.null_standard_errors(se, f, changed, 2)
    # The references' variance per whole set, inflated by the 80 % Poisson bound on the
    # 80 items they changed, scaled to each night's share; a night without evidence stays so.
    pooled = math.sqrt((1.0 + 1.4**2) / 2 * chi2.ppf(0.8, 162) / 160)
    assert out[:2].tolist() == [1.0, 1.4]
    assert out[2] == pytest.approx(pooled) and out[3] == pytest.approx(pooled)
    assert out[4] == 0.0 and np.isnan(out[5])
    assert out[6] == pytest.approx(pooled / 0.5)
    # Never surer than 0.9 of the night's own spread.
    assert seq.null_standard_errors([1.0, 6.0], 1.0, [30, 300], 1)[1] == pytest.approx(5.4)
    # Nights noisier than the references: once the earlier nights were, on average, beyond
    # pooled / 0.9, the references are no yardstick and a night keeps its own.
    noisy = seq.null_standard_errors([1.0, 1.5, 1.5, 1.5], 1.0, [40, 90, 90, 90], 1)
    assert noisy[1] == pytest.approx(1.35) and noisy[2:].tolist() == [1.5, 1.5]
    calm = seq.null_standard_errors([1.0, 1.1, 1.1, 1.1], 1.0, [40, 45, 45, 45], 1)
    assert calm[1:] == pytest.approx([math.sqrt(chi2.ppf(0.8, 82) / 80)] * 3)
    # Without references, or without their counts of changed items: the nights' own.
    assert seq.null_standard_errors(se, f, changed, 0).tolist()[:4] == se.tolist()[:4]
    assert seq.null_standard_errors([1.0, 1.6], 1.0, [np.nan, 70], 1).tolist() == [1.0, 1.6]
    # ... or when the references changed too few items to measure the noise by.
    assert seq.null_standard_errors([0.3, 0.5], 1.0, [9, 20], 1).tolist() == [0.3, 0.5]
    # A reference identical to the baseline (no evidence) is left out, as the state does.
    assert seq.null_standard_errors([0.0, 1.0, 1.2], 1.0, [0, 30, 70], 2)[2] == \
        pytest.approx(math.sqrt(chi2.ppf(0.8, 62) / 60))


def _item_runs(sequences: int, k: int, nights: int, drop_share: float, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item-level runs: 1,000 items, each agreeing with the humans or not; 7 % of them are
    coin flips every run, the rest fixed. A drifted night (from night 1) turns a share
    ``drop_share`` of its agreeing items into disagreements: agreement falls *and* the night
    disagrees with the baseline on more items. Returns Δ, its standard error (points) and the items
    changed, per comparison (k − 1 references, then the nights)."""
    rng = np.random.default_rng(seed)
    n = 1000
    fixed = rng.random((sequences, 1, n)) < 0.8
    unstable = rng.random((sequences, 1, n)) < 0.07
    runs = np.where(unstable, rng.random((sequences, k + nights, n)) < 0.5, fixed)
    lose = rng.random((sequences, nights, n)) < drop_share
    runs[:, k:] &= ~lose
    d = runs[:, 1:].astype(np.float64) - runs[:, :1]
    delta = 100.0 * d.mean(axis=-1)
    se = 100.0 * np.sqrt(((d - d.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)) / n
    return delta, se, np.count_nonzero(d, axis=-1).astype(np.float64)


def test_weighing_by_the_references_keeps_the_level_and_finds_a_drop_sooner() -> None:
    k = 3
    results = {}
    for share, seed in ((0.0, 5), (0.015, 6)):
        delta, se, changed = _item_runs(1500, k, 30 if share == 0 else 7, share, seed)
        for how, weights in (("own", se),
                             ("references", seq.null_standard_errors(se, 1.0, changed, k - 1))):
            crossed = seq.alarms(seq.e_process(delta, weights, reference=k - 1), ALPHA)
            results[(share, how)] = float(crossed[:, k - 1:].any(axis=1).mean())
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / 1500)
    assert results[(0.0, "references")] <= bound and results[(0.0, "own")] <= bound
    # A drop of about 1.2 points of agreement, present from the first night, within 7 nights.
    assert results[(0.015, "references")] > results[(0.015, "own")] + 0.04


# --------------------------------------------------------------------------- the check


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'replicated.db'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def llmbar() -> CalibrationSet:
    return load_set(SETS / "llmbar")


def _mark_reference(store: Store, run_id: str, baseline: str, index: int, of: int) -> None:
    run = store.get_run(run_id)
    summary = dict(run["summary"] or {}, reference_of={"baseline_run_id": baseline,
                                                       "index": index, "of": of})
    with store.engine.begin() as conn:
        conn.execute(update(schema.runs).where(schema.runs.c.run_id == run_id)
                     .values(summary=summary))


def test_reference_runs_are_checked_as_references_on_real_verdicts(
    store: Store, llmbar: CalibrationSet, tmp_path: Path
) -> None:
    nights = Nights(store, llmbar, tmp_path, seed=7)
    base = nights.baseline()
    for index in (1, 2):
        verdicts = nights.verdicts(0.0)
        run_id = nights.run(verdicts)
        _mark_reference(store, run_id, base, index, 2)
        check = drift.check_run(store, run_id, nights.settings, n_boot=N_BOOT)
        incidents.record_check(store, check)
        (entry,) = check.dimensions
        assert check.verdict == "healthy" and entry["reference"] is True
        assert check.message.startswith(f"reference run {index} of 2 of the replicated "
                                        f"baseline {base}")
        q = entry["sequential"]
        assert q["reference_runs"] == index and q["nights"] == 0 and not q["crossed"]
        changed = sum(1 for i, v in verdicts.items() if v is not None
                      and nights.baseline_verdicts[i] is not None
                      and v != nights.baseline_verdicts[i])
        assert changed > 0 and q["state"]["nights"][-1][6] == changed
    check, _ = nights.night()
    q = check.dimensions[0]["sequential"]
    assert (q["reference_runs"], q["nights"]) == (2, 1)
    # Tonight is weighed by the references' noise, not by its own spread.
    assert q["weighed_by"] == "the reference runs' noise"
    assert q["weighed_se_points"] == pytest.approx(float(seq.effective_se(
        [seq.Night.from_json(row) for row in q["state"]["nights"]], 2)[-1]))
    assert q["weighed_se_points"] != pytest.approx(q["se_points"])
    assert q["state"]["reference"] == 2 and len(q["state"]["nights"]) == 3
    # A reference after a monitored night is not added to the evidence.
    late = nights.run(nights.verdicts(0.0))
    _mark_reference(store, late, base, 3, 3)
    check = drift.check_run(store, late, nights.settings, n_boot=N_BOOT)
    incidents.record_check(store, check)
    assert check.verdict == "healthy"
    assert "after a monitored night" in check.dimensions[0]["sequential"]["skipped"]
    # ... and a reference of another baseline is a monitored night like any other.
    other = nights.run(nights.verdicts(0.0))
    _mark_reference(store, other, "some-other-run", 1, 2)
    check = drift.check_run(store, other, nights.settings, n_boot=N_BOOT)
    assert check.dimensions[0]["sequential"]["nights"] == 2


def test_without_reference_runs_a_night_is_weighed_by_its_own_spread(
    store: Store, llmbar: CalibrationSet, tmp_path: Path
) -> None:
    nights = Nights(store, llmbar, tmp_path, seed=8)
    nights.baseline()
    check, _ = nights.night()
    q = check.dimensions[0]["sequential"]
    assert q["reference_runs"] == 0 and q["weighed_by"] == "tonight's own spread"
    assert q["weighed_se_points"] == q["state"]["nights"][-1][1]


def test_the_nightly_job_replicates_the_baseline_over_http(tmp_path: Path) -> None:
    """Over real HTTP through the recorded judge: the night that becomes the baseline is
    followed by its reference runs in the same job; the next nights are monitored; a baseline
    accepted by hand gets its references at the start of the next job, before its night."""
    store = open_store(f"sqlite:///{tmp_path / 'http.db'}")
    try:
        with start_server(recordings={"gpt-4": "llmbar:GPT-4/Vanilla"}, sets_dir=SETS,
                          faults={"junk": 0.05, "rescore": 0.1}) as srv:
            # A judge that does not repeat itself: every replay (a new fault seed) leaves
            # other items without a verdict and re-scores others.
            seeds = itertools.count(1)

            def vary(_total: int, _done: int) -> None:
                srv.configure(seed=next(seeds))

            cfg = run_config(srv.url, store.url, judge_file="llmbar-gpt4-vanilla.yaml",
                             set_name="llmbar", run={"bootstrap": N_BOOT}, concurrency=32,
                             parse_retries=0)
            cfg = cfg.model_copy(update={"drift": DriftSettings(
                auto_baseline=True, bootstrap=N_BOOT, baseline_replicates=3)})
            cs = load_set(SETS / "llmbar")
            run_nightly = functools.partial(nightly.run_nightly, on_start=vary)
            first = run_nightly(cfg, store, cs)
            base = first.result.run_id
            assert first.watch.check["verdict"] == "baseline_accepted"
            refs = first.watch.references
            assert len(refs) == 2 and first.watch.to_json()["references"] == refs
            for index, run_id in enumerate(refs, start=1):
                run = store.get_run(run_id)
                assert run["status"] == "completed"
                assert run["summary"]["reference_of"] == {"baseline_run_id": base,
                                                          "index": index, "of": 2,
                                                          "identical": False}
                assert len(store.replies(run_id)) == len(store.replies(base))
                (check,) = drift.checks_for_run(store, run_id)
                assert check["verdict"] == "healthy" and check["baseline_run_id"] == base
                assert check["record"]["message"].startswith(f"reference run {index} of 2")
            # Killed after closing the last reference run, before its check: the next job
            # checks it and still replays its own night.
            with store.engine.begin() as conn:
                conn.execute(schema.drift_checks.delete().where(
                    schema.drift_checks.c.run_id == refs[-1]))
            second = run_nightly(cfg, store, cs)
            assert second.result.run_id not in [base, *refs] and second.result.requested > 0
            # Tonight is weighed against the three runs, and its message says so.
            (entry,) = second.watch.check["dimensions"]
            assert entry["sequential"]["reference_runs"] == 2
            assert entry["sequential"]["weighed_by"] == "the reference runs' noise"
            assert ("Evidence across 1 night against this baseline and its 2 reference runs"
                    in second.watch.check["message"])
            assert drift.checks_for_run(store, refs[-1])[0]["verdict"] == "healthy"
            assert second.kind == "healthy" and second.watch.references == []
            assert "reference_of" not in store.get_run(second.result.run_id)["summary"]
            # A baseline accepted by hand: the next job takes its references first.
            drift.accept_baseline(store, second.result.run_id, actor="test", reason="new")
            third = run_nightly(cfg, store, cs)
            assert third.watch.check["baseline_run_id"] == second.result.run_id
            taken = [r for r in store.list_runs(cfg.judge.name, limit=20)
                     if drift.reference_of(r, second.result.run_id)]
            assert len(taken) == 2
            assert sorted(third.watch.references) == sorted(r["run_id"] for r in taken)
            assert all(r["finished_at"] < store.get_run(third.result.run_id)["finished_at"]
                       for r in taken)
            assert run_nightly(cfg, store, cs).watch.references == []
            assert len(store.list_runs(cfg.judge.name, limit=20)) == 3 + 1 + 2 + 1 + 1
    finally:
        store.close()


def test_judgecal_run_says_which_reference_runs_it_took(
    recorded: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url, url, limit=60, min_items=10)
    cfg.write_text(cfg.read_text() + "drift:\n  auto_baseline: true\n  bootstrap: 100\n"
                   "  baseline_replicates: 2\n")
    code, out, err = run_main(["run", "--config", str(cfg), "--verbose"], capsys)
    assert code == 0, err
    store = open_store(url)
    try:
        (ref,) = [r for r in store.list_runs(limit=10) if r["summary"].get("reference_of")]
    finally:
        store.close()
    assert "baseline_accepted" in out
    assert (f"replicated baseline: 1 reference run(s) of the whole set taken ({ref['run_id']});"
            in out)
    base = ref["summary"]["reference_of"]["baseline_run_id"]
    code, out, err = run_main(["--store", url, "runs", "show", ref["run_id"]], capsys)
    assert code == 0, err
    assert (f"reference  run 1 of 1 of the replicated baseline {base} (gave exactly the "
            "baseline's verdicts)") in out
    code, out, err = run_main(["--store", url, "runs", "show", base], capsys)
    assert code == 0 and "reference " not in out
    code, out, err = run_main(["--store", url, "runs", "list", "--json"], capsys)
    listed = {r["run_id"]: r["reference_of"] for r in json.loads(out)}
    assert listed == {base: None, ref["run_id"]: ref["summary"]["reference_of"]}
    code, out, err = run_main(["run", "--config", str(cfg), "--verbose"], capsys)
    assert code == 0, err
    assert "healthy" in out and "replicated baseline" not in out


def test_a_judge_that_repeats_itself_gets_one_reference_run(tmp_path: Path) -> None:
    """A deterministic endpoint (the recorded judge as it is): the first reference run gives
    exactly the baseline's verdicts, so the replication stops there, for good."""
    store = open_store(f"sqlite:///{tmp_path / 'same.db'}")
    try:
        with start_server(recordings={"gpt-4": "llmbar:GPT-4/Vanilla"}, sets_dir=SETS) as srv:
            cfg = run_config(srv.url, store.url, judge_file="llmbar-gpt4-vanilla.yaml",
                             set_name="llmbar", run={"bootstrap": N_BOOT}, concurrency=32)
            cfg = cfg.model_copy(update={"drift": DriftSettings(
                auto_baseline=True, bootstrap=N_BOOT, baseline_replicates=5)})
            cs = load_set(SETS / "llmbar")
            first = nightly.run_nightly(cfg, store, cs)
            (ref,) = first.watch.references
            assert store.get_run(ref)["summary"]["reference_of"] == {
                "baseline_run_id": first.result.run_id, "index": 1, "of": 4,
                "identical": True}
            second = nightly.run_nightly(cfg, store, cs)
            assert second.watch.references == [] and second.kind == "healthy"
            (entry,) = second.watch.check["dimensions"]
            assert entry["sequential"]["skipped"].startswith("identical verdicts")
            # Nothing more on the next jobs: 1 baseline + 1 reference + 2 nights.
            assert nightly.run_nightly(cfg, store, cs).watch.references == []
            assert len(store.list_runs(cfg.judge.name, limit=20)) == 4
    finally:
        store.close()


def _priced(base_url: str, store_url: str, budget: float | None, replicates: int
            ) -> RunConfig:
    cfg = run_config(base_url, store_url, concurrency=16, run={"limit": 200, "bootstrap": 100})
    data = cfg.model_dump()
    data["judge"] = cfg.judge
    data["cost"] = {"prices": {"gpt-3.5-turbo": {"prompt_per_million": 0.5,
                                                 "completion_per_million": 1.5}},
                    "budget_per_night": budget}
    data["drift"] = {"auto_baseline": True, "bootstrap": 100,
                     "baseline_replicates": replicates}
    return RunConfig.model_validate(data)


def _cost(store: Store, run_id: str) -> float:
    return float(store.get_run(run_id)["summary"]["cost"]["total"])


@pytest.mark.parametrize("roomy", [False, True])
def test_reference_runs_share_the_nights_budget(
    recorded: RunningServer, pandalm_set: CalibrationSet, tmp_path: Path, roomy: bool
) -> None:
    """With cost.budget_per_night the reference runs are part of the night: one is taken
    only when the night can pay for it (and, before tonight's run, for that run too), so
    the night never passes its budget and tonight's own run is never starved."""
    probe = open_store(f"sqlite:///{tmp_path / 'probe.db'}")
    try:
        run_id = nightly.run_nightly(_priced(recorded.url, probe.url, None, 1), probe,
                                     pandalm_set).result.run_id
        whole = _cost(probe, run_id)
        longest = max(r["prompt_tokens"] for r in probe.replies(run_id))
    finally:
        probe.close()
    # What a lone run needs: its cost, plus its gate's worst case for the 16 requests in
    # flight at the end (prompt counted twice over, max_tokens 256, 3 requests per reply).
    alone = whole + 16 * 3 * (2 * longest * 0.5 + 256 * 1.5) / 1e6
    budget = alone * (50 if roomy else 1)
    store = open_store(f"sqlite:///{tmp_path / 'night.db'}")
    try:
        cfg = _priced(recorded.url, store.url, budget, 3)
        first = nightly.run_nightly(cfg, store, pandalm_set)
        assert first.result.status == "completed", first.result.summary.get("stopped_because")
        night = [first.result.run_id, *first.watch.references]
        assert sum(_cost(store, r) for r in night) <= budget
        if roomy:  # one reference (the recorded judge repeats itself: no second one)
            assert len(first.watch.references) == 1 and first.watch.references_note is None
        else:  # the baseline night cannot pay for a second whole replay
            assert first.watch.references == []
            assert "2 of the 2 reference run(s) not taken" in first.watch.references_note
        # A baseline accepted by hand: the next night keeps room for its own run.
        second = nightly.run_nightly(cfg, store, pandalm_set)
        assert second.watch.references == []
        drift.accept_baseline(store, second.result.run_id, actor="test", reason="again")
        third = nightly.run_nightly(cfg, store, pandalm_set)
        assert third.result.status == "completed"
        night = [third.result.run_id, *third.watch.references]
        assert sum(_cost(store, r) for r in night) <= budget
        assert len(third.watch.references) == (1 if roomy else 0)
        if not roomy:
            assert "paid twice with tonight's own run" in third.watch.references_note
    finally:
        store.close()


def test_a_reference_run_unlike_its_baseline_is_checked_as_a_night(tmp_path: Path) -> None:
    """The judge changes behind the same name between the baseline run and its reference
    run: the reference is not averaged into the baseline (nor declared healthy); it is
    checked as a night, flagged, and the replication ends."""
    store = open_store(f"sqlite:///{tmp_path / 'unlike.db'}")
    try:
        with start_server(recordings={"gpt-4": "llmbar:GPT-4/Vanilla"}, sets_dir=SETS) as srv:
            starts = itertools.count()

            def swap_after_the_baseline(_total: int, _done: int) -> None:
                if next(starts) == 1:
                    srv.configure(recordings={"gpt-4": "llmbar:ChatGPT/Vanilla"})

            cfg = run_config(srv.url, store.url, judge_file="llmbar-gpt4-vanilla.yaml",
                             set_name="llmbar", run={"bootstrap": N_BOOT}, concurrency=32)
            cfg = cfg.model_copy(update={"drift": DriftSettings(
                auto_baseline=True, bootstrap=N_BOOT, baseline_replicates=3)})
            cs = load_set(SETS / "llmbar")
            first = nightly.run_nightly(cfg, store, cs, on_start=swap_after_the_baseline)
            (ref,) = first.watch.references
            (check,) = drift.checks_for_run(store, ref)
            assert check["verdict"] == "incident"
            assert "was to be a reference run" in check["record"]["message"]
            assert not any(d.get("reference") for d in check["record"]["dimensions"])
            assert first.watch.references_note.startswith("the reference run did not reproduce")
            second = nightly.run_nightly(cfg, store, cs)
            assert second.watch.references == [] and second.watch.references_note is None
    finally:
        store.close()


def test_no_reference_for_an_old_baseline_or_another_configuration(tmp_path: Path) -> None:
    """A baseline accepted by hand long after its run (a rollback), or a judge configured
    differently since: a replay now would not repeat the baseline, so none is taken."""
    store = open_store(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with start_server(recordings={"gpt-4": "llmbar:GPT-4/Vanilla"}, sets_dir=SETS) as srv:
            cfg = run_config(srv.url, store.url, judge_file="llmbar-gpt4-vanilla.yaml",
                             set_name="llmbar", run={"bootstrap": N_BOOT, "limit": 120},
                             concurrency=32)
            single = cfg.model_copy(update={"drift": DriftSettings(
                auto_baseline=True, bootstrap=N_BOOT)})
            cs = load_set(SETS / "llmbar")
            old = nightly.run_nightly(single, store, cs).result.run_id
            with store.engine.begin() as conn:
                conn.execute(update(schema.runs).where(schema.runs.c.run_id == old)
                             .values(finished_at="2026-01-01T00:00:00Z"))
            replicated = cfg.model_copy(update={"drift": DriftSettings(
                auto_baseline=True, bootstrap=N_BOOT, baseline_replicates=3)})
            night = nightly.run_nightly(replicated, store, cs)
            assert night.watch.references == []
            assert "hours old" in night.watch.references_note
            # A fresh baseline, but the judge's decoding changed since.
            drift.accept_baseline(store, night.result.run_id, actor="test", reason="fresh")
            hotter = replicated.model_copy(update={"judge": replicated.judge.model_copy(
                update={"decoding": replicated.judge.decoding.model_copy(
                    update={"temperature": 0.7})})})
            changed = nightly.run_nightly(hotter, store, cs)
            assert changed.watch.references == []
            assert "configuration is not the baseline run's" in changed.watch.references_note
            runs = store.list_runs(cfg.judge.name, limit=10)
            assert not any(drift.reference_of(r, r2["run_id"]) for r in runs for r2 in runs)
    finally:
        store.close()


def test_reference_runs_without_the_sequential_test_are_refused() -> None:
    with pytest.raises(ValidationError, match="needs sequential: true"):
        DriftSettings(sequential=False, baseline_replicates=3)
    assert DriftSettings(sequential=False, baseline_replicates=1).baseline_replicates == 1


def test_references_that_share_the_baselines_luck_raise_false_alarms() -> None:
    """What docs/drift.md states about correlated reference runs, checked with the benchmark's
    own simulation: independent references keep the level, strongly correlated ones do not."""
    from benchmarks.bench_reference_correlation import ALPHA, false_alarm_rate

    rng = np.random.default_rng(11)
    independent = false_alarm_rate(3, 0.0, 3000, rng)
    shared = false_alarm_rate(5, 0.95, 3000, rng)
    assert independent <= ALPHA
    assert shared > ALPHA and shared > 4 * independent


def test_runs_show_prints_a_reference_record_only_in_the_shape_judgecal_writes() -> None:
    from judgecal.cli.runs import _reference_line

    good = {"baseline_run_id": "r1", "index": 1, "of": 2, "identical": False}
    assert _reference_line({"reference_of": good}) == [
        "reference  run 1 of 2 of the replicated baseline r1"]
    assert _reference_line({}) == [] and _reference_line({"reference_of": "x"}) == []
    # An edited record: a truthy string is not "identical", a line break is not printed.
    assert "exactly" not in _reference_line({"reference_of": good | {"identical": "no"}})[0]
    forged = good | {"baseline_run_id": "r1\nstatus     completed"}
    assert _reference_line({"reference_of": forged}) == [
        "reference  a reference run (its record is not readable)"]
    assert _reference_line({"reference_of": good | {"index": "1"}})[0].endswith(
        "(its record is not readable)")
