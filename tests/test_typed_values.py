"""Typed values for a pause, a parent link, a gate item and an entry status (issue 16).

The instance and the error keep the JSON objects they always stored and returned; the
typed values read them (``state.pause_info``, ``state.parent_link``,
``GateItem.from_dict``) and the lifecycle writes through them, so the stored shapes
must stay exactly what they were: these tests pin them.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatflow import (
    CorruptStateError,
    GateNotSatisfiedError,
    InstanceStatus,
    WorkflowEngine,
    WorkflowInstanceState,
)
from chatflow.domain.values import EntryStatus, GateItem, ParentLink, Pause
from chatflow.errors import ValidationError

PAUSES: list[dict[str, Any]] = [
    {"kind": "manual", "reason": "lunch", "resume_status": "running"},
    {"kind": "manual", "reason": "", "resume_status": "created"},
    {
        "kind": "approval",
        "reasons": ["ship needs approval"],
        "risk": None,
        "resume_status": "running",
    },
    {
        "kind": "approval",
        "reasons": ["risk 51 is above the automation level 50"],
        "risk": 51,
        "resume_status": "running",
        "pending": {"trigger": {"risk": 51}},
    },
]
GATE_ITEMS: list[dict[str, Any]] = [
    {
        "kind": "artifact",
        "name": "prompt",
        "text": "artifact 'prompt' of this visit",
        "remedy": "record",
    },
    {
        "kind": "approvals",
        "required": 2,
        "have": ["ann"],
        "text": "2 approvals, have 1: ann",
        "remedy": "approve",
    },
    {"kind": "variable", "name": "pr.url", "text": "variable 'pr.url'"},
    {"kind": "condition", "condition": "visits.review < 3", "text": "condition ... does not hold"},
]


@pytest.mark.parametrize("stored", PAUSES)
def test_a_pause_reads_and_writes_its_stored_object_exactly(stored: dict[str, Any]) -> None:
    pause = Pause.from_dict(stored)
    assert pause.to_dict() == stored
    assert list(pause.to_dict()) == list(stored)  # and in the same key order
    assert pause.is_approval == (stored["kind"] == "approval")
    assert pause.waits_to_enter == (pause.is_approval and "pending" not in stored)


@pytest.mark.parametrize("stored", GATE_ITEMS)
def test_a_gate_item_reads_and_writes_its_object_exactly(stored: dict[str, Any]) -> None:
    item = GateItem.from_dict(stored)
    assert item.to_dict() == stored
    assert list(item.to_dict()) == list(stored)


def test_a_parent_link_round_trips() -> None:
    assert ParentLink.from_dict({"instance_id": "wfi_a", "history_index": 2}) == ParentLink(
        "wfi_a", 2
    )
    assert ParentLink("wfi_a", 2).to_dict() == {"instance_id": "wfi_a", "history_index": 2}


@pytest.mark.parametrize(
    ("parse", "bad"),
    [
        (Pause.from_dict, {"kind": 3}),
        (Pause.from_dict, {"kind": "approval", "reasons": "one"}),
        (Pause.from_dict, {"kind": "approval", "risk": True}),
        (Pause.from_dict, {"kind": "approval", "pending": {"trigger": 1}}),
        (Pause.from_dict, {"kind": "manual", "resume_status": "sleeping"}),
        (Pause.from_dict, ["manual"]),
        (GateItem.from_dict, {"kind": "approvals", "text": "t", "required": "2"}),
        (GateItem.from_dict, {"kind": "artifact"}),
        (ParentLink.from_dict, {"instance_id": "wfi_a", "history_index": True}),
        (ParentLink.from_dict, {"history_index": 1}),
    ],
)
def test_a_malformed_record_is_a_validation_error(parse: Any, bad: Any) -> None:
    with pytest.raises(ValidationError):
        parse(bad)


def test_the_engine_stores_the_same_pause_objects_and_reads_them_typed(
    engine: WorkflowEngine,
) -> None:
    schema = {
        "name": "typed",
        "automation_level": 50,
        "phases": [{"name": "a"}, {"name": "b", "requires_approval": True}],
    }
    iid = engine.start_workflow_instance(schema, {}, "feat_t")
    state = engine.trigger_next_step(iid)
    assert state.pause is not None
    assert state.pause == {
        "kind": "approval",
        "reasons": state.pause["reasons"],
        "risk": None,
        "resume_status": "running",
    }
    assert state.pause_info == Pause.approval(state.pause["reasons"], None, InstanceStatus.RUNNING)
    assert state.history[-1].status == EntryStatus.AWAITING_APPROVAL
    engine.resume(iid, approved_by="boss")
    state = engine.trigger_next_step(iid, {"risk": 51})  # a risky last step: held open
    assert state.pause_info is not None and state.pause_info.pending_trigger == {"risk": 51}
    assert state.pause is not None and state.pause["pending"] == {"trigger": {"risk": 51}}
    assert not state.pause_info.waits_to_enter
    state = engine.resume(iid, approved_by="boss")
    assert state.pause is None and state.pause_info is None and state.status == "completed"
    state = engine.pause(engine.start_workflow_instance(schema, {}, "feat_t"), "lunch")
    assert state.pause == {"kind": "manual", "reason": "lunch", "resume_status": "created"}
    assert state.pause_info == Pause.manual("lunch", InstanceStatus.CREATED)
    assert state.pause_info.because == "lunch"


def test_a_fork_links_its_parent_typed(engine: WorkflowEngine) -> None:
    schema = {"name": "fork", "phases": [{"name": "a"}, {"name": "b"}]}
    iid = engine.start_workflow_instance(schema, {}, "feat_t")
    engine.trigger_next_step(iid)
    child = engine.get_workflow_instance_status(engine.fork(iid, 1))
    assert child is not None
    assert child.parent == {"instance_id": iid, "history_index": 1}
    assert child.parent_link == ParentLink(iid, 1)


def test_gate_items_in_the_error_are_the_typed_items_objects(engine: WorkflowEngine) -> None:
    gate = {"artifacts": ["prompt"], "approvals": 1, "variables": ["pr"]}
    schema = {"name": "gated", "phases": [{"name": "a", "exit_requires": gate}, {"name": "b"}]}
    iid = engine.start_workflow_instance(schema, {}, "feat_t")
    with pytest.raises(GateNotSatisfiedError) as caught:
        engine.trigger_next_step(iid)
    items = [GateItem.from_dict(item) for item in caught.value.missing]
    assert [item.kind for item in items] == ["artifact", "approvals", "variable"]
    assert [item.to_dict() for item in items] == caught.value.missing
    assert items[1] == GateItem(
        "approvals", "1 approval, have 0", required=1, have=(), remedy="approve"
    )


def test_every_entry_status_the_lifecycle_writes_is_an_entry_status(
    engine: WorkflowEngine,
) -> None:
    schema = {
        "name": "all",
        "phases": [{"name": "a"}, {"name": "b", "requires_approval": True}, {"name": "c"}],
    }
    iid = engine.start_workflow_instance(schema, {}, "feat_t")
    engine.trigger_next_step(iid)
    engine.reject(iid, rejected_by="boss")  # back to a
    engine.pause(iid, "x")
    engine.resume(iid)
    engine.fail_phase(iid, "boom")
    engine.retry_phase(iid)
    engine.jump_to(iid, "c", force=True)
    engine.cancel(iid)
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    statuses = {entry.status for entry in state.history}
    assert statuses <= {status.value for status in EntryStatus}
    assert {"rejected", "failed", "jumped", "cancelled"} <= statuses


def test_a_damaged_stored_pause_is_corrupt_state_naming_the_instance() -> None:
    state = WorkflowInstanceState("wfi_x", "f", "w", "a", {}, pause={"kind": 1})
    with pytest.raises(CorruptStateError, match="wfi_x"):
        _ = state.pause_info
