"""Test helpers: configs pointed at an in-process recorded judge."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from judgecal.cli.main import main
from judgecal.config import RunConfig, load_config, load_judge
from tests.conftest import ROOT, SHARED_DATA


def run_config(
    base_url: str,
    store: str,
    *,
    judge_file: str = "pandalm-gpt35.yaml",
    set_name: str = "pandalm",
    run: dict[str, Any] | None = None,
    **judge_over: Any,
) -> RunConfig:
    """A RunConfig like configs/demo.yaml but talking to ``base_url`` and writing to ``store``."""
    judge = load_judge(ROOT / "configs" / "judges" / judge_file)
    judge = judge.model_copy(update={"base_url": base_url, **judge_over})
    data: dict[str, Any] = {
        "store": store,
        "calibration_set": ROOT / "calibration_sets" / set_name,
        "judge": judge,
        "run": {"bootstrap": 200, **(run or {})},
    }
    return RunConfig.model_validate(data)


def write_config(path: Path, base_url: str, store: str, **run: Any) -> Path:
    """A YAML run config on disk (for subprocess tests) using the demo judge file."""
    demo = load_config(ROOT / "configs" / "demo.yaml")
    lines = [
        f"store: {store}",
        f"calibration_set: {demo.calibration_set.resolve()}",
        f"judge: {path.parent / 'judge.yaml'}",
        "run:",
        "  bootstrap: 100",
    ] + [f"  {k}: {v}" for k, v in run.items()]
    judge_text = (ROOT / "configs" / "judges" / "pandalm-gpt35.yaml").read_text()
    judge_text = judge_text.replace("http://127.0.0.1:8765/v1", base_url)
    (path.parent / "judge.yaml").write_text(judge_text)
    path.write_text("\n".join(lines) + "\n")
    return path


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Call the real entry point (which translates errors) and return (code, out, err)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def llmbar_verdicts(strategy: str) -> dict[str, str]:
    """Item id -> original-order LLMBar verdict ("1", "2", "" for none) of ``JUDGE/STRATEGY``."""
    out = {}
    with open(SHARED_DATA / "llmbar" / "judgments.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if f"{row['judge_model']}/{row['strategy']}" == strategy:
                v = row["winner_original_order"]
                out[row["item_id"]] = str(int(float(v))) if v else ""
    return out
