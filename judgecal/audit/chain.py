"""The hash chain itself: canonical JSON, entry hashes, appending, and checking the links.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from judgecal.db import schema
from judgecal.records import utcnow

__all__ = [
    "ANCHOR_MISSING",
    "BROKEN_LINK",
    "CHAIN_RECIPE",
    "ENTRY_EDITED",
    "ENTRY_MOVED",
    "GENESIS",
    "RECORD_DELETED",
    "RECORD_EDITED",
    "RECORD_UNCOVERED",
    "RECORD_UNLOGGED",
    "ROW_DELETED",
    "ROW_EDITED",
    "ROW_INSERTED",
    "SEQUENCE_GAP",
    "SNAPSHOT_EDITED",
    "AuditProblem",
    "ChainProblem",
    "append",
    "canonical",
    "check_chain",
    "entry_hash",
    "head",
    "sha256_hex",
    "verify_chain",
]

GENESIS = "0" * 64

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
    return len(rows), check_chain(rows)


def check_chain(rows: list[dict[str, Any]]) -> list[AuditProblem]:
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
