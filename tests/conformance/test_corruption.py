"""Damaged data is reported as ``CorruptStateError``: never as missing, never silently.

Each kind of damage to a log or head, and what it leaves of other instances, is the
packaged contract's (``chatflow.testing.contract``, capability ``damage``); these are
the stored shapes no write could make."""

from __future__ import annotations

import pytest

from chatflow import CorruptStateError, WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.testing import increment, make_state
from store_harness import TRUNCATED, WRONG_SHAPE, Harness


@pytest.mark.parametrize("damage", [TRUNCATED, WRONG_SHAPE, '{"instance_id": "wfi_other"}'])
def test_corrupt_state_is_reported_not_hidden(
    harness: Harness, store: IWorkflowStateStore, damage: str
) -> None:
    if damage == TRUNCATED and not harness.accepts_invalid_json:
        pytest.skip(f"{harness.kind} validates JSON on write: it cannot hold truncated JSON")
    state = make_state()
    store.create_state(state)
    iid = state["instance_id"]
    harness.corrupt_state(iid, damage)
    fresh = harness.open()
    try:
        with pytest.raises(CorruptStateError) as caught:
            fresh.load_state(iid)
        assert iid in str(caught.value)
        with pytest.raises(CorruptStateError):
            fresh.update_state(iid, increment)
        with pytest.raises(CorruptStateError):
            WorkflowEngine(store=fresh).get_workflow_instance_status(iid)
    finally:
        fresh.close()


def test_corrupt_artifacts_are_reported(harness: Harness, store: IWorkflowStateStore) -> None:
    state = make_state()
    store.create_state(state)
    iid = state["instance_id"]
    record = {"phase_name": "design", "status": "completed", "started_at": 1.0}
    store.save_task_artifacts("feat_a", iid, "design", record, "prompt", "response")
    harness.corrupt_artifacts(iid, "design")
    with pytest.raises(CorruptStateError):
        store.load_task_artifacts(iid, "design")
