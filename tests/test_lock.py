"""The run lock of a SQLite store: exclusive, and no lock file left behind (judgecal.db.lock)."""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from judgecal.db.engine import make_engine
from judgecal.db.lock import lock_path, run_lock
from judgecal.errors import LockedError

KEY = "support-judge@llmbar"


def _engine(tmp_path: Path) -> Any:
    return make_engine(f"sqlite:///{tmp_path / 'judgecal.db'}")


def test_the_lock_file_is_gone_after_release(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    path = lock_path(engine, KEY)
    assert path.parent == tmp_path and path.name.endswith(".lock")
    with run_lock(engine, KEY):
        assert path.exists()
        with pytest.raises(LockedError), run_lock(engine, KEY):
            pass
    assert not path.exists()
    with pytest.raises(RuntimeError), run_lock(engine, KEY):
        raise RuntimeError("the run failed")
    assert list(tmp_path.glob("*.lock")) == []


def test_a_lock_file_left_by_a_killed_run_is_taken_and_removed(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    path = lock_path(engine, KEY)
    path.write_text("")  # the kernel released the lock of the dead process; the file stayed
    with run_lock(engine, KEY):
        pass
    assert not path.exists()


def test_a_file_deleted_between_open_and_lock_is_not_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of deleting lock files: B opens the file A holds; A deletes it and releases;
    C creates a new one and locks it; B then locks the deleted inode. B must see that the name
    no longer refers to what it locked, retry, and find C holding the lock."""
    engine = _engine(tmp_path)
    path = lock_path(engine, KEY)
    a = run_lock(engine, KEY)
    a.__enter__()
    real_open = os.open
    held: list[AbstractContextManager[None]] = []

    def open_then_race(p: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        fd = real_open(p, flags, mode, **kw)
        if Path(p) == path and not held:
            c = run_lock(engine, KEY)
            held.append(c)
            a.__exit__(None, None, None)  # A releases: deletes the name, unlocks
            c.__enter__()  # C creates a new file under the name and locks it
        return fd

    monkeypatch.setattr(os, "open", open_then_race)
    with pytest.raises(LockedError), run_lock(engine, KEY):
        pytest.fail("B holds the lock while C does")
    monkeypatch.undo()
    assert path.exists(), "C still holds it"
    held[0].__exit__(None, None, None)
    assert not path.exists()


def test_threads_never_hold_one_lock_together(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    inside = 0
    most = 0
    got = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, most, got
        for _ in range(200):
            try:
                with run_lock(engine, KEY):
                    with guard:
                        inside += 1
                        most = max(most, inside)
                        got += 1
                    with guard:
                        inside -= 1
            except LockedError:
                pass

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1 and got > 0
    assert list(tmp_path.glob("*.lock")) == []
