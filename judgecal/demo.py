"""The offline demo: recorded real judges, a shipped calibration set, the local store.

Starts the recorded judge (real gpt-3.5-turbo verdicts on the PandaLM test set) on a free
localhost port, runs ``configs/demo.yaml`` against it and returns what happened. The CLI
(`judgecal demo`) prints it; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Step = Callable[[str], None]


@dataclass
class DemoResult:
    out_dir: Path
    store_url: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)


def run_demo(
    out_dir: str | Path,
    *,
    config_path: str | Path = "configs/demo.yaml",
    sets_dir: str | Path = "calibration_sets",
    on_step: Step | None = None,
) -> DemoResult:
    """Play the demo into ``out_dir`` (a fresh store each time)."""
    from judgecal.agreement import StoredSet, agreement_report
    from judgecal.calibration import load_set
    from judgecal.config import load_config
    from judgecal.recorded.server import start_server
    from judgecal.runner import execute_run
    from judgecal.store import open_store

    say = on_step or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "judgecal.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    store_url = f"sqlite:///{db}"
    result = DemoResult(out_dir=out, store_url=store_url)

    config = load_config(config_path)
    cs = load_set(config.calibration_set)
    with start_server(recordings={"*": "pandalm:gpt-3.5-turbo"}, sets_dir=Path(sets_dir)) as server:
        say(f"recorded judge (real gpt-3.5-turbo verdicts) listening on {server.url}")
        config.judge = config.judge.model_copy(update={"base_url": server.url})
        store = open_store(store_url)
        try:
            say(f"replaying {len(cs.items)} items of '{cs.name}' through '{config.judge.name}'")
            run = execute_run(config, store, cs)
            report = agreement_report(
                StoredSet.load(store, cs.version),
                store.replies(run.run_id),
                n_boot=config.run.bootstrap,
                seed=config.run.seed,
            )
            store.save_metric_report(run.run_id, report)
            result.runs.append(
                {
                    "run_id": run.run_id,
                    "status": run.status,
                    "summary": run.summary,
                    "report": report,
                }
            )
        finally:
            store.close()
    result.artifacts["store"] = str(db)
    return result
