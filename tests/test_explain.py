"""`judgecal explain`: the items the judge gets most wrong, verdicts that flipped between two
runs (real PandaLM data: gpt-3.5-turbo → PandaLM-7B), segment filters, and escaped Markdown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from judgecal import explain
from judgecal.calibration.model import natural_key
from judgecal.drift.rule import flip_order
from judgecal.errors import InputError
from judgecal.io.markdown import (
    escape_markdown,
    escape_markdown_cell,
    escape_markdown_inline,
    markdown_fence,
)
from judgecal.store import Store
from tests.helpers import run_main
from tests.test_report_data import SCRIPT, hostile_store, pandalm_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, str]]:
    return pandalm_store(tmp_path_factory.mktemp("explain"), n_boot=20)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, str]]:
    return hostile_store(tmp_path_factory.mktemp("hostile"))


def test_pairwise_disagreements_match_the_accuracy(demo: tuple[Store, dict[str, str]]) -> None:
    store, runs = demo
    result = explain.disagreements(store, runs["gpt_a"], limit=None)
    d = result["dimensions"]["preference"]
    assert d["in_run"] == 999
    assert d["unscored"] == 25  # the real "garbage" verdicts of gpt-3.5 are not disagreements
    report = store.latest_metric_report(runs["gpt_a"])
    assert report is not None
    accuracy = report["dimensions"]["preference"]["metrics"]["accuracy"]
    assert d["compared"] == accuracy["n"]
    assert 1 - d["disagreeing"] / d["compared"] == pytest.approx(accuracy["value"])
    assert len(d["items"]) == d["disagreeing"]
    for item in d["items"]:
        assert item["judge"]["score"] != item["humans"]["consensus"]
        assert item["judge"]["raw_text"]
    # ranked by how unanimous the humans were: unanimous panels first
    agreement = [item["humans"]["agreement"] for item in d["items"]]
    assert agreement == sorted(agreement, reverse=True)
    assert agreement[0] == 1.0 and agreement[-1] < 1.0


def test_segment_filter(demo: tuple[Store, dict[str, str]]) -> None:
    store, runs = demo
    everything = explain.disagreements(store, runs["panda"], limit=None)
    only = explain.disagreements(store, runs["panda"], segments={"motivation_app": "Grammarly"},
                                 limit=None)
    d_all, d_one = everything["dimensions"]["preference"], only["dimensions"]["preference"]
    assert 0 < d_one["in_run"] < d_all["in_run"]
    assert d_one["items"] and all(
        it["segments"]["motivation_app"] == "Grammarly" for it in d_one["items"])
    with pytest.raises(InputError, match=r"unknown segment field 'nope'.*motivation_app"):
        explain.disagreements(store, runs["panda"], segments={"nope": "x"})
    with pytest.raises(InputError, match="unknown dimension 'tone'"):
        explain.disagreements(store, runs["panda"], dimension="tone")
    with pytest.raises(InputError, match="FIELD=VALUE"):
        explain.parse_segments(["motivation_app"])


def test_flips_between_a_judge_migration(demo: tuple[Store, dict[str, str]]) -> None:
    store, runs = demo
    result = explain.flips(store, runs["panda"], runs["gpt_a"], limit=None)
    d = result["dimensions"]["preference"]
    # count independently from the replies
    a = {r["item_id"]: r for r in store.replies(runs["gpt_a"])}
    b = {r["item_id"]: r for r in store.replies(runs["panda"])}
    both = [i for i in a if a[i]["status"] == "scored" and b[i]["status"] == "scored"]
    assert d["compared"] == len(both)
    assert d["flipped"] == sum(a[i]["score"] != b[i]["score"] for i in both)
    assert d["became_scored"] == 25  # garbage under gpt-3.5, a verdict under PandaLM-7B
    assert d["flipped"] == d["broke"] + d["fixed"] + d["changed"] == len(d["items"])
    changes = [it["change"] for it in d["items"]]
    # the worst first: broke, then neither right, then fixed; each in natural id order
    assert changes == sorted(changes, key=["broke", "changed", "fixed"].index)
    for change in ("broke", "changed", "fixed"):
        ids = [it["item_id"] for it in d["items"] if it["change"] == change]
        assert ids == sorted(ids, key=natural_key)
    for it in d["items"]:
        cons = it["humans"]["consensus"]
        assert it["baseline"]["score"] != it["run"]["score"]
        if it["change"] == "broke":
            assert it["baseline"]["score"] == cons != it["run"]["score"]
        elif it["change"] == "fixed":
            assert it["run"]["score"] == cons != it["baseline"]["score"]
        assert it["baseline"]["raw_text"] and it["run"]["raw_text"]
    same = explain.flips(store, runs["gpt_b"], runs["gpt_a"])
    assert same["dimensions"]["preference"]["flipped"] == 0


def test_flips_in_natural_order_as_in_the_incident(
        demo: tuple[Store, dict[str, str]]) -> None:
    """item-2 before item-10, and `explain --vs` lists the flipped items in the order of the
    drift check's (the incident's) worst-flipped items."""
    from judgecal import drift
    from judgecal.config import DriftSettings

    store, runs = demo
    check = drift.compare_runs(store, runs["gpt_a"], runs["panda"], DriftSettings(), n_boot=20,
                               flipped_limit=-1)
    worst = [it["item_id"] for it in check.flipped_items["preference"]]
    listed = [it["item_id"] for it in explain.flips(store, runs["panda"], runs["gpt_a"],
                                                    limit=None)["dimensions"]["preference"]["items"]]
    assert listed == worst and len(worst) > 10
    numbers = [int(i) for i in worst[:10]]  # PandaLM ids are numbers
    assert numbers == sorted(numbers), worst[:10]
    assert flip_order(1.0, "item-2") < flip_order(1.0, "item-10")
    assert flip_order(1.0, "item-10") < flip_order(0.0, "item-2")


def test_ordinal_ranking_by_distance(hostile: tuple[Store, dict[str, str]]) -> None:
    store, runs = hostile
    d = explain.disagreements(store, runs["b"], dimension="quality", limit=None)["dimensions"]
    items = d["quality"]["items"]
    assert items and list(d) == ["quality"]
    distances = [it["distance"] for it in items]
    assert distances == sorted(distances, reverse=True)
    for it in items:
        expected = abs(it["judge"]["score"] - it["humans"]["consensus"])
        assert it["distance"] == pytest.approx(expected)


# -- Markdown safety --------------------------------------------------------------------------
def _outside_fences(markdown: str) -> list[str]:
    lines, fence = [], None
    for line in markdown.splitlines():
        m = re.match(r"^(`{3,})", line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def _unescaped(line: str, chars: str) -> list[str]:
    return re.findall(r"(?<!\\)[" + re.escape(chars) + "]", re.sub(r"\\\\", "", line))


def test_markdown_output_escapes_every_payload(hostile: tuple[Store, dict[str, str]]) -> None:
    store, runs = hostile
    for result in (explain.disagreements(store, runs["b"]),
                   explain.flips(store, runs["b"], runs["a"])):
        md = explain.to_markdown(result)
        prose = _outside_fences(md)
        assert any("\\<script\\>" in line for line in prose)
        assert any("\\<img src=x onerror=" in line for line in prose)
        for line in prose:
            # raw HTML, links, images and code spans can only come from unescaped < [ ] `
            assert _unescaped(line, "<>[]`&") == [], line
        # the one place a reply is shown verbatim is a fence it cannot close
        fences = re.findall(r"^(`{3,})text$", md, flags=re.M)
        assert all(len(f) >= 3 for f in fences)


def test_escape_helpers() -> None:
    assert escape_markdown_inline("# h\n1. x | [a](b) <i>") == "\\# h 1. x \\| \\[a\\](b) \\<i\\>"
    assert escape_markdown_inline("1. not a list") == "1\\. not a list"
    assert escape_markdown_inline("&lt;b&gt; *x* _y_ ~z~") == \
        "\\&lt;b\\&gt; \\*x\\* \\_y\\_ \\~z\\~"
    block = escape_markdown("a\n    indented code?\n\n\n- item\n> quote\n===")
    assert block == "a  \nindented code?\n\n\\- item  \n\\> quote  \n\\==="
    assert escape_markdown_cell("x|y\nz") == "x\\|y ↵ z"
    fenced = markdown_fence("a ``` b ```` c")
    assert fenced.startswith("`````text\n") and fenced.endswith("\n`````")


# -- the command -------------------------------------------------------------------------------


def test_cli(demo: tuple[Store, dict[str, str]], capsys: pytest.CaptureFixture[str],
             tmp_path: Path) -> None:
    store, runs = demo
    url = str(store.engine.url)
    code, out, _ = run_main(["--store", url, "explain", runs["gpt_a"], "--limit", "3"], capsys)
    assert code == 0
    assert out.startswith("# Where judge helpfulness disagrees with the humans")
    assert out.count("### ") == 3
    code, out, _ = run_main(["--store", url, "explain", runs["panda"], "--vs", runs["gpt_a"],
                          "--segment", "motivation_app=Grammarly", "--json", "--limit", "0"],
                         capsys)
    assert code == 0
    data = json.loads(out)
    assert data["baseline"]["run_id"] == runs["gpt_a"]
    assert data["filters"]["segments"] == {"motivation_app": "Grammarly"}
    items = data["dimensions"]["preference"]["items"]
    assert items and all(it["segments"]["motivation_app"] == "Grammarly" for it in items)
    code, _, err = run_main(["--store", url, "explain", runs["panda"], "--segment", "x=y"], capsys)
    assert code == 2 and "unknown segment field 'x'" in err
    code, _, err = run_main(["--store", url, "explain", "no-such-run"], capsys)
    assert code == 2 and "no run 'no-such-run'" in err


def test_cli_markdown_side_by_side(hostile: tuple[Store, dict[str, str]],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    store, runs = hostile
    code, out, _ = run_main(["--store", str(store.engine.url), "explain", runs["b"], "--vs",
                          runs["a"], "--dimension", "quality"], capsys)
    assert code == 0
    assert "| | baseline | run |" in out
    # On a terminal the text reads as written: no Markdown escapes (the Markdown itself is
    # escaped: test_markdown_output_escapes_every_payload), and no control characters.
    prose = "\n".join(_outside_fences(out))
    assert SCRIPT in prose and "\\<" not in prose
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out)
