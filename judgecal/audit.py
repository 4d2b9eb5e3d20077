"""Append-only, hash-chained audit log.

Every record that matters to an auditor — a run when it finishes, a metric report, a
baseline change, an incident and each step of its lifecycle — is appended here, in the
same transaction that writes the record itself. Entry ``n`` stores:

* ``record``: a canonical JSON snapshot of the record, and ``record_sha256`` its hash;
* ``prev_hash``: the ``entry_hash`` of entry ``n-1`` (64 zeros for the first);
* ``entry_hash`` = SHA-256 of ``prev_hash`` + newline + canonical JSON of
  ``{seq, created_at, kind, ref, record_sha256}``.

Editing, deleting or reordering an entry breaks the chain at that entry; editing a
snapshot breaks its ``record_sha256``. :mod:`judgecal.audit` verification (see
``verify_chain``) reports the first entry where each break happens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from judgecal.records import utcnow
from judgecal.store import schema

GENESIS = "0" * 64


def canonical(data: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept, floats as repr."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


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
class ChainProblem:
    seq: int
    kind: str
    ref: str
    message: str

    def __str__(self) -> str:
        return f"entry {self.seq} ({self.kind} {self.ref}): {self.message}"


def verify_chain(engine: Engine) -> tuple[int, list[ChainProblem]]:
    """Walk the chain in order; return (entries checked, problems found)."""
    problems: list[ChainProblem] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    with engine.connect() as conn:
        rows = conn.execute(select(schema.audit_log).order_by(schema.audit_log.c.seq)).mappings()
        for row in rows:
            count += 1
            seq, kind, ref = int(row["seq"]), str(row["kind"]), str(row["ref"])
            if seq != expected_seq:
                problems.append(ChainProblem(seq, kind, ref,
                                             f"sequence gap: expected entry {expected_seq} "
                                             "(an entry was deleted)"))
            if row["prev_hash"] != prev:
                problems.append(ChainProblem(seq, kind, ref,
                                             "does not link to the previous entry "
                                             "(entries were deleted or reordered)"))
            if sha256_hex(canonical(row["record"])) != row["record_sha256"]:
                problems.append(ChainProblem(seq, kind, ref, "record snapshot was edited"))
            recomputed = entry_hash(str(row["prev_hash"]), seq, str(row["created_at"]), kind, ref,
                                    str(row["record_sha256"]))
            if recomputed != row["entry_hash"]:
                problems.append(ChainProblem(seq, kind, ref, "entry was edited"))
            prev = str(row["entry_hash"])
            expected_seq = seq + 1
    return count, problems


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
# when the log itself is untouched. Other modules register their kinds here.
SNAPSHOTS: dict[str, Any] = {}


def snapshot_kind(kind: str) -> Any:
    def register(fn: Any) -> Any:
        SNAPSHOTS[kind] = fn
        return fn

    return register


def _replies_digest(conn: Connection, run_id: str) -> dict[str, Any]:
    r = schema.replies.c
    rows = conn.execute(
        select(schema.replies).where(r.run_id == run_id).order_by(r.item_id, r.dimension, r.variant)
    ).mappings()
    h = hashlib.sha256()
    n = 0
    for row in rows:
        h.update(canonical(dict(row)).encode("utf-8"))
        h.update(b"\n")
        n += 1
    return {"count": n, "sha256": h.hexdigest()}


@snapshot_kind("run")
def snapshot_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).mappings().first()
    if row is None:
        return None
    record = json.loads(canonical(dict(row)))
    record["replies"] = _replies_digest(conn, run_id)
    return dict(record)


@snapshot_kind("metric_report")
def snapshot_metric_report(conn: Connection, ref: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(schema.metric_reports).where(schema.metric_reports.c.report_id == int(ref))
    ).mappings().first()
    return None if row is None else dict(json.loads(canonical(dict(row))))
