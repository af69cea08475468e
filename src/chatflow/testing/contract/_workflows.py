"""Exit gates and live upgrade behave the same on every store; refusals write nothing."""

from __future__ import annotations

from typing import Any

import pytest

from chatflow import (
    EventKind,
    GateNotSatisfiedError,
    UpgradeRefusedError,
    WorkflowEngine,
)
from chatflow.storage import IWorkflowStateStore
from chatflow.testing import StoreFactory

__all__ = [
    "test_gate_refuses_then_lets_the_instance_through",
    "test_store_keeps_schemas_by_name_and_version",
    "test_upgrade_and_its_refusals",
]

_V1: dict[str, Any] = {
    "name": "contract",
    "version": 1,
    "phases": [
        {"name": "design", "exit_requires": {"artifacts": ["response"], "approvals": 2}},
        {"name": "code"},
    ],
}
_V2: dict[str, Any] = {
    "name": "contract",
    "version": "1.1",
    "phases": [
        {"name": "design", "exit_requires": {"approvals": 1}},
        {"name": "implement"},
        {"name": "ship", "exit_requires": {"variables": ["tag"]}},
    ],
    "merge_trigger_data": "flat",
}


def _engine(store: IWorkflowStateStore) -> WorkflowEngine:
    """An engine on ``store`` with both versions of the contract workflow registered."""
    engine = WorkflowEngine(store=store)
    engine.register_schema(_V1)
    engine.register_schema(_V2)
    return engine


def _start(engine: WorkflowEngine) -> str:
    return engine.start_workflow_instance(
        None, {}, "feat_c", schema_name="contract", schema_version=1
    )


def test_gate_refuses_then_lets_the_instance_through(store: IWorkflowStateStore) -> None:
    engine = _engine(store)
    iid = _start(engine)
    before = engine.get_workflow_instance_status(iid)
    with pytest.raises(GateNotSatisfiedError) as caught:
        engine.trigger_next_step(iid)
    assert [m["kind"] for m in caught.value.missing] == ["artifact", "approvals"]
    assert engine.get_workflow_instance_status(iid) == before
    engine.record_task_artifacts(iid, "p", "r")
    for person in ("ann", "ann", "bob"):
        engine.approve(iid, by=person)
    assert engine.trigger_next_step(iid).current_phase == "code"
    approvals = [e for e in engine.get_workflow_history(iid) if e.kind is EventKind.APPROVED]
    assert len(approvals) == 3


def test_upgrade_and_its_refusals(store: IWorkflowStateStore) -> None:
    engine = _engine(store)
    waiting = _start(engine)  # design exists in both versions
    moved = _start(engine)
    engine.record_task_artifacts(moved, "p", "r")
    engine.approve(moved, by="ann")
    engine.approve(moved, by="bob")
    engine.trigger_next_step(moved)  # in code: version 1.1 calls it implement
    before = engine.get_workflow_instance_status(moved)
    with pytest.raises(UpgradeRefusedError, match="no counterpart"):
        engine.upgrade_instance(moved, to_version="1.1")
    assert engine.get_workflow_instance_status(moved) == before

    dry = engine.upgrade_instances(to_version="1.1", dry_run=True)
    assert [(o.instance_id, o.upgraded) for o in dry] == [(waiting, True), (moved, False)]
    assert engine.get_workflow_instance_status(moved) == before

    state = engine.upgrade_instance(moved, to_version="1.1", phase_map={"code": "implement"})
    assert (state.current_phase, state.workflow_schema["version"]) == ("implement", "1.1")
    reloaded = engine.get_workflow_instance_status(moved)
    assert reloaded is not None and reloaded.current_phase == "implement"
    assert engine.get_workflow_history(moved)[-1].kind is EventKind.SCHEMA_UPGRADED
    assert engine.trigger_next_step(moved).current_phase == "ship"
    with pytest.raises(GateNotSatisfiedError, match="variable 'tag'"):
        engine.trigger_next_step(moved)
    assert engine.trigger_next_step(moved, {"tag": "v1"}).status == "completed"


def test_store_keeps_schemas_by_name_and_version(
    chatflow_store_factory: StoreFactory,
) -> None:
    store = chatflow_store_factory()
    try:
        store.put_schema("flow with spaces é", 1, "h1", {"name": "x", "n": "\x00"})
        store.put_schema("flow with spaces é", "1.1", "h2", {"name": "y"})
        store.put_schema("flow with spaces é", 1, "h3", {"name": "z"})  # replaces version 1
    finally:
        store.close()
    reopened = chatflow_store_factory()
    try:
        rows = sorted(reopened.list_schemas(), key=lambda row: row.content_hash)
    finally:
        reopened.close()
    assert [(r.name, r.version, r.content_hash, r.schema) for r in rows] == [
        ("flow with spaces é", "1.1", "h2", {"name": "y"}),
        ("flow with spaces é", 1, "h3", {"name": "z"}),
    ]
