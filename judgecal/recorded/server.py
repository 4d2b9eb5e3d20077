"""The recorded judge's HTTP server: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive.

One thread per connection (a judge client keeps one connection per concurrent request),
so slow replies, injected timeouts and many concurrent clients do not block each other.
Waits (latency, ``timeout`` faults) watch the connection and give up as soon as the client
hangs up or the server stops, so threads never pile up behind a client that left.

Python API::

    from judgecal.recorded.server import ServerConfig, start_server

    with start_server(ServerConfig(recordings={"gpt-3.5-turbo": "pandalm:gpt-3.5-turbo"})) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="unused")
        ...
        srv.configure(recordings={"gpt-3.5-turbo": "pandalm:pandalm-7b"})  # silent swap
        srv.stats()["items"]["12"]["requests"]

Nothing here prints; request lines go to the ``judgecal.recorded`` logger at DEBUG level
(never headers, so an ``Authorization`` header cannot leak).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any

from judgecal.recorded.batch import BatchService
from judgecal.recorded.handler import Handler
from judgecal.recorded.state import (
    DEFAULT_RECORDING,
    ITEM_HEADER,
    PROFILES,
    ServerConfig,
    State,
    parse_recording_option,
)

__all__ = [
    "DEFAULT_RECORDING",
    "ITEM_HEADER",
    "PROFILES",
    "RunningServer",
    "Server",
    "ServerConfig",
    "parse_recording_option",
    "start_server",
]

log = logging.getLogger("judgecal.recorded")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: State):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.batches = BatchService(state)
        """The batch API (``/v1/files``, ``/v1/batches``)."""
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error while serving %s", client_address, exc_info=True)


# --------------------------------------------------------------------------- API


class RunningServer:
    """A recorded judge serving in a background thread. Use as a context manager."""

    def __init__(self, server: Server, state: State, thread: threading.Thread):
        self._server = server
        self._state = state
        self._thread = thread
        host, port = server.server_address[:2]
        self.host: str = str(host)
        self.port: int = int(port)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{shown}:{self.port}"
        """Root URL, e.g. ``http://127.0.0.1:8123``."""
        self.url = self.base_url + "/v1"
        """OpenAI base URL, e.g. ``http://127.0.0.1:8123/v1``."""

    @property
    def config(self) -> ServerConfig:
        return self._state.config

    def configure(self, **changes: Any) -> ServerConfig:
        """Change settings at runtime (see ``ServerConfig``); returns the new config."""
        return self._state.configure(**changes)

    def stats(self) -> dict[str, Any]:
        """Counters since start or the last reset (same JSON as ``GET /_judgecal/stats``)."""
        return self._state.stats.snapshot()

    def reset_stats(self) -> None:
        with self._state.stats.lock:
            self._state.stats.reset()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._state.stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True if it has stopped."""
        return self._state.stop.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, hang up on every open connection and wait for the threads."""
        if self._state.stop.is_set() and not self._thread.is_alive():
            return
        self._state.stop.set()
        self._server.shutdown()
        self._server.server_close()
        with self._state.conn_lock:
            connections = list(self._state.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url} {dict(self.config.recordings)}>"


def start_server(config: ServerConfig | None = None, **changes: Any) -> RunningServer:
    """Start a recorded judge in a background thread and return at once.

    ``changes`` override fields of ``config`` (or of the default config). Recording specs
    are checked against the manifests here (:class:`~judgecal.errors.InputError` if one
    does not exist); the recording files themselves load on first use. Raises
    ``OSError`` if the address cannot be bound.
    """
    config = config or ServerConfig()
    if changes:
        config = config.replace(**changes)
    config.check_recordings()
    state = State(config)
    server = Server((config.host, config.port), state)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05},
        name=f"judgecal-recorded:{server.server_address[1]}", daemon=True,
    )
    thread.start()
    return RunningServer(server, state, thread)
