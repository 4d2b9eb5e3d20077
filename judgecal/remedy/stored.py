"""Corrected figures, stored: a new audited version per correction, never overwriting the
original scores or an earlier version, linked to the incident, exportable.

Each :func:`save_correction` writes one ``corrections`` row (version 1, 2, … per incident)
with its audit entry, and appends a ``corrected`` event to the incident whose data is the
compact summary the renderings quote (:func:`headline`): per dimension the figure shown (raw)
and the recommended corrected figure with its interval, or why there is none.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from judgecal.errors import InputError, NotFoundError, Problem
from judgecal.io.paths import cannot_write, make_parent

if TYPE_CHECKING:
    from judgecal.store import Store

__all__ = [
    "EXPORT_COLUMNS",
    "EXPORT_FORMATS",
    "export_correction",
    "export_format",
    "export_rows",
    "get_correction",
    "headline",
    "save_correction",
]

EXPORT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
EXPORT_COLUMNS = ("incident_id", "correction_id", "version", "dimension", "target", "kind",
                  "group", "method", "value", "ci_low", "ci_high", "confidence", "interval",
                  "n_labelled", "n_window", "recommended", "undefined", "flags")


def _figure(e: dict[str, Any] | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {k: e.get(k) for k in ("method", "value", "ci_low", "ci_high", "undefined",
                                  "flags")}


def _short(fig: dict[str, Any]) -> dict[str, Any]:
    est = fig["estimates"]
    rec = fig.get("recommended")
    return {"n_window": fig["n_window"], "shown": _figure(est.get("raw")),
            "corrected": _figure(est.get(rec)) if rec else None}


def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per dimension (and target): shown, recommended corrected figure, and why not."""
    out = []
    for d in result.get("dimensions", []):
        o = d["overall"]
        est = o["estimates"]
        rec = o.get("recommended")
        out.append({
            "dimension": d["dimension"], "target": d["target"], "scale": d["scale"],
            "n_window": d["n_window"],
            "shown": _figure(est.get("raw")),
            "corrected": _figure(est.get(rec)) if rec else None,
            "ppi": _figure(est.get("ppi++")),
            "shift_robust": _figure(est.get("shift_robust")),
            "window_sample": _figure(est.get("window_sample_ppi++")),
            "re_judged": _figure(est.get("re_judged")),
            "why_none": None if rec else "the estimators disagree beyond their intervals: "
            "the calibration set does not represent the window, and no window sample is "
            "labelled yet",
            "messages": o["messages"],
            "customers": {str(c["group"]): _short(c) for c in d.get("customers", [])},
        })
    return out


def save_correction(store: Store, result: dict[str, Any], *,
                    actor: str | None = None) -> dict[str, Any]:
    """Store ``result`` (:func:`judgecal.remedy.correct_incident`) as the next version for its
    incident, with its audit entry, and link it with a ``corrected`` incident event."""
    from judgecal import audit, incidents
    from judgecal.audit.snapshots import snapshot_correction
    from judgecal.db import schema
    from judgecal.records import json_safe, utcnow

    incident_id = str(result["incident_id"])
    correction_id = f"COR-{uuid.uuid4().hex[:12]}"
    data = json.loads(json.dumps(json_safe(result), allow_nan=False, default=str))
    c = schema.corrections.c
    with store.engine.begin() as conn:
        last = conn.execute(select(func.max(c.version)).where(c.incident_id == incident_id)
                            ).scalar()
        version = 1 if last is None else int(last) + 1
        conn.execute(schema.corrections.insert().values(
            correction_id=correction_id, incident_id=incident_id, version=version,
            created_at=utcnow(), actor=actor, result=data))
        snap = snapshot_correction(conn, correction_id)
        assert snap is not None
        audit.append(conn, "correction", correction_id, snap)
    event = incidents.add_event(
        store, incident_id, "corrected",
        {"correction_id": correction_id, "version": version, "window": result.get("window"),
         "confidence": result.get("confidence"), "figures": headline(result),
         "labelled_window_scores": result.get("labelled_window_scores", 0)},
        actor=actor, reason=f"incidents correct: corrected figures, version {version}")
    return {"correction_id": correction_id, "version": version, "event_seq": event["seq"]}


def get_correction(store: Store, incident_id: str, version: int | None = None
                   ) -> dict[str, Any]:
    """A stored correction of an incident (the newest unless ``version``)."""
    from judgecal.db import schema

    c = schema.corrections.c
    query = select(schema.corrections).where(c.incident_id == incident_id)
    query = query.where(c.version == version) if version is not None else \
        query.order_by(c.version.desc()).limit(1)
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        which = f"version {version}" if version is not None else "no correction"
        raise NotFoundError(f"incident {incident_id}: {which} stored "
                            "(`judgecal incidents correct` makes one)")
    return dict(row)


def export_rows(stored: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (dimension, target, group, method) of a stored correction."""
    result = stored["result"]
    rows = []
    for d in result.get("dimensions", []):
        for fig in [d["overall"], *d["segments"], *d["customers"]]:
            for method, e in fig["estimates"].items():
                rows.append({
                    "incident_id": stored["incident_id"],
                    "correction_id": stored["correction_id"], "version": stored["version"],
                    "dimension": d["dimension"], "target": d["target"], "kind": fig["kind"],
                    "group": fig["group"], "method": method, "value": e.get("value"),
                    "ci_low": e.get("ci_low"), "ci_high": e.get("ci_high"),
                    "confidence": e.get("confidence"), "interval": e.get("interval"),
                    "n_labelled": e.get("n_labelled"), "n_window": e.get("n_window"),
                    "recommended": fig.get("recommended") == method,
                    "undefined": e.get("undefined"), "flags": ";".join(e.get("flags") or []),
                })
    return rows


def export_format(out: str | Path) -> str:
    """``csv``, ``jsonl`` or ``parquet`` by the extension of ``out``; InputError otherwise."""
    path = Path(out)
    kind = EXPORT_FORMATS.get(path.suffix.lower())
    if kind is None:
        got = path.suffix or "no extension"
        raise InputError(Problem(file=str(path), message="corrected figures are written as "
                                 f".csv, .jsonl or .parquet; got {got!r}"))
    return kind


def export_correction(stored: dict[str, Any], out: str | Path) -> int:
    """Write a stored correction's figures to ``out`` (CSV, JSONL or Parquet by extension),
    atomically. Returns the number of rows."""
    import pyarrow as pa

    path = Path(out)
    kind = export_format(path)
    rows = export_rows(stored)
    make_parent(path, "the export")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        if kind == "jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        else:
            types = {"version": pa.int64(), "value": pa.float64(), "ci_low": pa.float64(),
                     "ci_high": pa.float64(), "confidence": pa.float64(),
                     "n_labelled": pa.int64(), "n_window": pa.int64(),
                     "recommended": pa.bool_()}
            schema = pa.schema([(c, types.get(c, pa.string())) for c in EXPORT_COLUMNS])
            table = pa.Table.from_pylist(rows, schema=schema)
            if kind == "parquet":
                import pyarrow.parquet as pq

                pq.write_table(table, tmp)
            else:
                import pyarrow.csv as pacsv

                pacsv.write_csv(table, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise cannot_write(path, exc, "the export") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(rows)
