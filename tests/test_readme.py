"""Every command in the README runs (or, for ones needing outside services, parses).

```sh blocks are executed in order in a scratch directory after the demo, exactly as
written; ```bash blocks name real providers or servers and are parsed with the CLI's own
option parser, so a renamed option cannot survive in the docs.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from judgecal.cli.main import cli
from tests.conftest import ROOT

README = ROOT / "README.md"


def _blocks(lang: str) -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)
    out = []
    for block in blocks:
        lines = []
        for raw in block.splitlines():
            line = re.split(r"\s+#\s", raw, maxsplit=1)[0].strip()
            code = re.search(r"\s#\s+exit (\d+)", raw)  # a documented non-zero exit
            if line and code:
                line = f"{line}  # exit {code.group(1)}"
            if line:
                lines.append(line)
        out.append(lines)
    return out


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("readme")
    for name in ("configs", "calibration_sets"):
        (work / name).symlink_to(ROOT / name)
    yield work


def test_readme_opens_with_the_two_commands() -> None:
    first = _blocks("sh")[0]
    assert first == ["make demo", "make test"]


def test_sh_blocks_run_as_written(workspace: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("JUDGECAL_STORE", None)
    background: list[subprocess.Popen[bytes]] = []
    ran = 0
    try:
        for block in _blocks("sh"):
            for line in block:
                args = shlex.split(line)
                if line == "make test":
                    continue  # the suite itself
                if line == "make demo":
                    out_dir = workspace / "demo-output"
                    proc = subprocess.run(
                        ["make", "-C", str(ROOT), "demo", f"DEMO_OUT={out_dir}"],
                        capture_output=True, text=True, env=env, timeout=900,
                    )
                    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
                    assert "INCIDENT" in proc.stdout and "verified" in proc.stdout
                    ran += 1
                    continue
                if args[0] == "export":
                    key, value = args[1].split("=", 1)
                    env[key] = value
                    continue
                expected = 0
                if "# exit " in line:  # a documented non-zero exit, e.g. "# exit 5: ..."
                    line, _, note = line.partition("# exit ")
                    expected = int(note.split(":")[0])
                    args = shlex.split(line)
                assert args[0] == "judgecal", f"README runs something unexpected: {line}"
                if args[-1] == "&":
                    background.append(subprocess.Popen(
                        [sys.executable, "-m", "judgecal", *args[1:-1]], cwd=workspace, env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    ))
                    _wait_port(8765)
                    continue
                proc = subprocess.run(
                    [sys.executable, "-m", "judgecal", *args[1:]], cwd=workspace, env=env,
                    capture_output=True, text=True, timeout=600,
                )
                assert proc.returncode == expected, (
                    f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
                )
                assert "Traceback" not in proc.stderr
                ran += 1
    finally:
        for p in background:
            p.terminate()
            p.communicate(timeout=10)
    assert ran >= 18
    assert (workspace / "trust.html").stat().st_size > 10_000
    assert (workspace / "audit-bundle" / "SHA256SUMS").exists()
    assert (workspace / "affected.csv").stat().st_size > 0


def _parse_only(args: list[str]) -> None:
    ctx = cli.make_context("judgecal", list(args))
    command: click.Command = cli
    while isinstance(command, click.Group):
        with warnings.catch_warnings():  # click 8.2+ deprecates protected_args
            warnings.simplefilter("ignore", DeprecationWarning)
            protected = list(getattr(ctx, "_protected_args", None) or ctx.protected_args)
        rest = [*protected, *ctx.args]
        assert rest, f"no subcommand in {args}"
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"unknown command {rest[0]!r} in {args}"
        ctx = sub.make_context(rest[0], rest[1:], parent=ctx)
        command = sub


def test_bash_blocks_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    makefile = (ROOT / "Makefile").read_text()
    checked = 0
    for block in _blocks("bash"):
        for line in block:
            args = shlex.split(line.split(">>")[0])
            if args[0] == "export":
                continue
            if args[0] == "make":
                assert re.search(rf"^{re.escape(args[1])}:", makefile, re.M), line
            else:
                assert args[0] == "judgecal", line
                _parse_only(args[1:])
            checked += 1
    assert checked >= 8


def test_every_command_has_help_and_is_in_the_readme() -> None:
    from judgecal.cli.main import COMMANDS

    text = README.read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"`{name}" in text, f"command {name} is not in the README's table"
        proc = subprocess.run([sys.executable, "-m", "judgecal", name, "--help"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and len(proc.stdout) > 200, name
