"""Where the shipped calibration sets and example configs are, checkout or installed wheel.

judgecal ships its calibration sets (``calibration_sets/``, with each set's README, license
notes and ``recorded/`` judge verdicts) and its example configs (``configs/``). In a source
checkout they are the top-level folders of the repository; a wheel carries copies of both
under ``judgecal/_data/`` (copied there at build time by ``setup.py``), found with
:mod:`importlib.resources`.

The lookup order of :func:`data_root`:

1. the checkout judgecal is imported from (an editable install: ``judgecal/`` sits beside
   ``pyproject.toml``, ``calibration_sets/`` and ``configs/``), so a checkout's copies win;
2. the package data of an installed wheel.

Both folders keep their relative layout (``configs/demo.yaml`` names
``../calibration_sets/pandalm``), so a config read from either place finds its set.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from judgecal.errors import InputError

__all__ = [
    "CONFIGS",
    "DATA_PACKAGE_DIR",
    "SETS",
    "checkout_root",
    "data_root",
    "find_data_root",
    "packaged_root",
    "shipped_configs_dir",
    "shipped_sets_dir",
]

SETS = "calibration_sets"
CONFIGS = "configs"
DATA_PACKAGE_DIR = "_data"
"""The folder inside the ``judgecal`` package that holds the two folders in a wheel."""


def _holds_data(root: Path) -> bool:
    return (root / SETS).is_dir() and (root / CONFIGS).is_dir()


def checkout_root() -> Path | None:
    """The source checkout this judgecal is imported from, or None (an installed wheel)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and _holds_data(root):
        return root
    return None


def packaged_root() -> Path | None:
    """The package data folder of an installed wheel (``judgecal/_data``), or None."""
    res = resources.files("judgecal").joinpath(DATA_PACKAGE_DIR)
    # Only a package on the file system has real paths (not one imported from a zip file).
    if isinstance(res, Path) and _holds_data(res):
        return res
    return None


def find_data_root() -> Path | None:
    """The folder holding ``calibration_sets/`` and ``configs/``: the checkout's, else the
    installed package's; None when there is neither."""
    return checkout_root() or packaged_root()


def data_root() -> Path:
    """:func:`find_data_root`, or :class:`InputError` when judgecal's data is missing."""
    root = find_data_root()
    if root is None:
        raise InputError(
            "judgecal's shipped calibration sets and configs were not found (neither a source "
            "checkout nor an installed package with its data); reinstall judgecal-drift or "
            "pass the folders explicitly (--sets-dir / --configs-dir, JUDGECAL_SETS_DIR)"
        )
    return root


def shipped_sets_dir() -> Path:
    """The shipped ``calibration_sets/`` folder (see :func:`data_root`)."""
    return data_root() / SETS


def shipped_configs_dir() -> Path:
    """The shipped ``configs/`` folder (see :func:`data_root`)."""
    return data_root() / CONFIGS
