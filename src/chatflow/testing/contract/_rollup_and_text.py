"""Roll-ups that mix statuses, and text every store must refuse the same way."""

from __future__ import annotations

from typing import Any

from chatflow import ValidationError, WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.testing._check import parametrize, raises

CAPABILITY = "features"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_all_failed_feature_rolls_up_failed",
    "test_finished_feature_with_a_failure_rolls_up_completed",
    "test_lone_surrogate_in_context_is_refused_before_creating",
    "test_lone_surrogates_are_refused_and_the_instance_keeps_working",
    "test_paused_and_running_instances_are_counted_apart",
]


SCHEMA: dict[str, Any] = {
    "name": "two_step",
    "phases": [{"name": "plan"}, {"name": "code"}, {"name": "ship", "requires_approval": True}],
}
LONE_SURROGATE = "bad \ud800 text"


def _start(engine: WorkflowEngine, feature: str = "feat_mix") -> str:
    return engine.start_workflow_instance(SCHEMA, {}, feature)


def test_paused_and_running_instances_are_counted_apart(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    paused = _start(engine)
    engine.trigger_next_step(paused, {})
    engine.trigger_next_step(paused, {})  # entering `ship` needs approval: paused
    running = _start(engine)
    engine.trigger_next_step(running, {})
    rollup = engine.get_feature_status("feat_mix")
    assert (rollup["paused_count"], rollup["running_count"]) == (1, 1)
    assert rollup["total_instances"] == 2
    assert rollup["status"] == "in_progress"
    assert rollup["active_instance_id"] == running


def test_finished_feature_with_a_failure_rolls_up_completed(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    done = _start(engine)
    engine.trigger_next_step(done, {})
    engine.trigger_next_step(done, {})
    engine.resume(done, approved_by="lead")
    assert engine.trigger_next_step(done, {}).status == "completed"
    failed = _start(engine)
    engine.fail_phase(failed, "tests broke")
    rollup = engine.get_feature_status("feat_mix")
    assert (rollup["completed_count"], rollup["failed_count"]) == (1, 1)
    assert rollup["status"] == "completed"


def test_all_failed_feature_rolls_up_failed(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    engine.fail_phase(_start(engine), "broke")
    assert engine.get_feature_status("feat_mix")["status"] == "failed"


TEXT_CALLS: dict[str, Any] = {
    "trigger_data value": lambda e, i: e.trigger_next_step(i, {"note": LONE_SURROGATE}),
    "trigger_data key": lambda e, i: e.trigger_next_step(i, {LONE_SURROGATE: 1}),
    "meta": lambda e, i: e.trigger_next_step(i, {}, meta={"m": [LONE_SURROGATE]}),
    "prompt": lambda e, i: e.record_task_artifacts(i, LONE_SURROGATE, "ok"),
    "response": lambda e, i: e.record_task_artifacts(i, "ok", LONE_SURROGATE),
    "pause reason": lambda e, i: e.pause(i, LONE_SURROGATE),
}


@parametrize("call", list(TEXT_CALLS))
def test_lone_surrogates_are_refused_and_the_instance_keeps_working(
    store: IWorkflowStateStore, call: str
) -> None:
    engine = WorkflowEngine(store=store)
    iid = _start(engine)
    before = engine.get_workflow_instance_status(iid)
    with raises(ValidationError, match="lone surrogate"):
        TEXT_CALLS[call](engine, iid)
    assert engine.get_workflow_instance_status(iid) == before
    # Nothing was poisoned: the next well-formed step goes through.
    assert engine.trigger_next_step(iid, {"note": "fine \u00e9\U0001f600"}).version == 2


def test_lone_surrogate_in_context_is_refused_before_creating(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    with raises(ValidationError, match=r"initial_context\['x'\]"):
        engine.start_workflow_instance(SCHEMA, {"x": LONE_SURROGATE}, "feat_mix")
    assert engine.list_features() == []
