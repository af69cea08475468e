"""Copying whole histories: ``read_log`` and ``install_log`` move an instance between
stores event for event (same hashes, every text version), verified, and resumable."""

from __future__ import annotations

from chatflow import CorruptStateError, HistoryConflictError, WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.storage.base import InstanceLog, TaskTexts
from chatflow.storage.memory import MemoryStore
from chatflow.testing._check import raises, requires

CAPABILITY = "copy"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_a_copied_log_is_stored_event_for_event_and_completed_on_a_repeat",
    "test_a_copied_log_that_does_not_verify_is_refused",
    "test_a_stored_history_is_never_replaced_by_a_copy_that_does_not_continue_it",
]

_FLOW = {"name": "copied", "phases": [{"name": "plan"}, {"name": "build"}]}


def _history(store: IWorkflowStateStore) -> str:
    """An instance with two versions of one task's texts and a few steps; its id."""
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(_FLOW, {"n": 1}, "feat_copied").instance_id
    engine.record_task_artifacts(iid, "first prompt", "first response")
    engine.record_task_artifacts(iid, "second prompt", "second response é")
    engine.trigger_next_step(iid, {"done": True})
    return iid


@requires(CAPABILITY)
def test_a_copied_log_is_stored_event_for_event_and_completed_on_a_repeat(
    store: IWorkflowStateStore,
) -> None:
    reference = MemoryStore()
    iid = _history(reference)
    log = reference.read_log(iid)
    partial = InstanceLog(iid, log.events[:1], {})
    assert store.install_log(partial) == "copied"  # as a copy killed after its first event
    assert store.list_instances_by_feature("feat_copied") == [iid]
    assert store.install_log(log) == "updated"
    assert store.install_log(log) == "unchanged"
    assert store.read_log(iid) == log
    assert store.verify(iid) is None
    assert store.instance_digest(iid) == reference.instance_digest(iid)
    assert store.load_state(iid) == reference.load_state(iid)
    first = store.load_task_artifacts(iid, "plan", version=1)
    assert first is not None and first["response"] == "first response"
    WorkflowEngine(store=store).trigger_next_step(iid)  # the copy is writable
    assert store.verify(iid) is None


@requires(CAPABILITY)
def test_a_copied_log_that_does_not_verify_is_refused(store: IWorkflowStateStore) -> None:
    reference = MemoryStore()
    iid = _history(reference)
    log = reference.read_log(iid)
    texts = dict(log.texts)
    texts[("plan", 2)] = TaskTexts(texts[("plan", 2)].record, "edited", "edited")
    events = [dict(event) for event in log.events]
    events[-1]["seq"] += 1
    for bad in (InstanceLog(iid, log.events, texts), InstanceLog(iid, events, log.texts)):
        with raises(CorruptStateError, match=iid):
            store.install_log(bad)
        assert store.load_state(iid) is None
        assert store.list_instance_ids() == []


@requires(CAPABILITY)
def test_a_stored_history_is_never_replaced_by_a_copy_that_does_not_continue_it(
    store: IWorkflowStateStore,
) -> None:
    reference = MemoryStore()
    iid = _history(reference)
    store.install_log(reference.read_log(iid))
    WorkflowEngine(store=store).trigger_next_step(iid, {"here": 1})
    WorkflowEngine(store=reference).trigger_next_step(iid, {"there": 2})
    kept = store.read_log(iid)
    with raises(HistoryConflictError, match=iid):
        store.install_log(reference.read_log(iid))
    assert store.read_log(iid) == kept
