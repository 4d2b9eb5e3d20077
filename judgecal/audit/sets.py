"""The stored calibration sets in the audit chain: one entry per set version.

A run is only as trustworthy as the human labels it is measured against, and those live in
the store (``calibration_sets``, ``set_items``, ``set_labels``), where an ``UPDATE`` made in
SQL would otherwise move every agreement figure without a trace. When
:meth:`Store.save_set <judgecal.store.Store.save_set>` first stores a set version it appends,
in the same transaction, one entry of kind ``calibration_set`` (ref: the version) whose
record is::

    {"set":    the calibration_sets row (version, name, source_path, manifest, created_at),
     "items":  {"count": N, "rows": {item_id: sha256(canonical(set_items row))}},
     "labels": {"count": M, "rows": {item_id: {dimension: {rater_id: code}}}}}

A ``set_items`` row is hashed whole (``set_version``, ``item_id``, ``position``, ``fields``,
``segments``), so an edited text, segment or item order shows; a label is small, so its code
is logged as is. ``audit verify`` recomputes the record from the three tables and names every
row that differs: ``set_items`` / ``set_labels`` rows edited, deleted or inserted, and the
``calibration_sets`` row's edited fields. Later ``save_set`` calls of the same version add
nothing (the set is immutable: its version is a hash of its content).

Sets stored before set auditing
===============================
They have no entry. ``audit verify`` lists each as a *warning* (code ``record_uncovered``;
the exit code stays 0), and the next ``save_set`` of that version — the next run, nightly run
or import that uses the set — appends the missing entry. That entry commits to the labels
and to the item ids and order *as the set being saved defines them* (exactly what its version
hash names), so labels changed in the store before it was covered are reported by the very
next verification; item fields are taken as found in the store (a CSV and a JSONL copy of one
version may legitimately store them with different types).

The record holds the set's content (not secret) and never the store URL or any credential.
The auditor's bundle (``audit export``) checks each ``calibration_sets/`` file against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from judgecal.audit import chain
from judgecal.audit.chain import AuditProblem, canonical, sha256_hex
from judgecal.db import schema

__all__ = [
    "KIND",
    "MAX_ROWS_NAMED",
    "UNCOVERED",
    "build_record",
    "changed_rows",
    "is_logged",
    "log_stored_set",
    "log_uncovered_set",
    "row_hash",
    "set_refs",
    "snapshot_set",
]

KIND = "calibration_set"

MAX_ROWS_NAMED = 50
"""Changed rows named one by one per set; the rest are counted in one closing problem."""

UNCOVERED = ("not covered: stored before set auditing, so its items and labels are not "
             "protected yet; the next run that uses this set logs it")


def row_hash(row: dict[str, Any]) -> str:
    """SHA-256 of a table row's canonical JSON (every column)."""
    return sha256_hex(canonical(row))


def build_record(head: dict[str, Any], items: Iterable[dict[str, Any]],
                 labels: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The logged record of a set version from its rows (see the module docstring)."""
    item_rows = {str(r["item_id"]): row_hash(r) for r in items}
    codes: dict[str, dict[str, dict[str, Any]]] = {}
    n_labels = 0
    for r in labels:
        codes.setdefault(str(r["item_id"]), {}).setdefault(str(r["dimension"]), {})[
            str(r["rater_id"])] = r["code"]
        n_labels += 1
    record = {"set": head, "items": {"count": len(item_rows), "rows": item_rows},
              "labels": {"count": n_labels, "rows": codes}}
    return dict(json.loads(canonical(record)))


def _head(conn: Connection, version: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(schema.calibration_sets).where(schema.calibration_sets.c.version == version)
    ).mappings().first()
    return None if row is None else dict(json.loads(canonical(dict(row))))


def _rows(conn: Connection, table: Any, version: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        select(table).where(table.c.set_version == version)).mappings()]


def set_refs(conn: Connection) -> Iterable[str]:
    return [str(r[0]) for r in conn.execute(select(schema.calibration_sets.c.version))]


def snapshot_set(conn: Connection, version: str) -> dict[str, Any] | None:
    """The record of ``version`` as its three tables hold it now (None if the set is gone)."""
    head = _head(conn, version)
    if head is None:
        return None
    return build_record(head, _rows(conn, schema.set_items, version),
                        _rows(conn, schema.set_labels, version))




def _logged(conn: Connection, version: str) -> bool:
    a = schema.audit_log.c
    return conn.execute(
        select(a.seq).where(a.kind == KIND, a.ref == version).limit(1)).first() is not None


def is_logged(engine: Engine, version: str) -> bool:
    """Whether the set version has its audit entry."""
    with engine.connect() as conn:
        return _logged(conn, version)


def log_stored_set(conn: Connection, version: str) -> int:
    """Append the entry of a set version just stored, in the transaction that stored it."""
    record = snapshot_set(conn, version)
    assert record is not None
    return chain.append(conn, KIND, version, record)


def log_uncovered_set(conn: Connection, version: str, item_rows: list[dict[str, Any]],
                      label_rows: list[dict[str, Any]]) -> bool:
    """Cover a set stored before set auditing; ``item_rows`` and ``label_rows`` are the rows
    ``save_set`` would store for this version now. Returns False if it was covered already
    (by another process) or is not in the store.
    """
    # Take the write lock on the set's row first (SQLite: the database; PostgreSQL: the row),
    # so that two runs starting together append one entry between them.
    sets = schema.calibration_sets
    if conn.execute(update(sets).where(sets.c.version == version)
                    .values(name=sets.c.name)).rowcount == 0:
        return False
    if _logged(conn, version):
        return False
    head = _head(conn, version)
    assert head is not None
    stored = {str(r["item_id"]): r for r in _rows(conn, schema.set_items, version)}
    items = []
    for want in item_rows:
        have = stored.get(str(want["item_id"]))
        items.append(have if have is not None and have["position"] == want["position"]
                     else want)
    chain.append(conn, KIND, version, build_record(head, items, label_rows))
    return True


# -- naming what changed -----------------------------------------------------------------
def _label_map(record: Any) -> dict[tuple[str, str, str], Any]:
    rows = record.get("labels", {}).get("rows", {}) if isinstance(record, dict) else {}
    return {(item, dim, rater): code
            for item, by_dim in rows.items() for dim, by_rater in by_dim.items()
            for rater, code in by_rater.items()}


def changed_rows(seq: int, version: str, logged: Any, current: Any) -> list[AuditProblem]:
    """One problem per row of the set that differs from its entry (registered in
    :data:`judgecal.audit.snapshots.DETAILS`)."""
    if not isinstance(logged, dict) or not isinstance(current, dict):
        return []
    found: list[AuditProblem] = []

    def report(code: str, message: str, row: dict[str, Any] | None = None) -> None:
        found.append(AuditProblem(seq, KIND, version, message, code, row))

    was, now = logged.get("set") or {}, current.get("set") or {}
    fields = [k for k in sorted(set(was) | set(now), key=str)
              if canonical(was.get(k)) != canonical(now.get(k))]
    if fields:
        report(chain.RECORD_EDITED, "the calibration_sets row was changed after it was logged "
               f"(differs in: {', '.join(fields)})", {"table": "calibration_sets"})
    rows: list[tuple[str, str, str, dict[str, Any]]] = []  # (code, row name, detail, row)
    items_was = (logged.get("items") or {}).get("rows") or {}
    items_now = (current.get("items") or {}).get("rows") or {}
    for item in sorted(set(items_was) | set(items_now)):
        a, b = items_was.get(item), items_now.get(item)
        if a != b:
            what = (chain.ROW_DELETED if b is None else chain.ROW_INSERTED if a is None
                    else chain.ROW_EDITED)
            detail = " (fields, segments or position)" if what == chain.ROW_EDITED else ""
            rows.append((what, f"set_items row (item {item!r})", detail,
                         {"table": "set_items", "item_id": item}))
    labels_was, labels_now = _label_map(logged), _label_map(current)
    for key in sorted(set(labels_was) | set(labels_now)):
        a, b = labels_was.get(key), labels_now.get(key)
        if canonical(a) != canonical(b):
            what = (chain.ROW_DELETED if key not in labels_now else chain.ROW_INSERTED
                    if key not in labels_was else chain.ROW_EDITED)
            item, dim, rater = key
            value = {chain.ROW_EDITED: f": code {a!r} → {b!r}",
                     chain.ROW_INSERTED: f" (code {b!r})", chain.ROW_DELETED: f" (code {a!r})"}
            rows.append((what, f"set_labels row (item {item!r}, dimension {dim!r}, rater "
                         f"{rater!r})", value[what],
                         {"table": "set_labels", "item_id": item, "dimension": dim,
                          "rater_id": rater}))
    verb = {chain.ROW_EDITED: "was changed (it differs from the set's log entry)",
            chain.ROW_DELETED: "was deleted (the set's log entry has it)",
            chain.ROW_INSERTED: "was inserted (the set's log entry does not have it)"}
    for what, name, detail, row in rows[:MAX_ROWS_NAMED]:
        report(what, f"{name} {verb[what]}{detail}", row)
    if len(rows) > MAX_ROWS_NAMED:
        rest = rows[MAX_ROWS_NAMED:]
        tables = sorted({row["table"] for _, _, _, row in rest})
        report(chain.ROW_EDITED, f"and {len(rest)} more rows of {' and '.join(tables)} differ "
               "from the log (not listed)")
    return found


