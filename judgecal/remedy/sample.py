"""The window sample, the assumption-free path: draw a stratified random sample of the
window's score ids, write it as an annotation queue, import the labels back.

The sample is stratified by (dimension, segment) with proportional allocation and at least
one score per stratum (:func:`judgecal.stats.correction.stratified_sample`); the draw is
recorded on the incident as a ``window_sample`` event (seed, size, allocation), so the same
command with the same seed gives the same queue. Imported labels are stored as one
append-only import (``window_labels`` table, audited); nothing is written unless every row
is valid.

Queue columns: ``score_id, customer, segment, dimension, scale, score_shown, label`` (the
label empty). ``score_shown`` is the drifted judge's score, for the reviewer's context only;
leave it out of the queue with ``include_score=False`` for blind labelling.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from judgecal.errors import InputError, Problem
from judgecal.io.paths import cannot_write, make_parent

if TYPE_CHECKING:
    from judgecal.store import Store

__all__ = [
    "QUEUE_COLUMNS",
    "QUEUE_FORMATS",
    "draw_sample",
    "import_labels",
    "window_labels",
]

QUEUE_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
QUEUE_COLUMNS = ("score_id", "customer", "segment", "dimension", "scale", "score_shown", "label")


def _queue_format(out: Path) -> str:
    kind = QUEUE_FORMATS.get(out.suffix.lower())
    if kind is None:
        raise InputError(Problem(file=str(out), message="the annotation queue is written as "
                                 f".csv or .jsonl; got {out.suffix or 'no extension'!r}"))
    return kind


def _write_rows(out: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Write ``rows`` to ``out`` (CSV or JSONL) atomically: a temporary file renamed."""
    import csv

    kind = _queue_format(out)
    make_parent(out, "the annotation queue")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            if kind == "csv":
                writer = csv.DictWriter(fh, fieldnames=list(columns))
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
            else:
                for row in rows:
                    fh.write(json.dumps({k: row.get(k) for k in columns}, ensure_ascii=False)
                             + "\n")
        os.replace(tmp, out)
    except OSError as exc:
        raise cannot_write(out, exc, "the annotation queue") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def draw_sample(store: Store, incident_id: str, n: int, out: str | Path, *, seed: int = 0,
                include_score: bool = True, record: bool = True,
                actor: str | None = None) -> dict[str, Any]:
    """Draw ``n`` score ids of the incident's window (stratified), write the queue to ``out``.

    Returns a summary (ids drawn, allocation per stratum, seed, the file); with ``record``
    the draw is appended to the incident as a ``window_sample`` event.
    """
    from judgecal import incidents
    from judgecal.remedy.window import affected, load_calibration
    from judgecal.stats.correction import stratified_sample

    path = Path(out)
    _queue_format(path)
    if isinstance(n, bool) or n < 1:
        raise InputError(f"--n must be a positive number of scores, got {n!r}")
    hit = affected(store, incident_id)
    incident, full_id, window_json, scores = (hit.incident, hit.incident_id, hit.window_json,
                                              hit.scores)
    cal = load_calibration(store, incident)
    keep = [i for i in range(scores.n) if scores.dimensions[i] in cal.scales]
    if not keep:
        raise InputError(f"incident {full_id}: the window has no score on a dimension of the "
                         f"calibration set {cal.set_name}: nothing to label")
    strata = [(str(scores.dimensions[i]), scores.segments[i] or "") for i in keep]
    sample = stratified_sample([scores.score_ids[i] for i in keep], strata, int(n), seed=seed)
    where = {scores.score_ids[i]: i for i in keep}
    rows = []
    for sid in sample.ids:
        i = where[sid]
        dim = str(scores.dimensions[i])
        rows.append({"score_id": sid, "customer": scores.customers[i],
                     "segment": scores.segments[i], "dimension": dim,
                     "scale": cal.scales[dim].describe(),
                     "score_shown": float(scores.scores[i]) if include_score else None,
                     "label": None})
    columns = QUEUE_COLUMNS if include_score else tuple(c for c in QUEUE_COLUMNS
                                                        if c != "score_shown")
    _write_rows(path, rows, columns)
    summary = {
        "incident_id": full_id, "out": str(path), "n_requested": int(n), "n": sample.n,
        "seed": int(seed), "window": window_json, "window_scores": len(keep),
        "strata": "dimension, segment",
        "allocation": [{"dimension": k[0], "segment": k[1] or None, "window": v[0],
                        "sampled": v[1]} for k, v in sample.allocation.items()],
    }
    if record:
        event = incidents.add_event(store, full_id, "window_sample",
                                    {k: v for k, v in summary.items() if k != "out"} |
                                    {"file": path.name}, actor=actor,
                                    reason="incidents sample: a stratified window sample to "
                                    "label")
        summary["event_seq"] = event["seq"]
    return summary


def window_labels(store: Store, incident_id: str) -> dict[str, float]:
    """``score_id -> label`` of every imported window-sample label (the newest import wins)."""
    from judgecal.db import schema

    w = schema.window_labels.c
    out: dict[str, float] = {}
    with store.engine.connect() as conn:
        rows = conn.execute(select(w.score_id, w.label).where(w.incident_id == incident_id)
                            .order_by(w.imported_at, w.import_id)).all()
    for sid, label in rows:
        out[str(sid)] = float(label)
    return out


def _parse_label(text: Any) -> float | None:
    if text is None:
        return None
    if isinstance(text, bool):
        raise ValueError("not a number")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        stripped = str(text).strip()
        if stripped == "":
            return None
        value = float(stripped)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _check_code(scale: Any, value: float) -> str | None:
    domain = scale.domain()
    if domain is None:
        if (scale.min is not None and not value >= scale.min) or \
                (scale.max is not None and not value <= scale.max):
            return f"{value:g} is outside the {scale.describe()} scale"
        return None
    if value not in set(domain):
        return (f"{value:g} is not a code of the {scale.describe()} scale "
                f"(codes: {', '.join(f'{c:g}' for c in domain)})")
    if scale.kind == "pairwise" and value == 0 and not scale.ties:
        return "a tie (0) is not allowed on this pairwise scale"
    return None


def import_labels(store: Store, incident_id: str, path: str | Path, *,
                  actor: str | None = None) -> dict[str, Any]:
    """Import the labels of an annotation queue (CSV, JSONL or Parquet).

    Every row needs ``score_id`` (a score of the incident's window, on a calibrated
    dimension) and ``label`` (a code of the dimension's scale; empty = not labelled, skipped).
    Every problem is named by file, line and field, and then nothing is written
    (:class:`InputError`). Otherwise the labels are stored as one import with its audit entry
    and a ``labels_imported`` event on the incident.
    """
    from judgecal import audit, incidents
    from judgecal.audit.snapshots import snapshot_window_labels
    from judgecal.db import schema
    from judgecal.io.tabular import read_rows
    from judgecal.records import utcnow
    from judgecal.remedy.window import affected, load_calibration

    file = Path(path)
    hit = affected(store, incident_id)
    incident, full_id, scores = hit.incident, hit.incident_id, hit.scores
    cal = load_calibration(store, incident)
    dim_of = {sid: str(d) for sid, d in zip(scores.score_ids, scores.dimensions, strict=True)}
    problems: list[Problem] = []
    labels: dict[str, float] = {}
    seen: dict[str, int] = {}
    empty = 0
    first = True
    for line, row in read_rows(file, problems=problems):
        if first:
            first = False
            missing = [c for c in ("score_id", "label") if c not in row]
            if missing:
                problems.append(Problem(str(file), f"missing column {missing[0]!r} (the queue "
                                        "has score_id and label)", line=line, field=missing[0]))
                break
        sid = "" if row.get("score_id") is None else str(row["score_id"]).strip()

        def bad(message: str, field: str, line: int = line) -> None:
            problems.append(Problem(str(file), message, line=line, field=field))

        if not sid:
            bad("empty score id", "score_id")
            continue
        if sid in seen:
            bad(f"score {sid!r} is labelled twice (first on line {seen[sid]})", "score_id")
            continue
        seen[sid] = line
        dim = dim_of.get(sid)
        if dim is None:
            bad(f"score {sid!r} is not in the affected window of incident {full_id}",
                "score_id")
            continue
        if dim not in cal.scales:
            bad(f"score {sid!r} is on dimension {dim!r}, which the calibration set does not "
                "have", "score_id")
            continue
        try:
            value = _parse_label(row.get("label"))
        except ValueError:
            bad(f"{str(row.get('label'))[:40]!r} is not a number", "label")
            continue
        if value is None:
            empty += 1
            continue
        wrong = _check_code(cal.scales[dim], value)
        if wrong:
            bad(wrong, "label")
            continue
        labels[sid] = value
        if len(problems) >= 50:
            break
    if problems:
        raise InputError(problems)
    if not labels:
        raise InputError(Problem(str(file), "no labels: every label is empty"))
    import_id = f"LBL-{uuid.uuid4().hex[:12]}"
    at = utcnow()
    with store.engine.begin() as conn:
        conn.execute(schema.window_labels.insert(), [
            {"import_id": import_id, "score_id": sid, "incident_id": full_id, "label": value,
             "imported_at": at, "source_file": file.name} for sid, value in labels.items()])
        snap = snapshot_window_labels(conn, import_id)
        assert snap is not None
        audit.append(conn, "window_labels", import_id, snap)
    summary = {"incident_id": full_id, "import_id": import_id, "file": file.name,
               "labels": len(labels), "empty": empty,
               "by_dimension": {d: sum(1 for s in labels if dim_of[s] == d)
                                for d in sorted({dim_of[s] for s in labels})}}
    event = incidents.add_event(store, full_id, "labels_imported", summary, actor=actor,
                                reason="incidents labels: human labels of the window sample")
    summary["event_seq"] = event["seq"]
    return summary
