"""Tampering with a backend's stored log, head or artifacts is reported, never believed.

The rest of the event-log contract is packaged in ``chatflow.testing``."""

from __future__ import annotations

import pytest

from chatflow import CorruptStateError, WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.testing.contract import _event_log
from store_harness import Harness

# The loop the packaged event-log contract walks: one schema, one place.
SCHEMA = _event_log._SCHEMA


def test_an_edited_head_is_reported_not_believed(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_log")
    harness.edit_head(iid, status="completed")
    fresh = harness.open()
    try:
        with pytest.raises(CorruptStateError, match=iid):
            fresh.load_state(iid)
        problem = fresh.verify(iid)
        assert problem is not None and "head" in str(problem)
        with pytest.raises(CorruptStateError):
            WorkflowEngine(store=fresh).trigger_next_step(iid)
    finally:
        fresh.close()


def test_a_head_changed_behind_its_writer_is_checked_again(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_log")
    engine.trigger_next_step(iid, {"x": 1})  # the store now trusts the head it wrote
    harness.edit_head(iid, status="completed")
    with pytest.raises(CorruptStateError, match=iid):
        engine.trigger_next_step(iid, {"x": 2})


# Two phases taken in turn, as long as a test needs.
LOOP = {
    "name": "turns",
    "phases": [{"name": "a", "max_visits": 9}, {"name": "b", "transitions": [{"to": "a"}]}],
}


def test_writers_taking_turns_each_see_the_others_steps(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(LOOP, {}, "feat_log")
    other = harness.open()
    try:
        for turn in range(3):
            engine.trigger_next_step(iid, {"turn": turn, "by": "first"})
            WorkflowEngine(store=other).trigger_next_step(iid, {"turn": turn, "by": "second"})
        state = engine.get_workflow_instance_status(iid)
        assert state is not None and state.version == 7
        snapshots = [entry.trigger_data_snapshot for entry in state.history[:-1]]
        assert [s["by"] for s in snapshots if s] == ["first", "second"] * 3
        assert engine.verify(iid) is None
    finally:
        if other is not store:
            other.close()


def test_verify_names_the_first_broken_event(harness: Harness, store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_log")
    engine.trigger_next_step(iid, {"x": 1})
    assert engine.verify(iid) is None
    harness.corrupt_state(iid, '{"seq": 1}')
    problem = harness.open().verify(iid)
    assert problem is not None and problem.instance_id == iid and problem.seq == 1


def test_verify_checks_artifacts_against_the_log(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_log")
    engine.record_task_artifacts(iid, "prompt", "response", phase_name="plan")
    assert engine.verify(iid) is None
    harness.corrupt_artifacts(iid, "plan")
    problem = harness.open().verify(iid)
    assert problem is not None and "plan" in str(problem)


@pytest.mark.parametrize("what", ["prompt", "response"])
def test_verify_reports_an_edited_text(
    harness: Harness, store: IWorkflowStateStore, what: str
) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_log")
    engine.record_task_artifacts(iid, "Plan the login page.", "Use OAuth.", phase_name="plan")
    engine.record_task_artifacts(iid, "Plan it again.", "Use passkeys.", phase_name="plan")
    assert engine.verify(iid) is None
    old, new = {"prompt": ("login", "LOGIN"), "response": ("OAuth", "SAML!")}[what]
    harness.edit_text(iid, "plan", what, old, new)  # version 1: same length, one word
    fresh = harness.open()
    try:
        problem = fresh.verify(iid)
        assert problem is not None and problem.instance_id == iid
        assert "'plan' version 1" in problem.where and what in problem.what
        with pytest.raises(CorruptStateError, match=what):
            fresh.load_task_artifacts(iid, "plan", 1)
        edited = fresh.load_task_artifacts(iid, "plan", 1, checked=False)
        assert edited is not None and new in edited[what]
        assert fresh.load_task_artifacts(iid, "plan") is not None  # version 2 still reads
    finally:
        fresh.close()


def test_deeply_nested_stored_data_is_corrupt_not_a_recursion_error(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_log")
    harness.corrupt_state(iid, "[" * 100_000 + "]" * 100_000)
    fresh = harness.open()
    try:
        with pytest.raises(CorruptStateError, match=iid):
            WorkflowEngine(store=fresh).get_workflow_instance_status(iid)
        assert fresh.verify(iid) is not None
    finally:
        fresh.close()
