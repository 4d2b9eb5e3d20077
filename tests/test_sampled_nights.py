"""Sampled nights (``run.sample_share``): a rotating block of the set each night, expanded to
the whole set in the same run when the sample is unclear — over real HTTP through the
recorded judge (PandaLM's recorded gpt-3.5-turbo verdicts; the silent swap serves the
recorded PandaLM-7B verdicts under the same model name)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from judgecal import drift
from judgecal.calibration import CalibrationSet
from judgecal.config import RunConfig, RunSettings
from judgecal.drift.sampling import blocks_of, permutation, unclear_reason
from judgecal.errors import InputError
from judgecal.nightly import run_nightly
from judgecal.recorded.server import RunningServer
from judgecal.stats import sequential as seq
from judgecal.store import Store, open_store
from tests.helpers import interruptible, run_config, run_main, wait_for_scored, write_config

LIMIT = 200
SHARE = 0.25
BLOCK = 50


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'sampled.db'}")
    yield s
    s.close()


def _config(url: str, store: Store, **run: Any) -> RunConfig:
    return run_config(url, store.url, run={"limit": LIMIT, "sample_share": SHARE, **run})


def _items(store: Store, run_id: str) -> set[str]:
    return {r["item_id"] for r in store.replies(run_id)}


def _asked(server: RunningServer) -> dict[str, int]:
    """Requests per item since the last reset (an unparseable reply is asked again)."""
    return {k: int(v["requests"]) for k, v in server.stats()["items"].items()}


def _baseline(store: Store, cs: CalibrationSet, cfg: RunConfig,
              server: RunningServer) -> dict[str, int]:
    """The first night (the whole set), accepted as the baseline; its requests per item."""
    server.reset_stats()
    first = run_nightly(cfg, store, cs)
    assert first.kind == "not_monitored"
    assert "sampling" not in first.result.summary  # no baseline yet: the whole set
    assert len(_items(store, first.result.run_id)) == LIMIT
    drift.accept_baseline(store, first.result.run_id, actor="test", reason="first night")
    asked = _asked(server)
    assert len(asked) == LIMIT
    return asked


def test_the_share_and_the_cycle_agree() -> None:
    assert RunSettings(sample_share=0.25).sample_blocks == 4
    assert RunSettings(sample_cycle_nights=4).sample_blocks == 4
    assert RunSettings(sample_share=0.3).sample_blocks == 4  # blocks of a quarter
    assert RunSettings(sample_share=0.25, sample_cycle_nights=4).sample_blocks == 4
    assert RunSettings().sample_blocks is None and RunSettings(sample_share=1).sample_blocks \
        is None
    with pytest.raises(ValidationError, match="sample_cycle_nights 3"):
        RunSettings(sample_share=0.25, sample_cycle_nights=3)


def test_blocks_are_a_deterministic_partition() -> None:
    ids = [f"item-{i}" for i in range(103)]
    order = permutation(ids, "v1", 0)
    assert order == permutation(list(reversed(ids)), "v1", 0)  # from the ids, not their order
    assert order != permutation(ids, "v1", 1) and order != permutation(ids, "v2", 0)
    spans = blocks_of(103, 4)
    assert spans == [(0, 26), (26, 52), (52, 78), (78, 103)]
    assert sorted(x for s, e in spans for x in order[s:e]) == sorted(ids)


def test_unclear_means_a_drop_of_incident_size_is_not_ruled_out() -> None:
    settings = RunConfig.model_fields["drift"].default_factory()  # type: ignore[misc]
    assert unclear_reason("p", 0.5, 2.0, settings) is None
    assert unclear_reason("p", -1.9, 2.0, settings) is None
    assert "cannot rule out a drop of 4 points" in (unclear_reason("p", -2.0, 2.0, settings)
                                                   or "")
    assert unclear_reason("p", None, None, settings) is not None


def test_nights_rotate_cover_the_set_within_the_cycle_and_clear_nights_stay_sampled(
    recorded: RunningServer, store: Store, pandalm_set: CalibrationSet
) -> None:
    cfg = _config(recorded.url, store)
    full = _baseline(store, pandalm_set, cfg, recorded)
    seen: list[set[str]] = []
    for _ in range(5):
        recorded.reset_stats()
        night = run_nightly(cfg, store, pandalm_set)
        run_id = night.result.run_id
        items = _items(store, run_id)
        asked = _asked(recorded)  # the block only, each item as often as on a whole night
        assert set(asked) == items and asked == {i: full[i] for i in items}
        assert len(items) == BLOCK and night.result.requested == BLOCK
        sampling = night.result.summary["sampling"]
        assert sampling["expanded"] is False and sampling["items"] == BLOCK
        assert sampling["text"].startswith(f"sampled 25% ({BLOCK} of {LIMIT} items)")
        assert store.get_run(run_id)["summary"]["sampling"] == sampling
        # The recorded judge answers every night alike: clear, healthy, not expanded.
        assert night.kind == "healthy"
        check = night.watch.check
        assert check["sampling"]["expanded"] is False
        assert check["message"].startswith(f"This night sampled 25% ({BLOCK} of {LIMIT} "
                                           "items)")
        assert BLOCK - 5 <= check["dimensions"][0]["n_common"] <= BLOCK  # the sample only
        seen.append(items)
    first_cycle = seen[:4]
    assert all(not (a & b) for i, a in enumerate(first_cycle) for b in first_cycle[:i])
    assert set().union(*first_cycle) == {i.id for i in pandalm_set.items[:LIMIT]}
    assert seen[4] == seen[0]  # the next cycle starts over with the same blocks
    # A sampled night cannot become a baseline: it did not replay the whole set.
    with pytest.raises(InputError, match="sampled night"):
        drift.accept_baseline(store, night.result.run_id, actor="test", reason="no")


def test_an_unclear_night_expands_in_the_same_run_and_pays_for_no_reply_twice(
    recorded: RunningServer, store: Store, pandalm_set: CalibrationSet
) -> None:
    cfg = _config(recorded.url, store)
    _baseline(store, pandalm_set, cfg, recorded)
    recorded.configure(recordings={"*": "pandalm:pandalm-7b"})  # same model name, other judge
    recorded.reset_stats()
    night = run_nightly(cfg, store, pandalm_set)
    stats = recorded.stats()
    run_id = night.result.run_id
    assert night.result.requested == LIMIT  # the block, then only the rest
    # Every item asked once (a second time only to re-ask an unparseable reply): the sample's
    # replies were not asked again when the night expanded.
    served = {k: int(v["served"]) for k, v in stats["items"].items()}
    assert len(served) == LIMIT and stats["repeated_requests"] == 0
    unparsed = {r["item_id"] for r in store.replies(run_id) if r["status"] != "scored"}
    assert all(n == 1 for i, n in served.items() if i not in unparsed)
    assert len(_items(store, run_id)) == LIMIT
    assert len(store.list_runs("pandalm-judge")) == 2  # one run: the baseline and tonight
    sampling = night.result.summary["sampling"]
    assert sampling["expanded"] is True and sampling["because"]
    assert "expanded to the full set because" in sampling["text"]
    run = store.get_run(run_id)
    assert run["n_expected"] == LIMIT and run["summary"]["expected"] == LIMIT
    check = night.watch.check
    assert check["message"].startswith("Expanded to the full set because")
    assert check["dimensions"][0]["n_common"] > BLOCK  # the verdict is on the whole set
    # 50 items cannot rule out a drop of 4 points; the whole set decides the verdict.
    assert "cannot rule out a drop of 4 points" in sampling["because"]
    # The evidence got the sample and the rest apart, as one night.
    q = check["dimensions"][0]["sequential"]
    nights = q["state"]["nights"]
    assert [len(n[5]["spans"]) for n in nights] in ([1, 1], [1, 2])
    assert nights[0][2] + nights[1][2] == check["dimensions"][0]["n_common"]
    assert q["nights"] == 1
    assert {n[4] for n in nights} == {run_id}
    # An expanded night replayed the whole set: it may become a baseline.
    drift.accept_baseline(store, run_id, actor="test", reason="the new judge")


def _judgecal(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "judgecal", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)


def test_a_killed_sampled_night_resumes_with_the_same_items(
    recorded: RunningServer, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url, url, limit=LIMIT,
                       sample_share=SHARE, sample_seed=3)
    first = _judgecal("run", "--config", str(cfg), "--json")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 5, err
    baseline = json.loads(out)["run_id"]
    store = open_store(url)
    try:
        drift.accept_baseline(store, baseline, actor="test", reason="first night")
    finally:
        store.close()
    recorded.configure(latency_ms=250)  # slow enough that Ctrl-C lands mid-run under load
    recorded.reset_stats()
    proc = _judgecal("run", "--config", str(cfg), "--json")
    deadline = time.monotonic() + 60
    while (run_id := wait_for_scored(db, url, 10)) == baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run_id is not None and run_id != baseline
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    asked_before = set(recorded.stats()["items"])
    assert 0 < len(asked_before) < BLOCK
    store = open_store(url)
    try:
        stored_before = len(store.done_keys(run_id))
    finally:
        store.close()
    recorded.configure(latency_ms=0)
    again = _judgecal("run", "--config", str(cfg), "--json")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    payload = json.loads(out)
    assert payload["run_id"] == run_id and payload["resumed"] is True
    stats = recorded.stats()
    assert len(stats["items"]) == BLOCK  # the same block: the killed night's items and the rest
    assert asked_before <= set(stats["items"])
    assert payload["summary"]["sampling"]["items"] == BLOCK
    assert payload["summary"]["requested_now"] == BLOCK - stored_before  # only the rest
    store = open_store(url)
    try:
        assert _items(store, run_id) == set(stats["items"])
    finally:
        store.close()


def test_run_output_says_sampled_or_expanded(
    recorded: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("JUDGECAL_STORE", url)
    cfg = write_config(tmp_path / "nightly.yaml", recorded.url, url, limit=LIMIT,
                       sample_share=SHARE)
    code, out, _ = run_main(["run", "--config", str(cfg), "--json"], capsys)
    assert code == 5
    code, _, err = run_main(["baseline", "accept", json.loads(out)["run_id"], "--reason",
                             "first", "--by", "t@example.com"], capsys)
    assert code == 0, err
    code, out, err = run_main(["run", "--config", str(cfg), "--verbose"], capsys)
    assert code == 0, err
    assert f"sampled 25% ({BLOCK} of {LIMIT} items), block 2 of 4" in out
    assert "This night sampled 25%" in out and "xpanded" not in out
    recorded.configure(recordings={"*": "pandalm:pandalm-7b"})
    code, out, err = run_main(["run", "--config", str(cfg), "--verbose"], capsys)
    assert code in (0, 10, 20), err
    assert "expanded to the full set because" in out
    assert "Expanded to the full set because" in out  # the verdict says it too


def test_the_evidence_of_rotating_blocks_uses_their_real_overlap() -> None:
    """Nights on disjoint blocks share nothing of the baseline's noise; nights on the same
    block share half their variance; a whole night shares √(f/2)·√(1/2) with a block."""
    cover = [{"key": "k", "n": 100, "spans": [[25 * b, 25 * (b + 1)]]} for b in range(4)]
    nights = [seq.Night(0.0, 1.0, 25, 100, f"r{t}", cover[t % 4]) for t in range(5)]
    nights.append(seq.Night(0.0, 1.0, 100, 100, "full"))
    corr = seq.night_correlation(nights)
    assert corr is not None
    assert corr[0, 1] == corr[1, 2] == 0.0 and corr[0, 4] == pytest.approx(0.5)
    assert corr[0, 5] == pytest.approx(np.sqrt(0.25) / 2)
    assert np.all(np.linalg.eigvalsh(corr) > 0)
    assert seq.night_correlation([seq.Night(0.0, 1.0, 100, 100)]) is None
    # Round trip through JSON with the cover.
    state = seq.new_state("j", "v", "b", "d")
    for n in nights:
        state, _ = seq.update(state, seq.NightObservation("b", -0.5, 1.0, n.n_items, 100,
                                                          n.run_id, n.cover))
    again = seq.SequentialState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state


def test_the_correlated_e_process_equals_the_one_factor_one() -> None:
    rng = np.random.default_rng(4)
    delta, se = rng.normal(-1, 1.5, (3, 9)), rng.uniform(0.8, 1.6, (3, 9))
    f = rng.uniform(0.2, 1.0, (3, 9))
    g = np.sqrt(f / 2)
    corr = g[..., :, None] * g[..., None, :]
    corr[..., np.arange(9), np.arange(9)] = 1.0
    a, b = seq.e_process(delta, se, f), seq.e_process(delta, se, correlation=corr)
    assert np.allclose(a.log_e, b.log_e) and np.array_equal(a.change_point, b.change_point)
    assert np.allclose(a.information, b.information)


def test_false_alarms_of_rotating_nights_stay_below_alpha() -> None:
    """Simulated under the null model of rotating blocks (baseline noise per block shared by
    the nights on that block): the e-process crosses 1/α on at most α of the sequences."""
    rng = np.random.default_rng(11)
    sequences, nights, blocks = 4000, 30, 4
    base = rng.normal(size=(sequences, blocks))  # the baseline's noise on each block
    own = rng.normal(size=(sequences, nights))
    block = np.arange(1, nights + 1) % blocks
    z = (base[:, block] + own) / np.sqrt(2.0)
    cover = [{"key": "k", "n": 100, "spans": [[25 * b, 25 * (b + 1)]]} for b in range(4)]
    corr = seq.night_correlation([seq.Night(0.0, 1.0, 25, 100, f"r{t}", cover[block[t]])
                                  for t in range(nights)])
    traj = seq.e_process(z, np.ones_like(z), correlation=corr)
    alpha = 0.05
    assert (traj.log_e >= np.log(1 / alpha)).any(-1).mean() <= alpha
