"""Bounded reading: YAML alias bombs and deep nesting, score files broken mid-way.

Two promises about input that is hostile by its *size*, not its content:

* **YAML** — every YAML file judgecal reads goes through one bounded loader
  (:mod:`judgecal.io.yamlfile`): a "billion laughs" alias bomb of depth 9 (10^10 nodes
  written out) and 5,000-deep nesting (flow sequences, flow mappings, compact block
  sequences) in a set's ``set.yaml``, in a run config and in a judge file are refused with
  exit 2 and a message naming the file, in under a second, without ``RecursionError`` and
  without touching the store. ``set.yaml`` is tried through ``judgecal validate`` and
  ``judgecal run --config``; the configs through ``judgecal run --config``.
* **Score files broken mid-way** — a 1,000-line CSV or JSONL file of production scores with
  an invalid UTF-8 byte, or a 5 MB field, on line 5: ``judgecal scores ingest`` must ingest
  every valid row and report line 5 (exit 10), or, with ``--atomic``, refuse the whole file
  (exit 2, store unchanged row for row). Never a silent stop (fewer rows stored than the
  valid ones, with no bad row reported).

Commands run in-process (:func:`~benchmarks.harness.sandbox.cli_in_process`) on scratch copies
of :class:`~benchmarks.harness.hostile.HostileInputs`; the times are the command's own
(interpreter start-up excluded).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness.hostile import HostileInputs
from benchmarks.harness.sandbox import Row, cli_in_process, table_rows

MAX_SECONDS = 1.0
DEPTH = 5000
BOMB_LEVELS = 9


def alias_bomb(levels: int = BOMB_LEVELS) -> str:
    """Top-level YAML lines of a billion-laughs bomb: 10 strings, then ``levels`` lists of 10
    aliases of the previous one (10^(levels + 1) nodes once written out)."""
    text = 'lol0: &lol0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for k in range(1, levels + 1):
        text += f"lol{k}: &lol{k} [{', '.join([f'*lol{k - 1}'] * 10)}]\n"
    return text


PAYLOADS: dict[str, str] = {
    f"alias bomb (depth {BOMB_LEVELS})": alias_bomb(),
    f"{DEPTH:,}-deep [[[…]]]": "deep: " + "[" * DEPTH + "]" * DEPTH + "\n",
    f"{DEPTH:,}-deep {{a: {{a: …}}}}": "deep: " + "{a: " * DEPTH + "1" + "}" * DEPTH + "\n",
    f"{DEPTH:,}-deep - - - …": "deep:\n  " + "- " * DEPTH + "x\n",
}


@dataclass
class YamlAttempt:
    target: str
    payload: str
    command: str
    exit_code: int = -1
    elapsed_s: float = 0.0
    named: bool = False
    recursion: bool = False
    store_unchanged: bool = False
    message: str = ""

    @property
    def ok(self) -> bool:
        return (self.exit_code == 2 and self.elapsed_s < MAX_SECONDS and self.named
                and not self.recursion and self.store_unchanged)


@dataclass
class IngestAttempt:
    fmt: str
    damage: str
    atomic: bool
    lines: int
    rows: int
    """Data rows in the file (a CSV's header is a line, not a row)."""
    exit_code: int = -1
    inserted: int = 0
    bad_lines: list[int] = field(default_factory=list)
    store_unchanged: bool = False
    elapsed_s: float = 0.0
    message: str = ""

    @property
    def outcome(self) -> str:
        if self.exit_code == 0 and self.inserted == self.rows:
            return "all ingested"
        if self.exit_code == 10 and self.bad_lines == [5] and self.inserted == self.rows - 1:
            return "valid rows ingested, line 5 reported"
        if self.exit_code == 2 and self.store_unchanged:
            return "whole file refused"
        if self.exit_code in (0, 10) and self.inserted < self.rows - len(self.bad_lines):
            return "SILENT STOP"
        return "WRONG"

    @property
    def ok(self) -> bool:
        return self.outcome not in ("SILENT STOP", "WRONG")

    @property
    def label(self) -> str:
        return f"{self.fmt} {self.damage}{' --atomic' if self.atomic else ''}"


@dataclass
class BoundedReport:
    yaml: list[YamlAttempt] = field(default_factory=list)
    ingest: list[IngestAttempt] = field(default_factory=list)

    def rows(self) -> list[Row]:
        y, g = self.yaml, self.ingest
        y_ok = [a for a in y if a.ok]
        slowest = max(y, key=lambda a: a.elapsed_s) if y else None
        y_bad = [f"{a.target} {a.payload} ({a.command}): exit {a.exit_code} in "
                 f"{a.elapsed_s:.2f} s{', RecursionError' if a.recursion else ''}"
                 f"{'' if a.named else ', file not named'}"
                 f"{'' if a.store_unchanged else ', store changed'}" for a in y if not a.ok]
        g_ok = [a for a in g if a.ok]
        kept = [a for a in g if a.exit_code == 10]
        refused = [a for a in g if a.exit_code == 2]
        return [
            Row("hostile", f"YAML alias bomb / {DEPTH:,}-deep nesting: exit 2 in < 1 s",
                f"{len(y_ok)}/{len(y)} refused" + (f", slowest {slowest.elapsed_s:.2f} s"
                                                   if slowest else ""),
                len(y_ok) == len(y) > 0,
                "; ".join(y_bad[:3]) or
                f"{len(PAYLOADS)} payloads in set.yaml (validate, run), run config and judge "
                "file (run); no RecursionError, store unchanged"
                + (f"; slowest: {slowest.target} {slowest.payload}" if slowest else "")),
            Row("hostile", "score file broken on line 5 of 1,000: never a silent stop",
                f"{len(g_ok)}/{len(g)} files", len(g_ok) == len(g) > 0,
                "; ".join(f"{a.label}: {a.outcome} (exit {a.exit_code}, {a.inserted} "
                          f"stored, bad lines {a.bad_lines})" for a in g if not a.ok)[:400]
                or f"{len(kept)} × {', '.join(sorted({str(a.inserted) for a in kept}))} valid "
                f"rows stored + line 5 reported (exit 10), {len(refused)} × refused whole "
                "(--atomic, exit 2, store unchanged); invalid UTF-8 byte, 5 MB field; CSV, "
                "JSONL"),
        ]


def bounded_reading(workdir: Path, *, inputs: HostileInputs | None = None) -> BoundedReport:
    """Both halves of the module doc on scratch copies of the hostile-input base."""
    inputs = inputs or HostileInputs(workdir)
    report = BoundedReport()
    for target in ("set.yaml", "run config", "judge file"):
        for name, payload in PAYLOADS.items():
            commands = ("validate", "run") if target == "set.yaml" else ("run",)
            for command in commands:
                report.yaml.append(_yaml_attempt(inputs, target, name, payload, command))
    for fmt in ("csv", "jsonl"):
        for damage in ("invalid UTF-8 byte", "5 MB field"):
            for atomic in (False, True):
                report.ingest.append(_ingest_attempt(inputs, fmt, damage, atomic))
    return report


def _yaml_attempt(inputs: HostileInputs, target: str, name: str, payload: str,
                  command: str) -> YamlAttempt:
    case = inputs.case()
    try:
        path = {"set.yaml": case.set_dir / "set.yaml", "run config": case.config,
                "judge file": case.judge}[target]
        path.write_text(payload + path.read_text(encoding="utf-8"), encoding="utf-8")
        args = (["validate", str(case.set_dir)] if command == "validate"
                else ["run", "--config", str(case.config)])
        started = time.perf_counter()
        code, out, err = cli_in_process(args)
        attempt = YamlAttempt(target, name, command, code, time.perf_counter() - started)
        attempt.message = err.strip()[:300]
        attempt.named = path.name in err
        attempt.recursion = "RecursionError" in err + out or "recursion" in err.lower()
        attempt.store_unchanged = table_rows(case.store_url) == inputs.snapshot
        return attempt
    finally:
        shutil.rmtree(case.root, ignore_errors=True)


_COLUMNS = ("score_id", "scored_at", "judge", "fingerprint", "dimension", "score", "customer",
            "segment")


def _score_rows(n: int) -> list[dict[str, str]]:
    return [{"score_id": f"mid{i:04d}", "scored_at": f"2026-03-{1 + i % 28:02d}T12:00:00Z",
             "judge": "fuzz-judge", "fingerprint": "fp1", "dimension": "preference",
             "score": str(i % 3), "customer": f"cust{i % 4}", "segment": f"seg{i % 2}"}
            for i in range(n)]


def broken_file(path: Path, fmt: str, damage: str, *, lines: int = 1000, line: int = 5) -> int:
    """Write a ``lines``-line score file whose line ``line`` is damaged; return its data rows."""
    n = lines - 1 if fmt == "csv" else lines
    rows = _score_rows(n)
    encoded: list[bytes] = []
    if fmt == "csv":
        encoded.append(",".join(_COLUMNS).encode())
        encoded += [",".join(r[c] for c in _COLUMNS).encode() for r in rows]
    else:
        encoded += [json.dumps(r).encode() for r in rows]
    i = line - 1
    marker = f"cust{(i - 1 if fmt == 'csv' else i) % 4}".encode()
    assert encoded[i].count(marker) == 1, (encoded[i], marker)
    if damage == "invalid UTF-8 byte":
        encoded[i] = encoded[i].replace(marker, b"cu\xff\xfe" + marker[2:])
    else:
        encoded[i] = encoded[i].replace(marker, b"c" + b"X" * 5_000_000)
    path.write_bytes(b"\n".join(encoded) + b"\n")
    return n


def _ingest_attempt(inputs: HostileInputs, fmt: str, damage: str, atomic: bool
                    ) -> IngestAttempt:
    case = inputs.case()
    try:
        path = case.root / f"broken.{fmt}"
        n = broken_file(path, fmt, damage)
        attempt = IngestAttempt(fmt, damage, atomic, 1000, n)
        before = len(table_rows(case.store_url).get("score_history", []))
        args = ["--store", case.store_url, "scores", "ingest", str(path), "--json"]
        started = time.perf_counter()
        code, out, err = cli_in_process(args + (["--atomic"] if atomic else []))
        attempt.elapsed_s = time.perf_counter() - started
        attempt.exit_code = code
        after = table_rows(case.store_url)
        attempt.inserted = len(after.get("score_history", [])) - before
        attempt.store_unchanged = after == inputs.snapshot
        attempt.message = (err or out).strip()[:300]
        try:
            data = json.loads(out)
            attempt.bad_lines = sorted(int(p["line"]) for p in data.get("problems", [])
                                       if p.get("line") is not None)
        except (ValueError, TypeError, KeyError, AttributeError):
            attempt.bad_lines = []
        return attempt
    finally:
        shutil.rmtree(case.root, ignore_errors=True)


__all__ = [
    "PAYLOADS",
    "BoundedReport",
    "IngestAttempt",
    "YamlAttempt",
    "alias_bomb",
    "bounded_reading",
    "broken_file",
]
