"""The anytime-valid sequential drift test (judgecal.stats.sequential): the mixture against
confseq's values and a brute-force likelihood ratio, validity under the null with the nights
sharing one baseline, power, change point, reset, skipped nights and the JSON state."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from judgecal.stats import sequential as seq
from judgecal.stats.sequential import (
    NightObservation,
    SequentialState,
    change_prior,
    e_process,
    log_normal_mixture,
    minimum_detectable_drop,
    new_state,
    normal_mixture_boundary,
    reset,
    update,
)

ALPHA = 0.03
LOG_THRESHOLD = math.log(1 / ALPHA)

# confseq 0.0.11 (Howard, Waudby-Smith and Ramdas), built from its source archive against
# Boost 1.74 on Python 3.11 (its release does not install there as is):
#   boundaries.normal_log_mixture(s, v, v_opt, alpha_opt=0.05, is_one_sided=True)
#   boundaries.normal_mixture_bound(v, alpha, v_opt, alpha_opt=0.05, is_one_sided=True)
# with v_opt chosen so that its rho, v_opt / (2 L + log(1 + 2 L)), L = log(1 / (2 alpha_opt)),
# equals 1 / prior_scale**2.
CONFSEQ_ALPHA_OPT = 0.05
CONFSEQ_LOG_MIXTURE = {
    4.0: [((0.0, 0.5), -1.0986122886681096), ((1.5, 0.7), 0.8739738718707212),
          ((3.0, 1.0), 3.5100283223259234), ((-2.0, 2.5), -2.6297224653694258),
          ((6.0, 3.0), 4.624484622459917), ((0.3, 10.0), -2.463587475609299)],
    2.0: [((0.0, 0.5), -0.5493061443340549), ((1.5, 0.7), 1.145951932436461),
          ((3.0, 1.0), 3.484776385442823), ((-2.0, 2.5), -1.9509621634860796),
          ((6.0, 3.0), 4.948696901153674), ((0.3, 10.0), -1.7803952613927927)],
}
CONFSEQ_BOUND = {
    4.0: [((0.5, 0.03), 2.098552206191016), ((1.24, 0.015), 3.618300077110544),
          ((5.0, 0.001), 9.22876012778488)],
    2.0: [((0.5, 0.03), 2.2474836823585065), ((1.24, 0.015), 3.6212962204943326),
          ((5.0, 0.001), 9.013188505400649)],
}


def _confseq_v_opt(prior_scale: float) -> float:
    big_l = math.log(1 / (2 * CONFSEQ_ALPHA_OPT))
    return (2 * big_l + math.log(1 + 2 * big_l)) / prior_scale**2


# --------------------------------------------------------------------------- the mathematics


@pytest.mark.parametrize("scale", [4.0, 2.0])
def test_log_mixture_equals_confseq(scale: float) -> None:
    assert _confseq_v_opt(scale) > 0
    for (s, v), expected in CONFSEQ_LOG_MIXTURE[scale]:
        assert float(log_normal_mixture(s, v, scale)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("scale", [4.0, 2.0])
def test_boundary_equals_confseq(scale: float) -> None:
    for (v, alpha), expected in CONFSEQ_BOUND[scale]:
        got = normal_mixture_boundary(v, alpha, prior_scale_points=scale)
        # confseq bisects to 2**-40; ours to 1e-12 relative.
        assert got == pytest.approx(expected, abs=1e-9)


def test_log_mixture_is_the_half_normal_integral() -> None:
    from scipy.integrate import quad

    scale = 4.0
    rho = 1 / scale**2
    for u, v in [(1.3, 2.0), (-0.5, 0.4), (2.5, 0.1)]:
        integral = quad(lambda d, u=u, v=v: math.exp(d * u - d * d * v / 2) * 2
                        * math.sqrt(rho / (2 * math.pi)) * math.exp(-rho * d * d / 2),
                        0, np.inf)[0]
        assert float(log_normal_mixture(u, v, scale)) == pytest.approx(math.log(integral),
                                                                       abs=1e-9)
    assert float(log_normal_mixture(0.0, 0.0, scale)) == 0.0


def test_change_prior_sums_to_one() -> None:
    taus = np.arange(1, 100_001)
    assert float(change_prior(taus).sum()) == pytest.approx(1 - 1 / 100_001)
    assert float(change_prior(np.array(1))) == 0.5


def test_e_process_equals_brute_force_likelihood_ratio() -> None:
    """Σ_τ π_τ ∫ LR(δ, τ) dF(δ) with the covariance inverted explicitly."""
    rng = np.random.default_rng(3)
    nights = 7
    delta = rng.normal(-1.0, 1.5, nights)
    se = rng.uniform(0.7, 2.5, nights)
    frac = rng.choice([1.0, 0.25, 0.6], nights)
    traj = e_process(delta, se, frac)
    z, a, g = delta / se, 1 / se, np.sqrt(frac / 2)
    for t in range(1, nights + 1):
        sigma = np.diag(1 - g[:t] ** 2) + np.outer(g[:t], g[:t])
        inv = np.linalg.inv(sigma)
        total = 1 / (t + 1)
        for tau in range(1, t + 1):
            m = a[:t] * (np.arange(1, t + 1) >= tau)
            u, v = -(m @ inv @ z[:t]), m @ inv @ m
            total += float(change_prior(np.array(tau))) * math.exp(
                float(log_normal_mixture(u, v, seq.DEFAULT_PRIOR_SCALE_POINTS)))
            if tau == 1:
                assert traj.score[t - 1] == pytest.approx(u, rel=1e-10)
                assert traj.information[t - 1] == pytest.approx(v, rel=1e-10)
        assert traj.log_e[t - 1] == pytest.approx(math.log(total), abs=1e-10)


def test_e_process_vectorises_over_sequences() -> None:
    rng = np.random.default_rng(4)
    delta, se = rng.normal(0, 1, (3, 2, 9)), rng.uniform(0.5, 2, (3, 2, 9))
    batch = e_process(delta, se, 0.25)
    one = e_process(delta[2, 1], se[2, 1], 0.25)
    np.testing.assert_allclose(batch.log_e[2, 1], one.log_e, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(batch.change_point[2, 1], one.change_point)


def test_e_process_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        e_process([1.0, 2.0], [1.0])


# --------------------------------------------------------------------------- validity


def _replays(rng: np.random.Generator, sequences: int, nights: int, items: int,
             sample: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nightly replays of a noisy judge against one noisy baseline, no drift.

    Each item is answered correctly with its own probability (85 % of the items are stable:
    always right or always wrong; the rest are coin flips of various bias). The baseline is
    one draw like any night, so every night shares its luck. Δ is the change of accuracy
    (points) on the items replayed tonight and SE its paired standard error; with
    ``sample`` each night replays a random share of the items.
    """
    unstable = rng.random(items) < 0.15
    p = np.where(unstable, rng.uniform(0.2, 0.8, items),
                 (rng.random(items) < 0.8).astype(float)).astype(np.float32)
    base = rng.random((sequences, 1, items), dtype=np.float32) < p
    runs = rng.random((sequences, nights, items), dtype=np.float32) < p
    up, down = runs & ~base, ~runs & base
    if sample is None:
        k = np.full((sequences, nights), items)
        n_up, n_down = up.sum(-1), down.sum(-1)
    else:
        mask = rng.random((sequences, nights, items), dtype=np.float32) < sample
        k = mask.sum(-1)
        n_up, n_down = (up & mask).sum(-1), (down & mask).sum(-1)
    mean = (n_up - n_down) / k
    var = ((n_up + n_down) / k - mean**2) * k / (k - 1)
    return 100 * mean, 100 * np.sqrt(var / k), k / items


@pytest.mark.parametrize("sample", [None, 0.25])
def test_false_alarms_under_the_null_with_a_shared_baseline(sample: float | None) -> None:
    """30 healthy nights against one noisy baseline: ≤ α with margin; the naive e-process
    (nights treated as independent) is fooled by lucky baselines."""
    rng = np.random.default_rng(20 if sample is None else 21)
    delta, se, frac = _replays(rng, 1000, 30, 240, sample)
    crossed = (e_process(delta, se, frac).log_e >= LOG_THRESHOLD).any(-1).mean()
    naive = (e_process(delta, se, frac, shared_baseline=False).log_e
             >= LOG_THRESHOLD).any(-1).mean()
    # Wilson 95 % upper bound of 0.015 with 1,000 sequences is 0.025 < α.
    assert crossed <= 0.015
    assert naive >= 2 * ALPHA


def test_false_alarms_under_the_gaussian_model() -> None:
    """The model itself, full nights: ``Z_t = g ξ + √(1 − g²) ε_t`` with ``g² = 1/2``."""
    rng = np.random.default_rng(5)
    sequences, nights = 2000, 30
    xi = rng.standard_normal((sequences, 1))
    z = math.sqrt(0.5) * xi + math.sqrt(0.5) * rng.standard_normal((sequences, nights))
    se = rng.uniform(0.9, 1.5, (sequences, nights))
    crossed = (e_process(z * se, se, 1.0).log_e >= LOG_THRESHOLD).any(-1).mean()
    assert crossed <= ALPHA * 0.75


# --------------------------------------------------------------------------- power, change point


def test_power_for_a_clear_drop() -> None:
    """A 6-point drop from the first night with a per-night SE of 1.2 points (a 1,000-item
    set): caught within 3 nights almost always."""
    rng = np.random.default_rng(6)
    sequences, nights = 1000, 3
    noise = math.sqrt(0.5) * rng.standard_normal((sequences, 1)) + math.sqrt(
        0.5) * rng.standard_normal((sequences, nights))
    se = np.full((sequences, nights), 1.2)
    delta = -6.0 + noise * se
    caught = seq.alarms(e_process(delta, se), ALPHA).any(-1).mean()
    assert caught >= 0.95


def test_change_point_of_a_clean_step() -> None:
    state = new_state("j", "v", "b0", "preference", alpha=ALPHA)
    for t in range(1, 15):
        obs = NightObservation("b0", 0.0 if t < 9 else -5.0, 1.0, 1000, 1000, f"r{t}")
        state, decision = update(state, obs)
    assert decision.crossed and decision.crossed_at is not None and decision.crossed_at >= 9
    assert decision.change_point == 9
    assert decision.change_point_run_id == "r9"
    assert decision.drop_points == pytest.approx(5.0, rel=0.2)


def test_change_point_within_one_night_with_noise() -> None:
    rng = np.random.default_rng(7)
    sequences, nights, onset = 400, 20, 9
    noise = math.sqrt(0.5) * rng.standard_normal((sequences, 1)) + math.sqrt(
        0.5) * rng.standard_normal((sequences, nights))
    se = np.full((sequences, nights), 1.0)
    delta = noise - 5.0 * (np.arange(1, nights + 1) >= onset)
    traj = e_process(delta, se)
    crossed = seq.alarms(traj, ALPHA)
    first = np.argmax(crossed, axis=-1)
    hit = crossed.any(-1) & (first + 1 >= onset)
    estimate = traj.change_point[np.arange(sequences), first][hit]
    assert hit.mean() >= 0.95
    assert np.mean(np.abs(estimate - onset) <= 1) >= 0.9


def test_minimum_detectable_drop_is_what_it_says() -> None:
    """A drop equal to the MDC after 5 nights is caught by then at least 80 % of the time
    (the MDC uses the first change point only, so it is conservative), and it shrinks
    towards the floor as nights are added."""
    se, nights = 1.2, 5
    info = float(e_process(np.zeros(nights), np.full(nights, se)).information[-1])
    mdc = minimum_detectable_drop(info, ALPHA)
    assert mdc is not None
    rng = np.random.default_rng(8)
    noise = math.sqrt(0.5) * rng.standard_normal((2000, 1)) + math.sqrt(
        0.5) * rng.standard_normal((2000, nights))
    caught = (e_process(-mdc + noise * se, np.full((2000, nights), se)).log_e
              >= LOG_THRESHOLD).any(-1).mean()
    assert 0.8 <= caught <= 0.97
    state = new_state("j", "v", "b", "d", alpha=ALPHA)
    mdcs = []
    for t in range(12):
        state, decision = update(state, NightObservation("b", 0.0, se, 1000, 1000, str(t)))
        assert decision.mdc_points is not None and decision.mdc_floor_points is not None
        mdcs.append(decision.mdc_points)
        assert decision.mdc_points >= decision.mdc_floor_points
    assert mdcs == sorted(mdcs, reverse=True)
    assert mdcs[4] == pytest.approx(mdc)
    # The floor: information 1/σ_b², σ_b² = SE² / 2 on full nights.
    assert decision.mdc_floor_points == pytest.approx(minimum_detectable_drop(2 / se**2, ALPHA))
    assert minimum_detectable_drop(0.0, ALPHA) is None


# --------------------------------------------------------------------------- the state machine


def test_update_equals_the_vectorised_e_process() -> None:
    rng = np.random.default_rng(9)
    delta, se = rng.normal(-1, 1.5, 12), rng.uniform(0.8, 2.0, 12)
    items = rng.choice([1000, 250], 12)
    traj = e_process(delta, se, items / 1000)
    state = new_state("j", "v", "b", "d")
    for t in range(12):
        state, decision = update(state, NightObservation("b", float(delta[t]), float(se[t]),
                                                         int(items[t]), 1000, str(t)))
        assert state.log_e_value == pytest.approx(float(traj.log_e[t]), abs=1e-12)
        assert decision.e_value == pytest.approx(math.exp(traj.log_e[t]))
        expected_cp = int(traj.change_point[t])
        assert decision.change_point == (expected_cp or None)


def test_state_round_trips_through_json() -> None:
    state = new_state("judge-a", "sha256:abc", "run-0", "helpfulness", alpha=0.01,
                      prior_scale_points=3.0, min_drop_points=2.0)
    for t, d in enumerate([0.4, -2.0, None, -6.5, -7.0], 1):
        state, decision = update(state, NightObservation("run-0", d, 1.1, 980, 1000,
                                                         f"run-{t}"))
    text = json.dumps(state.to_json(), allow_nan=False)
    again = SequentialState.from_json(json.loads(text))
    assert again == state
    assert again.skipped == 1 and len(again.nights) == 4
    json.dumps(decision.to_json(), allow_nan=False)
    # Updating the restored state gives the same as updating the original.
    obs = NightObservation("run-0", -3.0, 1.2, 1000, 1000, "run-6")
    assert update(again, obs) == update(state, obs)
    with pytest.raises(ValueError):
        SequentialState.from_json({**state.to_json(), "version": 99})


def test_reset_on_a_newly_accepted_baseline() -> None:
    state = new_state("j", "v1", "base-1", "preference", alpha=ALPHA)
    for t in range(4):
        state, decision = update(state, NightObservation("base-1", -8.0, 1.0, 1000, 1000,
                                                         str(t)))
    assert decision.crossed and not decision.reset
    state, decision = update(state, NightObservation("base-2", 0.3, 1.0, 1000, 1000, "n"))
    assert decision.reset and not decision.crossed and decision.nights == 1
    assert state.baseline_run_id == "base-2" and state.crossed_at is None
    assert (state.judge_name, state.set_version, state.dimension, state.alpha) == (
        "j", "v1", "preference", ALPHA)
    fresh = reset(state, "base-3")
    assert fresh.nights == () and fresh.log_e_value == 0.0 and fresh.baseline_run_id == "base-3"


def test_stays_crossed_until_the_next_baseline() -> None:
    state = new_state("j", "v", "b", "d", alpha=ALPHA)
    state, first = update(state, NightObservation("b", -9.0, 1.0, 1000, 1000, "r1"))
    assert first.crossed and first.newly_crossed and first.crossed_at == 1
    for t in range(2, 6):
        state, later = update(state, NightObservation("b", 2.0, 1.0, 1000, 1000, f"r{t}"))
        assert later.crossed and not later.newly_crossed and later.crossed_at == 1


def test_a_tiny_drop_is_evidence_but_no_alarm() -> None:
    """A near-deterministic judge: nights differ from the baseline on one or two items, so
    the SE is tiny and a systematic 0.4-point drop after five nights piles up evidence. Like
    the nightly rule (a real move under 1 point is a notice), the test does not alarm."""
    state = new_state("j", "v", "b", "d", alpha=ALPHA)
    for t in range(1, 13):
        delta = 0.0 if t <= 5 else -0.4
        state, decision = update(state, NightObservation("b", delta, 0.2, 1000, 1000, str(t)))
    assert decision.e_value >= decision.threshold and decision.change_point == 6
    assert not decision.crossed and state.crossed_at is None
    assert decision.drop_points == pytest.approx(0.4)
    assert any("no alarm" in note for note in decision.notes)
    loose = new_state("j", "v", "b", "d", alpha=ALPHA, min_drop_points=0.0)
    for t in range(1, 13):
        delta = 0.0 if t <= 5 else -0.4
        loose, decision = update(loose, NightObservation("b", delta, 0.2, 1000, 1000, str(t)))
    assert decision.crossed and loose.crossed_at == 10


def test_nights_without_evidence_are_skipped() -> None:
    state = new_state("j", "v", "b", "d")
    same, decision = update(state, NightObservation("b", 0.0, 0.0, 1000, 1000, "r1"))
    assert decision.skipped is not None and "identical" in decision.skipped
    assert same.nights == () and same.skipped == 1 and not decision.crossed
    assert decision.mdc_points is None
    _, decision = update(same, NightObservation("b", None, None, 1000, 1000, "r2"))
    assert decision.skipped is not None
    _, decision = update(same, NightObservation("b", 1.0, math.nan, 1000, 1000, "r3"))
    assert decision.skipped is not None
    with pytest.raises(ValueError):
        update(same, NightObservation("b", 1.0, -1.0, 1000, 1000, "r4"))


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        new_state("j", "v", "b", "d", alpha=1.5)
    with pytest.raises(ValueError):
        new_state("j", "v", "b", "d", prior_scale_points=0.0)
    with pytest.raises(ValueError):
        new_state("j", "v", "b", "d", min_drop_points=-1.0)


def test_docstring_examples() -> None:
    from judgecal.stats.sequential import _mixture, _state

    attempted = failed = 0
    for module in (seq, _mixture, _state):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        attempted, failed = attempted + result.attempted, failed + result.failed
    assert attempted > 0
    assert failed == 0
