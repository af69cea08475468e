"""FileLock: exclusive across threads and processes, re-entrant, with timeouts."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from pathlib import Path

import pytest

from chatflow import LockTimeoutError
from chatflow.storage.file_lock import FileLock


def hold_lock(path: str, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    with FileLock(path):
        ready.set()
        time.sleep(seconds)


def test_reentrant_in_one_thread(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock")
    with lock, FileLock(tmp_path / "x.lock"):
        assert lock.is_locked
    assert not lock.is_locked
    with pytest.raises(RuntimeError, match="unlocked"):
        lock.release()


def test_excludes_other_threads(tmp_path: Path) -> None:
    counter = {"value": 0}

    def bump() -> None:
        for _ in range(200):
            with FileLock(tmp_path / "c.lock"):
                current = counter["value"]
                time.sleep(0)
                counter["value"] = current + 1

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter["value"] == 1200


def test_timeout_against_another_thread(tmp_path: Path) -> None:
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with FileLock(tmp_path / "t.lock"):
            held.set()
            done.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(LockTimeoutError, match=r"t\.lock"):
            FileLock(tmp_path / "t.lock", timeout=0.05).acquire()
    finally:
        done.set()
        thread.join()
    FileLock(tmp_path / "t.lock", timeout=0.05).acquire().release()


def test_timeout_against_another_process_then_released_on_exit(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=hold_lock, args=(str(tmp_path / "p.lock"), 30, ready))
    child.start()
    try:
        assert ready.wait(20)
        with pytest.raises(LockTimeoutError) as caught:
            FileLock(tmp_path / "p.lock").acquire(timeout=0.1)
        error = pickle.loads(pickle.dumps(caught.value))
        assert isinstance(error, LockTimeoutError) and error.timeout == 0.1  # type: ignore[attr-defined]
    finally:
        child.kill()
        child.join()
    with FileLock(tmp_path / "p.lock", timeout=5):
        pass
