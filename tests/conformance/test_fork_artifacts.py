"""A fork carries verified copies of every artifact of the history it inherits."""

from __future__ import annotations

from chatflow import WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from store_harness import Harness

FLOW = {"name": "forkflow", "phases": [{"name": "plan"}, {"name": "build"}, {"name": "ship"}]}


def test_a_fork_sees_and_verifies_every_inherited_artifact(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    engine = WorkflowEngine(store=store)
    parent = engine.start_workflow_instance(FLOW, feature_id="feat_fork").instance_id
    engine.record_task_artifacts(parent, "prompt", "plan, first try")
    engine.record_task_artifacts(parent, "prompt", "plan, second try")
    engine.trigger_next_step(parent)
    engine.record_task_artifacts(parent, "prompt", "the build")
    engine.trigger_next_step(parent)
    child = engine.fork(parent, at=2)

    for task, version, response in [
        ("plan", None, "plan, second try"),
        ("plan", 1, "plan, first try"),
        ("build", None, "the build"),
    ]:
        found = engine.get_task_artifacts(child, task, version=version)
        assert found is not None and found.response == response
    assert store.list_task_phases(child) == ["build", "plan"]
    assert engine.verify(child) is None

    # The copies are the fork's own: damage to them is what verify reports.
    harness.corrupt_artifacts(child, "plan")
    fresh = harness.open()
    try:
        problem = WorkflowEngine(store=fresh).verify(child)
        assert problem is not None and "'plan' version 1" in str(problem)
        assert WorkflowEngine(store=fresh).verify(parent) is None
    finally:
        fresh.close()


def test_verify_reports_a_history_naming_a_missing_task_record(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_fork").instance_id

    def name_a_lost_record(state: dict[str, object]) -> dict[str, object]:
        history = state["history"]
        assert isinstance(history, list)
        history[0]["task"] = "plan"  # as forks made before their artifacts were copied
        return state

    store.update_state(iid, name_a_lost_record)
    problem = engine.verify(iid)
    assert problem is not None and "task record 'plan'" in str(problem)
