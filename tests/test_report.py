"""`judgecal report`: one self-contained, script-free HTML file; every text escaped; incidents on
the timeline and with their lifecycle; the audit verdict up front; filters and the command."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from judgecal.reports import render_trust_report, trust_report_data
from judgecal.reports.trust import CSP
from judgecal.store import Store, open_store
from tests.helpers import run_main
from tests.test_report_data import IMG, SCRIPT, hostile_store, pandalm_store, run_date


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, str]]:
    return pandalm_store(tmp_path_factory.mktemp("report"), n_boot=50, incident=True)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, str]]:
    return hostile_store(tmp_path_factory.mktemp("hostile"))


def _self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html.replace(
        "&#39;", "'")
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "<iframe" not in html.lower() and "<object" not in html.lower()
    # the only URLs are data: images and in-page anchors
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:image/svg+xml;base64,", "data:image/png;base64,", "#")), attr
    assert "url(" not in html
    assert "@import" not in html


def test_report_is_self_contained(demo: tuple[Store, dict[str, str]]) -> None:
    store, runs = demo
    html = render_trust_report(store)
    _self_contained(html)
    assert "Judge helpfulness" in html
    assert html.count("<figure>") == 1
    for key in ("gpt_a", "gpt_b", "panda", "drifted"):
        assert runs[key] in html  # every run is in the run history
    assert "human ceiling" in html
    assert "requested model: gpt-3.5-turbo → pandalm-7b" in html
    assert "@media print" in html
    # the embedded figure is a real SVG drawn by matplotlib, with no script inside
    uri = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert uri is not None
    svg = base64.b64decode(uri.group(1)).decode("utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<script" not in svg


def test_report_is_deterministic_for_the_same_data(demo: tuple[Store, dict[str, str]]) -> None:
    store, _ = demo
    a = re.sub(r"Generated [^<]*UTC", "", render_trust_report(store))
    b = re.sub(r"Generated [^<]*UTC", "", render_trust_report(store))
    assert a == b


def test_every_text_is_escaped(hostile: tuple[Store, dict[str, str]]) -> None:
    store, _ = hostile
    html = render_trust_report(store, figure_format="png")
    _self_contained(html)
    assert SCRIPT not in html and IMG not in html
    assert "&lt;script&gt;window.__pwned = 1;" in html
    assert "&lt;img src=x onerror=&#34;window.__pwned = 2&#34;&gt;" in html
    assert "Judge judge&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;" in html
    assert "ann&lt;script&gt;" in html  # a rater id
    assert "item-&lt;b&gt;0&lt;/b&gt;" in html or "item-&lt;b&gt;0" in html
    assert "{{7*7}}" in html  # data is never rendered as a template
    assert 'src="data:image/png;base64,' in html
    # no tag other than the template's own
    tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", html))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "header", "section", "h1",
                    "h2", "h3", "h4", "p", "span", "b", "table", "thead", "tbody", "tr", "th",
                    "td", "div", "figure", "img", "figcaption", "ul", "li", "pre", "code",
                    "nav", "a"}, tags


def test_tampered_store_is_flagged_first(tmp_path: Path) -> None:
    store, runs = hostile_store(tmp_path)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE replies SET score = 1 WHERE run_id = :r"), {"r": runs["a"]})
    html = render_trust_report(store, worst_items=0)
    audit_section = html[html.index('id="audit"'):html.index('class="judge"')]
    assert "does <b>not</b> verify" in audit_section
    assert runs["a"] in audit_section


def test_empty_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'empty.db'}")
    html = render_trust_report(store)
    _self_contained(html)
    assert "No runs" in html and "intact" in html


# -- incidents ----------------------------------------------------------------------------
def test_incidents_on_the_timeline_and_with_their_lifecycle(
    demo: tuple[Store, dict[str, str]],
) -> None:
    store, runs = demo
    data = trust_report_data(store, worst_items=0)
    (judge,) = data["judges"]
    (incident,) = judge["incidents"]
    assert incident["incident_id"] == runs["incident"]
    assert incident["run_id"] == runs["drifted"] and incident["baseline_run_id"] == runs["gpt_a"]
    assert incident["resolved_at"] is not None and judge["open_incidents"] == 0
    marks = judge["dimensions"]["preference"]["incidents"]
    assert marks == [{"incident_id": runs["incident"], "at": incident["opened_at"],
                      "resolved_at": incident["resolved_at"],
                      "severity": incident["severity"]["level"]}]
    html = render_trust_report(store, worst_items=0)
    _self_contained(html)
    section = html[html.index("<h3>Incidents</h3>"):html.index("<h3>Items with the worst")]
    assert runs["incident"] in section
    for step in ("opened", "acknowledged", "blast_radius", "resolved", "prompt v2 rolled back"):
        assert step in section, step
    blast = section[section.index('<table class="blast">'):]
    blast = blast[:blast.index("</table>")]
    assert "1250 / 10000" in blast and "12.5%" in blast and "30.0%" in blast
    assert "{" not in section  # tables, not a dump of JSON
    assert "points of kappa on preference" in section
    assert incident["root_cause"]["code"] in section
    assert IMG not in html and "looking into it &lt;img" in section
    assert "1 incident(s)" in html
    # the incident is drawn on the timeline, with its severity
    figure = re.compile(r'<img src="data:image/svg\+xml;base64,([^"]+)"')
    svg = base64.b64decode(figure.findall(html)[0]).decode()
    assert str(incident["severity"]["level"]) in svg


# -- the command ---------------------------------------------------------------------------


def test_cli(demo: tuple[Store, dict[str, str]], tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> None:
    store, runs = demo
    url = str(store.engine.url)
    out = tmp_path / "out" / "trust.html"
    code, stdout, _ = run_main(["--store", url, "report", "--out", str(out), "--judge",
                             "helpfulness", "--since", run_date(3)[:10], "--json"], capsys)
    assert code == 0
    info = json.loads(stdout)
    assert info["path"] == str(out) and info["runs"] == 3 and info["judges"] == ["helpfulness"]
    html = out.read_text(encoding="utf-8")
    history = html[html.index("<h3>Run history</h3>"):]
    assert runs["gpt_b"] in history and runs["gpt_a"] not in history
    assert info["bytes"] == len(html.encode())
    assert not list(out.parent.glob("*.partial"))
    code, stdout, _ = run_main(["--store", url, "report", "--out", str(out)], capsys)
    assert code == 0 and stdout.startswith(f"wrote {out}")
    code, _, _ = run_main(["--store", url, "report", "--out", str(out), "--skip-audit"], capsys)
    assert code == 0 and "not verified" in out.read_text(encoding="utf-8")
    code, _, err = run_main(["--store", url, "report", "--out", str(out), "--judge", "nobody"],
                         capsys)
    assert code == 2 and "no judge named 'nobody'" in err
    code, _, err = run_main(["--store", url, "report", "--since", "soon"], capsys)
    assert code == 2 and "--since" in err
