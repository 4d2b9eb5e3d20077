"""Shared pieces of the reliability harness: configs on disk, CLI processes, store snapshots.

A :class:`Sandbox` is a working directory plus the repository's shipped calibration sets
and judge configs. It writes run configs that point at a recorded judge and a store,
starts ``python -m judgecal`` processes with a clean environment (no developer key, store
or proxy leaks in), and reads stores back row for row.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import judgecal

REPO_ROOT = Path(judgecal.__file__).resolve().parent.parent
"""The checkout judgecal runs from (calibration sets and example configs live there)."""

JUDGE_FILE = "pandalm-gpt35.yaml"
"""The demo judge: the PandaLM set through the recorded gpt-3.5-turbo verdicts."""

_SCRUBBED_ENV = (
    "JUDGECAL_STORE",
    "JUDGECAL_RAISE_ERRORS",
    "OPENAI_API_KEY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@dataclass
class Row:
    """One line of the reliability table."""

    area: str
    check: str
    value: str
    ok: bool
    note: str = ""


def format_table(rows: list[Row], title: str = "") -> str:
    """The table as aligned text, one row per check, PASS/FAIL in the last column."""
    headers = ["area", "check", "measured", "result"]
    body = [[r.area, r.check, r.value, "PASS" if r.ok else "FAIL"] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *body, strict=False)]
    lines = [title] if title else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)))
    lines.append("  ".join("-" * w for w in widths))
    for cells, row in zip(body, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip())
        if row.note:
            lines.append(" " * (widths[0] + 2) + "  " + row.note)
    return "\n".join(lines)


@dataclass
class Done:
    """A finished CLI process."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float


@dataclass
class Sandbox:
    """A working directory for one scenario, with the repository's sets and judges."""

    workdir: Path
    root: Path = REPO_ROOT
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for every process this sandbox starts."""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def sets_dir(self) -> Path:
        return self.root / "calibration_sets"

    def path(self, name: str) -> Path:
        return self.workdir / name

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.workdir / name}"

    # -- configs --------------------------------------------------------------------
    def judge_data(self, base_url: str, judge_file: str = JUDGE_FILE, **over: Any
                   ) -> dict[str, Any]:
        """A shipped judge as a mapping, pointed at ``base_url``, with top-level overrides."""
        data: dict[str, Any] = yaml.safe_load(
            (self.root / "configs" / "judges" / judge_file).read_text(encoding="utf-8")
        )
        data["base_url"] = base_url
        data.update(over)
        return data

    def write_config(
        self,
        name: str,
        *,
        base_url: str,
        store: str,
        set_path: Path | None = None,
        judge_file: str = JUDGE_FILE,
        judge: Mapping[str, Any] | None = None,
        run: Mapping[str, Any] | None = None,
        drift: Mapping[str, Any] | None = None,
        notify: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write ``<name>.yaml`` (and ``<name>.judge.yaml``) and return the run config path."""
        judge_path = self.workdir / f"{name}.judge.yaml"
        judge_path.write_text(
            yaml.safe_dump(self.judge_data(base_url, judge_file, **dict(judge or {})),
                           sort_keys=False),
            encoding="utf-8",
        )
        data: dict[str, Any] = {
            "store": store,
            "calibration_set": str(set_path or self.sets_dir / "pandalm"),
            "judge": str(judge_path),
            "run": {"bootstrap": 200, "seed": 0, **dict(run or {})},
        }
        if drift:
            data["drift"] = dict(drift)
        if notify:
            data["notify"] = dict(notify)
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    # -- processes --------------------------------------------------------------------
    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["NO_PROXY"] = "127.0.0.1,localhost"
        env["JUDGECAL_SETS_DIR"] = str(self.sets_dir)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        # The harness is not installed: ``python -m benchmarks.harness...`` needs the checkout.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env.update(self.env)
        env.update(extra or {})
        return env

    def start(self, *args: str, env: Mapping[str, str] | None = None,
              module: str = "judgecal") -> subprocess.Popen[str]:
        """Start ``python -m judgecal ARGS`` in the sandbox (pipes for stdout and stderr)."""
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.process_env(env),
            cwd=self.workdir,
        )

    def judgecal(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600,
        module: str = "judgecal",
    ) -> Done:
        """Run ``python -m judgecal ARGS`` to completion."""
        started = time.perf_counter()
        proc = self.start(*args, env=env, module=module)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
            raise
        return Done(list(args), proc.returncode, out, err, time.perf_counter() - started)


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a process and reap it, closing its pipes."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()


# -- stores ------------------------------------------------------------------------------


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a store, sorted: the 'row for row' view of a database."""
    from sqlalchemy import MetaData, create_engine, select

    from judgecal.db.engine import normalize_url

    engine = create_engine(normalize_url(url))
    try:
        md = MetaData()
        md.reflect(engine)
        out: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as conn:
            for name, table in sorted(md.tables.items()):
                rows = [tuple(r) for r in conn.execute(select(table)).all()]
                out[name] = sorted(rows, key=repr)
        return out
    finally:
        engine.dispose()


def count_rows(url: str, table: str) -> int:
    """Rows in one table (0 when the table does not exist)."""
    return len(table_rows(url).get(table, []))


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other stores)."""
    prefix = "sqlite:///"
    return Path(url[len(prefix) :]) if url.startswith(prefix) else None


@contextlib.contextmanager
def sqlite_snapshot(path: Path) -> Iterator[Path]:
    """A copy of a SQLite file with its ``-wal``, ``-shm`` (and ``-journal``, killed before
    the store entered WAL mode), to read without touching it.

    After a writer is killed its WAL may need recovery: a read-only connection cannot run it
    ("attempt to write a readonly database"), and a read-write one would checkpoint the log
    into the file on close, so the resume would no longer meet the store the kill left.
    Reading a copy leaves the original exactly as the kill left it.
    """
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="judgecal-snapshot-") as tmp:
        copy = Path(tmp) / path.name
        for suffix in ("", "-wal", "-shm", "-journal"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                shutil.copyfile(source, copy.with_name(copy.name + suffix))
        yield copy


@contextlib.contextmanager
def store_as_killed(url: str) -> Iterator[str]:
    """The URL to read a store through right after its writer was killed: a snapshot of a
    SQLite file (:func:`sqlite_snapshot`), the store itself otherwise."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        yield url
        return
    with sqlite_snapshot(path) as copy:
        yield f"sqlite:///{copy}"


def integrity_check(path: Path) -> str:
    """``PRAGMA integrity_check`` plus ``foreign_key_check`` of a SQLite file: 'ok' or why not.

    Reads a snapshot (:func:`sqlite_snapshot`): the file is left as it was.
    """
    with sqlite_snapshot(path) as copy:
        conn = sqlite3.connect(copy, timeout=30)
        try:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            fks = conn.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            conn.close()
    if result != ["ok"]:
        return "; ".join(str(r) for r in result[:5])
    if fks:
        return f"{len(fks)} foreign-key violations"
    return "ok"


def write_lock_held(path: Path) -> bool:
    """True when another connection holds the write lock of a SQLite file (is mid-write).

    Tries ``BEGIN IMMEDIATE`` without waiting; releases it at once when it succeeds.
    """
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    else:
        conn.execute("ROLLBACK")
        return False
    finally:
        conn.close()


def wal_uncommitted_frames(path: Path) -> int:
    """Frames at the end of a SQLite WAL that belong to no committed transaction.

    Non-zero right after a kill means the process died while writing a transaction into
    the log (a torn write that recovery must ignore). Frames of the current WAL generation
    are those whose salts match the header; a frame is committed when it, or a later frame
    of the same generation, carries a commit marker (database size in pages).
    """
    wal = path.with_name(path.name + "-wal")
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return 0
    if len(data) < 32:
        return 0
    magic, _version, page_size, _ckpt, salt1, salt2 = struct.unpack(">IIIIII", data[:24])
    if magic not in (0x377F0682, 0x377F0683) or page_size == 0:
        return 0
    frame = 24 + page_size
    pending = 0
    offset = 32
    while offset + 24 <= len(data):
        _page, commit, s1, s2 = struct.unpack(">IIII", data[offset : offset + 16])
        if (s1, s2) != (salt1, salt2):
            break
        pending = 0 if commit else pending + 1
        offset += frame
    return pending


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Capture ``sys.stdout`` and ``sys.stderr`` (for in-process CLI calls)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def cli_in_process(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI entry point in this process: (exit code, stdout, stderr).

    Faster than a subprocess for property tests; goes through the same error translation
    (:func:`judgecal.cli.main.main`). An exception escaping it is reported as exit code
    -1 with its traceback on stderr (which a test then flags).
    """
    import traceback

    from judgecal.cli.main import main

    with captured() as (out, err):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc(file=err)
            code = -1
        else:
            code = 0
    return code, out.getvalue(), err.getvalue()


class PgDatabases:
    """Fresh, empty PostgreSQL databases on one server, all dropped by :meth:`close`."""

    def __init__(self, admin_url: str):
        from sqlalchemy import create_engine

        from judgecal.db.engine import normalize_url

        self.admin_url = admin_url
        self._engine = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def create(self) -> str:
        import secrets

        from sqlalchemy import text

        name = f"jc_rel_{secrets.token_hex(4)}"
        with self._engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return f"{self.admin_url.rsplit('/', 1)[0]}/{name}"

    def close(self) -> None:
        from sqlalchemy import text

        with self._engine.connect() as conn:
            for name in self.names:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :n AND pid <> pg_backend_pid()"
                    ),
                    {"n": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        self.names.clear()
        self._engine.dispose()

    def __enter__(self) -> PgDatabases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WebhookReceiver:
    """A local webhook endpoint that records every POST (headers and JSON body).

    ``delay_s`` holds each reply back (a slow receiver widens any race between two
    deliverers); ``port`` lets a receiver come up on the address of one that was down.
    """

    def __init__(self, port: int = 0, delay_s: float = 0.0):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self.posts: list[dict[str, Any]] = []
        self.delay_s = delay_s
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                time.sleep(receiver.delay_s)
                with receiver._lock:
                    receiver.posts.append({"headers": dict(self.headers.items()),
                                           "body": body.decode("utf-8", "replace")})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def deliveries(self) -> Counter[str]:
        """POSTs per ``X-Judgecal-Delivery`` key (a value above 1 is a duplicate)."""
        with self._lock:
            return Counter(p["headers"].get("X-Judgecal-Delivery", "") for p in self.posts)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port nothing listens on (for an endpoint that is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
