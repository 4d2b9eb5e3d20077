"""Read ahead: produce the items of an iterator in a thread while the caller works on the
previous ones.

``scores ingest`` reads and validates a chunk of rows (pyarrow, which releases the GIL for
its kernels) while the previous chunk is written to the store; the two overlap instead of
taking turns. At most ``depth`` items wait in the queue, so memory stays bounded.

The reader's exception is raised in the caller, at the point the failed item would have
been; a caller that stops early (an error, Ctrl-C, ``break``) stops the reader after the
item it is reading, and the thread is joined before the generator returns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

__all__ = ["prefetched"]

T = TypeVar("T")

_POLL_S = 0.1


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_DONE = object()


def prefetched(items: Iterator[T], depth: int = 2, *, name: str = "judgecal-prefetch"
               ) -> Iterator[T]:
    """The items of ``items``, produced up to ``depth`` ahead by a reader thread."""
    if depth < 1:
        raise ValueError("depth must be >= 1")
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(obj: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(obj, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the caller, raised there
            put(_Failed(exc))

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            obj = slots.get()
            if obj is _DONE:
                return
            if isinstance(obj, _Failed):
                raise obj.exc
            yield obj  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()
