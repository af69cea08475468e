"""A writer held up past its timeout gets ``LockTimeoutError`` and changes nothing.

(Each backend's own failures are in ``tests/backends/test_sql_errors.py``.)
"""

from __future__ import annotations

import pytest

from chatflow import LockTimeoutError
from chatflow.storage import IWorkflowStateStore
from chatflow.testing import increment, make_state
from store_harness import Harness


def test_a_writer_stuck_past_the_timeout_raises_lock_timeout(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    if harness.kind == "memory":
        pytest.skip("the memory store has no other writer to wait for")
    state = make_state()
    store.create_state(state)
    impatient = harness.open(timeout=0.2)
    try:
        with harness.hold_write_lock(state["instance_id"]), pytest.raises(LockTimeoutError):
            impatient.update_state(state["instance_id"], increment)
        assert store.load_state(state["instance_id"]) == state
        assert impatient.update_state(state["instance_id"], increment)["version"] == 2
    finally:
        impatient.close()
