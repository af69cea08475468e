"""Approval to enter a phase, on every path into it (issue 15, "Rules skipped").

A phase with ``requires_approval`` is entered paused, waiting for a person's approval,
whichever way the instance gets there: trigger, jump, reject ``to``, retry, fork or
upgrade (``test_instance_upgrade.py``). ``force=True`` enters it running, and the log says who
forced it. ``test_workflow_properties.py`` checks the same rule over random runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chatflow import EventKind, WorkflowEngine, WorkflowInstanceState, views

FLOW: dict[str, Any] = {
    "name": "flow",
    "phases": [
        {"name": "plan"},
        {"name": "review", "requires_approval": True, "max_retries": 2},
        {"name": "ship", "requires_approval": True},
    ],
}


def start(engine: WorkflowEngine) -> str:
    return engine.start_workflow_instance(FLOW, {}, "feat_e", meta={"user_id": "agent"})


def in_review(engine: WorkflowEngine) -> str:
    """An instance running in review, approved in."""
    iid = start(engine)
    engine.trigger_next_step(iid)
    engine.resume(iid, approved_by="boss")
    return iid


def at_ship_gate(engine: WorkflowEngine) -> str:
    """An instance waiting for approval to enter ship."""
    iid = in_review(engine)
    engine.trigger_next_step(iid)
    return iid


Entry = Callable[[WorkflowEngine, bool], WorkflowInstanceState]

# Each path into "review" (a phase that requires approval), forced or not, by "lead".
PATHS: dict[str, Entry] = {
    "jump": lambda e, force: e.jump_to(start(e), "review", actor="lead", force=force),
    "reject_to": lambda e, force: e.reject(
        at_ship_gate(e), rejected_by="lead", to="review", force=force
    ),
    "retry": lambda e, force: e.retry_phase(
        e.fail_phase(in_review(e), "boom").instance_id, actor="lead", force=force
    ),
    "fork": lambda e, force: _fork(e, force=force),
}


def _fork(engine: WorkflowEngine, *, force: bool) -> WorkflowInstanceState:
    child = engine.fork(at_ship_gate(engine), at=1, actor="lead", force=force)
    state = engine.get_workflow_instance_status(child)
    assert state is not None
    return state


def visit_kinds(engine: WorkflowEngine, state: WorkflowInstanceState) -> list[EventKind]:
    """The stored events of the open visit."""
    index = len(state.history) - 1
    events = engine.get_workflow_history(state.instance_id)
    return [
        e.kind for e in events if e.history_index == index and e.kind is not EventKind.PHASE_ENTERED
    ]


@pytest.mark.parametrize("path", PATHS)
def test_every_path_into_a_gated_phase_waits_for_approval(
    engine: WorkflowEngine, path: str
) -> None:
    state = PATHS[path](engine, False)
    assert (state.current_phase, state.status) == ("review", "paused")
    assert state.pause is not None and state.pause["kind"] == "approval"
    assert state.pause["reasons"] == ["phase 'review' requires approval"]
    assert state.open_entry is not None and state.open_entry.status == "awaiting_approval"
    assert visit_kinds(engine, state)[-1] is EventKind.APPROVAL_REQUESTED
    # It takes no step until a person approves it.
    approved = engine.resume(state.instance_id, approved_by="boss")
    assert (approved.status, approved.current_phase) == ("running", "review")
    assert engine.trigger_next_step(state.instance_id).current_phase == "ship"


@pytest.mark.parametrize("path", PATHS)
def test_forced_entry_runs_and_records_who_forced_it(engine: WorkflowEngine, path: str) -> None:
    state = PATHS[path](engine, True)
    assert (state.current_phase, state.status, state.pause) == ("review", "running", None)
    assert EventKind.APPROVAL_REQUESTED not in visit_kinds(engine, state)
    forced = engine.get_workflow_history(state.instance_id)[-1]
    assert (forced.kind, forced.actor, forced.phase) == (
        EventKind.APPROVAL_OVERRIDDEN,
        "lead",
        "review",
    )
    assert forced.data == {"reasons": ["phase 'review' requires approval"]}
    row = views.instance_view(state)["timeline"][-1]
    assert [(a["decision"], a["by"]) for a in row["approvals"]] == [("overridden", "lead")]


def test_forcing_a_phase_that_needs_no_approval_records_nothing(engine: WorkflowEngine) -> None:
    iid = in_review(engine)
    state = engine.jump_to(iid, "plan", actor="lead", force=True)
    assert state.status == "running"
    kinds = [e.kind for e in engine.get_workflow_history(iid)]
    assert EventKind.APPROVAL_OVERRIDDEN not in kinds


def test_a_jump_out_of_one_approval_wait_into_another_waits_again(
    engine: WorkflowEngine,
) -> None:
    iid = at_ship_gate(engine)
    state = engine.jump_to(iid, "review", "back to review")
    assert (state.current_phase, state.status) == ("review", "paused")
    assert state.pause is not None and state.pause["reasons"] == [
        "phase 'review' requires approval"
    ]


@pytest.mark.parametrize("force", ["yes", 1, None])
def test_force_must_be_a_bool(engine: WorkflowEngine, force: Any) -> None:
    from chatflow import ValidationError

    iid = in_review(engine)
    before = engine.get_workflow_instance_status(iid)
    for call in (
        lambda: engine.jump_to(iid, "ship", force=force),
        lambda: engine.retry_phase(iid, force=force),
        lambda: engine.fork(iid, at=0, force=force),
        lambda: engine.reject(iid, rejected_by="x", force=force),
    ):
        with pytest.raises(ValidationError, match="force must be true or false"):
            call()
    assert engine.get_workflow_instance_status(iid) == before
