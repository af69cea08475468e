"""Exit gates and live upgrade behave the same on every store; refusals write nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from chatflow import (
    EventKind,
    GateNotSatisfiedError,
    UpgradeRefusedError,
    WorkflowEngine,
)
from chatflow.storage import IWorkflowStateStore

from ._harness import FileHarness, Harness, PostgresHarness, SQLiteHarness

V1: dict[str, Any] = {
    "name": "contract",
    "version": 1,
    "phases": [
        {"name": "design", "exit_requires": {"artifacts": ["response"], "approvals": 2}},
        {"name": "code"},
    ],
}
V2: dict[str, Any] = {
    "name": "contract",
    "version": "1.1",
    "phases": [
        {"name": "design", "exit_requires": {"approvals": 1}},
        {"name": "implement"},
        {"name": "ship", "exit_requires": {"variables": ["tag"]}},
    ],
    "merge_trigger_data": "flat",
}


@pytest.fixture
def engine(store: IWorkflowStateStore) -> WorkflowEngine:
    engine = WorkflowEngine(store=store)
    engine.register_schema(V1)
    engine.register_schema(V2)
    return engine


def start(engine: WorkflowEngine) -> str:
    return engine.start_workflow_instance(
        None, {}, "feat_c", schema_name="contract", schema_version=1
    )


def test_gate_refuses_then_lets_the_instance_through(engine: WorkflowEngine) -> None:
    iid = start(engine)
    before = engine.get_workflow_instance_status(iid)
    with pytest.raises(GateNotSatisfiedError) as caught:
        engine.trigger_next_step(iid)
    assert [m["kind"] for m in caught.value.missing] == ["artifact", "approvals"]  # type: ignore[attr-defined]
    assert engine.get_workflow_instance_status(iid) == before
    engine.record_task_artifacts(iid, "p", "r")
    for person in ("ann", "ann", "bob"):
        engine.approve(iid, by=person)
    assert engine.trigger_next_step(iid).current_phase == "code"
    approvals = [e for e in engine.get_workflow_history(iid) if e.kind is EventKind.APPROVED]
    assert len(approvals) == 3


def test_upgrade_and_its_refusals(engine: WorkflowEngine) -> None:
    waiting = start(engine)  # design exists in both versions
    moved = start(engine)
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


# -- registered schemas live in the store ---------------------------------------------

_CHILD = """
import json, sys
from chatflow import WorkflowEngine
engine = WorkflowEngine(sys.argv[1])
infos = [(w.name, w.version, w.source) for w in engine.list_workflows()]
iid = engine.start_workflow_instance(None, {}, "feat_child", schema_name="contract")
state = engine.get_workflow_instance_status(iid)
print(json.dumps({"infos": infos, "version": state.workflow_schema["version"]}))
"""


def target_of(harness: Harness) -> str:
    """The storage folder or URL a separate process opens the harness's data with."""
    if isinstance(harness, FileHarness):
        return harness.folder
    if isinstance(harness, SQLiteHarness):
        return f"sqlite:///{harness.path}"
    assert isinstance(harness, PostgresHarness)
    return f"{harness.url}?schema={harness.schema}"


def test_store_keeps_schemas_by_name_and_version(harness: Harness) -> None:
    store = harness.open()
    try:
        store.put_schema("flow with spaces é", 1, "h1", {"name": "x", "n": "\x00"})
        store.put_schema("flow with spaces é", "1.1", "h2", {"name": "y"})
        store.put_schema("flow with spaces é", 1, "h3", {"name": "z"})  # replaces version 1
    finally:
        store.close()
    reopened = harness.open()
    try:
        rows = sorted(reopened.list_schemas(), key=lambda row: row.content_hash)
    finally:
        reopened.close()
    assert [(r.name, r.version, r.content_hash, r.schema) for r in rows] == [
        ("flow with spaces é", "1.1", "h2", {"name": "y"}),
        ("flow with spaces é", 1, "h3", {"name": "z"}),
    ]


def test_a_second_process_sees_registered_schemas(harness: Harness) -> None:
    if not harness.shared_across_processes:
        pytest.skip("the memory store lives in one process")
    store = harness.open()
    try:
        engine = WorkflowEngine(store=store)
        assert engine.register_schema(V2).source == "registered"
    finally:
        store.close()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, target_of(harness)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"infos": [["contract", "1.1", "registered"]], "version": "1.1"}
