"""judgecal.io.prefetch: read-ahead that keeps order, bounds memory, passes errors on and
stops its thread when the caller stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from judgecal.io.prefetch import prefetched


def test_order_and_bounded_read_ahead() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for k in range(50):
            produced.append(k)
            yield k

    out = []
    for k in prefetched(items(), depth=2):
        time.sleep(0.002)
        # never more than depth queued + one being handed over + one being read
        assert len(produced) - len(out) <= 4
        out.append(k)
    assert out == list(range(50))


def test_the_readers_error_is_raised_in_the_caller_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad chunk on line 7")

    got = []
    with pytest.raises(ValueError, match="line 7"):
        for k in prefetched(items()):
            got.append(k)
    assert got == [1, 2]


def test_a_caller_that_stops_stops_the_reader() -> None:
    started = threading.active_count()
    read = []

    def items() -> Iterator[int]:
        for k in range(10_000):
            read.append(k)
            yield k

    gen = prefetched(items(), depth=1, name="test-reader")
    assert next(gen) == 0
    gen.close()  # what a break, an exception or Ctrl-C in the loop does
    assert not any(t.name == "test-reader" for t in threading.enumerate())
    assert threading.active_count() == started
    assert len(read) < 10


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        list(prefetched(iter([1]), depth=0))
