"""A writer that finds another one mid-write waits its turn (up to its timeout): brief
contention is queueing, never an error. (Past the timeout: ``test_errors.py``.)"""

from __future__ import annotations

import threading

import pytest

from chatflow.storage import IWorkflowStateStore
from chatflow.testing import increment, make_state
from store_harness import Harness

HELD_FOR_S = 0.3  # how long the other writer keeps the instance: far below the 30 s default


def test_a_writer_waits_for_another_that_finishes_within_the_timeout(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    if harness.kind == "memory":
        pytest.skip("the memory store has no other writer to wait for")
    state = make_state()
    iid = state["instance_id"]
    store.create_state(state)
    held, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        with harness.hold_write_lock(iid):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=other_writer)
    thread.start()
    timer = threading.Timer(HELD_FOR_S, release.set)
    try:
        assert held.wait(30)
        timer.start()
        assert store.update_state(iid, increment)["version"] == 2  # after the other one
    finally:
        release.set()
        timer.cancel()
        thread.join()
    assert store.verify(iid) is None
