"""Convert the recorded real judge verdicts in ../shared/data into the recordings that
`judgecal serve-recorded` answers from.

Run from the repository root:

    python calibration_sets/tools/build_recordings.py ../shared/data

The output is deterministic (same input -> byte-identical files), so a re-run shows up
in ``git diff`` only when the source data changed. Written per set:

    calibration_sets/<set>/recorded/manifest.json       what is recorded, counts, checksums
    calibration_sets/pandalm/recorded/<judge>.jsonl     one row per item
    calibration_sets/llmbar/recorded/<judge>/<strategy>.jsonl

Row formats (documented again in judgecal/recorded/__init__.py and recorded/README.md):

    pandalm: {"id", "verdict": 0|1|2|null, "reason": str|null, "source_verdict"?: "garbage"}
    llmbar:  {"id", "winner": 1|2|null, "winner_swapped": 1|2|null,
              "score_1": float|null, "score_2": float|null}

``winner_swapped`` is the verdict the same judge gave when shown the outputs in swapped
order, mapped back to the original numbering (1 = output_1 won), exactly as LLMBar
stores it. The item files (``<set>/items.jsonl``) are checked, not written, here.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PANDALM_JUDGES = {
    # recording name -> (verdict column, reason column, model the source names)
    "gpt-3.5-turbo": ("gpt35_verdict", "gpt35_reason", "gpt-3.5-turbo"),
    "pandalm-7b": ("pandalm7b_verdict", "pandalm7b_reason", "WeOpenML/PandaLM-7B-v1"),
}

PANDALM_PROVENANCE = {
    "source": "github.com/WeOpenML/PandaLM (commit 3871806): data/testset-v1.json, "
    "data/gpt-3.5-turbo-testset-v1.json, data/pandalm-7b-testset-v1.json, joined on idx",
    "license": "Apache-2.0",
    "citation": "Wang et al., \"PandaLM: An Automatic Evaluation Benchmark for LLM Instruction "
    "Tuning Optimization\", ICLR 2024.",
}

LLMBAR_PROVENANCE = {
    "source": "github.com/princeton-nlp/LLMBar (commit 900616b): "
    "Dataset/LLMBar/{Natural,Adversarial/*} and evaluators/<judge>/<strategy>/result.json",
    "license": "MIT",
    "citation": "Zeng et al., \"Evaluating Large Language Models at Evaluating Instruction "
    "Following\", ICLR 2024.",
}


def _dump_jsonl(rows: list[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    return text.encode("utf-8")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _manifest(
    set_name: str, fmt: str, fields: dict[str, Any], recordings: list[dict[str, Any]]
) -> bytes:
    body = {"set": set_name, "format": fmt, **fields, "recordings": recordings}
    return (json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


def build_pandalm(src: Path, sets_dir: Path) -> None:
    source = _read_jsonl(src / "pandalm" / "items_with_judges.jsonl")
    items = _read_jsonl(sets_dir / "pandalm" / "items.jsonl")
    by_id = {str(r["idx"]): r for r in source}
    if [i["id"] for i in items] != [str(r["idx"]) for r in source]:
        raise SystemExit("pandalm/items.jsonl ids differ from the source; rebuild the items first")
    for item in items:
        row = by_id[item["id"]]
        for field in ("instruction", "input", "response1", "response2"):
            if item[field] != row[field]:
                raise SystemExit(f"pandalm item {item['id']}: field {field} differs from source")

    out = sets_dir / "pandalm" / "recorded"
    recordings = []
    for name, (vcol, rcol, model) in PANDALM_JUDGES.items():
        rows: list[dict[str, Any]] = []
        counts: Counter[str] = Counter()
        for item in items:
            r = by_id[item["id"]]
            verdict = r[vcol]
            if verdict in (0, 1, 2):
                rows.append({"id": item["id"], "verdict": verdict, "reason": r[rcol]})
                counts[str(verdict)] += 1
            else:
                # The source kept only a marker ("garbage") for an unparseable reply.
                rows.append(
                    {"id": item["id"], "verdict": None, "reason": None,
                     "source_verdict": str(verdict)}
                )
                counts["no_verdict"] += 1
        data = _dump_jsonl(rows)
        file = f"{name}.jsonl"
        _write(out / file, data)
        recordings.append({
            "name": name,
            "judge_model": model,
            "file": file,
            "rows": len(rows),
            "counts": dict(sorted(counts.items())),
            "sha256": hashlib.sha256(data).hexdigest(),
        })
    fields = {
        "items": "../items.jsonl",
        "match_fields": ["instruction", "input", "response1", "response2"],
        "swap_fields": ["response1", "response2"],
        "swapped_verdicts": False,
        **PANDALM_PROVENANCE,
    }
    _write(out / "manifest.json", _manifest("pandalm", "pandalm-verdict-v1", fields, recordings))


def _winner(value: str) -> int | None:
    return int(float(value)) if value.strip() else None


def _score(value: str) -> float | None:
    return float(value) if value.strip() else None


def build_llmbar(src: Path, sets_dir: Path) -> None:
    source_items = _read_jsonl(src / "llmbar" / "items.jsonl")
    items = _read_jsonl(sets_dir / "llmbar" / "items.jsonl")
    if [i["id"] for i in items] != [r["item_id"] for r in source_items]:
        raise SystemExit("llmbar/items.jsonl ids differ from the source; rebuild the items first")
    for item, row in zip(items, source_items, strict=True):
        for field in ("input", "output_1", "output_2"):
            if item[field] != row[field]:
                raise SystemExit(f"llmbar item {item['id']}: field {field} differs from source")
    order = {item["id"]: n for n, item in enumerate(items)}

    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with (src / "llmbar" / "judgments.csv").open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if r["item_id"] not in order:
                raise SystemExit(f"judgments.csv names unknown item {r['item_id']}")
            grouped.setdefault((r["judge_model"], r["strategy"]), []).append({
                "id": r["item_id"],
                "winner": _winner(r["winner_original_order"]),
                "winner_swapped": _winner(r["winner_swapped_order_mapped_back"]),
                "score_1": _score(r["rating_score_1"]),
                "score_2": _score(r["rating_score_2"]),
            })

    out = sets_dir / "llmbar" / "recorded"
    recordings = []
    for (judge, strategy), rows in sorted(grouped.items()):
        rows.sort(key=lambda row: order[row["id"]])
        if len({row["id"] for row in rows}) != len(rows):
            raise SystemExit(f"llmbar {judge}/{strategy}: duplicate item rows")
        counts: Counter[str] = Counter()
        for row in rows:
            counts[f"original_{row['winner'] or 'none'}"] += 1
            counts[f"swapped_{row['winner_swapped'] or 'none'}"] += 1
        data = _dump_jsonl(rows)
        file = f"{judge}/{strategy}.jsonl"
        _write(out / file, data)
        recordings.append({
            "name": f"{judge}/{strategy}",
            "judge_model": judge,
            "strategy": strategy,
            "rating": strategy.startswith("Rating"),
            "file": file,
            "rows": len(rows),
            "counts": dict(sorted(counts.items())),
            "sha256": hashlib.sha256(data).hexdigest(),
        })
    fields = {
        "items": "../items.jsonl",
        "match_fields": ["input", "output_1", "output_2"],
        "swap_fields": ["output_1", "output_2"],
        "swapped_verdicts": True,
        **LLMBAR_PROVENANCE,
    }
    _write(out / "manifest.json", _manifest("llmbar", "llmbar-verdict-v1", fields, recordings))


if __name__ == "__main__":
    source_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    target_dir = Path(__file__).resolve().parent.parent
    build_pandalm(source_dir, target_dir)
    build_llmbar(source_dir, target_dir)
