"""The shapes ChatCoder relies on, and its v1.1 workflow dialect.

ChatCoder imports ``chatflow.core.workflow_engine.WorkflowEngine`` and the v1.1 model
names; its feature loop runs on every store in ``conformance/test_chatcoder_loop.py``.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

import chatflow
from chatflow.cli import main
from chatflow.core.models import (
    InstanceStatus,
    WorkflowStartResult,
    WorkflowState,
    WorkflowStatus,
    WorkflowStatusInfo,
)
from chatflow.core.schema import validate_schema
from chatflow.core.workflow_engine import WorkflowEngine
from chatflow.errors import (
    InstanceNotFoundError,
    InvalidIdError,
    SchemaError,
    SchemaNotFoundError,
    ValidationError,
)
from chatflow.storage.file_state_store import FileStateStore

LINEAR = {"name": "steps", "phases": [{"name": "one"}, {"name": "two"}, {"name": "three"}]}


@pytest.fixture
def v11(storage_dir: Path) -> WorkflowEngine:
    """ChatCoder's engine on a fresh folder."""
    return WorkflowEngine(storage_dir=storage_dir)


def _write_schema(engine: WorkflowEngine, file_name: str, schema: dict[str, Any]) -> None:
    store = engine.state_store
    assert isinstance(store, FileStateStore)
    store.schemas_dir.mkdir(parents=True, exist_ok=True)
    (store.schemas_dir / file_name).write_text(json.dumps(schema), encoding="utf-8")


# -- the engine and its results --------------------------------------------------------


def test_chatcoders_engine_is_chatflows_engine(v11: WorkflowEngine) -> None:
    assert isinstance(v11, chatflow.WorkflowEngine)
    assert isinstance(v11.state_store, FileStateStore)
    assert v11.state_store.instances_dir == v11.state_store.base_dir / "instances"


def test_start_result_is_the_id_and_tells_where_it_began(v11: WorkflowEngine) -> None:
    result = v11.start_workflow_instance(workflow_schema=LINEAR, feature_id="feat_a")
    assert isinstance(result, str) and isinstance(result, WorkflowStartResult)
    assert result == result.instance_id and type(result.instance_id) is str
    assert result.startswith("wfi_") and result.initial_phase == "one"
    state = v11.get_workflow_instance_status(result)
    assert state is not None and state.created_at == result.created_at
    assert json.dumps({"id": result}) == json.dumps({"id": result.instance_id})
    for again in (pickle.loads(pickle.dumps(result)), copy.deepcopy(result)):
        assert (again, again.initial_phase, again.created_at) == (
            result,
            "one",
            result.created_at,
        )
        assert isinstance(again, WorkflowStartResult)
    # Used as an id everywhere, it is stored as a plain str.
    v11.trigger_next_step(result, {"x": 1})
    child = v11.fork(result, 0)
    stored = v11.state_store.load_state(child)
    assert stored is not None and type(stored["parent"]["instance_id"]) is str


def test_seed_engine_returns_the_same_result(engine: chatflow.WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(LINEAR, {}, "feat_seed")
    assert isinstance(iid, WorkflowStartResult) and iid.initial_phase == "one"


def test_workflow_state_is_json_ready(v11: WorkflowEngine) -> None:
    iid = v11.start_workflow_instance(
        workflow_schema={"name": "s", "phases": [{"name": "a", "task": "ai_analysis"}]},
        initial_context={"user_request": "ünïcödé ✓"},
        feature_id="feat_a",
        meta={"user_id": "u1"},
    )
    state = v11.get_workflow_state(iid)
    assert isinstance(state, WorkflowState)
    assert state.status.value == "created" and state.status == "created"
    text = json.dumps(asdict(state))
    data = json.loads(text)
    assert data["status"] == "created"
    assert data["history"] == [
        {
            "event_type": "workflow_started",
            "phase": "a",
            "task": "system",
            "timestamp": state.created_at,
            "data": {"status": "running", "ended_at": None, "trigger_data_snapshot": None},
        }
    ]
    state.variables["user_request"] = "changed"  # a snapshot: nothing stored changes
    again = v11.get_workflow_state(iid)
    assert again is not None and again.variables == {"user_request": "ünïcödé ✓"}


def test_history_view_names_later_phases_by_their_task(v11: WorkflowEngine) -> None:
    schema = {"name": "s", "phases": [{"name": "a"}, {"name": "b", "task": "ai_review"}]}
    iid = v11.start_workflow_instance(workflow_schema=schema, feature_id="feat_a")
    v11.trigger_next_step(iid, {"done": True})
    state = v11.get_workflow_state(iid)
    assert state is not None
    assert [(e.event_type, e.phase, e.task) for e in state.history] == [
        ("workflow_started", "a", "system"),
        ("phase_started", "b", "ai_review"),
    ]
    assert state.history[0].data["trigger_data_snapshot"] == {"done": True}
    types = [event.event_type for event in v11.get_workflow_history(iid)]
    assert types == ["workflow_started", "phase_started", "phase_completed", "phase_started"]


def test_state_built_by_the_caller_takes_a_string_status() -> None:
    state = WorkflowState(
        instance_id="preview",
        feature_id="preview_feature",
        workflow_name="preview-workflow",
        current_phase="design",
        variables={"user_request": "x"},
        status="created",
    )
    assert state.status is WorkflowStatus.CREATED
    assert json.loads(json.dumps(asdict(state)))["status"] == "created"
    with pytest.raises(ValidationError, match="unknown status 'created '"):
        WorkflowState("i", "f", "w", "p", {}, status="created ")


def test_status_enum_is_chatflows_with_plain_string_values() -> None:
    assert WorkflowStatus is InstanceStatus  # its values: test_workflow_lifecycle.py
    assert json.dumps([WorkflowStatus.RUNNING]) == '["running"]'
    assert WorkflowStatus.COMPLETED == "completed"


def test_status_info_is_a_dataclass_that_answers_by_key(v11: WorkflowEngine) -> None:
    iid = v11.start_workflow_instance(workflow_schema=LINEAR, feature_id="feat_a")
    v11.trigger_next_step(iid)
    info = v11.get_workflow_status_info(iid)
    assert isinstance(info, WorkflowStatusInfo)
    assert (info["status"], info["current_phase"], info["depth"]) == ("running", "two", 0)
    assert info["progress"] == pytest.approx(1 / 3, abs=1e-3)
    assert "progress" in info and "depth" in info and "nope" not in info and 3 not in info
    with pytest.raises(KeyError):
        info["nope"]
    assert json.loads(json.dumps(asdict(info)))["instance_id"] == iid


def test_unknown_or_bad_ids(v11: WorkflowEngine) -> None:
    assert v11.get_workflow_state("wfi_unknown") is None
    assert v11.get_workflow_status_info("wfi_unknown") is None
    with pytest.raises(InstanceNotFoundError, match="not found") as caught:
        v11.trigger_next_step("wfi_unknown")
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, KeyError)
    with pytest.raises(InvalidIdError):
        v11.get_workflow_state("../etc/passwd")
    with pytest.raises(InvalidIdError):
        v11.state_store.get_current_task_id_for_feature("a/b")


def test_missing_schema_is_a_file_not_found_error(v11: WorkflowEngine) -> None:
    with pytest.raises(FileNotFoundError, match="Schema nonexistent not found") as caught:
        v11.start_workflow_instance(schema_name="nonexistent", initial_context={}, feature_id="f")
    error = caught.value
    assert isinstance(error, SchemaNotFoundError) and isinstance(error, LookupError)
    copied = pickle.loads(pickle.dumps(error))
    assert type(copied) is SchemaNotFoundError and copied.name == "nonexistent"
    assert str(copied) == str(error)


def test_schema_is_found_by_its_name_or_its_file_name(v11: WorkflowEngine) -> None:
    _write_schema(v11, "quicktask.json", {"name": "quick-task", "phases": [{"name": "plan"}]})
    by_file = v11.start_workflow_instance(schema_name="quicktask", feature_id="f")
    by_name = v11.start_workflow_instance(schema_name="quick-task", feature_id="f")
    for iid in (by_file, by_name):
        state = v11.get_workflow_state(iid)
        assert state is not None and state.workflow_name == "quick-task"
    # A declared name wins over another file's name.
    _write_schema(v11, "plan.json", {"name": "quicktask", "phases": [{"name": "declared"}]})
    assert v11.start_workflow_instance(schema_name="quicktask", feature_id="f").initial_phase == (
        "declared"
    )


@pytest.mark.parametrize(
    ("kwarg", "meta", "schema_level", "expected"),
    [
        (None, {"automation_level": 30}, None, 30),
        (None, {}, 70, 70),
        (None, {"automation_level": 30}, 70, 30),
        (10, {"automation_level": 30}, 70, 10),
        (None, {}, None, None),
    ],
)
def test_automation_level_comes_from_the_call_meta_or_schema(
    v11: WorkflowEngine,
    kwarg: int | None,
    meta: dict[str, Any],
    schema_level: int | None,
    expected: int | None,
) -> None:
    schema = {**LINEAR, **({} if schema_level is None else {"automation_level": schema_level})}
    iid = v11.start_workflow_instance(
        workflow_schema=schema, feature_id="f", meta=meta, automation_level=kwarg
    )
    state = v11.get_workflow_state(iid)
    assert state is not None and state.automation_level == expected


@pytest.mark.parametrize("level", ["high", 101, -1, True, 5.5])
def test_bad_automation_level_in_meta_is_refused(v11: WorkflowEngine, level: object) -> None:
    with pytest.raises(ValidationError, match="automation_level"):
        v11.start_workflow_instance(LINEAR, {}, "f", {"automation_level": level})


def test_trigger_data_merges_into_variables_on_chatcoders_engine_only(
    v11: WorkflowEngine, engine: chatflow.WorkflowEngine
) -> None:
    seed = engine.trigger_next_step(engine.start_workflow_instance(LINEAR, {"a": 1}, "f"), {"b": 2})
    assert seed.variables == {"a": 1}
    flat = v11.trigger_next_step(v11.start_workflow_instance(LINEAR, {"a": 1}, "f"), {"b": 2})
    assert flat.variables == {"a": 1, "b": 2}
    chosen = {**LINEAR, "merge_trigger_data": "phase"}
    kept = v11.trigger_next_step(v11.start_workflow_instance(chosen, {"a": 1}, "f"), {"b": 2})
    assert kept.variables == {"a": 1, "one": {"b": 2}}


# -- the v1.1 dialect ------------------------------------------------------------------


def _term(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


def _gated(condition: Any, fallback: object = None) -> dict[str, Any]:
    """start -> gated (if condition) -> middle -> last; the gate's fallback as given."""
    gated: dict[str, Any] = {"name": "gated", "task": "ai_review", "condition": condition}
    if fallback is not None:
        gated["fallback_phase"] = fallback
    return {
        "name": "gate",
        "version": "1.1",
        "phases": [{"name": "start", "task": "t"}, gated, {"name": "middle"}, {"name": "last"}],
    }


def _first_step(v11: WorkflowEngine, schema: dict[str, Any], data: dict[str, Any]) -> str:
    iid = v11.start_workflow_instance(workflow_schema=schema, feature_id="f")
    return v11.trigger_next_step(iid, data).current_phase


RISKY = {"operator": "and", "operands": [_term("a.risk", ">", 50), _term("a.lines", "<", 100)]}


@pytest.mark.parametrize(
    ("condition", "data", "entered"),
    [
        (RISKY, {"a": {"risk": 75, "lines": 80}}, True),
        (RISKY, {"a": {"risk": 30, "lines": 80}}, False),
        (RISKY, {"a": {"risk": 75}}, False),  # a missing field compares false
        ({"operator": "or", "operands": [_term("x", "=", 1), _term("y", "=", 1)]}, {"y": 1}, True),
        ({"operator": "or", "operands": [_term("x", "=", 1), _term("y", "=", 1)]}, {"y": 2}, False),
        ({"operator": "not", "operands": [_term("skip", "=", True)]}, {"skip": False}, True),
        ({"operator": "not", "operands": [_term("skip", "=", True)]}, {"skip": True}, False),
        (_term("mode", "!=", "fast"), {"mode": "careful"}, True),  # a lone term
        (_term("tags", "in", ["x", "y"]), {"tags": "y"}, True),
        (
            {
                "operator": "and",
                "operands": [
                    {"operator": "or", "operands": [_term("a", ">=", 2), _term("b", "<=", 0)]},
                    {"operator": "not", "operands": [{"field": "c", "operator": "exists"}]},
                ],
            },
            {"a": 1, "b": -1},
            True,
        ),
    ],
)
def test_condition_decides_whether_the_phase_is_entered(
    v11: WorkflowEngine, condition: Any, data: dict[str, Any], entered: bool
) -> None:
    assert _first_step(v11, _gated(condition), data) == ("gated" if entered else "middle")


def test_condition_reads_variables_from_the_start_and_earlier_steps(v11: WorkflowEngine) -> None:
    schema = _gated(_term("ready", "=", True), fallback="last")
    iid = v11.start_workflow_instance(
        workflow_schema=schema, initial_context={"ready": True}, feature_id="f"
    )
    assert v11.trigger_next_step(iid).current_phase == "gated"


def test_false_condition_goes_to_the_fallback_phase(v11: WorkflowEngine) -> None:
    assert _first_step(v11, _gated(_term("go", "=", True), fallback="last"), {}) == "last"


def test_fallback_naming_no_phase_skips_with_a_warning(
    v11: WorkflowEngine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatflow"):
        phase = _first_step(v11, _gated(_term("go", "=", True), fallback="nowhere"), {})
    assert phase == "middle"
    assert [r.name for r in caplog.records] == ["chatflow"]
    assert "fallback_phase 'nowhere' names no phase" in caplog.text


def test_skipping_the_last_phase_completes(v11: WorkflowEngine) -> None:
    schema = {"name": "s", "phases": [{"name": "a"}, {"name": "b", "condition": RISKY}]}
    iid = v11.start_workflow_instance(workflow_schema=schema, feature_id="f")
    state = v11.trigger_next_step(iid, {"a": {"risk": 1, "lines": 1}})
    assert (state.status, state.current_phase) == (InstanceStatus.COMPLETED, "a")


def test_fallback_without_condition_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = {"name": "s", "phases": [{"name": "a"}, {"name": "b", "fallback_phase": "a"}]}
    with caplog.at_level(logging.WARNING, logger="chatflow"):
        assert validate_schema(schema).to_dict() == {
            "name": "s",
            "phases": [{"name": "a"}, {"name": "b"}],
        }
    assert "fallback_phase applies only with a condition" in caplog.text


def test_translation_is_stored_as_chatflow_transitions(v11: WorkflowEngine) -> None:
    schema = _gated(_term("go", "=", True), fallback="last")
    original = copy.deepcopy(schema)
    iid = v11.start_workflow_instance(workflow_schema=schema, feature_id="f")
    assert schema == original  # the caller's dict is not changed
    stored = v11.get_workflow_instance_status(iid)
    assert stored is not None
    start, gated = stored.workflow_schema["phases"][:2]
    assert start["transitions"] == [
        {"to": "gated", "when": {"path": "variables.go", "op": "==", "value": True}},
        {"to": "last"},
    ]
    assert gated == {"name": "gated", "task": "ai_review"}
    assert validate_schema(stored.workflow_schema).to_dict() == stored.workflow_schema  # idempotent
    diagram = chatflow.to_mermaid(stored.workflow_schema)
    assert 'p0 -->|"variables.go == true"| p1' in diagram
    assert 'p0 -->|"otherwise"| p3' in diagram


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            {"name": "s", "phases": [{"name": "a", "condition": _term("x", "=", 1)}]},
            "phases[0] 'a'.condition: the first phase is always entered",
        ),
        (_gated({"operator": "xor", "operands": []}), "condition.operator: 'xor' is not 'and'"),
        (_gated({"operator": "and", "operands": []}), "condition.operands: must be a non-empty"),
        (
            _gated({"operator": "not", "operands": [_term("x", "=", 1), _term("y", "=", 1)]}),
            "'not' takes exactly one operand, got 2",
        ),
        (
            _gated({"operator": "and", "operands": [_term("x", "~", 1)]}),
            "condition.operands[0].operator: unknown comparison '~'",
        ),
        (_gated(_term("", "=", 1)), "condition.field: must be a dotted path"),
        (_gated(_term("a..b", "=", 1)), "condition.field: must be a dotted path"),
        (_gated(_term("x", ">", [1])), "condition.value: '>' needs a number or a string"),
        (_gated({**_term("x", "=", 1), "unit": "ms"}), "condition: unexpected key 'unit'"),
        (_gated("x > 1"), "condition: must be an object"),
        (_gated(None), "condition: must be an object"),
        (_gated(_term("x", "=", 1), fallback=["a"]), "fallback_phase: must be a phase name"),
        (
            {
                "name": "s",
                "phases": [
                    {"name": "a", "transitions": [{"to": "b"}]},
                    {"name": "b", "condition": _term("x", "=", 1)},
                ],
            },
            "the phase before it, 'a', has transitions",
        ),
    ],
)
def test_bad_dialect_is_reported_where_it_is(schema: dict[str, Any], problem: str) -> None:
    with pytest.raises(SchemaError) as caught:
        validate_schema(schema)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


# -- phase keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("nme", "did you mean 'name'?"),
        ("titel", "did you mean 'title'?"),
        ("conditon", "did you mean 'condition'?"),
        ("fallback_phse", "did you mean 'fallback_phase'?"),
        ("max_visit", "did you mean 'max_visits'?"),
        ("colour", "phase keys are name, task, transitions"),
    ],
)
def test_unknown_phase_key_is_named_with_the_closest_known_one(key: str, hint: str) -> None:
    phases: list[dict[str, Any]] = [{"name": "a"}, {"name": "b"}, {"name": "c", key: "x"}]
    if key == "nme":
        phases[2] = {"nme": "c", "title": "Third"}
    with pytest.raises(SchemaError) as caught:
        validate_schema({"name": "s", "phases": phases})
    assert any(f"unknown key {key!r} ({hint}" in p for p in caught.value.problems)
    assert all("None must be a str" not in p for p in caught.value.problems)


def test_chatcoder_format_keeps_descriptive_keys(
    storage_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("yaml")
    v11 = WorkflowEngine(storage_dir=storage_dir)
    store = v11.state_store
    assert isinstance(store, FileStateStore)
    store.schemas_dir.mkdir()
    (store.schemas_dir / "default.yaml").write_text(
        "name: default\n"
        "description: Everyday work\n"
        "phases:\n"
        "  - name: analyze\n"
        "    title: Understand the request\n"
        "    template: analyze\n"
        "    description: Pin down scope and edge cases\n"
        "  - name: code\n"
        "    title: Écrire le code ✓\n"
        "    template: code\n",
        encoding="utf-8",
    )
    iid = v11.start_workflow_instance(schema_name="default", initial_context={}, feature_id="f")
    stored = v11.get_workflow_instance_status(iid)
    assert stored is not None
    assert stored.workflow_schema["phases"][0] == {
        "name": "analyze",
        "title": "Understand the request",
        "template": "analyze",
        "description": "Pin down scope and edge cases",
    }
    v11.trigger_next_step(iid)
    assert main(["--dir", str(storage_dir), "status", iid]) == 0
    assert "code  (Écrire le code ✓)" in capsys.readouterr().out  # the title, after the phase
    assert main(["--dir", str(storage_dir), "diagram", iid]) == 0
    assert "Understand the request<br/><small>analyze</small>" in capsys.readouterr().out
