"""The run's progress line: an ETA from the observed completion rate (judgecal.cli.progress),
checked on simulated completion times with an injected clock."""

from __future__ import annotations

import io

import pytest

from judgecal.cli.progress import EtaEstimator, ProgressLine, format_duration


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _etas(times: list[float], at: list[int]) -> dict[int, tuple[float | None, float]]:
    """Feed completion times; at the given counts, (estimated ETA, true remaining time)."""
    clock = Clock()
    est = EtaEstimator(len(times), clock=clock)
    out = {}
    for k, t in enumerate(times, 1):
        clock.t = t
        est.advance()
        if k in at:
            out[k] = (est.eta(), times[-1] - t)
    return out


def test_bursts_of_concurrent_replies_give_the_true_eta() -> None:
    # concurrency 8, 1 s per reply: 8 replies land together every second
    times = [1.0 * (i // 8 + 1) for i in range(999)]
    for eta, true in _etas(times, [100, 250, 500, 750, 900]).values():
        assert eta == pytest.approx(true, rel=0.1)


def test_a_slow_start_does_not_inflate_the_eta() -> None:
    """40 replies over the first minute (429s and back-off), then 20 per second. An average
    since the start (the old progress bar's) said about 292 s at a quarter, 95 s at half
    way, for 37.5 s and 25 s."""
    times = [1.5 * (i + 1) for i in range(40)] + [60 + 0.05 * (i + 1) for i in range(959)]
    for k, (eta, true) in _etas(times, [250, 500, 750, 900]).items():
        assert eta == pytest.approx(true, rel=0.1), k


def test_a_throttled_provider_is_followed_within_a_window() -> None:
    times = [0.05 * (i + 1) for i in range(300)] + [15 + 1.0 * (i + 1) for i in range(119)]
    (eta, true), = _etas(times, [377]).values()
    assert eta == pytest.approx(true, rel=0.1)


def test_no_eta_before_a_few_completions_and_a_stall_raises_it() -> None:
    clock = Clock()
    est = EtaEstimator(100, clock=clock)
    clock.t = 2.0
    est.advance(4)
    assert est.eta() is None, "4 completions are too few"
    clock.t = 3.0
    est.advance(6)
    before = est.eta()
    assert before == pytest.approx(90 / (10 / 3.0))
    clock.t = 30.0  # nothing for 27 s
    after = est.eta()
    assert after is not None and after > 5 * before
    est.advance(90)
    assert est.eta() == 0.0


def test_the_line_shows_count_rate_and_eta() -> None:
    clock = Clock()
    buf = io.StringIO()
    line = ProgressLine("support-judge", 419, buf, clock=clock)
    line.start()
    assert buf.getvalue().endswith("support-judge  0/419  0%  ETA …")
    for i in range(100):
        clock.t = 0.5 * (i + 1)
        line.advance()
    last = buf.getvalue().split("\r")[-1].rstrip()
    assert last == "support-judge  100/419  24%  2.0/s  ETA 2m40s"
    for _ in range(319):
        line.advance()
    line.close()
    assert buf.getvalue().endswith("\n") and "419/419  100%" in buf.getvalue()


def test_durations_read_like_durations() -> None:
    assert [format_duration(s) for s in (0.4, 42, 185, 7620)] == ["0s", "42s", "3m05s", "2h07m"]
