"""Build step: the wheel carries the shipped calibration sets and example configs.

``calibration_sets/`` (each set with its README, license notes and ``recorded/`` verdicts)
and ``configs/`` stay top-level folders of the repository; the build copies both into the
wheel as ``judgecal/_data/calibration_sets`` and ``judgecal/_data/configs`` (same relative
layout, so ``configs/demo.yaml`` still finds ``../calibration_sets/pandalm``).
``judgecal/shipped.py`` finds them with ``importlib.resources`` when there is no checkout.
Everything else is configured in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("calibration_sets", "configs")
# calibration_sets/tools/ holds the scripts that built the sets: source, not data.
SKIP = shutil.ignore_patterns("__pycache__", "*.py[cod]", "tools")


class BuildPyWithData(build_py):
    """``build_py``, then the shipped folders copied under ``judgecal/_data/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's own folders
        target = Path(self.build_lib) / "judgecal" / "_data"
        shutil.rmtree(target, ignore_errors=True)  # no stale files from an earlier build
        for name in SHIPPED:
            shutil.copytree(ROOT / name, target / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithData})
