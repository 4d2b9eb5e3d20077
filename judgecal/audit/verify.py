"""Full verification: the chain, every covered record against its newest snapshot, records
without an entry, and an optional published anchor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select

from judgecal.audit.chain import (
    ANCHOR_MISSING,
    GENESIS,
    RECORD_DELETED,
    RECORD_EDITED,
    RECORD_UNCOVERED,
    RECORD_UNLOGGED,
    AuditProblem,
    canonical,
    check_chain,
    sha256_hex,
)
from judgecal.audit.snapshots import BULK, DETAILS, REFS, SNAPSHOTS, UNLOGGED_IS_WARNING
from judgecal.db import schema

__all__ = [
    "VerifyResult",
    "newest_entries",
    "verify",
    "verify_records",
]


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


def newest_entries(conn: Connection) -> dict[tuple[str, str], tuple[int, str]]:
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
    newest = newest_entries(conn)
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
        result.problems.extend(check_chain(rows))
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
