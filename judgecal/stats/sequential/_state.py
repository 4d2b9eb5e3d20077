"""The sequential test night by night: a small JSON-serialisable state per (judge, set
version, baseline, dimension) and a pure ``update`` (see :mod:`judgecal.stats.sequential`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from judgecal.stats.sequential._mixture import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_DROP_POINTS,
    DEFAULT_PRIOR_SCALE_POINTS,
    STATE_VERSION,
    Trajectory,
    alarms,
    e_process,
    minimum_detectable_drop,
    null_standard_errors,
)


@dataclass(frozen=True)
class NightObservation:
    """One night's paired comparison of a dimension with the accepted baseline."""

    baseline_run_id: str
    """The baseline tonight was compared with (another one resets the state)."""
    delta_points: float | None
    """Tonight minus baseline on the primary metric, in points (None: undefined)."""
    se_points: float | None
    """Paired bootstrap standard error of ``delta_points`` (e.g. the half-width of the central
    68.3 % percentile interval, as the drift rule reads it)."""
    n_items: int
    """Items both runs scored (compared tonight)."""
    n_baseline_items: int
    """Items the baseline scored: ``n_items / n_baseline_items`` is 1 on a full replay."""
    run_id: str | None = None
    cover: dict[str, Any] | None = None
    """Which part of the set tonight's comparison covered, when not the whole set (a sampled
    night's block, or the rest of an expanded night): ``{"key": permutation key, "n":
    items permuted, "spans": [[start, end], ...]}``, positions in the seeded permutation of
    the item ids (:mod:`judgecal.drift.sampling`). None: the whole set (or a random subset
    of it)."""
    reference: bool = False
    """A *reference run* of a replicated baseline (another healthy run taken when the
    baseline was accepted, compared with it): it sharpens the reference, and no drop may
    begin on it. Only before the first monitored night."""
    changed: int | None = None
    """Items whose score differs between tonight and the baseline (among those compared,
    with a human consensus; anything but an integer from 0 to ``n_items`` is taken as
    not counted);
    on reference runs it sizes the trust put in their noise (:func:`null_standard_errors`).
    None: not counted."""


@dataclass(frozen=True)
class Night:
    """A night kept in the state (JSON: ``[delta, se, n_items, n_baseline_items, run_id]``,
    then the cover (or null) when there is one or a count of changed items, then that
    count when there is one)."""

    delta_points: float
    se_points: float
    n_items: int
    n_baseline_items: int
    run_id: str | None = None
    cover: dict[str, Any] | None = None
    changed: int | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.n_items / self.n_baseline_items) if self.n_baseline_items else 1.0

    def to_json(self) -> list[Any]:
        row = [self.delta_points, self.se_points, self.n_items, self.n_baseline_items,
               self.run_id]
        if self.changed is not None:
            return [*row, self.cover, self.changed]
        return row if self.cover is None else [*row, self.cover]

    @classmethod
    def from_json(cls, row: Any) -> Night:
        """The night back from :meth:`to_json`; ValueError on anything it could not have
        written (a saved state is checked before it is carried on)."""
        if not isinstance(row, list) or not 5 <= len(row) <= 7:
            raise ValueError(f"a night must be a list of 5 to 7 values, got {row!r:.80}")
        n_items = _integer(row[2], "a night's n_items", 1)
        run_id = row[4]
        if run_id is not None and not isinstance(run_id, str):
            raise ValueError(f"a night's run id must be a string, got {run_id!r:.80}")
        cover = _cover(row[5]) if len(row) > 5 and row[5] is not None else None
        changed = (_integer(row[6], "a night's changed items", 0, n_items)
                   if len(row) > 6 and row[6] is not None else None)
        return cls(_number(row[0], "a night's delta_points"),
                   _number(row[1], "a night's se_points", positive=True), n_items,
                   _integer(row[3], "a night's n_baseline_items", 1), run_id, cover, changed)


def _number(value: Any, what: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or (positive and not value > 0):
        raise ValueError(f"{what} must be a finite{' positive' if positive else ''} number, "
                         f"got {value!r:.80}")
    return float(value)


def _integer(value: Any, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low \
            or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"{what} must be an integer {bounds}, got {value!r:.80}")
    return value


def _cover(value: Any) -> dict[str, Any]:
    """A night's cover, checked: ``{"key": str, "n": int, "spans": [[start, end], ...]}``."""
    if not isinstance(value, dict) or not isinstance(value.get("key"), str) \
            or not isinstance(value.get("spans"), list):
        raise ValueError(f"a night's cover must be {{key, n, spans}}, got {value!r:.80}")
    n = _integer(value.get("n"), "a cover's n", 1)
    for span in value["spans"]:
        if not isinstance(span, list) or len(span) != 2:
            raise ValueError(f"a cover's span must be [start, end], got {span!r:.80}")
        start = _integer(span[0], "a span's start", 0, n)
        _integer(span[1], "a span's end", start, n)
    return dict(value)


def _cover_size(night: Night) -> float:
    if night.cover is None:
        return float(night.n_baseline_items or night.n_items or 1)
    return float(sum(max(0, int(e) - int(s)) for s, e in night.cover["spans"]) or 1)


def _overlap(x: Night, y: Night) -> float:
    """Items the two covers share (expected, when they come from different permutations)."""
    if x.cover is None and y.cover is None:
        return min(_cover_size(x), _cover_size(y))
    if x.cover is None or y.cover is None:
        return _cover_size(y if x.cover is None else x)
    if x.cover["key"] != y.cover["key"] or x.cover["n"] != y.cover["n"]:
        # Another permutation: as good as random subsets of each other.
        return _cover_size(x) * _cover_size(y) / max(int(x.cover["n"]), int(y.cover["n"]), 1)
    return float(sum(max(0, min(int(e1), int(e2)) - max(int(s1), int(s2)))
                     for s1, e1 in x.cover["spans"] for s2, e2 in y.cover["spans"]))


def night_correlation(nights: tuple[Night, ...] | list[Night]) -> np.ndarray | None:
    """The null correlation of the nights' ``Z`` when some night covered part of the set only
    (None when every night covered the whole set: the one-factor model of the fractions).

    Each comparison's Δ shares the baseline's noise on the items it shares with another:
    with covers ``C_s``, ``C_t`` and the shares ``r = n_items / |C|`` of their items
    compared, ``corr(Z_s, Z_t) = |C_s ∩ C_t| · √(r_s r_t) / (2 √(|C_s| |C_t|))`` (the
    baseline is half of each paired variance). For two whole-set nights this is the
    one-factor ``√(f_s f_t) / 2``; for two sampled nights on disjoint blocks it is 0; for two
    nights on the same block it is 1/2 — not the ``√(f_s f_t) / 2`` of random subsets.
    """
    if all(n.cover is None for n in nights):
        return None
    size = [_cover_size(n) for n in nights]
    share = [min(1.0, n.n_items / s) for n, s in zip(nights, size, strict=True)]
    t = len(nights)
    corr = np.eye(t)
    for i in range(t):
        for j in range(i):
            rho = (_overlap(nights[i], nights[j]) * math.sqrt(share[i] * share[j])
                   / (2.0 * math.sqrt(size[i] * size[j])))
            corr[i, j] = corr[j, i] = min(rho, 0.5)
    return corr


def effective_se(nights: tuple[Night, ...] | list[Night], reference: int = 0) -> np.ndarray:
    """The standard errors the e-process weighs the nights by: their own, or with reference
    runs, the null standard errors those measured (:func:`null_standard_errors`)."""
    return null_standard_errors(
        [n.se_points for n in nights], [n.fraction for n in nights],
        [math.nan if n.changed is None else n.changed for n in nights], reference)


def _trajectory_of(nights: tuple[Night, ...], prior_scale_points: float,
                   reference: int = 0) -> Trajectory:
    return e_process(
        [n.delta_points for n in nights], effective_se(nights, reference),
        [n.fraction for n in nights], prior_scale_points=prior_scale_points,
        correlation=night_correlation(nights), reference=reference)


def _night_numbers(nights: tuple[Night, ...], reference: int = 0) -> list[int]:
    """The night (1-based) of each comparison: an expanded night adds two comparisons (its
    sample, then the rest of the set) under one run id, and counts once; the first
    ``reference`` comparisons (reference runs) are night 0."""
    out: list[int] = [0] * min(reference, len(nights))
    last: str | None = None
    for i, n in enumerate(nights[reference:], start=reference):
        same = i > reference and n.run_id is not None and n.run_id == last
        out.append(out[-1] if same else (out[-1] + 1 if i > reference else 1))
        last = n.run_id
    return out


@dataclass(frozen=True)
class SequentialState:
    """The sequential test of one (judge, set version, baseline, dimension), JSON via
    :meth:`to_json` / :meth:`from_json`. Immutable: :func:`update` returns a new one."""

    judge_name: str
    set_version: str
    baseline_run_id: str
    dimension: str
    alpha: float = DEFAULT_ALPHA
    prior_scale_points: float = DEFAULT_PRIOR_SCALE_POINTS
    min_drop_points: float = DEFAULT_MIN_DROP_POINTS
    nights: tuple[Night, ...] = ()
    """The nights with evidence since the baseline was accepted, oldest first."""
    skipped: int = 0
    """Nights that carried no evidence (identical verdicts, undefined metric)."""
    crossed_at: int | None = None
    """The night (1-based, among ``nights``) of the first alarm: the e-process reached
    ``1/alpha`` with an estimated drop of at least ``min_drop_points``."""
    log_e_value: float = 0.0
    reference: int = 0
    """How many of the leading ``nights`` are reference runs of a replicated baseline (see
    :class:`NightObservation`): the baseline is then the mean of ``reference + 1`` runs."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {self.alpha!r}")
        if not self.prior_scale_points > 0:
            raise ValueError("prior_scale_points must be positive")
        if not self.min_drop_points >= 0:
            raise ValueError("min_drop_points must not be negative")
        if not 0 <= self.reference <= len(self.nights):
            raise ValueError("reference must count leading nights")

    def to_json(self) -> dict[str, Any]:
        """A small JSON-safe dict (no NaN, no infinity)."""
        return {
            "version": STATE_VERSION,
            "judge_name": self.judge_name,
            "set_version": self.set_version,
            "baseline_run_id": self.baseline_run_id,
            "dimension": self.dimension,
            "alpha": self.alpha,
            "prior_scale_points": self.prior_scale_points,
            "min_drop_points": self.min_drop_points,
            "nights": [n.to_json() for n in self.nights],
            "skipped": self.skipped,
            "crossed_at": self.crossed_at,
            "log_e_value": self.log_e_value,
            "reference": self.reference,
        }

    @classmethod
    def from_json(cls, data: Any) -> SequentialState:
        """The state back from :meth:`to_json`. Raises ValueError on another version and on
        anything :meth:`to_json` could not have written (a missing field, a value of the
        wrong type, a non-finite number, a count out of its range), so that a damaged state
        is never carried on."""
        if not isinstance(data, dict):
            raise ValueError(f"a sequential state must be an object, got {data!r:.80}")
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"sequential state version {data.get('version')!r:.40} is not "
                             f"{STATE_VERSION}")
        for key in ("judge_name", "set_version", "baseline_run_id", "dimension"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"the state's {key} must be a string, got "
                                 f"{data.get(key)!r:.80}")
        rows = data.get("nights")
        if not isinstance(rows, list):
            raise ValueError(f"the state's nights must be a list, got {rows!r:.80}")
        nights = tuple(Night.from_json(row) for row in rows)
        crossed = data.get("crossed_at")
        return cls(
            judge_name=data["judge_name"],
            set_version=data["set_version"],
            baseline_run_id=data["baseline_run_id"],
            dimension=data["dimension"],
            alpha=_number(data.get("alpha"), "the state's alpha"),
            prior_scale_points=_number(data.get("prior_scale_points"),
                                       "the state's prior_scale_points"),
            min_drop_points=_number(data.get("min_drop_points"), "the state's min_drop_points"),
            nights=nights,
            skipped=_integer(data.get("skipped"), "the state's skipped nights", 0),
            crossed_at=(None if crossed is None else
                        _integer(crossed, "the state's crossed_at", 1, len(nights))),
            log_e_value=_number(data.get("log_e_value"), "the state's log_e_value"),
            reference=_integer(data.get("reference", 0), "the state's reference runs", 0,
                               len(nights)),
        )


@dataclass(frozen=True)
class SequentialDecision:
    """What the sequential test says after tonight (JSON via :meth:`to_json`)."""

    crossed: bool
    """Alarm: the e-process has reached ``1/alpha`` with an estimated drop of at least
    ``min_drop_points`` (tonight or on an earlier night against this baseline)."""
    newly_crossed: bool
    """The alarm is new tonight."""
    nights: int
    """Nights with evidence since the baseline was accepted (reference runs not counted)."""
    e_value: float
    """``M_T`` tonight (capped at 1e300 for JSON)."""
    threshold: float
    """``1/alpha``."""
    alpha: float
    crossed_at: int | None
    """The night (1-based among the nights with evidence) of the first alarm."""
    change_point: int | None
    """Likelihood-ratio estimate of the first drifted night (1-based), None when no night
    points to a drop."""
    change_point_run_id: str | None
    drop_points: float | None
    """Estimated drop since ``change_point``, in points (positive = worse)."""
    mdc_points: float | None
    """Smallest drop present since the first night that would have crossed by tonight with
    80 % power (None before the first night with evidence)."""
    mdc_floor_points: float | None
    """The same after unlimited further nights like these: smaller drops since the first
    night can never be told from a lucky baseline (a fresh baseline lowers it)."""
    reset: bool = False
    """The observation came with another baseline: the state started afresh."""
    reference_runs: int = 0
    """Reference runs of a replicated baseline in the state: the baseline is the mean of
    ``reference_runs + 1`` runs."""
    skipped: str | None = None
    """Why tonight carried no evidence, or None."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "crossed": self.crossed,
            "newly_crossed": self.newly_crossed,
            "nights": self.nights,
            "e_value": self.e_value,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "crossed_at": self.crossed_at,
            "change_point": self.change_point,
            "change_point_run_id": self.change_point_run_id,
            "drop_points": self.drop_points,
            "mdc_points": self.mdc_points,
            "mdc_floor_points": self.mdc_floor_points,
            "reset": self.reset,
            "reference_runs": self.reference_runs,
            "skipped": self.skipped,
            "notes": list(self.notes),
        }


def new_state(
    judge_name: str,
    set_version: str,
    baseline_run_id: str,
    dimension: str,
    *,
    alpha: float = DEFAULT_ALPHA,
    prior_scale_points: float = DEFAULT_PRIOR_SCALE_POINTS,
    min_drop_points: float = DEFAULT_MIN_DROP_POINTS,
) -> SequentialState:
    """A fresh state for a newly accepted baseline (``M_0 = 1``)."""
    return SequentialState(judge_name, set_version, baseline_run_id, dimension, alpha=alpha,
                           prior_scale_points=prior_scale_points,
                           min_drop_points=min_drop_points)


def reset(state: SequentialState, baseline_run_id: str) -> SequentialState:
    """The state restarted for a newly accepted baseline: same key and settings, no nights.

    Evidence against one baseline says nothing about the next, so nothing carries over.
    """
    return new_state(state.judge_name, state.set_version, baseline_run_id, state.dimension,
                     alpha=state.alpha, prior_scale_points=state.prior_scale_points,
                     min_drop_points=state.min_drop_points)


def _skip_reason(obs: NightObservation) -> str | None:
    d, s = obs.delta_points, obs.se_points
    if d is None or s is None or not math.isfinite(d) or not math.isfinite(s):
        return "the change or its standard error is undefined tonight"
    if obs.n_items <= 0 or obs.n_baseline_items <= 0:
        return "no item was compared tonight"
    if s < 0:
        raise ValueError(f"se_points must not be negative, got {s!r}")
    if s == 0:
        if d == 0:
            return "identical verdicts on every item compared: no evidence either way"
        return "no standard error (too few items differ): no evidence tonight"
    return None


def _count(obs: NightObservation) -> int | None:
    """The observation's count of changed items when it is one (else None: not counted)."""
    c = obs.changed
    if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
        return None
    return int(c) if 0 <= c <= obs.n_items else None


def update(state: SequentialState, observation: NightObservation
           ) -> tuple[SequentialState, SequentialDecision]:
    """Add tonight's paired comparison with the baseline; return the new state and decision.

    A reference observation (``observation.reference``, a further run of a replicated
    baseline) is added to the reference: allowed only before the first monitored night
    (ValueError otherwise); it never alarms.

    Pure: the input state is not changed. An observation against another baseline than the
    state's restarts the state first (``decision.reset``). A night without evidence
    (undefined change, zero standard error) is counted in ``skipped`` and changes nothing
    else. Once crossed, the state stays crossed (``crossed_at``) until the next baseline;
    later nights keep updating the estimates.

    Examples
    --------
    Three healthy nights, then a drop of about 4 points (SE 1 point on 1,000 items):

    >>> s = new_state("judge", "v1", "run-0", "preference")
    >>> for night, delta in enumerate([0.5, -0.8, 0.3, -3.5, -4.2], start=1):
    ...     s, d = update(s, NightObservation("run-0", delta, 1.0, 1000, 1000, f"run-{night}"))
    >>> d.crossed, d.crossed_at, d.change_point, d.change_point_run_id, round(d.drop_points, 2)
    (True, 4, 4, 'run-4', 3.85)
    """
    was_reset = observation.baseline_run_id != state.baseline_run_id
    if was_reset:
        state = reset(state, observation.baseline_run_id)
    if observation.reference and len(state.nights) > state.reference:
        raise ValueError("a reference run must come before the first monitored night: the "
                         "reference cannot be chosen after seeing the nights it is compared "
                         "with")
    why = _skip_reason(observation)
    if why is not None:
        state = replace(state, skipped=state.skipped + (0 if observation.reference else 1))
        return state, _decision(state, newly=False, was_reset=was_reset, skipped=why)
    assert observation.delta_points is not None and observation.se_points is not None
    night = Night(float(observation.delta_points), float(observation.se_points),
                  int(observation.n_items), int(observation.n_baseline_items),
                  observation.run_id, observation.cover, _count(observation))
    nights = (*state.nights, night)
    ref = state.reference + (1 if observation.reference else 0)
    traj = _trajectory_of(nights, state.prior_scale_points, ref)
    log_e = float(traj.log_e[-1])
    crossed_at = state.crossed_at
    newly = crossed_at is None and bool(
        alarms(traj, state.alpha, state.min_drop_points)[-1])
    if newly:
        crossed_at = len(nights)
    state = replace(state, nights=nights, crossed_at=crossed_at, log_e_value=log_e,
                    reference=ref)
    return state, _decision(state, newly=newly, was_reset=was_reset, skipped=None,
                            trajectory=traj)


def _decision(state: SequentialState, *, newly: bool, was_reset: bool, skipped: str | None,
              trajectory: Trajectory | None = None) -> SequentialDecision:
    nights = state.nights
    ref = state.reference
    if trajectory is None and nights:
        trajectory = _trajectory_of(nights, state.prior_scale_points, ref)
    numbers = _night_numbers(nights, ref)
    change_point = drop = mdc = floor = None
    notes: list[str] = []
    if trajectory is not None and len(nights) > ref:
        cp = int(trajectory.change_point[-1])
        if cp > 0:
            change_point, drop = cp, float(trajectory.drop_points[-1])
        mdc = minimum_detectable_drop(float(trajectory.information[-1]), state.alpha,
                                      prior_scale_points=state.prior_scale_points)
        # Information of a drop since night 1 after unlimited nights like these: K/σ_b²,
        # σ_b² = the shared (baseline) variance = mean of s_t² f_t / 2, K = the baseline's
        # runs (1 + reference runs): the mean of K runs has variance σ_b²/K.
        se = effective_se(nights, ref)
        shared = float(np.mean([s * s * n.fraction / 2.0
                                for s, n in zip(se, nights, strict=True)]))
        floor = minimum_detectable_drop((ref + 1) / shared, state.alpha,
                                        prior_scale_points=state.prior_scale_points)
        if (state.crossed_at is None and state.log_e_value >= math.log(1.0 / state.alpha)
                and drop is not None):
            notes.append(f"the evidence reached 1/alpha but the estimated drop ({drop:.2f} "
                         f"points) is below {state.min_drop_points:g} point(s): no alarm")
        if mdc is not None and floor is not None and mdc < floor * 1.1:
            notes.append("close to the floor: further nights against this baseline add "
                         "little; only a fresh baseline detects smaller drops since the "
                         "first night")
    return SequentialDecision(
        crossed=state.crossed_at is not None,
        newly_crossed=newly,
        nights=numbers[-1] if numbers else 0,
        e_value=min(math.exp(min(state.log_e_value, 690.0)), 1e300),
        threshold=1.0 / state.alpha,
        alpha=state.alpha,
        crossed_at=None if state.crossed_at is None else numbers[state.crossed_at - 1],
        change_point=None if change_point is None else numbers[change_point - 1],
        change_point_run_id=nights[change_point - 1].run_id if change_point else None,
        drop_points=drop,
        mdc_points=mdc,
        mdc_floor_points=floor,
        reset=was_reset,
        reference_runs=ref,
        skipped=skipped,
        notes=notes,
    )
