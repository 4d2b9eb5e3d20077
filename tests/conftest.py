"""Shared fixtures: isolated environment, SQLite and real PostgreSQL stores, the recorded judge."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from judgecal.calibration import CalibrationSet
    from judgecal.recorded.server import RunningServer

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "calibration_sets"
# Public source data the tests need, copied byte for byte with its attribution
# (tests/data/README.md).
TEST_DATA = ROOT / "tests" / "data"

sys._called_from_test = True  # type: ignore[attr-defined]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runapi", action="store_true", help="run tests that call a live judge API")
    parser.addoption("--runslow", action="store_true", help="run slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "api" in item.keywords and not config.getoption("--runapi"):
            item.add_marker(pytest.mark.skip(reason="live API test: pass --runapi"))
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(pytest.mark.skip(reason="slow: pass --runslow"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's store, keys or proxies."""
    for var in (
        "JUDGECAL_STORE",
        "OPENAI_API_KEY",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("JUDGECAL_SETS_DIR", str(SETS))
    monkeypatch.chdir(tmp_path)


def _pg_admin_url() -> str | None:
    url = os.environ.get("JUDGECAL_TEST_PG_URL")
    if not url and os.environ.get("JUDGECAL_REQUIRE_PG"):
        pytest.fail("JUDGECAL_REQUIRE_PG is set but JUDGECAL_TEST_PG_URL is not")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server, dropped afterwards."""
    admin = _pg_admin_url()
    if not admin:
        pytest.skip("no PostgreSQL: set JUDGECAL_TEST_PG_URL (make pg prints one)")
    from benchmarks.harness.sandbox import PgDatabases

    with PgDatabases(admin) as databases:
        yield databases.create()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def recorded() -> Iterator[RunningServer]:
    """The recorded judge serving PandaLM's gpt-3.5-turbo verdicts (a module may override)."""
    from judgecal.recorded.server import start_server

    with start_server(recordings={"*": "pandalm:gpt-3.5-turbo"}, sets_dir=SETS) as server:
        yield server


@pytest.fixture(scope="session")
def pandalm_set() -> CalibrationSet:
    from judgecal.calibration import load_set

    return load_set(SETS / "pandalm")
