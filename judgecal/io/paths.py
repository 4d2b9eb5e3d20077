"""Output paths given by the user: a path that cannot be written is bad input naming it."""

from __future__ import annotations

import os
from pathlib import Path

from judgecal.errors import InputError, Problem

__all__ = ["cannot_write", "make_parent"]


def _why(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileExistsError | NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()),
                       None)
        if blocker is not None and blocker != path:
            return f"{blocker} is a file, not a folder"
    if exc.errno:  # pyarrow's strerror is its whole message, naming the temporary file
        return os.strerror(exc.errno)
    return str(exc.strerror or exc)


def cannot_write(path: str | Path, exc: OSError, what: str = "the file") -> InputError:
    """The error for ``path`` that could not be written (``exc`` says why), naming it."""
    p = Path(path)
    return InputError(Problem(file=str(p), message=f"cannot write {what}: {_why(p, exc)}"))


def make_parent(path: str | Path, what: str = "the file") -> Path:
    """Create the folder ``path`` is to be written in (a missing one is created); a folder
    that cannot be created (a file in the way, no permission) raises :class:`InputError`."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(p, exc, what) from None
    return p
