"""Scheduling lines for the nightly job: a crontab entry and a systemd service + timer.

:func:`schedule_lines` only builds text; it installs nothing. The command it schedules is
``python -m judgecal run --config <absolute path>`` with the interpreter that runs judgecal
now (so the virtual environment is the one in use), from the config's directory.

How each outcome surfaces
-------------------------
*cron* ignores exit codes and mails whatever a job prints. The line runs ``--quiet`` (nothing
printed when healthy) with output appended to a log file, and prints one line — which cron
mails — only when the exit code is not 0: 3 inconclusive, 4 another run in progress, 10
warning, 20 incident opened, 1/2 errors.

*systemd* marks the service failed on any non-zero exit code, so ``OnFailure=`` units and
``systemctl --failed`` see warnings, incidents and errors; the ``--json`` summary lands in
the journal.

API keys are never written into these lines: they come from the environment (for systemd
an optional ``EnvironmentFile``; for cron, a file you source).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

from judgecal.errors import InputError

__all__ = [
    "schedule_lines",
    "unit_name",
]

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def unit_name(judge_name: str) -> str:
    """A systemd-safe unit name for a judge: ``judgecal-<judge>``."""
    safe = re.sub(r"[^A-Za-z0-9_.\-]", "-", judge_name).strip("-.") or "judge"
    return f"judgecal-{safe}"


def schedule_lines(
    config_path: str | Path,
    *,
    at: str = "03:17",
    judge_name: str,
    api_key_env: str | None = None,
    python: str | None = None,
    log_path: str | Path | None = None,
) -> dict[str, Any]:
    """Crontab line and systemd units that run ``config_path`` every night at ``at`` (HH:MM,
    local time of the machine).

    Returns ``{"cron": str, "systemd_service": str, "systemd_timer": str, "unit": str,
    "install": [str, ...], "command": [str, ...]}``.
    """
    match = _TIME.match(at.strip())
    if not match:
        raise InputError(f"--at {at!r}: expected HH:MM, e.g. 03:17")
    hour, minute = int(match.group(1)), int(match.group(2))
    config = Path(config_path).resolve()
    workdir = config.parent
    interpreter = python or sys.executable
    command = [interpreter, "-m", "judgecal", "run", "--config", str(config)]
    unit = unit_name(judge_name)
    log = Path(log_path).resolve() if log_path else workdir / ".judgecal" / f"{unit}.log"
    q = shlex.quote
    cmd = " ".join(q(c) for c in command)
    key_note = (
        f"# cron does not read your shell profile: if the judge needs {api_key_env}, put\n"
        f"#   export {api_key_env}=...   in a file only you can read and source it first.\n"
        if api_key_env else ""
    )
    cron = (
        f"# judgecal nightly run for judge '{judge_name}' at {hour:02d}:{minute:02d}.\n"
        "# Prints (so cron mails) only when the exit code is not 0: 3 inconclusive, 4 locked,\n"
        "# 10 warning, 20 incident opened, 1/2 error. Full output in the log file.\n"
        + key_note
        + f"{minute} {hour} * * * cd {q(str(workdir))} && mkdir -p {q(str(log.parent))} && "
        f"{cmd} --quiet >> {q(str(log))} 2>&1 || echo \"judgecal run for {judge_name} "
        f"exited with code $? (see {log})\"\n"
    )
    env_line = (
        f"# {api_key_env} comes from this file (KEY=value lines, mode 0600); never put keys in "
        "the unit itself.\n"
        f"EnvironmentFile=-/etc/judgecal/{unit}.env\n" if api_key_env else ""
    )
    service = (
        "[Unit]\n"
        f"Description=judgecal nightly calibration run (judge {judge_name})\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={workdir}\n"
        + env_line
        + f"ExecStart={cmd} --json\n"
        "# Exit codes: 0 healthy, 3 inconclusive, 4 another run in progress, 10 warning,\n"
        "# 20 incident opened, 1/2 error. Any non-zero code marks the unit failed, so an\n"
        "# OnFailure= unit (or `systemctl --failed`) sees warnings and incidents.\n"
        "TimeoutStartSec=6h\n"
        "Nice=10\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=Nightly judgecal run (judge {judge_name})\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {hour:02d}:{minute:02d}:00\n"
        "Persistent=true\n"
        "RandomizedDelaySec=5min\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    install = [
        f"sudo cp {unit}.service {unit}.timer /etc/systemd/system/",
        "sudo systemctl daemon-reload",
        f"sudo systemctl enable --now {unit}.timer",
        f"systemctl list-timers {unit}.timer",
    ]
    return {
        "unit": unit,
        "command": command,
        "cron": cron,
        "systemd_service": service,
        "systemd_timer": timer,
        "install": install,
        "log": str(log),
    }
