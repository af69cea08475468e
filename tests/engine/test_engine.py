"""The engine's documented semantics, through the public API, on the real file store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from chatflow import (
    CorruptStateError,
    HistoryEntry,
    InstanceNotFoundError,
    InstanceStatus,
    InvalidIdError,
    InvalidTransitionError,
    SchemaError,
    ValidationError,
    WorkflowEngine,
    WorkflowInstanceState,
)
from chatflow.storage import MemoryStore


def start(engine: WorkflowEngine, schema: dict[str, Any], feature: str = "feat_user_auth") -> str:
    return engine.start_workflow_instance(
        workflow_schema=schema,
        initial_context={"user_request": "create user registration"},
        feature_id=feature,
        meta={"user_id": "dev_alice", "session_id": "sess_123"},
    )


def test_start_opens_first_phase(engine: WorkflowEngine, schema: dict[str, Any]) -> None:
    iid = start(engine, schema)
    state = engine.get_workflow_instance_status(iid)
    assert isinstance(state, WorkflowInstanceState)
    assert state.instance_id == iid
    assert state.feature_id == "feat_user_auth"
    assert state.workflow_name == "code_generation"
    assert state.current_phase == "requirement_analysis"
    assert state.status == InstanceStatus.CREATED == "created"
    assert state.variables == {"user_request": "create user registration"}
    assert state.meta == {"user_id": "dev_alice", "session_id": "sess_123"}
    assert state.workflow_schema == schema
    assert len(state.history) == 1
    entry = state.history[0]
    assert isinstance(entry, HistoryEntry)
    assert (entry.phase, entry.ended_at, entry.status) == ("requirement_analysis", None, "running")
    assert entry.started_at == state.created_at


def test_trigger_walks_the_stored_schema(engine: WorkflowEngine, schema: dict[str, Any]) -> None:
    iid = start(engine, schema)
    data = {"analysis_result": "needs email check", "code_diff": "+100 -20"}
    state = engine.trigger_next_step(iid, trigger_data=data, meta={"duration_sec": 45.2})
    assert isinstance(state, WorkflowInstanceState)
    assert (state.status, state.current_phase) == ("running", "design")
    first, second = state.history
    assert first.status == "completed"
    assert first.ended_at is not None and first.ended_at >= first.started_at
    assert first.trigger_data_snapshot == data
    assert (second.phase, second.ended_at, second.started_at) == ("design", None, first.ended_at)
    assert state.meta == {"user_id": "dev_alice", "session_id": "sess_123", "duration_sec": 45.2}
    assert state.variables == {"user_request": "create user registration"}

    state = engine.trigger_next_step(iid)
    assert (state.status, state.current_phase) == ("running", "implementation")
    state = engine.trigger_next_step(iid, trigger_data={"done": True})
    assert state.status == "completed"
    assert state.current_phase == "implementation"
    assert [entry.phase for entry in state.history] == [
        "requirement_analysis",
        "design",
        "implementation",
    ]
    assert all(entry.ended_at is not None for entry in state.history)
    assert engine.get_workflow_instance_status(iid) == state


def test_schema_is_pinned_not_hardcoded(engine: WorkflowEngine) -> None:
    schema = {"name": "tiny", "phases": [{"name": "only"}]}
    iid = start(engine, schema)
    schema["phases"].append({"name": "added_later"})  # the caller's dict is not the stored one
    state = engine.trigger_next_step(iid)
    assert state.status == "completed"
    assert state.workflow_schema == {"name": "tiny", "phases": [{"name": "only"}]}


def test_history_survives_reload_and_next_trigger(
    storage_dir: Path, schema: dict[str, Any]
) -> None:
    iid = start(WorkflowEngine(storage_dir=storage_dir), schema)
    WorkflowEngine(storage_dir=storage_dir).trigger_next_step(iid, trigger_data={"a": 1})
    fresh = WorkflowEngine(storage_dir=storage_dir)
    state = fresh.trigger_next_step(iid, trigger_data={"b": 2})
    assert all(isinstance(entry, HistoryEntry) for entry in state.history)
    assert [entry.trigger_data_snapshot for entry in state.history] == [{"a": 1}, {"b": 2}, None]


@pytest.mark.parametrize("final", [InstanceStatus.COMPLETED, InstanceStatus.FAILED])
def test_finished_instance_rejects_trigger_and_is_unchanged(
    engine: WorkflowEngine, final: InstanceStatus
) -> None:
    iid = start(engine, {"name": "one", "phases": [{"name": "only"}]})
    if final is InstanceStatus.COMPLETED:
        engine.trigger_next_step(iid)
    else:

        def fail(state: dict[str, Any]) -> dict[str, Any]:
            return {**state, "status": "failed"}

        engine.state_store.update_state(iid, fail)
    before = engine.get_workflow_instance_status(iid)
    with pytest.raises(InvalidTransitionError, match=final.value) as caught:
        engine.trigger_next_step(iid, trigger_data={"x": 1}, meta={"m": 1})
    assert caught.value.instance_id == iid  # type: ignore[attr-defined]
    assert engine.get_workflow_instance_status(iid) == before


def test_unknown_instance(engine: WorkflowEngine) -> None:
    assert engine.get_workflow_instance_status("wfi_doesnotexist") is None
    with pytest.raises(InstanceNotFoundError, match="wfi_doesnotexist") as caught:
        engine.trigger_next_step("wfi_doesnotexist")
    assert caught.value.instance_id == "wfi_doesnotexist"  # type: ignore[attr-defined]
    assert isinstance(caught.value, KeyError)


def test_non_json_input_is_rejected_before_anything_is_written(
    engine: WorkflowEngine, schema: dict[str, Any], storage_dir: Path
) -> None:
    iid = start(engine, schema)
    before = (storage_dir / "instances" / f"{iid}.json").read_bytes()
    bad_inputs: list[dict[str, Any]] = [
        {"trigger_data": {"when": object()}},
        {"trigger_data": {"nested": {"ok": [1, {2: "int key"}]}}},
        {"trigger_data": {"nan": float("nan")}},
        {"trigger_data": {"t": (1, 2)}},
        {"meta": {"s": {1, 2}}},
        {"meta": ["not", "a", "dict"]},
        {"trigger_data": "not a dict"},
    ]
    for kwargs in bad_inputs:
        with pytest.raises(ValidationError):
            engine.trigger_next_step(iid, **kwargs)
    assert (storage_dir / "instances" / f"{iid}.json").read_bytes() == before
    with pytest.raises(ValidationError, match=r"initial_context\['when'\]"):
        engine.start_workflow_instance(schema, {"when": object()}, "feat_x")
    assert engine.list_feature_instances("feat_x") == []


@pytest.mark.parametrize(
    ("bad_schema", "fragment"),
    [
        (None, "must be a dict"),
        ({"phases": [{"name": "a"}]}, "name: must be a non-empty string"),
        ({"name": "x"}, "phases: must be a non-empty list"),
        ({"name": "x", "phases": []}, "phases: must be a non-empty list"),
        ({"name": "x", "phases": ["a"]}, "phases[0]: must be an object"),
        ({"name": "x", "phases": [{"name": "../up"}]}, "phases[0].name"),
        ({"name": "x", "phases": [{"name": "a"}, {"name": "a"}]}, "duplicate phase name 'a'"),
        ({"name": "x", "phases": [{}]}, "phases[0].name"),
    ],
)
def test_malformed_schema(engine: WorkflowEngine, bad_schema: Any, fragment: str) -> None:
    with pytest.raises(SchemaError) as caught:
        engine.start_workflow_instance(bad_schema, {}, "feat_x")
    assert fragment in str(caught.value)


def test_schema_error_lists_every_problem(engine: WorkflowEngine) -> None:
    bad = {"name": "", "phases": [{"name": "a b"}, "x", {"name": "ok"}, {"name": "ok"}]}
    with pytest.raises(SchemaError) as caught:
        engine.start_workflow_instance(bad, {}, "feat_x")
    problems = caught.value.problems  # type: ignore[attr-defined]
    assert len(problems) == 4
    assert [p.split(":")[0] for p in problems] == [
        "name",
        "phases[0].name",
        "phases[1]",
        "phases[3].name",
    ]


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", "a\x00b", "x" * 129, ".hidden", "CON", 7])
def test_path_like_ids_are_rejected(
    engine: WorkflowEngine, schema: dict[str, Any], bad_id: Any, storage_dir: Path
) -> None:
    with pytest.raises(InvalidIdError):
        engine.start_workflow_instance(schema, {}, bad_id)
    with pytest.raises(InvalidIdError):
        engine.get_workflow_instance_status(bad_id)
    with pytest.raises(InvalidIdError):
        engine.trigger_next_step(bad_id)
    with pytest.raises(InvalidIdError):
        engine.get_feature_status(bad_id)
    assert not (storage_dir / "features").exists() or not any((storage_dir / "features").iterdir())


def test_feature_status_counts_and_latest(engine: WorkflowEngine, schema: dict[str, Any]) -> None:
    empty = engine.get_feature_status("feat_empty")
    assert (
        empty.items()
        >= {
            "feature_id": "feat_empty",
            "total_instances": 0,
            "created_count": 0,
            "running_count": 0,
            "completed_count": 0,
            "failed_count": 0,
            "latest_instance_id": None,
            "status": "not_started",
        }.items()
    )
    ids = [start(engine, schema) for _ in range(5)]
    engine.trigger_next_step(ids[1])
    for _ in range(3):
        engine.trigger_next_step(ids[2])
    status = engine.get_feature_status("feat_user_auth")
    assert status["total_instances"] == 5
    assert (status["created_count"], status["running_count"], status["completed_count"]) == (
        3,
        1,
        1,
    )
    assert status["latest_instance_id"] == ids[-1]  # creation order, not id order
    assert status["status"] == "in_progress"
    assert engine.list_feature_instances("feat_user_auth") == ids
    for iid in ids:
        state = engine.get_workflow_instance_status(iid)
        while state is not None and not state.status.is_finished:
            state = engine.trigger_next_step(iid)
    assert engine.get_feature_status("feat_user_auth")["status"] == "completed"


def test_task_artifacts_are_written_checksummed_and_linked(
    engine: WorkflowEngine, schema: dict[str, Any], storage_dir: Path
) -> None:
    iid = start(engine, schema)
    prompt, response = "# Analyse\nUser wants 注册.\n", "Needs email verification.\n"
    record = engine.record_task_artifacts(iid, prompt, response)
    assert record.phase_name == "requirement_analysis"
    assert record.prompt_checksum == hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    assert record.response_checksum == hashlib.sha256(response.encode("utf-8")).hexdigest()
    tasks = storage_dir / "instances" / iid / "tasks"
    assert (tasks / "requirement_analysis.prompt.md").read_text(encoding="utf-8") == prompt
    assert (tasks / "requirement_analysis.ai_response.md").read_text(encoding="utf-8") == response
    on_disk = json.loads((tasks / "requirement_analysis.json").read_text(encoding="utf-8"))
    assert on_disk == record.to_dict()
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.history[0].task == "requirement_analysis"

    artifacts = engine.get_task_artifacts(iid, "requirement_analysis")
    assert artifacts is not None
    assert (artifacts.prompt, artifacts.response, artifacts.record) == (prompt, response, record)
    assert engine.get_task_artifacts(iid, "design") is None

    (tasks / "requirement_analysis.ai_response.md").write_text("tampered", encoding="utf-8")
    with pytest.raises(CorruptStateError, match="checksum"):
        engine.get_task_artifacts(iid, "requirement_analysis")


def test_artifacts_for_a_phase_not_entered_are_refused(
    engine: WorkflowEngine, schema: dict[str, Any]
) -> None:
    iid = start(engine, schema)
    with pytest.raises(InvalidTransitionError, match="design"):
        engine.record_task_artifacts(iid, "p", "r", phase_name="design")
    with pytest.raises(ValidationError, match="prompt must be a str"):
        engine.record_task_artifacts(iid, b"bytes", "r")  # type: ignore[arg-type]
    with pytest.raises(InstanceNotFoundError):
        engine.record_task_artifacts("wfi_missing", "p", "r")
    engine.trigger_next_step(iid)
    engine.record_task_artifacts(iid, "late", "ok", phase_name="requirement_analysis")


def test_returned_state_is_a_private_copy(engine: WorkflowEngine, schema: dict[str, Any]) -> None:
    iid = start(engine, schema)
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    state.variables["user_request"] = "mutated"
    state.history.clear()
    again = engine.get_workflow_instance_status(iid)
    assert again is not None
    assert again.variables["user_request"] == "create user registration"
    assert len(again.history) == 1


def test_engine_on_any_store_and_not_both() -> None:
    engine = WorkflowEngine(store=MemoryStore())
    iid = start(engine, {"name": "w", "phases": [{"name": "a"}, {"name": "b"}]})
    assert engine.trigger_next_step(iid).current_phase == "b"
    with pytest.raises(ValidationError, match="not both"):
        WorkflowEngine(storage_dir="x", state_store=MemoryStore())
    with pytest.raises(ValidationError, match="IWorkflowStateStore"):
        WorkflowEngine(state_store=object())  # type: ignore[arg-type]


def test_corrupt_log_is_an_error_not_absent(
    engine: WorkflowEngine, schema: dict[str, Any], storage_dir: Path
) -> None:
    iid = start(engine, schema)
    path = storage_dir / "instances" / iid / "events.jsonl"
    for garbage in (b'{"instance_id": tru', b"\xff\xfe", b"[]", b'{"instance_id": 1}'):
        path.write_bytes(garbage + b"\n")
        with pytest.raises(CorruptStateError) as caught:
            engine.get_workflow_instance_status(iid)
        assert str(path) in str(caught.value) and iid in str(caught.value)
        with pytest.raises(CorruptStateError):
            engine.trigger_next_step(iid)
        rollup = engine.get_feature_status("feat_user_auth")  # reported, not raised
        assert rollup["total_instances"] == 1 and iid in rollup["problem"]
    assert path.read_bytes() == b'{"instance_id": 1}\n'  # a failed step wrote nothing


def test_a_lost_or_garbled_head_is_rebuilt_from_the_log(
    engine: WorkflowEngine, schema: dict[str, Any], storage_dir: Path
) -> None:
    iid = start(engine, schema)
    engine.trigger_next_step(iid, trigger_data={"x": 1})
    path = storage_dir / "instances" / f"{iid}.json"
    for garbage in (b'{"instance_id": tru', b"\xff\xfe", b"[]"):
        path.write_bytes(garbage)
        state = engine.get_workflow_instance_status(iid)
        assert state is not None and state.current_phase == "design"
    assert engine.trigger_next_step(iid).current_phase == "implementation"
    assert (
        json.loads(path.read_text(encoding="utf-8"))["state"]["current_phase"] == "implementation"
    )
    path.unlink()
    assert engine.get_workflow_instance_status(iid).current_phase == "implementation"  # type: ignore[union-attr]
    assert engine.verify(iid) is None


def test_wrong_shape_state_is_reported_with_instance(
    engine: WorkflowEngine, schema: dict[str, Any], storage_dir: Path
) -> None:
    iid = start(engine, schema)
    path = storage_dir / "instances" / f"{iid}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["history"] = [{"phase": 3}]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CorruptStateError, match=iid):
        engine.get_workflow_instance_status(iid)


def test_changing_a_returned_state_never_reaches_the_store(
    engine: WorkflowEngine, schema: dict[str, Any], storage_dir: Path
) -> None:
    iid = start(engine, schema)
    returned = engine.trigger_next_step(iid, trigger_data={"x": 1})
    returned.variables["leak"] = True
    returned.meta["leak"] = True
    returned.visits["leak"] = 1
    returned.workflow_schema["phases"].append({"name": "leak"})  # not copied from the head
    snapshot = returned.history[0].trigger_data_snapshot
    assert snapshot is not None
    snapshot["leak"] = True
    engine.record_task_artifacts(iid, "p", "r", phase_name="requirement_analysis")
    engine.trigger_next_step(iid)
    on_disk = WorkflowEngine(storage_dir=storage_dir).get_workflow_instance_status(iid)
    assert on_disk is not None
    assert "leak" not in on_disk.variables
    assert "leak" not in on_disk.meta
    assert "leak" not in on_disk.visits
    assert [phase["name"] for phase in on_disk.workflow_schema["phases"]] == [
        phase["name"] for phase in schema["phases"]
    ]
    assert on_disk.history[0].trigger_data_snapshot == {"x": 1}


def test_a_step_reads_the_head_not_the_log() -> None:
    class HeadOnly(MemoryStore):
        def _read(self, instance_id: str) -> Any:
            raise AssertionError("a step read the whole log")

    engine = WorkflowEngine(store=HeadOnly())
    again = {"to": "a", "when": {"path": "trigger.x", "op": "==", "value": 1}}
    schema = {
        "name": "loop",
        "phases": [{"name": "a"}, {"name": "b", "transitions": [again, {"to": "$end"}]}],
    }
    iid = engine.start_workflow_instance(schema, {}, "feat")
    for _ in range(20):
        state = engine.trigger_next_step(iid, {"x": 1})
    engine.pause(iid)
    engine.resume(iid)
    engine.fail_phase(iid, "boom")
    assert engine.retry_phase(iid).status == "running"
    assert (state.current_phase, state.version, len(state.history)) == ("a", 21, 21)
