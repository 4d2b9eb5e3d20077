"""Hostile input, property-based: every broken set, config, judgment or score file is
refused with exit 2 and one clear message, and the store stays unchanged row for row.

The mutations live in :mod:`benchmarks.harness.hostile` (shared with ``make reliability``);
hypothesis draws which damage to do and all of its randomness, and shrinks a failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.harness import Sandbox
from benchmarks.harness.hostile import TARGETS, TEMPLATE_PAYLOADS, HostileInputs
from benchmarks.harness.sandbox import cli_in_process, table_rows
from judgecal.config import JudgeConfig
from judgecal.judge import PromptRenderer
from judgecal.recorded.server import start_server
from judgecal.store import open_store
from tests.conftest import SETS

_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every CI run; `make reliability` varies seeds
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileInputs]:
    yield HostileInputs(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_hostile_input_is_refused_cleanly(inputs: HostileInputs, target: str) -> None:
    @given(mutate=st.sampled_from(TARGETS[target]), rng=st.randoms(use_true_random=False))
    @_SETTINGS
    def check(mutate, rng):  # type: ignore[no-untyped-def]
        attempt = inputs.attempt(target, mutate, rng)
        assert attempt.ok, attempt.explain()

    check()


@given(text=st.one_of(st.sampled_from(TEMPLATE_PAYLOADS), st.text(max_size=200)))
@settings(max_examples=200, deadline=None)
def test_item_text_is_inserted_never_evaluated(text: str) -> None:
    judge = JudgeConfig.model_validate({
        "name": "j", "base_url": "http://127.0.0.1:9/v1", "model": "m",
        "prompts": {"preference": {
            "system": "Judge. {{ rubric }}",
            "template": "Q: {{ instruction }}\nA: {{ response1 }}\nB: {{ response2 }}",
            "parse": {"type": "regex", "pattern": "([12])"},
        }},
    })
    fields = {"instruction": text, "response1": text, "response2": "plain"}
    messages = PromptRenderer(judge).messages("preference", fields)
    assert messages[1]["content"] == f"Q: {text}\nA: {text}\nB: plain"


def test_an_id_longer_than_the_store_holds_is_refused_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    """SQLite would keep a 300-character id; PostgreSQL's key column would not. The set is
    refused up front on both, so a run never fails half-way on one of them."""
    inputs = HostileInputs(tmp_path)
    case = inputs.case()
    rows = [json.loads(x) for x in (case.set_dir / "items.jsonl").read_text().splitlines()]
    rows[0]["id"] = "L" * 300
    (case.set_dir / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = case.config.read_text().replace(case.store_url, pg_url)
    case.config.write_text(config)
    code, _out, err = cli_in_process(["run", "--config", str(case.config)])
    assert code == 2, err
    assert "items.jsonl:1" in err and "300 characters" in err
    assert table_rows(pg_url) == {}


def test_a_judge_reporting_huge_model_ids_does_not_break_the_store(
    tmp_path: Path, store_url: str
) -> None:
    """A provider's ``model`` / ``system_fingerprint`` are stored for the fingerprint; a
    hostile or broken endpoint sending 500 characters must not crash the run."""
    box = Sandbox(tmp_path)
    with start_server(recordings={"*": "pandalm:gpt-3.5-turbo"}, sets_dir=SETS,
                      model_id="M" * 500, system_fingerprint="F" * 300) as srv:
        cfg = box.write_config("c", base_url=srv.url, store=store_url,
                               run={"limit": 30, "min_items": 5})
        code, out, err = cli_in_process(["run", "--config", str(cfg), "--json"])
    assert code == 5, err  # a completed run; no baseline yet: not monitored
    store = open_store(store_url)
    try:
        replies = store.replies(json.loads(out)["run_id"])
    finally:
        store.close()
    assert len(replies) == 30
    assert all(len(r["served_model"]) <= 200 and len(r["system_fingerprint"]) <= 200
               for r in replies)


# -- the bugs the campaign found, pinned one by one ------------------------------------------


@pytest.mark.parametrize("label", ["1.5", 1.5, "2.9", "0.2", "inf", "nan", float("inf")])
def test_a_fractional_or_infinite_pairwise_label_is_off_scale(label: object) -> None:
    from judgecal.scales import Scale

    with pytest.raises(ValueError, match="not a pairwise preference"):
        Scale(kind="pairwise", ties=True).code(label)
    assert Scale(kind="pairwise", ties=True).code("1.0") == 1.0


def test_deeply_nested_json_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    from judgecal.errors import InputError
    from judgecal.io.tabular import read_all

    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "1"}\n{"id": "2", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(InputError, match=r"items\.jsonl:2: malformed JSON: nested too deeply"):
        read_all(path)


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}", "{{ [].append(1) }}", "{{ 1/0 }}",
    "{% for i in range(10**9) %}{% endfor %}",
])
def test_a_template_the_sandbox_refuses_is_a_config_error(template: str) -> None:
    from judgecal.errors import ConfigError

    judge = JudgeConfig.model_validate({
        "name": "j", "base_url": "http://127.0.0.1:9/v1", "model": "m",
        "prompts": {"p": {"template": template, "parse": {"type": "json", "field": "x"}}},
    })
    with pytest.raises(ConfigError, match=r"prompts\.p\.template.*cannot be rendered"):
        PromptRenderer(judge).messages("p", {"id": "7"})


def test_a_judge_path_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    from judgecal.config import load_config
    from judgecal.errors import ConfigError

    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"calibration_set: {SETS / 'pandalm'}\njudge: {tmp_path}\n")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(cfg)


def test_names_longer_than_the_store_holds_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        JudgeConfig.model_validate({"name": "j" * 201, "base_url": "http://x", "model": "m",
                                    "prompts": {}})


def test_runs_import_refuses_a_bad_prompt_file_and_an_overlong_judge_name(
    tmp_path: Path, store_url: str
) -> None:
    inputs = HostileInputs(tmp_path)
    case = inputs.case()
    open_store(store_url).close()  # an existing (migrated) store
    before = table_rows(store_url)
    prompt = case.root / "prompt.txt"
    prompt.write_bytes("Évaluez".encode("latin-1"))
    common = ["--store", store_url, "runs", "import", str(case.judgments), "--set",
              str(case.set_dir), "--model", "m"]
    code, _out, err = cli_in_process([*common, "--judge", "j", "--prompt-file", str(prompt)])
    assert code == 2 and "prompt.txt" in err and "UTF-8" in err, err
    code, _out, err = cli_in_process([*common, "--judge", "J" * 300, "--prompt", "p"])
    assert code == 2 and "300 characters" in err, err
    assert table_rows(store_url) == before


def test_scores_ingest_refuses_an_overlong_score_id_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    inputs = HostileInputs(tmp_path)
    case = inputs.case()
    text = case.scores.read_text().replace("\ns1,", "\n" + "S" * 300 + ",", 1)
    case.scores.write_text(text)
    open_store(pg_url).close()
    before = table_rows(pg_url)
    code, _out, err = cli_in_process(["--store", pg_url, "scores", "ingest", str(case.scores),
                                      "--atomic"])
    assert code == 2, err
    assert table_rows(pg_url) == before
