"""Test helpers: configs pointed at an in-process recorded judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from judgecal.cli.main import main
from judgecal.config import RunConfig, load_config, load_judge
from tests.conftest import ROOT, SETS


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


def interruptible() -> None:
    """``preexec_fn`` of a child that a test interrupts with SIGINT: the default handling
    and an unblocked SIGINT, whatever the test process inherited or set for itself."""
    import signal

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Call the real entry point (which translates errors) and return (code, out, err)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def llmbar_recording_names() -> list[str]:
    """Every recorded LLMBar ``JUDGE/STRATEGY`` (the recordings' manifest)."""
    manifest = json.loads((SETS / "llmbar" / "recorded" / "manifest.json").read_text("utf-8"))
    return [r["name"] for r in manifest["recordings"]]


def llmbar_winners(strategy: str) -> dict[str, int | None]:
    """Item id -> original-order LLMBar verdict (1, 2, None for none) of ``JUDGE/STRATEGY``,
    from the shipped recordings (rebuilt byte for byte from LLMBar's judgments by a test)."""
    path = SETS / "llmbar" / "recorded" / f"{strategy}.jsonl"
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return {row["id"]: row["winner"] for row in rows}


def llmbar_verdicts(strategy: str) -> dict[str, str]:
    """Item id -> original-order LLMBar verdict ("1", "2", "" for none) of ``JUDGE/STRATEGY``."""
    return {k: "" if v is None else str(v) for k, v in llmbar_winners(strategy).items()}


def wait_for_scored(db: Path, url: str, n: int, timeout: float = 60) -> str | None:
    """The id of the newest run in the SQLite store ``db`` once it has ``n`` scored replies
    (None if that does not happen within ``timeout`` seconds)."""
    import time

    from judgecal.records import SCORED
    from judgecal.store import open_store

    store = open_store(url) if db.exists() else None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if store is None and db.exists():
                store = open_store(url)
            runs = store.list_runs() if store is not None else []
            if runs and store is not None and \
                    store.reply_counts(runs[0]["run_id"]).get(SCORED, 0) >= n:
                return str(runs[0]["run_id"])
            time.sleep(0.02)
        return None
    finally:
        if store is not None:
            store.close()
