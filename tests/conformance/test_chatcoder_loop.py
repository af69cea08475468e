"""ChatCoder's whole feature loop, through exactly the calls ChatCoder makes, on every store.

ChatCoder (the client ChatFlow was designed for) imports its engine from
``chatflow.core.workflow_engine``, starts features by workflow name, previews each step
with a dry run, confirms it, and lists and summarises features through the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from chatflow.core.models import WorkflowStartResult, WorkflowState, WorkflowStatusInfo
from chatflow.core.workflow_engine import WorkflowEngine
from chatflow.errors import InvalidTransitionError
from chatflow.storage.file_state_store import FileStateStore
from store_harness import FileHarness, Harness

PHASES = ["analyze", "design", "code", "test", "review", "summary"]

# A workflow in ChatCoder's own format: a name, a description, and phases described by
# name, title, prompt template and description only (no routing keys).
FEATURE_WORKFLOW = "\n".join(
    [
        "name: feature",
        "description: From a request to reviewed, summarised code",
        "phases:",
        *[
            line
            for phase in PHASES
            for line in (
                f"  - name: {phase}",
                f"    title: Step {phase}",
                f"    template: {phase}",
                f"    description: What the {phase} step produces",
            )
        ],
        "",
    ]
)


@pytest.fixture
def engine(harness: Harness, tmp_path: Path) -> Iterator[WorkflowEngine]:
    """ChatCoder's engine on the store: on files exactly as ChatCoder builds it
    (``storage_dir`` with its workflows in ``schemas/``), elsewhere with a schema folder."""
    pytest.importorskip("yaml")
    if isinstance(harness, FileHarness):
        engine = WorkflowEngine(storage_dir=harness.folder)
        store = engine.state_store
        assert isinstance(store, FileStateStore)
        schemas = store.schemas_dir
    else:
        schemas = tmp_path / "workflows"
        engine = WorkflowEngine(state_store=harness.open(), schema_dirs=[schemas])
    schemas.mkdir(parents=True)
    (schemas / "feature.yaml").write_text(FEATURE_WORKFLOW, encoding="utf-8")
    yield engine
    engine.state_store.close()


def _on_disk(harness: Harness, engine: WorkflowEngine, instance_id: str) -> object:
    """Everything a dry run must leave alone: every file of a file store, else the state."""
    if isinstance(harness, FileHarness):
        root = Path(harness.folder)
        return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return engine.state_store.load_state(instance_id)


def _start(engine: WorkflowEngine, feature_id: str, request: str) -> WorkflowStartResult:
    return engine.start_workflow_instance(
        schema_name="feature",
        initial_context={"user_request": request, "project_type": "python"},
        feature_id=feature_id,
        meta={"user_id": "dev_lin", "automation_level": 60},
    )


def test_feature_loop(harness: Harness, engine: WorkflowEngine) -> None:
    result = _start(engine, "feat_login", "add a login form")
    assert isinstance(result, WorkflowStartResult)
    assert result.initial_phase == "analyze"
    assert result.created_at > 0
    iid = result.instance_id
    assert engine.state_store.get_current_task_id_for_feature("feat_login") == iid

    for index, phase in enumerate(PHASES):
        state = engine.get_workflow_state(iid)
        assert isinstance(state, WorkflowState)
        assert state.current_phase == phase
        before = _on_disk(harness, engine, iid)
        preview = engine.trigger_next_step(
            instance_id=iid, trigger_data={"summary": f"{phase} done"}, dry_run=True
        )
        assert _on_disk(harness, engine, iid) == before
        last = index == len(PHASES) - 1
        assert preview.current_phase == (phase if last else PHASES[index + 1])
        updated = engine.trigger_next_step(
            instance_id=iid,
            trigger_data={"summary": f"{phase} done"},
            meta={"user_confirmed": True},
        )
        assert updated.current_phase == preview.current_phase
        assert updated.status.value == ("completed" if last else "running")
        assert updated.feature_id == "feat_login"

    with pytest.raises(InvalidTransitionError):
        engine.trigger_next_step(instance_id=iid, trigger_data={"summary": "again"}, dry_run=True)
    with pytest.raises(InvalidTransitionError):
        engine.trigger_next_step(instance_id=iid, trigger_data={"summary": "again"})
    assert engine.state_store.get_current_task_id_for_feature("feat_login") is None

    store = engine.state_store
    assert store.list_features() == ["feat_login"]
    infos = [
        engine.get_workflow_status_info(i) for i in store.list_instances_by_feature("feat_login")
    ]
    summaries = [asdict(info) for info in infos if info is not None]
    assert summaries == [
        {
            "instance_id": iid,
            "status": "completed",
            "progress": 1.0,
            "current_phase": "summary",
            "feature_id": "feat_login",
            "created_at": result.created_at,
            "updated_at": summaries[0]["updated_at"],
            "depth": 0,
        }
    ]
    json.dumps(summaries)

    final = engine.get_workflow_state(iid)
    assert final is not None
    detail = json.loads(json.dumps(asdict(final)))
    assert detail["status"] == "completed"
    assert detail["variables"]["summary"] == "summary done"  # trigger data merged, as v1.1
    assert detail["meta"] == {"user_id": "dev_lin", "automation_level": 60, "user_confirmed": True}
    assert detail["automation_level"] == 60
    assert [e["phase"] for e in detail["history"]] == PHASES
    assert [e["event_type"] for e in detail["history"]] == ["workflow_started"] + [
        "phase_started"
    ] * 5

    second = _start(engine, "feat_search", "add search").instance_id
    engine.trigger_next_step(instance_id=second, trigger_data={"summary": "analysed"})
    assert store.list_features() == ["feat_login", "feat_search"]
    assert store.get_current_task_id_for_feature("feat_search") == second
    assert store.list_instances_by_feature("feat_search") == [second]
    info = engine.get_workflow_status_info(second)
    assert isinstance(info, WorkflowStatusInfo)
    assert (info["status"], info["current_phase"]) == ("running", "design")


def test_newest_active_instance_is_current(engine: WorkflowEngine) -> None:
    first = _start(engine, "feat_x", "one").instance_id
    second = _start(engine, "feat_x", "two").instance_id
    store = engine.state_store
    assert store.get_current_task_id_for_feature("feat_x") == second
    engine.cancel(second, "superseded")
    assert store.get_current_task_id_for_feature("feat_x") == first
    engine.pause(first, "waiting for review")
    assert store.get_current_task_id_for_feature("feat_x") == first  # paused is still active
    assert store.get_current_task_id_for_feature("feat_unknown") is None


def test_unknown_instance_is_none_for_queries(engine: WorkflowEngine) -> None:
    assert engine.get_workflow_state("wfi_0000000000000000") is None
    assert engine.get_workflow_status_info("wfi_0000000000000000") is None
    with pytest.raises(ValueError, match="not found"):
        engine.trigger_next_step("wfi_0000000000000000", dry_run=True)
