"""A re-entrant FileLock stays held against other processes until its outermost release."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chatflow.storage.file_lock import FileLock

TRY_LOCK = """
import sys
from chatflow import LockTimeoutError
from chatflow.storage.file_lock import FileLock
try:
    FileLock(sys.argv[1]).acquire(timeout=0.2).release()
except LockTimeoutError:
    print("held elsewhere")
else:
    print("acquired")
"""


def other_process_tries(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_an_inner_release_keeps_the_lock_from_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    outer = FileLock(path).acquire()
    inner = FileLock(path).acquire()  # the same thread again: re-entrant
    inner.release()
    try:
        assert outer.is_locked
        assert other_process_tries(path) == "held elsewhere"
    finally:
        outer.release()
    assert other_process_tries(path) == "acquired"
