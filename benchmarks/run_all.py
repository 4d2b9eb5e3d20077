"""Run every benchmark (``benchmarks/bench_*.py``) with its quick arguments — ``make bench``.

    python benchmarks/run_all.py                  # every bench_*.py
    python benchmarks/run_all.py --only scores    # the ones whose name contains "scores"
    python benchmarks/run_all.py --full           # their default (full-size) arguments

Each script runs in its own process, one after the other (they measure time: running them
side by side would spoil each other's figures), with its output shown as it comes. A
script that offers ``--quick`` (see its ``--help``) gets it unless ``--full`` is given;
one that offers ``--pg`` gets the PostgreSQL server of ``--pg`` or
``$JUDGECAL_TEST_PG_URL`` when there is one. A summary table (script, exit code,
seconds) ends the run; the exit code is 1 when any script failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def options_of(script: Path) -> set[str]:
    """The long options a script's ``--help`` mentions."""
    try:
        out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                             text=True, timeout=120, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return set()
    words = out.stdout.replace("[", " ").replace("]", " ").replace(",", " ").split()
    return {w.split("=")[0] for w in words if w.startswith("--")}


def command(script: Path, *, full: bool, pg: str | None) -> list[str]:
    opts = options_of(script)
    args = [sys.executable, str(script)]
    if "--quick" in opts and not full:
        args.append("--quick")
    if pg and "--pg" in opts:
        args += ["--pg", pg]
    return args


def shown(cmd: list[str]) -> str:
    """The command as printed: the script relative to the repository, passwords hidden."""
    words = [Path(cmd[1]).relative_to(HERE.parent).as_posix(), *cmd[2:]]
    return " ".join(re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", w) for w in words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="run only scripts whose name contains TEXT (repeatable)")
    parser.add_argument("--full", action="store_true",
                        help="run each script with its default arguments, not --quick")
    parser.add_argument("--pg", default=os.environ.get("JUDGECAL_TEST_PG_URL"), metavar="URL",
                        help="PostgreSQL server for scripts that take --pg "
                        "(default: $JUDGECAL_TEST_PG_URL)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds one script may run before it is stopped (default 3600)")
    args = parser.parse_args()

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(text in s.name for text in args.only)]
    if not scripts:
        print("no benchmark matches", file=sys.stderr)
        return 2
    summary: list[tuple[str, str, float, str]] = []
    for script in scripts:
        cmd = command(script, full=args.full, pg=args.pg)
        print(f"\n=== {shown(cmd)}", flush=True)
        started = time.perf_counter()
        try:
            code = subprocess.run(cmd, cwd=HERE.parent, timeout=args.timeout).returncode
            status = str(code)
        except subprocess.TimeoutExpired:
            code, status = 1, f"timeout ({args.timeout:.0f} s)"
        summary.append((script.name, status, time.perf_counter() - started,
                        shown(cmd).partition(" ")[2]))

    print("\n=== summary")
    width = max(len(name) for name, *_ in summary)
    print(f"  {'script'.ljust(width)}  exit  {'seconds':>8}  arguments")
    for name, status, seconds, extra in summary:
        print(f"  {name.ljust(width)}  {status:>4}  {seconds:8.1f}  {extra}")
    failed = [name for name, status, *_ in summary if status != "0"]
    if failed:
        print(f"  {len(failed)} failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
