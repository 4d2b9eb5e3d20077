"""The recorded judge's settings and shared state: what it serves, its fault rates, its counters.

:class:`ServerConfig` is everything the recorded judge can be told (all but host and port can
change at runtime); :class:`State` is what the request threads share: the config, the loaded
recordings, the counters (:class:`Stats`) and the open connections.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgecal.errors import InputError
from judgecal.recorded.faults import validate_faults
from judgecal.recorded.recordings import Recording, find_recording, load_recording, resolve_sets_dir

__all__ = [
    "ANY_MODEL",
    "DEFAULT_RECORDING",
    "IDLE_TIMEOUT_S",
    "ITEM_HEADER",
    "PROFILES",
    "ServerConfig",
    "State",
    "Stats",
    "parse_recording_option",
]

DEFAULT_RECORDING = "pandalm:gpt-3.5-turbo"
ITEM_HEADER = "X-Judgecal-Item-Id"
ANY_MODEL = "*"
IDLE_TIMEOUT_S = 120.0
"""A keep-alive connection idle this long is closed by the server."""

PROFILES: dict[str, str] = {
    "default": "answers requests concurrently; reports model_id and system_fingerprint when "
    "they are set; max_tokens and max_completion_tokens both limit the reply",
    "llamacpp": "like a local llama.cpp server: the reply's model echoes the requested name "
    "(model_id is ignored), no system_fingerprint, max_completion_tokens is ignored (only "
    "max_tokens limits the reply), one request at a time (the others queue)",
}
"""The server behaviours the recorded judge can imitate, by name."""

_RUNTIME_FIELDS = (
    "recordings",
    "profile",
    "sets_dir",
    "model_id",
    "system_fingerprint",
    "faults",
    "seed",
    "latency_ms",
    "latency_jitter_ms",
    "retry_after_s",
    "timeout_sleep_s",
    "batch_polls",
    "batch_expire",
    "batch_order",
)


def parse_recording_option(text: str) -> tuple[str, str]:
    """``ALIAS=SPEC`` -> (alias, spec); a bare ``SPEC`` serves every model name (``*``)."""
    alias, sep, spec = text.partition("=")
    if not sep:
        return ANY_MODEL, text.strip()
    alias, spec = alias.strip(), spec.strip()
    if not alias or not spec:
        raise InputError(f"recording '{text}': expected ALIAS=SET:NAME or SET:NAME")
    return alias, spec


@dataclass(frozen=True)
class ServerConfig:
    """Everything the recorded judge can be told. All but ``host``/``port`` can change at
    runtime (:meth:`RunningServer.configure`, ``POST /_judgecal/config``)."""

    recordings: Mapping[str, str] = field(default_factory=lambda: {ANY_MODEL: DEFAULT_RECORDING})
    """Requested model alias -> recording spec (``<set>:<name>``); alias ``*`` answers
    every model name not listed. A plain string is one spec served under ``*``."""
    sets_dir: Path | None = None
    """Calibration-sets root; None: ``$JUDGECAL_SETS_DIR``, ``./calibration_sets`` or the
    shipped sets (:func:`judgecal.recorded.recordings.resolve_sets_dir`)."""
    model_id: str | None = None
    """Model id reported in replies; None echoes the requested model (as llama.cpp does)."""
    system_fingerprint: str | None = None
    """Reported ``system_fingerprint``; None leaves the field out."""
    faults: Mapping[str, float] = field(default_factory=dict)
    """Fault kind -> rate, see :mod:`judgecal.recorded.faults`."""
    seed: int = 0
    latency_ms: float = 0.0
    """Added to every chat-completion response."""
    latency_jitter_ms: float = 0.0
    """Uniform extra latency in ``[0, latency_jitter_ms]``, drawn per request."""
    retry_after_s: float = 1.0
    """``Retry-After`` of the ``429`` fault."""
    timeout_sleep_s: float | None = 30.0
    """How long a ``timeout`` fault waits before answering; None: never answer."""
    profile: str = "default"
    """Which server to imitate (:data:`PROFILES`): ``default`` or ``llamacpp``."""
    batch_polls: int = 0
    """Looks (``GET /v1/batches/{id}``) for which a batch stays ``in_progress`` (a slow
    batch); it finishes at the next one (:mod:`judgecal.recorded.batch`)."""
    batch_expire: float | None = None
    """Share of a batch's requests answered before it *expires* (None: batches complete)."""
    batch_order: str = "shuffled"
    """Order of a batch's result lines: ``shuffled`` (seeded), ``input`` or ``reversed``."""
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""

    def __post_init__(self) -> None:
        recordings = self.recordings
        if isinstance(recordings, str):
            recordings = {ANY_MODEL: recordings}
        if not recordings:
            raise InputError("the recorded judge needs at least one recording")
        object.__setattr__(self, "recordings", dict(recordings))
        object.__setattr__(self, "faults", validate_faults(self.faults))
        if self.sets_dir is not None and not isinstance(self.sets_dir, Path):
            object.__setattr__(self, "sets_dir", Path(self.sets_dir))
        for name in ("latency_ms", "latency_jitter_ms", "retry_after_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise InputError(f"{name} must be a number >= 0, got {value!r}")
        if self.timeout_sleep_s is not None and (
            not isinstance(self.timeout_sleep_s, int | float) or self.timeout_sleep_s < 0
        ):
            raise InputError(f"timeout_sleep_s must be >= 0 or None, got {self.timeout_sleep_s!r}")
        if self.profile not in PROFILES:
            raise InputError(
                f"unknown profile {self.profile!r} (known: {', '.join(PROFILES)})"
            )
        if isinstance(self.batch_polls, bool) or not isinstance(self.batch_polls, int) \
                or self.batch_polls < 0:
            raise InputError(f"batch_polls must be an integer >= 0, got {self.batch_polls!r}")
        if self.batch_expire is not None and (
            not isinstance(self.batch_expire, int | float) or not 0 <= self.batch_expire <= 1
        ):
            raise InputError(f"batch_expire must be between 0 and 1 or None, "
                             f"got {self.batch_expire!r}")
        if self.batch_order not in ("shuffled", "input", "reversed"):
            raise InputError(f"batch_order must be shuffled, input or reversed, "
                             f"got {self.batch_order!r}")
        if not isinstance(self.seed, int):
            raise InputError(f"seed must be an integer, got {self.seed!r}")

    def replace(self, **changes: Any) -> ServerConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputError(f"unknown server setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def check_recordings(self) -> None:
        """Fail early (:class:`InputError`) if a recording spec does not exist."""
        for spec in self.recordings.values():
            find_recording(spec, self.sets_dir)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sets_dir"] = str(resolve_sets_dir(self.sets_dir))
        return d




class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.requests = 0
        self.replies = 0
        self.by_status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.item_requests: Counter[str] = Counter()
        self.item_served: Counter[str] = Counter()
        self.model_requests: Counter[str] = Counter()
        self.model_served: Counter[str] = Counter()
        self.attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.client_disconnects = 0
        self.bodies: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self.repeated: Counter[str] = Counter()
        """Requests whose body was byte for byte one already received for the same model
        and item (a client paying again for the same question), per item."""
        self.batch: Counter[str] = Counter()
        """Batch API counters: files_uploaded, created, looks, cancelled, lines_answered."""
        self.active = 0
        self.max_active = 0
        """Most chat completions being answered at the same moment (1 under ``llamacpp``)."""

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "since": self.since,
                "requests": self.requests,
                "replies": self.replies,
                "by_status": dict(sorted(self.by_status.items())),
                "faults": dict(sorted(self.faults.items())),
                "errors": dict(sorted(self.errors.items())),
                "items": {
                    k: {"requests": n, "served": self.item_served.get(k, 0)}
                    for k, n in self.item_requests.items()
                },
                "models": {
                    k: {"requests": n, "served": self.model_served.get(k, 0)}
                    for k, n in self.model_requests.items()
                },
                "client_disconnects": self.client_disconnects,
                "repeated_requests": sum(self.repeated.values()),
                "repeated_by_item": dict(sorted(self.repeated.items())),
                "max_concurrent": self.max_active,
                "batches": dict(sorted(self.batch.items())),
            }


class State:
    def __init__(self, config: ServerConfig):
        self.lock = threading.Lock()
        self.config = config
        self.stats = Stats()
        self.stop = threading.Event()
        self.ids = itertools.count(1)
        self.conn_lock = threading.Lock()
        self.slot = threading.Lock()
        """Held while a request is answered under the ``llamacpp`` profile (one at a time)."""
        self.loaded: dict[tuple[Path | None, str], Recording] = {}
        self.connections: set[socket.socket] = set()

    def configure(self, **changes: Any) -> ServerConfig:
        bad = set(changes) - set(_RUNTIME_FIELDS)
        if bad:
            raise InputError(
                f"cannot change {', '.join(sorted(bad))} at runtime "
                f"(changeable: {', '.join(_RUNTIME_FIELDS)})"
            )
        with self.lock:
            new = self.config.replace(**changes)
            new.check_recordings()
            self.config = new
            return new

    def recording_for(self, config: ServerConfig, model: str) -> Recording | None:
        spec = config.recordings.get(model) or config.recordings.get(ANY_MODEL)
        if spec is None:
            return None
        key = (config.sets_dir, spec)
        recording = self.loaded.get(key)
        if recording is None:  # first use: read the files (cached process-wide too)
            recording = self.loaded[key] = load_recording(spec, config.sets_dir)
        return recording
