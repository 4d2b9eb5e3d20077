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
   :mod:`judgecal.audit.sets` —, incidents, their events, baselines and drift checks) is
   reported with the fields (or rows) that differ; a record that is gone is reported as
   deleted.
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

One room per part: :mod:`~judgecal.audit.chain` (hashes, append, links),
:mod:`~judgecal.audit.snapshots` (the static table of covered kinds),
:mod:`~judgecal.audit.sets` (calibration sets, row by row), :mod:`~judgecal.audit.verify`
and :mod:`~judgecal.audit.bundle` (the auditor's export).
"""

from judgecal.audit.bundle import BundleResult, export_bundle
from judgecal.audit.chain import (
    ANCHOR_MISSING,
    BROKEN_LINK,
    CHAIN_RECIPE,
    ENTRY_EDITED,
    ENTRY_MOVED,
    GENESIS,
    RECORD_DELETED,
    RECORD_EDITED,
    RECORD_UNCOVERED,
    RECORD_UNLOGGED,
    ROW_DELETED,
    ROW_EDITED,
    ROW_INSERTED,
    SEQUENCE_GAP,
    SNAPSHOT_EDITED,
    AuditProblem,
    append,
    canonical,
    entry_hash,
    head,
    sha256_hex,
    verify_chain,
)
from judgecal.audit.snapshots import (
    BULK,
    DETAILS,
    REFS,
    SNAPSHOTS,
    UNLOGGED_IS_WARNING,
    reply_rows,
    snapshot_baseline,
    snapshot_check,
    snapshot_event,
    snapshot_incident,
    snapshot_metric_report,
    snapshot_run,
)
from judgecal.audit.verify import VerifyResult, verify, verify_records

__all__ = [
    "ANCHOR_MISSING",
    "BROKEN_LINK",
    "BULK",
    "CHAIN_RECIPE",
    "DETAILS",
    "ENTRY_EDITED",
    "ENTRY_MOVED",
    "GENESIS",
    "RECORD_DELETED",
    "RECORD_EDITED",
    "RECORD_UNCOVERED",
    "RECORD_UNLOGGED",
    "REFS",
    "ROW_DELETED",
    "ROW_EDITED",
    "ROW_INSERTED",
    "SEQUENCE_GAP",
    "SNAPSHOTS",
    "SNAPSHOT_EDITED",
    "UNLOGGED_IS_WARNING",
    "AuditProblem",
    "BundleResult",
    "VerifyResult",
    "append",
    "canonical",
    "entry_hash",
    "export_bundle",
    "head",
    "reply_rows",
    "sha256_hex",
    "snapshot_baseline",
    "snapshot_check",
    "snapshot_event",
    "snapshot_incident",
    "snapshot_metric_report",
    "snapshot_run",
    "verify",
    "verify_chain",
    "verify_records",
]
