"""Append-only, hash-chained audit log, its full verification, and the auditor's bundle.

Every record that matters to an auditor — a run when it finishes, a metric report, a
baseline change, an incident and each step of its lifecycle — is appended here, in the
same transaction that writes the record itself. Entry ``n`` stores:

* ``record``: a canonical JSON snapshot of the record, and ``record_sha256`` its hash;
* ``prev_hash``: the ``entry_hash`` of entry ``n-1`` (64 zeros for the first);
* ``entry_hash`` = SHA-256 of ``prev_hash`` + newline + canonical JSON of
  ``{seq, created_at, kind, ref, record_sha256}``.

Canonical JSON is ``json.dumps(x, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8: anyone can recompute every hash with the standard
library (see :data:`CHAIN_RECIPE`).

What :func:`verify` checks, and what each check catches
=========================================================
1. **The chain** (:func:`verify_chain`), entry by entry in ``seq`` order: an UPDATE of any
   column of an entry breaks its ``entry_hash`` (or its ``record_sha256``); a DELETE leaves a
   sequence gap and a broken link; a reorder (entries swapped, renumbered or their contents
   exchanged) breaks the links and the hashes, and following the ``prev_hash`` links tells
   where each moved entry was originally logged.
2. **The records**: every covered record is snapshotted again from its own table and
   compared with its *newest* snapshot in the log. An UPDATE made directly in SQL on a
   covered table (``runs``, ``replies`` — through the run's digest of its replies —,
   ``metric_reports``, the stored calibration sets — item by item and label by label, see
   :mod:`judgecal.audit_sets` —, and every kind another module registers) is reported with
   the fields (or rows) that differ; a record that is gone is reported as deleted.
3. **Records without an entry**: every kind that registers a way to list its records is
   enumerated; a record with no entry at all was written around judgecal, or its entry was
   deleted from the tail of the log (which leaves the chain itself intact). A kind whose
   records may predate their coverage (:data:`UNLOGGED_IS_WARNING`: calibration sets stored
   before set auditing) is listed as a warning instead.
4. **An anchor** (optional): the head hash published earlier (``judgecal audit verify``
   prints it) must still be in the chain; this catches a log whose tail was cut together
   with the records it covered.

A module that changes a covered record must append a new snapshot of it in the same
transaction; verification compares the table with the newest snapshot only.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select, text

from judgecal.db import schema
from judgecal.errors import InputError, NotFoundError, Problem
from judgecal.io.paths import cannot_write
from judgecal.records import RUNNING, utcnow

if TYPE_CHECKING:
    from judgecal.store import Store

GENESIS = "0" * 64

SnapshotFn = Callable[[Connection, str], "dict[str, Any] | None"]
RefsFn = Callable[[Connection], Iterable[str]]
BulkFn = Callable[[Connection], Iterable["tuple[str, dict[str, Any]]"]]
DetailFn = Callable[[int, str, Any, Any], "list[AuditProblem]"]

# Problem codes (stable: they appear in ``audit verify --json``).
ENTRY_EDITED = "entry_edited"
SNAPSHOT_EDITED = "snapshot_edited"
SEQUENCE_GAP = "sequence_gap"
BROKEN_LINK = "broken_link"
ENTRY_MOVED = "entry_moved"
RECORD_EDITED = "record_edited"
RECORD_DELETED = "record_deleted"
RECORD_UNLOGGED = "record_unlogged"
ANCHOR_MISSING = "anchor_missing"
ROW_EDITED = "row_edited"
ROW_DELETED = "row_deleted"
ROW_INSERTED = "row_inserted"
RECORD_UNCOVERED = "record_uncovered"
"""Warning code: a record stored before its kind was audited (not a problem)."""


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False, default=str)


def canonical(data: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept, floats as repr.

    Exactly ``json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False, default=str)``, with the encoder built once (every reply of every run is
    encoded on each verification).
    """
    return _CANONICAL.encode(data)


def sha256_hex(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def entry_hash(prev_hash: str, seq: int, created_at: str, kind: str, ref: str,
               record_sha256: str) -> str:
    body = canonical({"seq": seq, "created_at": created_at, "kind": kind, "ref": ref,
                      "record_sha256": record_sha256})
    return sha256_hex(prev_hash + "\n" + body)


def append(conn: Connection, kind: str, ref: str, record: dict[str, Any]) -> int:
    """Append one entry inside the caller's transaction. Returns its sequence number.

    Call it in the transaction that writes ``record`` so that both land or neither does.
    """
    if conn.dialect.name == "postgresql":
        # Serialise appenders: the chain needs the previous entry's hash.
        conn.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
    last = conn.execute(
        select(schema.audit_log.c.seq, schema.audit_log.c.entry_hash)
        .order_by(schema.audit_log.c.seq.desc())
        .limit(1)
    ).first()
    seq = 1 if last is None else int(last[0]) + 1
    prev = GENESIS if last is None else str(last[1])
    snapshot = json.loads(canonical(record))
    record_sha = sha256_hex(canonical(snapshot))
    created = utcnow()
    conn.execute(
        schema.audit_log.insert().values(
            seq=seq,
            created_at=created,
            kind=kind,
            ref=ref,
            record=snapshot,
            record_sha256=record_sha,
            prev_hash=prev,
            entry_hash=entry_hash(prev, seq, created, kind, ref, record_sha),
        )
    )
    return seq


@dataclass(frozen=True)
class AuditProblem:
    """One thing verification found wrong, named by the entry (or record) it concerns.

    ``seq`` is None for a record that has no entry at all (:data:`RECORD_UNLOGGED`).
    ``row`` names the table row inside the record, for the kinds that report rows.
    """

    seq: int | None
    kind: str
    ref: str
    message: str
    code: str = ENTRY_EDITED
    row: dict[str, Any] | None = field(default=None, hash=False)

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "no entry"
        return f"{where} ({self.kind} {self.ref}): {self.message}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "kind": self.kind, "ref": self.ref,
                               "code": self.code, "message": self.message}
        if self.row is not None:
            out["row"] = self.row
        return out


ChainProblem = AuditProblem
"""Former name of :class:`AuditProblem`."""


def _linked_positions(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Position of each entry when the chain is followed by its ``prev_hash`` links.

    This is the order the entries were logged in, whatever their ``seq`` says now.
    """
    following: dict[str, dict[str, Any]] = {}
    for row in rows:
        following.setdefault(str(row["prev_hash"]), row)
    positions: dict[str, int] = {}
    current = GENESIS
    position = 0
    while current in following and len(positions) < len(rows):
        row = following[current]
        position += 1
        current = str(row["entry_hash"])
        if current in positions:  # a cycle: stop
            break
        positions[current] = position
    return positions


def verify_chain(engine: Engine) -> tuple[int, list[AuditProblem]]:
    """Walk the chain in ``seq`` order; return (entries checked, problems found)."""
    with engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                select(schema.audit_log).order_by(schema.audit_log.c.seq)
            ).mappings()
        ]
    return len(rows), _check_chain(rows)


def _check_chain(rows: list[dict[str, Any]]) -> list[AuditProblem]:
    problems: list[AuditProblem] = []
    linked: dict[str, int] | None = None
    prev = GENESIS
    expected_seq = 1
    for row in rows:
        seq, kind, ref = int(row["seq"]), str(row["kind"]), str(row["ref"])

        def report(code: str, message: str, seq: int = seq, kind: str = kind,
                   ref: str = ref) -> None:
            problems.append(AuditProblem(seq, kind, ref, message, code))

        if seq != expected_seq:
            missing = (f"entry {expected_seq}" if seq == expected_seq + 1
                       else f"entries {expected_seq}..{seq - 1}")
            report(SEQUENCE_GAP, f"sequence gap: {missing} missing (deleted)")
        if sha256_hex(canonical(row["record"])) != row["record_sha256"]:
            report(SNAPSHOT_EDITED, "the record snapshot in this entry was edited "
                   "(it no longer matches its record_sha256)")
        recomputed = entry_hash(str(row["prev_hash"]), seq, str(row["created_at"]), kind, ref,
                                str(row["record_sha256"]))
        moved_from: int | None = None
        if recomputed != row["entry_hash"]:
            if linked is None:
                linked = _linked_positions(rows)
            original = linked.get(str(row["entry_hash"]))
            if original is not None and original != seq and entry_hash(
                str(row["prev_hash"]), original, str(row["created_at"]), kind, ref,
                str(row["record_sha256"])
            ) == row["entry_hash"]:
                moved_from = original
                report(ENTRY_MOVED, f"entry was moved: it was logged as entry {original} "
                       "(entries were reordered)")
            else:
                report(ENTRY_EDITED, "entry was edited (its fields no longer match its "
                       "entry_hash)")
        if row["prev_hash"] != prev and moved_from is None:
            report(BROKEN_LINK, "does not link to the previous entry "
                   "(an entry before it was deleted, edited or moved)")
        prev = str(row["entry_hash"])
        expected_seq = seq + 1
    return problems


def head(engine: Engine) -> tuple[int, str]:
    """(number of entries, hash of the last entry) — publish it to anchor the log."""
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(schema.audit_log)).scalar_one()
        last = conn.execute(
            select(schema.audit_log.c.entry_hash).order_by(schema.audit_log.c.seq.desc()).limit(1)
        ).scalar()
    return int(n), str(last or GENESIS)


# -- snapshots of the records the log covers ---------------------------------------------
# ``kind -> function(conn, ref) -> canonical record or None when the record is gone``.
# Verification recomputes each covered record from its own table and compares it with the
# newest snapshot of that record in the log, so an edit made directly in SQL is caught even
# when the log itself is untouched. Other modules register their kinds here, with
# ``refs=`` a function listing every record of the kind that must have an entry.
SNAPSHOTS: dict[str, SnapshotFn] = {}
REFS: dict[str, RefsFn] = {}
BULK: dict[str, BulkFn] = {}
"""Optional: ``kind -> function(conn) -> (ref, record) for every record``, the same records as
the kind's snapshot function, read in a few queries instead of one per record (verification of
a year of nightly runs reads every reply once, in one streamed query)."""
DETAILS: dict[str, DetailFn] = {}
"""Optional: ``kind -> function(seq, ref, logged, current) -> problems`` naming what changed
inside an edited record (e.g. the table rows of a calibration set) instead of one generic
"differs in" problem; an empty list falls back to the generic problem."""
UNLOGGED_IS_WARNING: dict[str, str] = {}
"""``kind -> message`` for kinds whose records may predate their coverage: a listed record
with no entry is a warning (:data:`RECORD_UNCOVERED`), not a problem."""

_REGISTERING_MODULES = ("judgecal.drift", "judgecal.incidents", "judgecal.scores",
                        "judgecal.score_history", "judgecal.history", "judgecal.audit_sets")
"""Modules that register kinds; :func:`verify` imports those that exist."""


def snapshot_kind(kind: str, refs: RefsFn | None = None) -> Callable[[SnapshotFn], SnapshotFn]:
    """Register the snapshot function of ``kind`` (and, optionally, how to list its refs)."""

    def register(fn: SnapshotFn) -> SnapshotFn:
        SNAPSHOTS[kind] = fn
        if refs is not None:
            REFS[kind] = refs
        return fn

    return register


def record_refs(kind: str) -> Callable[[RefsFn], RefsFn]:
    """Register the function listing every record of ``kind`` that must have an entry."""

    def register(fn: RefsFn) -> RefsFn:
        REFS[kind] = fn
        return fn

    return register


def load_registrations() -> None:
    """Import the modules that register snapshot kinds (those present in this install)."""
    import importlib
    import importlib.util
    import sys

    for name in _REGISTERING_MODULES:
        if name not in sys.modules and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


_REPLY_COLUMNS = [c.name for c in schema.replies.columns]


def reply_rows(conn: Connection, run_id: str | None = None) -> Iterable[dict[str, Any]]:
    """The replies of a run (or of every run, grouped by run), in the order their digest is
    computed: item, dimension, variant."""
    r = schema.replies.c
    query = select(*[schema.replies.c[name] for name in _REPLY_COLUMNS])
    if run_id is not None:
        query = query.where(r.run_id == run_id)
    query = query.order_by(r.run_id, r.item_id, r.dimension, r.variant)
    for row in conn.execute(query).yield_per(5000):
        yield dict(zip(_REPLY_COLUMNS, row, strict=True))


def replies_by_run(conn: Connection) -> Iterable[tuple[str, Iterable[dict[str, Any]]]]:
    """Every reply in the store, streamed once, as (run_id, that run's replies) groups."""
    import itertools

    for run_id, group in itertools.groupby(reply_rows(conn), key=lambda row: row["run_id"]):
        yield str(run_id), group


def _digest(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    h = hashlib.sha256()
    n = 0
    for row in rows:
        h.update(canonical(row).encode("utf-8"))
        h.update(b"\n")
        n += 1
    return {"count": n, "sha256": h.hexdigest()}


def _replies_digest(conn: Connection, run_id: str) -> dict[str, Any]:
    """Count and SHA-256 of the run's replies, one canonical JSON line each.

    The digest equals ``sha256sum`` of the ``.replies.jsonl`` file :func:`export_bundle`
    writes for the run.
    """
    return _digest(reply_rows(conn, run_id))


def _run_refs(conn: Connection) -> Iterable[str]:
    # A run is logged when it ends; one still running has no entry yet.
    rows = conn.execute(select(schema.runs.c.run_id).where(schema.runs.c.status != RUNNING))
    return [str(r[0]) for r in rows]


@snapshot_kind("run", refs=_run_refs)
def snapshot_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).mappings().first()
    if row is None:
        return None
    record = json.loads(canonical(dict(row)))
    record["replies"] = _replies_digest(conn, run_id)
    return dict(record)


def _metric_report_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.metric_reports.c.report_id))]


def _bulk_runs(conn: Connection) -> Iterable[tuple[str, dict[str, Any]]]:
    runs = {
        str(row["run_id"]): dict(json.loads(canonical(dict(row))))
        for row in conn.execute(select(schema.runs)).mappings()
    }
    digests = {run_id: _digest(rows) for run_id, rows in replies_by_run(conn)}
    empty = _digest([])
    for run_id, record in runs.items():
        record["replies"] = digests.get(run_id, empty)
        yield run_id, record


BULK["run"] = _bulk_runs


def _bulk_metric_reports(conn: Connection) -> Iterable[tuple[str, dict[str, Any]]]:
    for row in conn.execute(select(schema.metric_reports)).mappings():
        yield str(row["report_id"]), dict(json.loads(canonical(dict(row))))


BULK["metric_report"] = _bulk_metric_reports


@snapshot_kind("metric_report", refs=_metric_report_refs)
def snapshot_metric_report(conn: Connection, ref: str) -> dict[str, Any] | None:
    try:
        report_id = int(ref)
    except ValueError:
        return None
    row = conn.execute(
        select(schema.metric_reports).where(schema.metric_reports.c.report_id == report_id)
    ).mappings().first()
    return None if row is None else dict(json.loads(canonical(dict(row))))


# Records of the drift and incident modules: they register their snapshots themselves;
# listing their refs here lets verification find one whose entry was cut from the log.
@record_refs("baseline")
def _baseline_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.baselines.c.baseline_id))]


@record_refs("drift_check")
def _drift_check_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.drift_checks.c.check_id))]


@record_refs("incident")
def _incident_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.incidents.c.incident_id))]


@record_refs("incident_event")
def _incident_event_refs(conn: Connection) -> Iterable[str]:
    e = schema.incident_events.c
    return [f"{i}#{n}" for i, n in conn.execute(select(e.incident_id, e.seq))]


# -- full verification -------------------------------------------------------------------
@dataclass
class VerifyResult:
    """What :func:`verify` checked and found."""

    entries: int
    head: str
    problems: list[AuditProblem] = field(default_factory=list)
    records_checked: dict[str, int] = field(default_factory=dict)
    """Per kind: records re-snapshotted from their table and compared with the log."""
    unchecked_kinds: list[str] = field(default_factory=list)
    """Kinds in the log without a registered snapshot function (their records are only
    protected by the chain)."""
    unlisted_kinds: list[str] = field(default_factory=list)
    """Registered kinds that cannot list their records (unlogged records are not sought)."""
    warnings: list[AuditProblem] = field(default_factory=list)
    """Records not covered yet, which is not tampering (see :data:`UNLOGGED_IS_WARNING`)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head,
            "records_checked": dict(sorted(self.records_checked.items())),
            "unchecked_kinds": self.unchecked_kinds,
            "unlisted_kinds": self.unlisted_kinds,
            "problems": [p.to_json() for p in self.problems],
            "warnings": [w.to_json() for w in self.warnings],
        }


def _differences(logged: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two snapshots (two levels deep)."""
    if not isinstance(logged, dict) or not isinstance(current, dict):
        return [prefix.rstrip(".") or "record"]
    out: list[str] = []
    for key in sorted(set(logged) | set(current), key=str):
        a, b = logged.get(key), current.get(key)
        if canonical(a) == canonical(b):
            continue
        if prefix.count(".") < 1 and isinstance(a, dict) and isinstance(b, dict):
            out.extend(_differences(a, b, f"{prefix}{key}."))
        else:
            out.append(f"{prefix}{key}")
    return out


def _newest_entries(conn: Connection) -> dict[tuple[str, str], tuple[int, str]]:
    """(kind, ref) -> (seq, record_sha256) of the newest entry of each record."""
    a = schema.audit_log.c
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    for seq, kind, ref, sha in conn.execute(
        select(a.seq, a.kind, a.ref, a.record_sha256).order_by(a.seq)
    ):
        newest[(str(kind), str(ref))] = (int(seq), str(sha))
    return newest


def verify_records(conn: Connection, result: VerifyResult) -> None:
    """Checks 2 and 3 of the module docstring, adding to ``result``.

    Safe while judgecal writes concurrently (a record and its entry commit together): the
    records are listed *before* the log is read, so a record seen has its entry; and a record
    that differs from its newest snapshot is compared once more with the log as it is then,
    so a change logged in the meantime is not mistaken for tampering.
    """
    listed: dict[str, list[str]] = {}
    for kind in sorted(SNAPSHOTS):
        lister = REFS.get(kind)
        if lister is None:
            result.unlisted_kinds.append(kind)
        else:
            listed[kind] = sorted(str(r) for r in lister(conn))
    newest = _newest_entries(conn)
    by_kind: dict[str, set[str]] = {}
    for kind, ref in newest:
        by_kind.setdefault(kind, set()).add(ref)
    bulk = {kind: dict(BULK[kind](conn)) for kind in by_kind if kind in BULK and kind in SNAPSHOTS}
    for (kind, ref), (seq, sha) in sorted(newest.items(), key=lambda kv: kv[1][0]):
        snap = SNAPSHOTS.get(kind)
        if snap is None:
            if kind not in result.unchecked_kinds:
                result.unchecked_kinds.append(kind)
            continue
        current = bulk[kind].get(ref) if kind in bulk else snap(conn, ref)
        result.records_checked[kind] = result.records_checked.get(kind, 0) + 1
        if current is None:
            result.problems.append(AuditProblem(
                seq, kind, ref, f"the {kind} record was deleted from its table", RECORD_DELETED))
            continue
        current = json.loads(canonical(current))
        if sha256_hex(canonical(current)) != sha:
            a = schema.audit_log.c
            seq, sha, logged = conn.execute(
                select(a.seq, a.record_sha256, a.record)
                .where(a.kind == kind, a.ref == ref).order_by(a.seq.desc()).limit(1)
            ).one()
            fresh = snap(conn, ref)
            if fresh is not None and sha256_hex(canonical(fresh)) == sha:
                continue  # changed and logged while we were reading: not tampering
            detail = DETAILS.get(kind)
            named = detail(int(seq), ref, logged, current) if detail is not None else []
            if named:
                result.problems.extend(named)
                continue
            fields = ", ".join(_differences(logged, current)) or "record"
            result.problems.append(AuditProblem(
                int(seq), kind, ref,
                f"the {kind} record was changed after it was logged (differs in: {fields})",
                RECORD_EDITED))
    for kind, refs in listed.items():
        logged_refs = by_kind.get(kind, set())
        for ref in refs:
            if ref in logged_refs:
                continue
            if kind in UNLOGGED_IS_WARNING:
                result.warnings.append(AuditProblem(
                    None, kind, ref, UNLOGGED_IS_WARNING[kind], RECORD_UNCOVERED))
            else:
                result.problems.append(AuditProblem(
                    None, kind, ref,
                    f"the {kind} record has no audit entry (its entry was deleted from the "
                    "log, or the record was written around judgecal)", RECORD_UNLOGGED))


def verify(engine: Engine, *, anchor: str | None = None) -> VerifyResult:
    """Verify the chain and every record it covers (see the module docstring).

    ``anchor`` is a head published earlier: ``HASH`` or ``SEQ:HASH``; it must still be an
    entry of the chain (at that position).
    """
    load_registrations()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One consistent snapshot for every read (SQLite: see verify_records).
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        rows = [
            dict(r)
            for r in conn.execute(
                select(schema.audit_log).order_by(schema.audit_log.c.seq)
            ).mappings()
        ]
        result = VerifyResult(
            entries=len(rows), head=str(rows[-1]["entry_hash"]) if rows else GENESIS
        )
        result.problems.extend(_check_chain(rows))
        verify_records(conn, result)
    if anchor:
        want_seq: int | None = None
        want = anchor.strip()
        if ":" in want:
            seq_text, want = want.split(":", 1)
            want_seq = int(seq_text) if seq_text.isdigit() else None
        found = [r for r in rows if r["entry_hash"] == want]
        if not found or (want_seq is not None and int(found[0]["seq"]) != want_seq):
            result.problems.append(AuditProblem(
                want_seq, "anchor", want[:16],
                "the published head is no longer in the chain (the log was cut or rewritten "
                "after it was published)", ANCHOR_MISSING))
    result.problems.sort(key=lambda p: (p.seq is None, p.seq or 0, p.kind, p.ref))
    result.warnings.sort(key=lambda p: (p.kind, p.ref))
    return result


# -- the auditor's bundle ----------------------------------------------------------------
CHAIN_RECIPE = r'''python3 - audit_log.jsonl <<'EOF'
import hashlib, json, sys
c = lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
h = lambda s: hashlib.sha256(s.encode("utf-8")).hexdigest()
prev, bad, n = "0" * 64, 0, 0
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    e = json.loads(line)
    body = {k: e[k] for k in ("seq", "created_at", "kind", "ref", "record_sha256")}
    ok = (e["seq"] == n and e["prev_hash"] == prev and h(c(e["record"])) == e["record_sha256"]
          and h(prev + "\n" + c(body)) == e["entry_hash"])
    bad += not ok
    print(n, e["kind"], e["ref"], "ok" if ok else "BROKEN")
    prev = e["entry_hash"]
print("entries:", n, "head:", prev, "broken:", bad)
sys.exit(1 if bad else 0)
EOF'''
"""Recompute the whole chain from ``audit_log.jsonl`` with the Python standard library."""

_VERIFY_SCRIPT = '''#!/usr/bin/env python3
"""Verify a judgecal audit bundle with the Python standard library only.

Usage:  python3 verify_bundle.py [BUNDLE_DIR]

1. recomputes every entry hash of audit_log.jsonl (the chain);
2. checks that each record file listed in records/index.json hashes to the
   record_sha256 of the newest log entry of that record, each run's replies file
   to the digest inside the run record, and each calibration_sets/ file to the log
   entry of its set (the hash of every item row and every label).
(SHA256SUMS is checked separately with `sha256sum -c SHA256SUMS`.)
"""
import hashlib
import json
import sys
from pathlib import Path


def c(d):
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def h(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode("utf-8")).hexdigest()


root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
prev, bad, newest, n = "0" * 64, 0, {}, 0
for n, line in enumerate((root / "audit_log.jsonl").open(encoding="utf-8"), 1):
    e = json.loads(line)
    body = {k: e[k] for k in ("seq", "created_at", "kind", "ref", "record_sha256")}
    if not (e["seq"] == n and e["prev_hash"] == prev and h(c(e["record"])) == e["record_sha256"]
            and h(prev + "\\n" + c(body)) == e["entry_hash"]):
        print(f"entry {n} ({e['kind']} {e['ref']}): BROKEN")
        bad += 1
    prev = e["entry_hash"]
    newest[(e["kind"], e["ref"])] = e
print(f"chain: {n} entries, head {prev}")
for rec in json.loads((root / "records" / "index.json").read_text(encoding="utf-8")):
    entry = newest.get((rec["kind"], rec["ref"]))
    data = (root / rec["file"]).read_bytes()
    if entry is None or h(data) != entry["record_sha256"]:
        print(f"record {rec['kind']} {rec['ref']}: does not match its newest log entry")
        bad += 1
    if rec.get("replies_file"):
        digest = json.loads(data)["replies"]["sha256"]
        if h((root / rec["replies_file"]).read_bytes()) != digest:
            print(f"replies of run {rec['ref']}: do not match the run record")
            bad += 1
    if rec.get("set_file"):
        s, codes = json.loads((root / rec["set_file"]).read_text(encoding="utf-8")), {}
        for r in s["labels"]:
            by_dim = codes.setdefault(r["item_id"], {})
            by_dim.setdefault(r["dimension"], {})[r["rater_id"]] = r["code"]
        rows = {r["item_id"]: h(c(r)) for r in s["items"]}
        rebuilt = {"set": s["head"], "items": {"count": len(rows), "rows": rows},
                   "labels": {"count": len(s["labels"]), "rows": codes}}
        if entry is None or h(c(rebuilt)) != entry["record_sha256"]:
            print(f"calibration set {rec['ref']}: {rec['set_file']} does not match its log entry")
            bad += 1
print("OK" if not bad else f"{bad} problem(s)")
sys.exit(1 if bad else 0)
'''

_README = """judgecal audit bundle
=====================

Exported {exported_at} from {store}.
Audit log: {entries} entries, head {head}
Verification by judgecal at export time: {verdict} (details: verification.json)

Files
-----
audit_log.jsonl     the hash-chained log, one entry per line (seq order), with each
                    entry's record snapshot
HEAD                number of entries and hash of the last one (publish it to anchor the log)
records/            every covered record as it is now in its table, canonical JSON
                    (records/index.json lists them); each run also has
                    <run>.replies.jsonl, every judge reply of the run
calibration_sets/   the calibration-set snapshots (items and human labels) the runs used;
                    each covered set's log entry commits to every item row and label
trust_report.html   the trust report (self-contained, open it in any browser)
verification.json   what `judgecal audit verify` found when the bundle was written
verify_bundle.py    the checks below in one script (Python standard library only)
SHA256SUMS          SHA-256 of every other file

How to verify without judgecal
------------------------------
1. Every file is as exported (GNU coreutils; on macOS `shasum -a 256 -c SHA256SUMS`):

       cd {dirname} && sha256sum -c SHA256SUMS

2. The chain: each entry hashes its predecessor. Canonical JSON is
   json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False) in UTF-8;
   record_sha256 = sha256(canonical(record));
   entry_hash = sha256(prev_hash + "\\n" + canonical({{seq, created_at, kind, ref,
   record_sha256}})), prev_hash of entry 1 = 64 zeros. Recompute it:

{recipe}

3. A record file equals the newest snapshot of that record in the log: its sha256sum is
   the record_sha256 of that entry, e.g. for a run

       sha256sum records/run/<run>.json
       grep '"ref":"<run>"' audit_log.jsonl | tail -1 | python3 -c \\
           'import json,sys; print(json.loads(sys.stdin.read())["record_sha256"])'

   and `sha256sum records/run/<run>.replies.jsonl` equals replies.sha256 inside the
   run record. `python3 verify_bundle.py .` runs steps 2 and 3 for every record, and
   checks each calibration_sets/ file against its set's entry (records/calibration_set/).

4. Compare HEAD with a head you published earlier: the log must still contain it.
"""


@dataclass
class BundleResult:
    """What :func:`export_bundle` wrote."""

    out_dir: Path
    files: list[str]
    entries: int
    head: str
    verification: VerifyResult


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _file_name(ref: str, used: set[str]) -> str:
    """A portable file name for a ref (unique within its kind; no spaces or shell specials)."""
    safe = _SAFE.sub("_", ref)[:100] or "_"
    if safe != ref or safe.startswith(".") or safe.lower() in used:
        safe = f"{safe.lstrip('.') or '_'}-{sha256_hex(ref)[:10]}"
    used.add(safe.lower())
    return safe


def export_bundle(
    store: Store,
    out_dir: str | Path,
    *,
    judge: str | None = None,
    since: str | None = None,
    include_report: bool = True,
) -> BundleResult:
    """Write the auditor's bundle to ``out_dir`` (created; it must be empty if it exists).

    The bundle holds the log, every covered record, the calibration-set snapshots, the
    trust report, the verification result and a ``SHA256SUMS`` manifest; its ``README.txt``
    explains how to check all of it with standard tools. ``judge`` and ``since`` restrict
    the trust report only: the log and the records are always exported whole, since a
    partial log cannot be verified.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(Problem(file=str(out),
                                 message="the bundle directory must be new or empty"))
    tmp = out.with_name(out.name + ".partial")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise cannot_write(out, exc, "the bundle") from None
    try:
        result = verify(store.engine)
        files = _write_bundle(store, tmp, result, judge=judge, since=since,
                              include_report=include_report, final_name=out.name)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BundleResult(out, files, result.entries, result.head, result)


def _write_bundle(
    store: Store, root: Path, result: VerifyResult, *, judge: str | None, since: str | None,
    include_report: bool, final_name: str,
) -> list[str]:
    written: list[str] = []

    def write(rel: str, data: bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(rel)

    index: list[dict[str, Any]] = []
    set_versions: set[str] = set()
    with store.engine.connect() as conn:
        with (root / "audit_log.jsonl").open("wb") as fh:
            for row in conn.execute(
                select(schema.audit_log).order_by(schema.audit_log.c.seq)
            ).mappings():
                fh.write(canonical(dict(row)).encode("utf-8") + b"\n")
        written.append("audit_log.jsonl")
        refs: dict[str, set[str]] = {}
        for kind, ref in _newest_entries(conn):
            refs.setdefault(kind, set()).add(ref)
        for kind, lister in REFS.items():
            if kind not in UNLOGGED_IS_WARNING:  # those export only what the log covers
                refs.setdefault(kind, set()).update(str(r) for r in lister(conn))
        # Each run's replies go to <run>.replies.jsonl, streamed once; the digest in the run
        # record is computed from the very bytes written (so sha256sum of the file equals it).
        run_names: dict[str, str] = {}
        used_runs: set[str] = set()
        for ref in sorted(refs.get("run", set())):
            run_names[ref] = _file_name(ref, used_runs)
        digests: dict[str, dict[str, Any]] = {}
        (root / "records" / "run").mkdir(parents=True, exist_ok=True)
        for run_id, rows in replies_by_run(conn):
            if run_id not in run_names:
                continue
            rel = f"records/run/{run_names[run_id]}.replies.jsonl"
            h, n = hashlib.sha256(), 0
            with (root / rel).open("wb") as fh:
                for reply in rows:
                    line = canonical(reply).encode("utf-8") + b"\n"
                    fh.write(line)
                    h.update(line)
                    n += 1
            written.append(rel)
            digests[run_id] = {"count": n, "sha256": h.hexdigest()}
        run_rows = {
            str(row["run_id"]): dict(json.loads(canonical(dict(row))))
            for row in conn.execute(select(schema.runs)).mappings()
        }
        for kind in sorted(refs):
            snap = SNAPSHOTS.get(kind)
            if snap is None:
                continue
            bulk = dict(BULK[kind](conn)) if kind in BULK and kind != "run" else None
            used: set[str] = set()
            kind_dir = _SAFE.sub("_", kind)
            for ref in sorted(refs[kind]):
                if kind == "run":
                    record = run_rows.get(ref)
                    if record is not None:
                        record["replies"] = digests.get(ref) or _digest([])
                        if ref not in digests:
                            write(f"records/run/{run_names[ref]}.replies.jsonl", b"")
                else:
                    record = bulk.get(ref) if bulk is not None else snap(conn, ref)
                if record is None:
                    continue
                record = json.loads(canonical(record))
                name = run_names[ref] if kind == "run" else _file_name(ref, used)
                rel = f"records/{kind_dir}/{name}.json"
                write(rel, canonical(record).encode("utf-8"))
                entry: dict[str, Any] = {"kind": kind, "ref": ref, "file": rel,
                                         "record_sha256": sha256_hex(canonical(record))}
                if kind == "run":
                    entry["replies_file"] = f"records/{kind_dir}/{name}.replies.jsonl"
                    if record.get("set_version"):
                        set_versions.add(str(record["set_version"]))
                elif kind == "calibration_set":
                    set_versions.add(ref)
                index.append(entry)
    used_sets: set[str] = set()
    set_files = {version: f"calibration_sets/{_file_name(version.split(':')[-1], used_sets)}.json"
                 for version in sorted(set_versions)}
    for entry in index:
        if entry["kind"] == "calibration_set":
            entry["set_file"] = set_files[entry["ref"]]
    write("records/index.json", (json.dumps(index, indent=1, ensure_ascii=False) + "\n").encode())
    for version, rel in set_files.items():
        try:
            snapshot = store.set_snapshot(version)
        except NotFoundError:  # a missing set shows by its absence; the rest still exports
            continue
        write(rel, (json.dumps(snapshot, indent=1, ensure_ascii=False, sort_keys=True, default=str)
                    + "\n").encode("utf-8"))
    if include_report:
        from judgecal.reports import render_trust_report

        html = render_trust_report(store, judge=judge, since=since, verification=result)
        write("trust_report.html", html.encode("utf-8"))
    write("verification.json",
          (json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    write("HEAD", f"{result.entries} {result.head}\n".encode())
    write("verify_bundle.py", _VERIFY_SCRIPT.encode("utf-8"))
    readme = _README.format(
        exported_at=utcnow(), store=store.url, entries=result.entries, head=result.head,
        verdict="intact" if result.ok else f"{len(result.problems)} PROBLEM(S)",
        dirname=final_name,
        recipe=CHAIN_RECIPE,
    )
    write("README.txt", readme.encode("utf-8"))
    sums = []
    for rel in sorted(written):
        digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        sums.append(f"{digest}  {rel}\n")
    (root / "SHA256SUMS").write_text("".join(sums), encoding="utf-8")
    return sorted([*written, "SHA256SUMS"])
