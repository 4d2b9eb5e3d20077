"""The progress line of a run on a terminal, with an ETA from the observed completion rate.

Replies arrive in bursts (``concurrency`` requests in flight, stored by group commit) and at
rates that change during a run: a slow start while connections open, a provider that starts
throttling (429 and back-off) or stops, a resumed run. The ETA is therefore the remaining
count divided by the *recent* rate: completions over the time since the
``window``-th most recent one (since the start until ``window`` have arrived), measured up
to now, so a stall makes the ETA grow instead of freezing. No ETA is shown before
``min_done`` completions and ``min_seconds`` of observation: one early burst says little.

:class:`EtaEstimator` is pure (the clock is injected); :class:`ProgressLine` renders it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

__all__ = [
    "EtaEstimator",
    "ProgressLine",
    "format_duration",
]


class EtaEstimator:
    """Rate and ETA of ``total`` units of work from the times they completed."""

    def __init__(
        self,
        total: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        window: int = 64,
        min_done: int = 5,
        min_seconds: float = 1.0,
    ):
        if window < 1:
            raise ValueError("window must be at least 1")
        self.total = total
        self.done = 0
        self.clock = clock
        self.window = window
        self.min_done = min_done
        self.min_seconds = min_seconds
        self.started = clock()
        self._times: deque[float] = deque(maxlen=window + 1)

    def advance(self, n: int = 1, at: float | None = None) -> None:
        """Record ``n`` completions at ``at`` (default: now)."""
        t = self.clock() if at is None else at
        self.done += n
        self._times.extend([t] * min(n, self.window + 1))

    def rate(self, now: float | None = None) -> float | None:
        """Completions per second, recently; None until there is enough to go on."""
        now = self.clock() if now is None else now
        if self.done < self.min_done or now - self.started < self.min_seconds:
            return None
        if self.done <= self.window:
            since, count = self.started, self.done
        else:  # the window's oldest completion and the `window` completions after it
            since, count = self._times[0], self.window
        span = now - since
        return count / span if span > 0 else None

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until ``total`` at the recent rate; None while unknown, 0 when done."""
        remaining = max(self.total - self.done, 0)
        if remaining == 0:
            return 0.0
        rate = self.rate(now)
        return None if not rate else remaining / rate


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class ProgressLine:
    """One line on a terminal, rewritten in place: ``label  412/999  41%  23.5/s  ETA 25s``.

    Safe to advance from another thread (the run's writer thread calls it); redrawn at most
    ``redraw_s`` apart, and always on the last unit.
    """

    def __init__(self, label: str, total: int, file: TextIO, *,
                 clock: Callable[[], float] = time.monotonic, redraw_s: float = 0.2):
        self.label = label
        self.file = file
        self.estimator = EtaEstimator(total, clock=clock)
        self.redraw_s = redraw_s
        self._drawn_at: float | None = None
        self._width = 0
        self._lock = threading.Lock()

    def text(self, now: float | None = None) -> str:
        e = self.estimator
        now = e.clock() if now is None else now
        pct = 100 * e.done / e.total if e.total else 100.0
        parts = [self.label, f"{e.done}/{e.total}", f"{pct:.0f}%"]
        rate = e.rate(now)
        eta = e.eta(now)
        if rate is not None:
            parts.append(f"{rate:.1f}/s")
        if e.done < e.total:
            parts.append("ETA " + ("…" if eta is None else format_duration(eta)))
        return "  ".join(parts)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            e = self.estimator
            now = e.clock()
            e.advance(n, at=now)
            if (self._drawn_at is None or now - self._drawn_at >= self.redraw_s
                    or e.done >= e.total):
                self._draw(now)

    def start(self) -> None:
        with self._lock:
            self._draw(self.estimator.clock())

    def close(self) -> None:
        """End the line (the next output starts on a fresh line)."""
        with self._lock:
            if self._drawn_at is not None:
                if self.estimator.done < self.estimator.total:  # the last unit drew itself
                    self._draw(self.estimator.clock())
                self.file.write("\n")
                self.file.flush()
                self._drawn_at = None

    def _draw(self, now: float) -> None:
        line = self.text(now)
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self.file.write("\r" + line + " " * pad)
        self.file.flush()
        self._drawn_at = now
