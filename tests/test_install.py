"""Installs anywhere: the wheel carries the shipped sets and configs, found without a checkout.

Quick: the wheel is built (pip, from a copy of the build inputs), its file list is checked
against the checkout's folders, and the unpacked wheel is imported from an empty folder with
no ``$JUDGECAL_SETS_DIR``. Slow (``--runslow``): a fresh venv, ``pip install`` of the wheel
with its dependencies from the registry, and ``judgecal demo`` run outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from judgecal import shipped
from judgecal.demo import check_inputs, run_demo
from judgecal.errors import InputError
from judgecal.recorded.recordings import list_recordings, resolve_sets_dir
from tests.conftest import ROOT

BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "judgecal",
                "calibration_sets", "configs")
SKIP = shutil.ignore_patterns("__pycache__", "*.py[cod]", "_data")


def _shipped_files() -> list[str]:
    """The checkout's files the wheel must carry, as wheel paths."""
    out = []
    for name in (shipped.SETS, shipped.CONFIGS):
        for path in sorted((ROOT / name).rglob("*")):
            rel = path.relative_to(ROOT)
            if path.is_file() and "__pycache__" not in rel.parts and rel.parts[:2] != (
                    shipped.SETS, "tools"):
                out.append(f"judgecal/_data/{rel.as_posix()}")
    return out


def _env_without_sets_dir() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JUDGECAL_SETS_DIR", None)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel built by pip from a copy of the build inputs, and pip's output."""
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=SKIP)
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        # No build isolation: the dev install carries the build backend, so no network here.
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "-w", str(dist)],
        capture_output=True, text=True, timeout=600, env=_env_without_sets_dir(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = dist.glob("judgecal_drift-*.whl")
    return built, proc.stdout + proc.stderr


def test_the_wheel_carries_the_sets_configs_and_recordings(wheel: tuple[Path, str]) -> None:
    with zipfile.ZipFile(wheel[0]) as z:
        names = set(z.namelist())
        metadata = next(z.read(n) for n in names if n.endswith(".dist-info/METADATA"))
    expected = _shipped_files()
    missing = [n for n in expected if n not in names]
    assert not missing, missing[:10]
    for needed in ("judgecal/_data/calibration_sets/pandalm/recorded/gpt-3.5-turbo.jsonl",
                   "judgecal/_data/calibration_sets/llmbar/recorded/manifest.json",
                   "judgecal/_data/calibration_sets/llmbar/README.md",
                   "judgecal/_data/calibration_sets/README.md",
                   "judgecal/_data/configs/demo.yaml",
                   "judgecal/_data/configs/judges/support-judge.yaml",
                   "judgecal/shipped.py"):
        assert needed in names, needed
    data = {n for n in names if n.startswith("judgecal/_data/")}
    assert data == set(expected), sorted(data - set(expected))[:10]  # no build scripts, no caches
    assert b"License-Expression: Apache-2.0" in metadata


def test_building_the_wheel_warns_of_nothing_deprecated(wheel: tuple[Path, str]) -> None:
    output = wheel[1].lower()
    for word in ("deprecat", "buildbackendwarning", "wheel_obj"):
        assert word not in output, wheel[1][-3000:]


def test_the_unpacked_wheel_finds_its_data_outside_a_checkout(
        wheel: tuple[Path, str], tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel[0]) as z:
        z.extractall(site)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    script = textwrap.dedent("""
        import json, judgecal
        from pathlib import Path
        from judgecal import shipped
        from judgecal.demo import check_inputs
        from judgecal.recorded.recordings import list_recordings, resolve_sets_dir
        inputs = check_inputs("demo-out")
        print(json.dumps({
            "package": judgecal.__file__,
            "checkout": str(shipped.checkout_root()),
            "root": str(shipped.find_data_root()),
            "sets": str(resolve_sets_dir()),
            "configs": str(inputs.configs_dir),
            "demo_sets": str(inputs.sets_dir),
            "recordings": len(list_recordings()),
            "first_set_items": len(inputs.first_set.items),
            "out_written": Path("demo-out").exists(),
        }))
    """)
    env = _env_without_sets_dir()
    env["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, "-c", script], cwd=empty, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    data = site / "judgecal" / "_data"
    assert Path(got["package"]).is_relative_to(site), "the unpacked wheel was imported"
    assert got["checkout"] == "None"
    assert got["root"] == str(data)
    assert got["sets"] == str(data / "calibration_sets")
    assert got["demo_sets"] == str(data / "calibration_sets")
    assert got["configs"] == str(data / "configs")
    assert got["recordings"] == len(list_recordings(ROOT / "calibration_sets"))
    assert got["first_set_items"] == 999
    assert got["out_written"] is False, "checking the demo's inputs writes nothing"


def test_a_checkouts_copies_win() -> None:
    assert shipped.checkout_root() == ROOT
    assert shipped.find_data_root() == ROOT
    assert shipped.shipped_sets_dir() == ROOT / "calibration_sets"
    assert shipped.shipped_configs_dir() == ROOT / "configs"


def test_package_data_is_found_through_importlib_resources(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    package = tmp_path / "site" / "judgecal"
    for name in ("calibration_sets/pandalm", "configs"):
        (package / "_data" / name).mkdir(parents=True)
    monkeypatch.setattr(shipped, "checkout_root", lambda: None)
    monkeypatch.setattr(shipped.resources, "files", lambda _pkg: package)
    monkeypatch.delenv("JUDGECAL_SETS_DIR")
    assert shipped.find_data_root() == package / "_data"
    assert resolve_sets_dir() == package / "_data" / "calibration_sets"
    # A ./calibration_sets in the working folder and the environment still win.
    (tmp_path / "calibration_sets").mkdir()
    assert resolve_sets_dir() == Path("calibration_sets")
    monkeypatch.setenv("JUDGECAL_SETS_DIR", "/somewhere")
    assert resolve_sets_dir() == Path("/somewhere")


def test_no_data_anywhere_is_an_input_error(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(shipped, "checkout_root", lambda: None)
    monkeypatch.setattr(shipped, "packaged_root", lambda: None)
    monkeypatch.delenv("JUDGECAL_SETS_DIR")
    assert shipped.find_data_root() is None
    with pytest.raises(InputError, match="not found"):
        shipped.data_root()
    assert resolve_sets_dir() == Path("calibration_sets")
    with pytest.raises(InputError, match="not found"):
        check_inputs(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_demo_checks_its_inputs_before_it_writes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "judgecal.db").write_text("an earlier demo's store")
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    (tmp_path / "calibration_sets").symlink_to(ROOT / "calibration_sets")  # ../ in the configs
    (configs / "demo-month.yaml").unlink()
    with pytest.raises(InputError, match=r"demo-month\.yaml"):
        run_demo(out, configs_dir=configs)
    with pytest.raises(InputError, match="no such configs folder"):
        run_demo(out, configs_dir=tmp_path / "nowhere")
    (configs / "demo-month.yaml").write_text("calibration_set: ../nowhere\njudge: x.yaml\n")
    with pytest.raises(InputError):
        run_demo(out, configs_dir=configs)
    empty_sets = tmp_path / "sets"
    empty_sets.mkdir()
    with pytest.raises(InputError, match="no recording"):
        run_demo(out, sets_dir=empty_sets)
    assert sorted(p.name for p in out.iterdir()) == ["judgecal.db"]
    assert (out / "judgecal.db").read_text() == "an earlier demo's store"
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(InputError, match="must be a folder"):
        run_demo(a_file)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pip_install_of_the_wheel_then_the_demo_outside_a_checkout(
        wheel: tuple[Path, str], tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = _env_without_sets_dir()
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(bin_dir / "pip"), "install", str(wheel[0])], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "deprecat" not in (proc.stdout + proc.stderr).lower(), proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "demo-out"
    proc = subprocess.run([str(bin_dir / "judgecal"), "demo", "--out", str(out)],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "INCIDENT" in proc.stdout and "verified" in proc.stdout
    assert (out / "trust-report.html").stat().st_size > 10_000
    assert list(elsewhere.iterdir()) == [], "nothing written outside --out"
