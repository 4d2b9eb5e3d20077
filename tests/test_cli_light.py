"""`import judgecal` and `judgecal --help` stay light: no heavy library is imported."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "numpy", "sklearn", "scipy", "openai", "matplotlib", "sqlalchemy", "pyarrow",
         "krippendorff", "jinja2", "httpx", "httpx2")


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from judgecal.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "serve-recorded" in out.stdout and "incidents" in out.stdout


def test_import_is_light() -> None:
    code = f"import sys, judgecal; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
