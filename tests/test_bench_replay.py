"""The replay benchmark's bound: what a perfect client could do on the same requests."""

from __future__ import annotations

import pytest

from benchmarks.bench_replay import best_possible


def test_without_throttling_it_is_the_schedule_itself() -> None:
    # 64 single requests on 32 slots: two waves.
    assert best_possible([1] * 64, 0.2, 32, 0.0, 1.0, runs=3) == pytest.approx(0.4)
    # A chain of 3 requests cannot end before 3 latencies, whatever the slots.
    assert best_possible([3] + [1] * 10, 0.2, 32, 0.0, 1.0, runs=3) == pytest.approx(0.6)
    # 65 requests on 32 slots: a third wave for one of them.
    assert best_possible([1] * 65, 0.2, 32, 0.0, 1.0, runs=3) == pytest.approx(0.6)


def test_throttling_costs_at_least_its_retry_after_at_the_end() -> None:
    free = best_possible([1] * 2000, 0.2, 32, 0.0, 1.0, runs=5)
    throttled = best_possible([1] * 2000, 0.2, 32, 0.1, 1.0, runs=50)
    assert free == pytest.approx(2000 * 0.2 / 32, abs=0.2)
    # Throttled requests hold no slot, so the work itself is unchanged; what is added is
    # the wait of the items throttled near the end (at least one Retry-After, less one wave).
    assert free + 0.8 < throttled < free + 3.0
    # Every request throttled once in a while with a long Retry-After: the end moves with it.
    assert best_possible([1] * 100, 0.2, 32, 0.5, 10.0, runs=20) > 10.0
