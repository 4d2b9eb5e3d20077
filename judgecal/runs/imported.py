"""Imported judgments: a run whose judge replies were produced elsewhere.

Format (CSV, JSONL or Parquet): ``item_id, dimension, score`` and an optional ``raw``
(the judge's reply text). The import names the judge, the model and the prompt text, so
the run carries a configured fingerprint like a live run and can be compared with one.

A ``score`` may be empty: the item is then *unscored* (reason ``imported_without_score``).
Scores on an ordinal dimension may be fractional (e.g. the mean of several sampled
answers, as in HANNA); they must still lie inside the scale's range.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judgecal import __version__
from judgecal.errors import InputError, Problem
from judgecal.io.tabular import read_rows
from judgecal.judge.prompt import ORIGINAL
from judgecal.messages import excerpt
from judgecal.records import SCORED, UNSCORED, ReplyRecord
from judgecal.runs.replay import new_run_id
from judgecal.runs.summary import summarize_replies

if TYPE_CHECKING:
    from judgecal.calibration import CalibrationSet
    from judgecal.scales import Scale
    from judgecal.store import Store

__all__ = [
    "REQUIRED",
    "import_judgments",
    "imported_fingerprint",
]

REQUIRED = ("item_id", "dimension", "score")


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def imported_fingerprint(judge_name: str, model: str, prompt_text: str) -> dict[str, Any]:
    parts = {
        "model": model,
        "prompt": _sha(prompt_text),
        "rubric": _sha(""),
        "decoding": _sha("imported"),
        "parser": _sha("imported"),
        "judgecal_version": __version__,
    }
    blob = "|".join(f"{k}={v}" for k, v in sorted(parts.items()))
    return {"hash": _sha(blob), "parts": parts, "imported": True}


def _code(scale: Scale, raw: object) -> float:
    if scale.kind == "ordinal" and scale.categories is None:
        value = float(str(raw))
        if not math.isfinite(value):
            raise ValueError(f"score {excerpt(raw, 40)} is not finite")
        assert scale.min is not None and scale.max is not None
        if not scale.min <= value <= scale.max:
            raise ValueError(f"score {excerpt(raw, 40)} is outside the scale "
                             f"{scale.min:g}..{scale.max:g}")
        return value
    return scale.code(raw)


def import_judgments(
    store: Store,
    cs: CalibrationSet,
    path: str | Path,
    *,
    judge_name: str,
    model: str,
    prompt_text: str,
    served_model: str | None = None,
) -> dict[str, Any]:
    """Validate the whole file, then store it as one run in one transaction.

    Every problem (file, line, field) is collected and raised together as an InputError;
    in that case nothing is written.
    """
    path = Path(path)
    problems: list[Problem] = []
    if len(judge_name) > 200:  # the store's key width (PostgreSQL refuses a longer one)
        problems.append(Problem("--judge", f"the judge name is {len(judge_name)} characters "
                                "long; at most 200 are allowed"))
    index = cs.item_index()
    seen: dict[tuple[str, str], int] = {}
    records: list[ReplyRecord] = []
    for line, row in read_rows(path, problems=problems):
        missing = [c for c in REQUIRED if c not in row]
        if missing:
            problems.append(Problem(str(path), f"missing column(s) {missing}", line))
            continue
        item_id = str(row["item_id"]).strip()
        dim = str(row["dimension"]).strip()
        if item_id not in index:
            problems.append(Problem(str(path), f"unknown item '{item_id}'", line, "item_id"))
            continue
        if dim not in cs.dimensions:
            problems.append(
                Problem(
                    str(path),
                    f"unknown dimension '{dim}' (the set has {', '.join(cs.dimensions)})",
                    line,
                    "dimension",
                )
            )
            continue
        if (item_id, dim) in seen:
            problems.append(
                Problem(
                    str(path),
                    f"duplicate judgment (first on line {seen[(item_id, dim)]})",
                    line,
                    "item_id",
                )
            )
            continue
        seen[(item_id, dim)] = line
        raw = row.get("raw")
        score_raw = row["score"]
        if score_raw is None or str(score_raw).strip() == "":
            records.append(
                ReplyRecord(
                    item_id,
                    dim,
                    ORIGINAL,
                    UNSCORED,
                    raw_text=raw,
                    unscored_reason="imported_without_score",
                    served_model=served_model,
                    attempts=0,
                )
            )
            continue
        try:
            code = _code(cs.dimensions[dim].scale, score_raw)
        except ValueError as exc:
            problems.append(Problem(str(path), str(exc), line, "score"))
            continue
        records.append(
            ReplyRecord(
                item_id,
                dim,
                ORIGINAL,
                SCORED,
                score=code,
                label=str(score_raw),
                raw_text=None if raw is None else str(raw),
                served_model=served_model,
                attempts=0,
            )
        )
    if not records and not problems:
        problems.append(Problem(str(path), "no judgments in the file"))
    if problems:
        raise InputError(problems)
    store.save_set(cs)
    fingerprint = imported_fingerprint(judge_name, model, prompt_text)
    run_id = new_run_id()
    dims = sorted({r.dimension for r in records})
    n_expected = len(cs.items) * len(dims)
    rows = [r.to_row(run_id) for r in records]
    status, summary = summarize_replies(rows, n_expected, 1.0, 1)
    summary["imported_from"] = str(path)
    store.import_run(
        {
            "run_id": run_id,
            "judge_name": judge_name,
            "set_name": cs.name,
            "set_version": cs.version,
            "config_hash": fingerprint["hash"],
            "fingerprint": fingerprint,
            "judge_config": {"name": judge_name, "model": model, "prompt_text": prompt_text},
            "origin": "import",
            "n_expected": n_expected,
        },
        records,
        status,
        summary,
    )
    return {"run_id": run_id, "status": status, "summary": summary}
