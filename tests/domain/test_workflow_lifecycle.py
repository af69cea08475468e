"""Branches, loops, approvals, failure and recovery, events, fork, dry run, status info."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from chatflow import (
    EventKind,
    InstanceStatus,
    InvalidTransitionError,
    ValidationError,
    WorkflowEngine,
    WorkflowInstanceState,
)

REVIEW_LOOP: dict[str, Any] = {
    "name": "review_loop",
    "version": 1,
    "merge_trigger_data": "phase",
    "phases": [
        {"name": "code", "max_visits": 2, "fallback": "summary", "max_retries": 1},
        {
            "name": "review",
            "transitions": [
                {"to": "summary", "when": {"path": "trigger.verdict", "op": "==", "value": "ok"}},
                {"to": "code"},
            ],
        },
        {"name": "summary"},
    ],
}
GATED: dict[str, Any] = {
    "name": "gated",
    "phases": [{"name": "plan"}, {"name": "release", "requires_approval": True}],
}


def start(engine: WorkflowEngine, schema: dict[str, Any], **kwargs: Any) -> str:
    return engine.start_workflow_instance(
        schema, {"request": "r"}, "feat_x", meta={"user_id": "alice"}, **kwargs
    )


def kinds(engine: WorkflowEngine, iid: str) -> list[str]:
    return [event.kind.value for event in engine.get_workflow_history(iid)]


def phases(state: WorkflowInstanceState) -> list[tuple[str, str]]:
    return [(entry.phase, entry.status) for entry in state.history]


def test_branch_and_loop_with_max_visits_fallback(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    engine.trigger_next_step(iid, {"diff": "+1"})
    state = engine.trigger_next_step(iid, {"verdict": "changes"})
    assert state.current_phase == "code"
    assert state.variables["review"] == {"verdict": "changes"}  # merged under the phase
    assert state.variables["code"] == {"diff": "+1"}
    engine.trigger_next_step(iid, {"diff": "+2"})
    state = engine.trigger_next_step(iid, {"verdict": "changes"})  # code visited twice
    assert state.current_phase == "summary"
    assert state.variables["code"] == {"diff": "+2"}  # the latest visit replaces
    assert state.visits == {"code": 2, "review": 2, "summary": 1}
    state = engine.trigger_next_step(iid)
    assert state.status == "completed"
    completed = [e for e in engine.get_workflow_history(iid) if e.kind is EventKind.PHASE_COMPLETED]
    assert [e.data["next"] for e in completed] == ["review", "code", "review", "summary", "$end"]


def test_branch_on_condition(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    engine.trigger_next_step(iid)
    assert engine.trigger_next_step(iid, {"verdict": "ok"}).current_phase == "summary"


def test_fallback_failure_when_no_fallback(engine: WorkflowEngine) -> None:
    schema = {
        "name": "strict",
        "phases": [
            {"name": "code", "max_visits": 1},
            {"name": "review", "transitions": [{"to": "code"}]},
        ],
    }
    iid = start(engine, schema)
    engine.trigger_next_step(iid)
    state = engine.trigger_next_step(iid)
    assert (state.status, state.open_entry) == ("failed", None)
    assert kinds(engine, iid)[-1] == "failed"
    assert "max_visits" in engine.get_workflow_history(iid)[-1].data["error"]


def test_merge_rules(engine: WorkflowEngine) -> None:
    seed = {"name": "seed", "phases": [{"name": "a"}, {"name": "b"}]}
    flat = {**seed, "merge_trigger_data": "flat"}
    iid = start(engine, seed)
    assert engine.trigger_next_step(iid, {"x": 1}).variables == {"request": "r"}
    iid = start(engine, flat)
    assert engine.trigger_next_step(iid, {"x": 1}).variables == {"request": "r", "x": 1}


def test_dry_run_writes_nothing(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    before = engine.get_workflow_instance_status(iid)
    preview = engine.trigger_next_step(iid, {"diff": "+1"}, dry_run=True)
    assert preview.current_phase == "review"
    assert preview.variables["code"] == {"diff": "+1"}
    assert engine.get_workflow_instance_status(iid) == before
    assert engine.trigger_next_step(iid, {"diff": "+1"}).current_phase == "review"


def test_requires_approval_pauses_then_resume(engine: WorkflowEngine) -> None:
    iid = start(engine, GATED)
    state = engine.trigger_next_step(iid)
    assert (state.status, state.current_phase) == ("paused", "release")
    assert state.open_entry is not None and state.open_entry.status == "awaiting_approval"
    assert state.pause is not None and state.pause["kind"] == "approval"
    with pytest.raises(InvalidTransitionError, match="paused"):
        engine.trigger_next_step(iid)
    with pytest.raises(ValidationError, match="approved_by"):
        engine.resume(iid)
    state = engine.resume(iid, approved_by="bob", note="ship it")
    assert (state.status, state.pause) == ("running", None)
    resumed = engine.get_workflow_history(iid)[-1]
    assert (resumed.kind, resumed.actor, resumed.data["note"]) == ("resumed", "bob", "ship it")
    assert engine.trigger_next_step(iid).status == "completed"


def test_reject_sends_work_back(engine: WorkflowEngine) -> None:
    iid = start(engine, GATED)
    engine.trigger_next_step(iid)
    state = engine.reject(iid, rejected_by="bob", note="needs tests")
    assert (state.status, state.current_phase) == ("running", "plan")
    assert phases(state) == [("plan", "completed"), ("release", "rejected"), ("plan", "running")]
    rejected = [e for e in engine.get_workflow_history(iid) if e.kind is EventKind.REJECTED]
    assert rejected[0].actor == "bob" and rejected[0].data["to"] == "plan"


def test_first_phase_needing_approval_starts_paused(engine: WorkflowEngine) -> None:
    iid = start(engine, {"name": "g", "phases": [{"name": "go", "requires_approval": True}]})
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.status == "paused"
    assert engine.resume(iid, approved_by="bob").status == "created"
    iid = start(engine, {"name": "g", "phases": [{"name": "go", "requires_approval": True}]})
    assert engine.reject(iid, rejected_by="bob").status == "cancelled"


def test_risk_above_automation_level_pauses(engine: WorkflowEngine) -> None:
    schema = {"name": "auto", "automation_level": 50, "phases": [{"name": "a"}, {"name": "b"}]}
    iid = start(engine, schema)
    assert engine.trigger_next_step(iid, {"risk": 50}, dry_run=True).status == "running"
    state = engine.trigger_next_step(iid, {"risk": 51})
    assert state.status == "paused"
    assert state.pause is not None and state.pause["risk"] == 51
    iid = start(engine, schema, automation_level=90)  # the call overrides the schema
    assert engine.trigger_next_step(iid, {"risk": 80}).status == "running"
    with pytest.raises(ValidationError, match="risk"):
        engine.trigger_next_step(iid, {"risk": "high"})


def test_manual_pause_and_resume_keeps_the_phase_open(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    state = engine.pause(iid, "lunch", actor="carol")
    assert state.status == "paused" and state.open_entry is not None
    with pytest.raises(InvalidTransitionError, match="not waiting for approval"):
        engine.reject(iid)
    state = engine.resume(iid)
    assert (state.status, len(state.history)) == ("created", 1)
    assert kinds(engine, iid)[-2:] == ["paused", "resumed"]
    assert engine.get_workflow_history(iid)[-2].actor == "carol"


def test_fail_retry_and_retry_limit(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    state = engine.fail_phase(iid, "model timed out")
    assert (state.status, state.open_entry) == ("failed", None)
    with pytest.raises(InvalidTransitionError, match="retry_phase"):
        engine.trigger_next_step(iid)
    state = engine.retry_phase(iid, note="again")
    assert (state.status, state.current_phase, state.retries) == ("running", "code", {"code": 1})
    assert phases(state) == [("code", "failed"), ("code", "running")]
    with pytest.raises(InvalidTransitionError, match="max_retries is 1"):
        engine.retry_phase(iid)
    failed = [e for e in engine.get_workflow_history(iid) if e.kind is EventKind.FAILED]
    assert failed[0].data == {"error": "model timed out"}


def test_cancel_and_jump(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    state = engine.jump_to(iid, "summary", "skip review", actor="lead")
    assert (state.current_phase, phases(state)[0]) == ("summary", ("code", "jumped"))
    jumped = engine.get_workflow_history(iid)[-2]
    assert (jumped.kind, jumped.actor, jumped.data["to"]) == ("jumped", "lead", "summary")
    with pytest.raises(ValidationError, match="no phase 'nowhere'"):
        engine.jump_to(iid, "nowhere")
    state = engine.cancel(iid, "feature dropped")
    assert (state.status, state.open_entry) == ("cancelled", None)
    for action in (engine.trigger_next_step, engine.retry_phase, engine.cancel, engine.pause):
        with pytest.raises(InvalidTransitionError, match="cancelled"):
            action(iid)


def test_history_is_complete_and_ordered(engine: WorkflowEngine) -> None:
    iid = start(engine, GATED)
    engine.trigger_next_step(iid, meta={"user_id": "dave"})
    engine.resume(iid, approved_by="bob")
    engine.trigger_next_step(iid)
    events = engine.get_workflow_history(iid)
    assert [e.kind.value for e in events] == [
        "started",
        "phase_entered",
        "phase_completed",
        "phase_entered",
        "approval_requested",
        "resumed",
        "phase_completed",
        "completed",
    ]
    # The trigger's meta is merged into the instance's, so dave stays the default actor.
    actors = ["alice", "alice", "dave", "dave", "dave", "bob", "dave", "dave"]
    assert [e.actor for e in events] == actors
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))


def test_fork_replays_variables_and_links_parent(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    engine.trigger_next_step(iid, {"diff": "+1"})
    engine.trigger_next_step(iid, {"verdict": "changes"})
    engine.trigger_next_step(iid, {"diff": "+2"})
    child_id = engine.fork(iid, at=1, meta={"user_id": "erin"})
    child = engine.get_workflow_instance_status(child_id)
    assert child is not None
    assert (child.feature_id, child.current_phase, child.status) == ("feat_x", "review", "running")
    assert child.variables == {"request": "r", "code": {"diff": "+1"}}
    assert child.parent == {"instance_id": iid, "history_index": 1}
    assert phases(child) == [("code", "completed"), ("review", "running")]
    assert child.visits == {"code": 1, "review": 1}
    assert engine.list_feature_instances("feat_x") == [iid, child_id]
    assert kinds(engine, iid)[-1] == "forked"
    assert engine.trigger_next_step(child_id, {"verdict": "ok"}).current_phase == "summary"
    with pytest.raises(ValidationError, match="out of range"):
        engine.fork(iid, at=99)


def test_status_info_and_feature_roll_up(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    info = engine.get_status_info(iid)
    assert (info["current_phase"], info["next_phase"], info["progress"]) == ("code", "review", 0)
    assert info["path"] == ["code", "review", "summary"]
    engine.trigger_next_step(iid)
    info = engine.get_status_info(iid)
    assert info["progress"] == pytest.approx(1 / 3, abs=1e-3)
    assert info["phases"] == {"code": "completed", "review": "running", "summary": "not_started"}
    done = start(engine, {"name": "one", "phases": [{"name": "only"}]})
    engine.trigger_next_step(done)
    assert engine.get_status_info(done)["progress"] == 1.0
    rollup = engine.get_feature_status("feat_x")
    assert rollup["active_instance_id"] == iid
    assert rollup["latest_instance_id"] == done
    assert rollup["phases"]["review"] == "running"
    assert (rollup["running_count"], rollup["completed_count"], rollup["paused_count"]) == (1, 1, 0)
    assert rollup["status"] == "in_progress"
    engine.cancel(iid)
    rollup = engine.get_feature_status("feat_x")
    assert (rollup["active_instance_id"], rollup["cancelled_count"]) == (None, 1)
    assert rollup["status"] == "completed"


def test_repeated_visits_keep_their_own_artifacts(engine: WorkflowEngine) -> None:
    iid = start(engine, REVIEW_LOOP)
    engine.record_task_artifacts(iid, "prompt 1", "response 1")
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid, {"verdict": "changes"})
    record = engine.record_task_artifacts(iid, "prompt 2", "response 2")
    assert record.phase_name == "code"
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    assert [entry.task for entry in state.history] == ["code", "", "code--2"]
    first = engine.get_task_artifacts(iid, "code")
    second = engine.get_task_artifacts(iid, "code--2")
    assert first is not None and first.prompt == "prompt 1"
    assert second is not None and second.response == "response 2"


def test_statuses_are_plain_strings() -> None:
    assert [s.value for s in InstanceStatus] == [
        "created",
        "running",
        "paused",
        "completed",
        "failed",
        "cancelled",
    ]
    assert {s for s in InstanceStatus if s.is_finished} == {"completed", "failed", "cancelled"}


def test_advance_closes_the_open_entry_at_the_step_time() -> None:
    """The lifecycle unit itself, with an explicit clock: the closed entry ends at ``now``
    and the next one starts at the same instant, so durations add up without gaps."""
    from chatflow.core import lifecycle
    from chatflow.core.schema import validate_schema

    state = lifecycle.new_state(
        instance_id="wfi_unit",
        feature_id="feat_x",
        workflow=validate_schema(GATED),
        variables={},
        meta={},
        automation_level=None,
        now=100.0,
    )
    assert state.history[0].ended_at is None
    lifecycle.advance(state, {"done": True}, {}, now=130.5)
    closed, opened = state.history
    assert (closed.phase, closed.status, closed.ended_at) == ("plan", "completed", 130.5)
    assert closed.trigger_data_snapshot == {"done": True}
    assert (opened.phase, opened.started_at, opened.ended_at) == ("release", 130.5, None)
