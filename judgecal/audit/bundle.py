"""The auditor's bundle: the log, every covered record, the calibration-set snapshots, the
verification and a SHA256SUMS manifest, checkable with standard tools only.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from judgecal.audit.chain import CHAIN_RECIPE, canonical, sha256_hex
from judgecal.audit.snapshots import (
    BULK,
    REFS,
    SNAPSHOTS,
    UNLOGGED_IS_WARNING,
    digest,
    replies_by_run,
)
from judgecal.audit.verify import VerifyResult, newest_entries, verify
from judgecal.db import schema
from judgecal.errors import InputError, NotFoundError, Problem
from judgecal.io.paths import cannot_write
from judgecal.records import utcnow

if TYPE_CHECKING:
    from judgecal.store import Store

__all__ = [
    "BundleResult",
    "export_bundle",
]


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
    report: Callable[[VerifyResult], str] | None = None,
) -> BundleResult:
    """Write the auditor's bundle to ``out_dir`` (created; it must be empty if it exists).

    The bundle holds the log, every covered record, the calibration-set snapshots, the
    trust report, the verification result and a ``SHA256SUMS`` manifest; its ``README.txt``
    explains how to check all of it with standard tools. ``report`` renders the trust report
    from the verification (the caller chooses the judge and period it covers; the log and the
    records are always exported whole, since a partial log cannot be verified); without it
    the bundle has no report.
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
        files = _write_bundle(store, tmp, result, report=report, final_name=out.name)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BundleResult(out, files, result.entries, result.head, result)


def _write_bundle(
    store: Store, root: Path, result: VerifyResult, *,
    report: Callable[[VerifyResult], str] | None, final_name: str,
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
        for kind, ref in newest_entries(conn):
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
                        record["replies"] = digests.get(ref) or digest([])
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
    if report is not None:
        write("trust_report.html", report(result).encode("utf-8"))
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
        file_sum = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        sums.append(f"{file_sum}  {rel}\n")
    (root / "SHA256SUMS").write_text("".join(sums), encoding="utf-8")
    return sorted([*written, "SHA256SUMS"])
