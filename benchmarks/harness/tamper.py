"""Label tamper: the stored calibration set edited in SQL after a run must fail verification.

The promise: *the audit chain covers the human labels the judge is measured
against: a label flipped, deleted or added behind judgecal's back, or an item edited or
removed, makes* ``judgecal audit verify`` *exit 1 and name the row.* Lowering the bar the
judge is measured against is the cheapest way to hide a drifted judge.

A real ``judgecal run`` stores the PandaLM set (999 items, 2,997 labels) and one run. Each
tamper is then made on a fresh copy of that store, with plain SQL as an insider with
database access would, and ``judgecal audit verify`` runs on it; the untouched store must
verify (exit 0). The rows tampered with are drawn from the seed.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import time
from dataclasses import dataclass, field

from benchmarks.harness.sandbox import Row, Sandbox, cli_in_process, sqlite_path
from judgecal.recorded.server import start_server

RECORDING = "pandalm:gpt-3.5-turbo"


@dataclass
class Tamper:
    name: str
    statement: str
    named: str
    """Text ``audit verify`` must print (the table and the row's key)."""
    exit_code: int = -1
    found: bool = False
    elapsed_s: float = 0.0
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 1 and self.found


@dataclass
class TamperReport:
    entries: int = 0
    untouched_exit: int = -1
    tampers: list[Tamper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def rows(self) -> list[Row]:
        ok = [t for t in self.tampers if t.ok]
        bad = [t for t in self.tampers if not t.ok]
        slowest = max((t.elapsed_s for t in self.tampers), default=0.0)
        return [
            Row("audit", "set labels/items changed in SQL: audit verify exit 1, row named",
                f"{len(ok)}/{len(self.tampers)} tampers", len(ok) == len(self.tampers) > 0
                and self.untouched_exit == 0 and not self.problems,
                "; ".join(self.problems[:2] + [f"{t.name}: exit {t.exit_code}, "
                                               f"{'named' if t.found else 'NOT named'}"
                                               for t in bad[:3]])
                or f"{', '.join(t.name for t in self.tampers)}; untouched store "
                f"({self.entries} entries) exit {self.untouched_exit}; slowest verify "
                f"{slowest:.2f} s"),
        ]


def label_tamper(sandbox: Sandbox, *, limit: int = 30, seed: int = 0) -> TamperReport:
    """One run, then each tamper on a copy of its store, each verified (module doc)."""
    report = TamperReport()
    url = sandbox.sqlite_url("tamper.db")
    with start_server(recordings={"*": RECORDING}, sets_dir=sandbox.sets_dir) as srv:
        cfg = sandbox.write_config("tamper", base_url=srv.url, store=url,
                                   run={"limit": limit, "min_items": 10},
                                   drift={"auto_baseline": True})
        code, _out, err = cli_in_process(["run", "--config", str(cfg), "--json"])
    path = sqlite_path(url)
    if code != 0 or path is None:
        report.problems.append(f"the run exited {code}: {err.strip()[-200:]}")
        return report
    rng = random.Random(f"tamper:{seed}")
    conn = sqlite3.connect(path)
    try:
        labels = conn.execute("SELECT item_id, dimension, rater_id, code FROM set_labels "
                              "ORDER BY item_id, dimension, rater_id").fetchall()
        items = [r[0] for r in conn.execute("SELECT item_id FROM set_items ORDER BY position")]
    finally:
        conn.close()
    flip, gone, *_ = rng.sample(labels, 2)
    edited, deleted = rng.sample(items, 2)
    extra = rng.choice(items)
    other_code = next(c for c in (0.0, 1.0, 2.0) if c != flip[3])

    def row(kind: str, item: str, dim: str | None = None, rater: str | None = None) -> str:
        key = f"item '{item}'" + (f", dimension '{dim}', rater '{rater}'" if dim else "")
        return f"{kind} row ({key}) was"

    report.tampers = [
        Tamper("label flipped",
               f"UPDATE set_labels SET code = {other_code} WHERE item_id = '{flip[0]}' AND "
               f"dimension = '{flip[1]}' AND rater_id = '{flip[2]}'",
               row("set_labels", flip[0], flip[1], flip[2]) + " changed"),
        Tamper("label deleted",
               f"DELETE FROM set_labels WHERE item_id = '{gone[0]}' AND dimension = "
               f"'{gone[1]}' AND rater_id = '{gone[2]}'",
               row("set_labels", gone[0], gone[1], gone[2]) + " deleted"),
        Tamper("label added",
               "INSERT INTO set_labels (set_version, item_id, dimension, rater_id, code) "
               f"SELECT set_version, item_id, dimension, 'mallory', 1.0 FROM set_labels WHERE "
               f"item_id = '{extra}' LIMIT 1",
               row("set_labels", extra, "preference", "mallory") + " inserted"),
        Tamper("item text edited",
               "UPDATE set_items SET fields = json_set(fields, '$.response1', 'a better "
               f"answer') WHERE item_id = '{edited}'",
               row("set_items", edited) + " changed"),
        Tamper("item deleted", f"DELETE FROM set_items WHERE item_id = '{deleted}'",
               row("set_items", deleted) + " deleted"),
    ]
    report.untouched_exit, _t, out = _verify(sandbox, path, None)
    if report.untouched_exit == 0 and "entries" in out:
        report.entries = int(out.split(" entries")[0].rsplit(" ", 1)[-1] or 0)
    for tamper in report.tampers:
        tamper.exit_code, tamper.elapsed_s, tamper.output = _verify(sandbox, path,
                                                                    tamper.statement)
        tamper.found = tamper.named in tamper.output
    return report


def _verify(sandbox: Sandbox, path: object, statement: str | None) -> tuple[int, float, str]:
    """Copy the store, run ``statement`` on the copy, run ``judgecal audit verify`` on it."""
    copy = sandbox.path("tampered.db")
    for suffix in ("", "-wal", "-shm"):
        copy.with_name(copy.name + suffix).unlink(missing_ok=True)
    shutil.copy2(str(path), copy)
    if statement is not None:
        conn = sqlite3.connect(copy)
        try:
            with conn:
                conn.execute(statement)
        finally:
            conn.close()
    started = time.perf_counter()
    code, out, err = cli_in_process(["--store", f"sqlite:///{copy}", "audit", "verify"])
    return code, time.perf_counter() - started, out + err


__all__ = ["Tamper", "TamperReport", "label_tamper"]
