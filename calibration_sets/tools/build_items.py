"""Convert the public source data in ../shared/data into the shipped calibration-set item files.

Run from the repository root:  python calibration_sets/tools/build_items.py ../shared/data
Item ids keep the source's own ids so every row can be traced back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_pandalm(src: Path, out: Path) -> None:
    rows = []
    with (src / "pandalm" / "items_with_judges.jsonl").open(encoding="utf-8") as f:
        lines = f.readlines()
    for line in lines:
        r = json.loads(line)
        rows.append({
            "id": str(r["idx"]),
            "instruction": r["instruction"],
            "input": r["input"],
            "response1": r["response1"],
            "response2": r["response2"],
            "motivation_app": r["motivation_app"],
            "cmp_key": r["cmp_key"],
        })
    _write_jsonl(out / "pandalm" / "items.jsonl", rows)


def build_llmbar(src: Path, out: Path) -> None:
    rows = []
    with (src / "llmbar" / "items.jsonl").open(encoding="utf-8") as f:
        lines = f.readlines()
    for line in lines:
        r = json.loads(line)
        rows.append({
            "id": r["item_id"],
            "input": r["input"],
            "output_1": r["output_1"],
            "output_2": r["output_2"],
            "subset": r["subset"].removeprefix("LLMBar/"),
        })
    _write_jsonl(out / "llmbar" / "items.jsonl", rows)


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    target = Path(__file__).resolve().parent.parent
    build_pandalm(source, target)
    build_llmbar(source, target)
