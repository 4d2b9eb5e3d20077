"""Regenerate the data files of every shipped calibration set from the public source data.

Run from the repository root:

    python calibration_sets/tools/build_sets.py ../shared/data

It writes, deterministically (same input, same bytes):

* ``pandalm/items.jsonl`` and ``llmbar/items.jsonl`` (via ``build_items.py``, unchanged)
* ``pandalm/labels.csv``, ``llmbar/labels.csv``
* ``newsroom/items.jsonl`` + ``labels.csv``
* ``hanna/items.jsonl`` + ``labels.csv``
* ``dices350/items.jsonl`` + ``labels.csv``

``set.yaml`` and ``README.md`` of each set are written by hand (they carry the scales,
descriptions and attribution) and are not touched. Labels are long form
(item_id, rater_id, dimension, label), one row per rating, in item order.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from build_items import _write_jsonl, build_llmbar, build_pandalm

LabelRow = tuple[str, str, str, Any]

NEWSROOM_SUMMARY = "### Generated Summary\n\n"
NEWSROOM_ARTICLE = "\n\n### Source Article\n\n"
HANNA_CRITERIA = ("relevance", "coherence", "empathy", "surprise", "engagement", "complexity")
DICES_CATEGORIES = ("No", "Yes", "Unsure")


def _write_labels(path: Path, rows: list[LabelRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["item_id", "rater_id", "dimension", "label"])
        writer.writerows(rows)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pandalm_labels(src: Path, out: Path) -> None:
    rows: list[LabelRow] = []
    for r in _jsonl(src / "pandalm" / "items_with_judges.jsonl"):
        for k in (1, 2, 3):
            rows.append((str(r["idx"]), f"annotator{k}", "preference", int(r[f"annotator{k}"])))
    _write_labels(out / "pandalm" / "labels.csv", rows)


def llmbar_labels(src: Path, out: Path) -> None:
    rows: list[LabelRow] = [
        (r["item_id"], "gold", "preference", int(r["gold_label"]))
        for r in _jsonl(src / "llmbar" / "items.jsonl")
    ]
    _write_labels(out / "llmbar" / "labels.csv", rows)


def build_newsroom(src: Path, out: Path) -> None:
    meta = json.loads((src / "newsroom" / "newsroom.meta.json").read_text(encoding="utf-8"))
    criteria = [a["metric"] for a in meta["annotations"]]
    items: list[dict[str, Any]] = []
    rows: list[LabelRow] = []
    for r in _jsonl(src / "newsroom" / "newsroom.jsonl"):
        text: str = r["text"]
        if not text.startswith(NEWSROOM_SUMMARY) or text.count(NEWSROOM_ARTICLE) != 1:
            raise ValueError(f"newsroom item {r['id']}: unexpected text layout")
        summary, article = text[len(NEWSROOM_SUMMARY):].split(NEWSROOM_ARTICLE)
        item_id = str(r["id"])
        items.append({"id": item_id, "summary": summary, "article": article, "text": text})
        for criterion in criteria:
            scores = r["annotations"][criterion]["individual_human_scores"]
            for k, score in enumerate(scores, start=1):
                rows.append((item_id, f"rater{k}", criterion.lower(), int(score)))
    _write_jsonl(out / "newsroom" / "items.jsonl", items)
    _write_labels(out / "newsroom" / "labels.csv", rows)


def build_hanna(src: Path, out: Path) -> None:
    prompts = {
        int(r["prompt_idx"]): r["prompt"]
        for r in _jsonl(src / "hanna" / "prompts_and_human_stories.jsonl")
    }
    items: list[dict[str, Any]] = []
    rows: list[LabelRow] = []
    with (src / "hanna" / "human_ratings.csv").open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            item_id = r["story_id"]
            prompt_idx = int(r["prompt_idx"])
            items.append({
                "id": item_id,
                "system": r["system"],
                "prompt_idx": prompt_idx,
                "prompt": prompts[prompt_idx],
            })
            for criterion in HANNA_CRITERIA:
                for k in (1, 2, 3):
                    rows.append((item_id, f"human{k}", criterion,
                                 int(r[f"human{k}_{criterion}"])))
    _write_jsonl(out / "hanna" / "items.jsonl", items)
    _write_labels(out / "hanna" / "labels.csv", rows)


def build_dices(src: Path, out: Path) -> None:
    meta = json.loads((src / "dices350" / "dices350_crowd.meta.json").read_text(encoding="utf-8"))
    categories = tuple(meta["annotations"][0]["labels_list"])
    if categories != DICES_CATEGORIES:
        raise ValueError(f"dices350: categories changed to {categories}; update set.yaml")
    items: list[dict[str, Any]] = []
    rows: list[LabelRow] = []
    for r in _jsonl(src / "dices350" / "dices350_crowd.jsonl"):
        item_id = str(r["id"])
        context, response = r["text"]["user_prompt"], r["text"]["response"]
        items.append({
            "id": item_id,
            "context": context,
            "response": response,
            # Rendered like JUDGE-BENCH's prompt template: "{user_prompt}\nMODEL: {response}".
            "text": f"{context}\nMODEL: {response}",
        })
        for k, label in enumerate(r["annotations"]["safety"]["individual_human_scores"],
                                  start=1):
            if label not in categories:
                raise ValueError(f"dices350 item {item_id}: unexpected label {label!r}")
            rows.append((item_id, f"crowd{k:03d}", "safety", label))
    _write_jsonl(out / "dices350" / "items.jsonl", items)
    _write_labels(out / "dices350" / "labels.csv", rows)


def main(source: Path) -> None:
    target = Path(__file__).resolve().parent.parent
    build_pandalm(source, target)
    pandalm_labels(source, target)
    build_llmbar(source, target)
    llmbar_labels(source, target)
    build_newsroom(source, target)
    build_hanna(source, target)
    build_dices(source, target)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
