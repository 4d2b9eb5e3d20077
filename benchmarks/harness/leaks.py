"""Secrets: a sentinel API key (and webhook secrets) in the environment must appear nowhere.

The promise: *API keys are read from the environment, never stored, logged or
rendered.* The harness puts three sentinels in the environment of every command:

* ``OPENAI_API_KEY`` — the judge's key;
* ``JUDGECAL_HOOK_SECRET`` — the webhook's HMAC key (``webhook.secret_env``);
* ``JUDGECAL_HOOK_URL`` — a webhook URL with a token in its path (``webhook.url_env``,
  Slack-style: the URL itself is the secret).

Then it plays a month in miniature with judgecal's loggers and those of the HTTP libraries
(httpx, httpcore, openai) at DEBUG, into a log file and onto stderr, and
``JUDGECAL_DEBUG_HTTP=1``: nights with every fault kind of the recorded judge, a drifted
judge that opens an incident (signed webhook delivered), a night with the webhook down,
nights where every HTTP 200 reply *echoes the key* (the recorded judge's ``echo-key`` fault:
in the model id, the ``system_fingerprint`` and the reply text; plain and streamed), an
endpoint that echoes the Authorization header back in its error messages and headers (as
some gateways do) and one that refuses the key (401); then every reading command — runs,
metrics, incidents (JSON, Markdown, postmortem), lifecycle steps, baseline, compare, the
HTML trust report and the auditor's export bundle. Finally every byte is searched: every
file under the working directory (database and WAL, logs, reports, bundle, Prometheus
textfile), every captured stdout and stderr, and every webhook delivery (headers and body).
The replies of the ``echo-key`` nights must be stored with ``[redacted]`` where the key was.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.harness.sandbox import Done, Row, Sandbox, WebhookReceiver, free_port
from judgecal.recorded.server import start_server

LLMBAR = {"gpt-4": "llmbar:GPT-4/Vanilla", "*": "pandalm:gpt-3.5-turbo"}
DRIFTED = {"gpt-4": "llmbar:ChatGPT/Vanilla", "*": "pandalm:gpt-3.5-turbo"}
HTTP_LOG_LEVELS = "httpx=DEBUG,httpcore=DEBUG,openai=DEBUG"
"""The HTTP libraries' loggers as a verbose deployment might set them."""
FAULTS = {"429": 0.05, "500": 0.05, "502": 0.02, "drop": 0.03, "junk": 0.03, "empty": 0.02,
          "truncated-stream": 0.02, "context-length": 0.01}


class EchoJudge:
    """An OpenAI-compatible endpoint that puts the request's Authorization header into its
    error message (``status`` 400: a final error; 401: refused credentials)."""

    def __init__(self, status: int):
        self.status = status
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization", "")
                body = json.dumps({"error": {
                    "message": f"Incorrect API key provided: {auth}. You passed {auth!r}.",
                    "type": "invalid_request_error", "param": None,
                    "code": "invalid_api_key" if judge.status == 401 else "bad_key_format",
                }}).encode()
                self.send_response(judge.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Echo", auth)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class LeakReport:
    secret_names: list[str]
    commands: list[tuple[str, int]] = field(default_factory=list)
    """(command, exit code) of everything run."""
    places: int = 0
    bytes_scanned: int = 0
    leaks: list[str] = field(default_factory=list)
    """``<secret> in <place>`` for every hit."""
    scenario_problems: list[str] = field(default_factory=list)
    echoed_replies: int = 0
    """Replies of the ``echo-key`` nights (every one carried the key in three places)."""
    echoed_redacted: int = 0
    """... of which the stored model id, fingerprint and text say ``[redacted]``."""
    echo_exits: list[int] = field(default_factory=list)
    log_bytes: int = 0
    """Size of the DEBUG log file (httpx, httpcore, openai and judgecal)."""

    def rows(self) -> list[Row]:
        codes = {c: n for c, n in self.commands}
        return [
            Row("secrets", "sentinel key / webhook secret / webhook URL token found",
                f"{len(self.leaks)} in {self.places} places ({self.bytes_scanned / 1e6:.1f} MB)",
                not self.leaks and not self.scenario_problems and self.places > 0,
                "; ".join(self.leaks[:4] + self.scenario_problems[:3])
                or f"after {len(self.commands)} commands: runs with faults, an incident "
                f"(exit {codes.get('run: drifted', '?')}), webhook down, an endpoint "
                "echoing the key, a 401; reports, bundle, logs, deliveries"),
            Row("secrets", "key echoed in 200 replies (model id, fingerprint, text): redacted",
                f"{self.echoed_redacted}/{self.echoed_replies} replies",
                self.echoed_replies > 0 and self.echoed_redacted == self.echoed_replies
                and not self.leaks and all(c not in (1, 2) for c in self.echo_exits),
                f"echo-key at 100 %, plain and streamed (exit "
                f"{', '.join(map(str, self.echo_exits))}); JUDGECAL_DEBUG_HTTP=1, httpx/"
                f"httpcore/openai at DEBUG ({self.log_bytes / 1e6:.1f} MB of log, also on "
                "stderr); store, HTML report, audit bundle, stdout/stderr searched"),
        ]


def secrets_scan(sandbox: Sandbox, *, limit: int = 150, reading_runs: int = 6) -> LeakReport:
    """Run the scenario of the module doc in ``sandbox`` and search every byte."""
    tag = secrets.token_hex(6)
    key = f"sk-judgecal-SENTINEL-{tag}"
    hook_secret = f"whsec-SENTINEL-{tag}"
    token = f"T0KEN-SENTINEL-{tag}"
    sentinels = {"API key": key, "webhook secret": hook_secret, "webhook URL token": token}
    report = LeakReport(list(sentinels))
    log = sandbox.path("judgecal-debug.log")
    port = free_port()
    env = {
        "OPENAI_API_KEY": key,
        "JUDGECAL_HOOK_SECRET": hook_secret,
        "JUDGECAL_HOOK_URL": f"http://127.0.0.1:{port}/hook/{token}",
        "JUDGECAL_DEBUG_HTTP": "1",
        "JUDGECAL_TEST_LOG": str(log),
        "JUDGECAL_TEST_LOG_LEVELS": HTTP_LOG_LEVELS,
        "JUDGECAL_TEST_LOG_STDERR": "1",
    }
    outputs: list[tuple[str, Done]] = []
    url = sandbox.sqlite_url("secrets.db")

    def cli(label: str, *args: str) -> Done:
        done = sandbox.judgecal(*args, env=env, module="benchmarks.harness._logged_cli")
        outputs.append((label, done))
        report.commands.append((label, done.returncode))
        return done

    def config(file: str, base_url: str, **judge: Any) -> str:
        return str(sandbox.write_config(
            file, base_url=base_url, store=url, set_path=sandbox.sets_dir / "llmbar",
            judge_file="llmbar-gpt4-vanilla.yaml",
            judge={"api_key_required": True, "max_retries": 10, "backoff_base_s": 0.01,
                   "backoff_max_s": 0.05, **judge},
            run={"limit": limit, "min_items": 10, "bootstrap": 200},
            drift={"auto_baseline": True},
            notify={"webhook": {"url_env": "JUDGECAL_HOOK_URL",
                                "secret_env": "JUDGECAL_HOOK_SECRET",
                                "events": ["incident", "warning", "recheck", "lifecycle"],
                                "tries_per_run": 2, "timeout_s": 2.0},
                    "prometheus_textfile": str(sandbox.path("judgecal.prom"))},
        ))

    posts: list[dict[str, Any]] = []
    with start_server(recordings=dict(LLMBAR), sets_dir=sandbox.sets_dir, faults=FAULTS,
                      retry_after_s=0.05, system_fingerprint="fp_test") as srv:
        cfg = config("secrets", srv.url)
        with WebhookReceiver(port=port) as hook:
            _expect(report, cli("run: baseline", "run", "--config", cfg, "--json"), (0, 10))
            srv.configure(recordings=dict(DRIFTED))
            _expect(report, cli("run: drifted", "run", "--config", cfg, "--json"), (20,))
            posts.extend(hook.posts)
        # The webhook endpoint is down now: the recheck night records, retries later.
        cli("run: webhook down", "run", "--config", cfg, "--json")
        cfg_stream = config("secrets-stream", srv.url, stream=True)
        cli("run: streamed", "run", "--config", cfg_stream, "--json")
        # A gateway that reflects the key into every 200 reply it sends back.
        srv.configure(faults={"echo-key": 1.0})
        for label, file in (("run: echo-key", cfg), ("run: echo-key streamed", cfg_stream)):
            done = cli(label, "run", "--config", file, "--json")
            report.echo_exits.append(done.returncode)
            _count_echoed(report, url, done)
    for status in (400, 401):
        echo = EchoJudge(status)
        try:
            cfg_echo = config(f"secrets-echo-{status}", echo.url, name=f"echo-{status}")
            done = cli(f"run: echoing {status}", "run", "--config", cfg_echo, "--json")
            _expect(report, done, (3,) if status == 400 else (1,))
        finally:
            echo.stop()
    _reading_commands(cli, url, report, reading_runs)
    with WebhookReceiver(port=port) as hook:  # back up: the pending notifications go out
        cli("incidents: ack", "--store", url, "incidents", "ack", _incident(outputs),
            "--by", "alice", "--reason", "looking into it", "--config", cfg)
        posts.extend(hook.posts)
    if not posts:
        report.scenario_problems.append("no webhook was delivered: the scenario did not run")
    _scan(report, sandbox.workdir, outputs, posts, sentinels)
    report.log_bytes = log.stat().st_size if log.exists() else 0
    return report


def _count_echoed(report: LeakReport, url: str, done: Done) -> None:
    """Count the echo-key night's stored replies, and those stored with the key redacted."""
    from judgecal.store import open_store

    try:
        run_id = str(json.loads(done.stdout)["run_id"])
    except (ValueError, KeyError, TypeError):
        report.scenario_problems.append(f"{' '.join(done.args[:2])} exited {done.returncode}: "
                                        f"{done.stderr.strip()[-200:]}")
        return
    store = open_store(url)
    try:
        replies = store.replies(run_id)
    finally:
        store.close()
    report.echoed_replies += len(replies)
    report.echoed_redacted += sum(
        1 for r in replies
        if "[redacted]" in str(r.get("served_model") or "")
        and "[redacted]" in str(r.get("system_fingerprint") or "")
        and "[redacted]" in str(r.get("raw_text") or "")
    )


@dataclass
class PasswordReport:
    """Where a password written into the judge's ``base_url`` turned up."""

    exit_code: int = -1
    places: int = 0
    found: list[str] = field(default_factory=list)

    def rows(self) -> list[Row]:
        return [Row(
            "secrets", "password in the judge's base_url (user:pass@host) found",
            f"{len(self.found)} in {self.places} places", not self.found and self.places > 0,
            "; ".join(self.found[:5]) if self.found else
            f"a completed run (exit {self.exit_code}); store, runs show --json, HTML report, "
            "audit bundle searched"),
        ]


def url_password_scan(sandbox: Sandbox, *, limit: int = 30) -> PasswordReport:
    """A judge reached at ``http://judge:<password>@host/v1`` (the recorded judge ignores
    the credentials): the password must stay out of everything judgecal writes or prints.
    The config files that hold it (the user's own input) are not searched."""
    password = f"pw-SENTINEL-{secrets.token_hex(6)}"
    report = PasswordReport()
    url = sandbox.sqlite_url("password.db")
    outputs: list[tuple[str, Done]] = []
    with start_server(recordings={"*": "pandalm:gpt-3.5-turbo"},
                      sets_dir=sandbox.sets_dir) as srv:
        base = srv.url.replace("http://", f"http://judge:{password}@", 1)
        cfg = sandbox.write_config("password", base_url=base, store=url,
                                   run={"limit": limit, "min_items": 5, "bootstrap": 50})
        done = sandbox.judgecal("run", "--config", str(cfg), "--json")
        report.exit_code = done.returncode
        outputs.append(("run", done))
    store = ["--store", url]
    for label, args in (("runs show --json", ["runs", "show", "latest", "--json"]),
                        ("runs show", ["runs", "show", "latest"]),
                        ("report", ["report", "--out", "password.html"]),
                        ("audit export", ["audit", "export", "--out", "password-bundle"])):
        outputs.append((label, sandbox.judgecal(*store, *args)))
    needle = password.encode()
    files = [sandbox.path("password.db"), sandbox.path("password.html"),
             *sorted(sandbox.path("password-bundle").rglob("*"))]
    for path in files:
        if path.is_file():
            report.places += 1
            if needle in path.read_bytes():
                report.found.append(str(path.relative_to(sandbox.workdir)))
    for label, out in outputs:
        for stream, text in (("stdout", out.stdout), ("stderr", out.stderr)):
            report.places += 1
            if password in text:
                report.found.append(f"{stream} of {label}")
    return report


def _expect(report: LeakReport, done: Done, codes: tuple[int, ...]) -> None:
    if done.returncode not in codes:
        report.scenario_problems.append(
            f"{' '.join(done.args[:2])} exited {done.returncode} (expected {codes}): "
            f"{done.stderr.strip()[-200:]}")


def _incident(outputs: list[tuple[str, Done]]) -> str:
    for label, done in outputs:
        if label == "run: drifted":
            try:
                inc = json.loads(done.stdout)["drift"]["incident"]
                return str(inc["incident_id"])
            except (ValueError, KeyError, TypeError):
                break
    return "INC-none"


def _reading_commands(cli: Any, url: str, report: LeakReport, reading_runs: int) -> None:
    store = ["--store", url]
    listed = cli("runs list", *store, "runs", "list", "--json")
    runs = json.loads(listed.stdout) if listed.returncode == 0 else []
    cli("runs show", *store, "runs", "show", "latest", "--json", "--replies")
    for r in runs[:reading_runs]:
        cli("runs show (text)", *store, "runs", "show", r["run_id"])
        cli("metrics", *store, "metrics", r["run_id"], "--json")
    if len(runs) >= 2:
        cli("compare", *store, "compare", runs[-1]["run_id"], runs[-2]["run_id"], "--json")
    incidents = cli("incidents list", *store, "incidents", "list", "--json")
    for inc in (json.loads(incidents.stdout) if incidents.returncode == 0 else [])[:3]:
        cli("incidents show", *store, "incidents", "show", inc["incident_id"], "--json")
        cli("incidents show (md)", *store, "incidents", "show", inc["incident_id"])
        cli("postmortem", *store, "incidents", "postmortem", inc["incident_id"])
    cli("baseline show", *store, "baseline", "show", "--json")
    cli("report", *store, "report", "--out", "trust.html")
    cli("audit verify", *store, "audit", "verify", "--json")
    cli("audit export", *store, "audit", "export", "--out", "bundle")
    cli("unknown run (error message)", *store, "runs", "show", "no-such-run")
    if not runs:
        report.scenario_problems.append("no runs were recorded")


def _scan(report: LeakReport, workdir: Path, outputs: list[tuple[str, Done]],
          posts: list[dict[str, Any]], sentinels: dict[str, str]) -> None:
    needles = {name: value.encode() for name, value in sentinels.items()}

    def look(place: str, data: bytes) -> None:
        report.places += 1
        report.bytes_scanned += len(data)
        for name, needle in needles.items():
            if needle in data:
                report.leaks.append(f"{name} in {place}")

    for path in sorted(workdir.rglob("*")):
        if path.is_file():
            look(str(path.relative_to(workdir)), path.read_bytes())
    for label, done in outputs:
        look(f"stdout of {label}", done.stdout.encode())
        look(f"stderr of {label}", done.stderr.encode())
    for i, post in enumerate(posts):
        look(f"webhook delivery {i + 1}", json.dumps(post).encode())


__all__ = ["EchoJudge", "LeakReport", "PasswordReport", "secrets_scan", "url_password_scan"]
