"""Phase exit gates (``exit_requires``) on every path out of a phase, and the bugs of issue 9."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import chatflow
from chatflow import (
    ChatFlowError,
    EventKind,
    GateNotSatisfiedError,
    InvalidTransitionError,
    SchemaError,
    ValidationError,
    WorkflowEngine,
)
from chatflow.core.schema import validate_schema

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workflows"


def gated(gate: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "name": "gated",
        **top,
        "phases": [{"name": "design", "exit_requires": gate}, {"name": "code"}],
    }


def start(engine: WorkflowEngine, schema: dict[str, Any], **kwargs: Any) -> str:
    return engine.start_workflow_instance(schema, {}, "feat_g", meta={"user_id": "al"}, **kwargs)


def missing_of(engine: WorkflowEngine, iid: str, data: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(GateNotSatisfiedError) as caught:
        engine.trigger_next_step(iid, data)
    kinds: list[str] = [item["kind"] for item in caught.value.missing]
    return kinds


# -- each gate kind ------------------------------------------------------------------


def test_artifacts_gate(engine: WorkflowEngine) -> None:
    iid = start(engine, gated({"artifacts": ["prompt", "response"]}))
    before = engine.get_workflow_instance_status(iid)
    assert missing_of(engine, iid) == ["artifact", "artifact"]
    assert engine.get_workflow_instance_status(iid) == before  # a refusal changes nothing
    engine.record_task_artifacts(iid, "design it", "a design")
    assert engine.trigger_next_step(iid).current_phase == "code"


def test_approvals_gate_counts_distinct_people(engine: WorkflowEngine) -> None:
    iid = start(engine, gated({"approvals": 2}))
    engine.approve(iid, by="ann", note="looks fine")
    engine.approve(iid, by="ann", note="really")  # the same person twice counts once
    with pytest.raises(GateNotSatisfiedError, match="2 approvals, have 1: ann") as caught:
        engine.trigger_next_step(iid)
    assert caught.value.missing[0]["have"] == ["ann"]
    engine.approve(iid, by="bob")
    assert engine.trigger_next_step(iid).current_phase == "code"
    approved = [e for e in engine.get_workflow_history(iid) if e.kind is EventKind.APPROVED]
    assert [(e.actor, e.data["note"], e.phase) for e in approved] == [
        ("ann", "looks fine", "design"),
        ("ann", "really", "design"),
        ("bob", None, "design"),
    ]


def test_approvals_belong_to_one_visit(engine: WorkflowEngine) -> None:
    schema = {
        "name": "loop",
        "phases": [
            {"name": "review", "exit_requires": {"approvals": 1}, "max_visits": 3},
            {"name": "code", "transitions": [{"to": "review"}]},
        ],
    }
    iid = start(engine, schema)
    engine.approve(iid, by="ann")
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid)  # back in review: a new visit needs a new approval
    assert missing_of(engine, iid) == ["approvals"]


def test_variables_gate_sees_this_steps_trigger_data(engine: WorkflowEngine) -> None:
    iid = start(
        engine, gated({"variables": ["design_doc", "meta.owner"]}, merge_trigger_data="flat")
    )
    assert missing_of(engine, iid) == ["variable", "variable"]
    assert missing_of(engine, iid, {"design_doc": None, "meta": {}}) == ["variable", "variable"]
    state = engine.trigger_next_step(iid, {"design_doc": "doc.md", "meta": {"owner": "al"}})
    assert state.current_phase == "code"


def test_condition_gate(engine: WorkflowEngine) -> None:
    iid = start(engine, gated({"condition": {"path": "trigger.score", "op": ">=", "value": 8}}))
    with pytest.raises(GateNotSatisfiedError, match=r"condition trigger.score >= 8 does not hold"):
        engine.trigger_next_step(iid, {"score": 7})
    assert engine.trigger_next_step(iid, {"score": 9}).current_phase == "code"


def test_combined_gate_lists_every_missing_item(engine: WorkflowEngine) -> None:
    gate = {
        "artifacts": ["prompt", "response"],
        "approvals": 2,
        "variables": ["design_doc"],
        "condition": {"path": "trigger.tests_pass", "op": "==", "value": True},
    }
    iid = start(engine, gated(gate))
    engine.approve(iid, by="ann")
    with pytest.raises(GateNotSatisfiedError) as caught:
        engine.trigger_next_step(iid, {"tests_pass": False})
    error = caught.value
    assert isinstance(error, InvalidTransitionError) and isinstance(error, ChatFlowError)
    assert (error.instance_id, error.phase) == (iid, "design")  # type: ignore[attr-defined]
    message = str(error)
    for text in (
        "artifact 'prompt'",
        "artifact 'response'",
        "2 approvals, have 1: ann",
        "variable 'design_doc'",
        "condition trigger.tests_pass == true does not hold",
    ):
        assert text in message
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is GateNotSatisfiedError
    assert copy.missing == error.missing and str(copy) == message

    preview = engine.trigger_next_step(iid, {"tests_pass": False}, dry_run=True)  # no raise
    blocked = preview.events[-1]
    assert blocked.kind is EventKind.GATE_BLOCKED
    assert blocked.data["missing"] == error.missing
    assert preview.current_phase == "design"
    info = engine.get_status_info(iid)
    assert [item["kind"] for item in info["open_requirements"]] == [
        "artifact",
        "artifact",
        "approvals",
        "variable",
        "condition",  # judged without trigger data
    ]
    assert "open_requirements" in json.loads(json.dumps(info))


def test_status_info_requirements_shrink_as_they_are_met(engine: WorkflowEngine) -> None:
    iid = start(engine, gated({"artifacts": ["response"], "approvals": 1}))
    kinds = [item["kind"] for item in engine.get_status_info(iid)["open_requirements"]]
    assert kinds == ["artifact", "approvals"]
    engine.record_task_artifacts(iid, "p", "r")
    engine.approve(iid, by="ann")
    assert engine.get_status_info(iid)["open_requirements"] == []
    engine.trigger_next_step(iid)
    assert engine.get_status_info(iid)["open_requirements"] == []  # code has no gate


# -- every path out of a phase ---------------------------------------------------------


def test_gate_on_the_last_phase(engine: WorkflowEngine) -> None:
    schema = {"name": "last", "phases": [{"name": "only", "exit_requires": {"approvals": 1}}]}
    iid = start(engine, schema)
    assert missing_of(engine, iid) == ["approvals"]
    engine.approve(iid, by="ann")
    assert engine.trigger_next_step(iid).status == "completed"


def test_gate_on_jump_unless_forced(engine: WorkflowEngine) -> None:
    iid = start(engine, gated({"approvals": 1}))
    with pytest.raises(GateNotSatisfiedError):
        engine.jump_to(iid, "code", "skip design")
    state = engine.jump_to(iid, "code", "hotfix", actor="lead", force=True)
    assert state.current_phase == "code"
    jumped = [e for e in engine.get_workflow_history(iid) if e.kind is EventKind.JUMPED]
    assert jumped[0].data == {"to": "code", "reason": "hotfix", "forced": True}
    with pytest.raises(ValidationError, match="force"):
        engine.jump_to(iid, "design", force="yes")  # type: ignore[arg-type]


def test_jump_away_from_a_phase_waiting_to_be_entered_is_not_gated(
    engine: WorkflowEngine,
) -> None:
    schema = {
        "name": "g",
        "phases": [
            {"name": "plan"},
            {"name": "ship", "requires_approval": True, "exit_requires": {"approvals": 1}},
        ],
    }
    iid = start(engine, schema)
    engine.trigger_next_step(iid)  # waits for approval to enter ship: its work never began
    assert engine.jump_to(iid, "plan", "not yet").current_phase == "plan"


def test_fork_requests_approval_and_starts_a_fresh_gated_visit(engine: WorkflowEngine) -> None:
    schema = {
        "name": "g",
        "phases": [
            {"name": "plan", "requires_approval": True},
            {"name": "build", "requires_approval": True, "exit_requires": {"approvals": 1}},
        ],
    }
    iid = start(engine, schema)
    engine.resume(iid, approved_by="boss")
    engine.trigger_next_step(iid)
    engine.resume(iid, approved_by="boss")
    engine.approve(iid, by="ann")
    assert engine.trigger_next_step(iid).status == "completed"

    first = engine.get_workflow_instance_status(engine.fork(iid, at=0))
    assert first is not None and (first.status, first.current_phase) == ("paused", "plan")
    assert engine.resume(first.instance_id, approved_by="boss").status == "created"

    child_id = engine.fork(iid, at=1)
    child = engine.get_workflow_instance_status(child_id)
    assert child is not None and (child.status, child.current_phase) == ("paused", "build")
    kinds = [e.kind for e in engine.get_workflow_history(child_id)]
    assert kinds[-1] is EventKind.APPROVAL_REQUESTED
    engine.resume(child_id, approved_by="boss")
    assert missing_of(engine, child_id) == ["approvals"]  # ann approved the parent's visit


def test_risky_last_step_waits_for_approval(engine: WorkflowEngine) -> None:
    schema = {"name": "risky", "phases": [{"name": "a"}, {"name": "b"}]}
    iid = start(engine, schema, automation_level=10)
    engine.trigger_next_step(iid)
    state = engine.trigger_next_step(iid, {"risk": 99})
    assert (state.status, state.current_phase) == ("paused", "b")
    assert state.pause is not None and state.pause["risk"] == 99
    assert state.open_entry is not None and state.open_entry.status == "awaiting_approval"
    state = engine.resume(iid, approved_by="boss")
    assert state.status == "completed"
    assert state.history[-1].trigger_data_snapshot == {"risk": 99}
    kinds = [e.kind.value for e in engine.get_workflow_history(iid)]
    assert kinds[-4:] == ["approval_requested", "resumed", "phase_completed", "completed"]


def test_rejected_risky_last_step_redoes_the_phase(engine: WorkflowEngine) -> None:
    schema = {"name": "risky", "phases": [{"name": "a"}, {"name": "b"}]}
    iid = start(engine, schema, automation_level=10)
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid, {"risk": 99})
    state = engine.reject(iid, rejected_by="boss", note="too risky")
    assert (state.status, state.current_phase) == ("running", "b")
    assert [(e.phase, e.status) for e in state.history] == [
        ("a", "completed"),
        ("b", "rejected"),
        ("b", "running"),
    ]
    assert engine.trigger_next_step(iid, {"risk": 5}).status == "completed"


# -- the listed bugs -------------------------------------------------------------------


def test_exit_requires_is_validated() -> None:
    with pytest.raises(SchemaError) as caught:
        validate_schema(
            gated(
                {
                    "artifacts": ["diff"],
                    "approvals": -1,
                    "variables": ["a..b"],
                    "condition": {"path": "nowhere.x", "op": "=="},
                    "reviewers": 2,
                }
            )
        )
    problems = "\n".join(caught.value.problems)  # type: ignore[attr-defined]
    for where in ("artifacts", "approvals", "variables", "condition.path", "'reviewers'"):
        assert where in problems
    with pytest.raises(SchemaError, match="exit_requires: must be an object"):
        validate_schema(gated([]))  # type: ignore[arg-type]
    phase = validate_schema(gated({"approvals": 2})).phase("design")
    assert phase.exit_requires.approvals == 2


def test_start_from_a_str_path(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(str(EXAMPLES / "chatcoder_feature.yaml"), {}, "feat_s")
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.workflow_name == "chatcoder_feature"
    with pytest.raises(SchemaError, match="cannot read"):
        engine.start_workflow_instance("no/such/file.yaml", {}, "feat_s")


@pytest.mark.parametrize("bad", [None, [], 42, b"x"])
def test_register_schema_rejects_non_schemas(engine: WorkflowEngine, bad: object) -> None:
    with pytest.raises(SchemaError, match="must be a dict or a file path"):
        engine.register_schema(bad)  # type: ignore[arg-type]


def test_reject_and_resume_on_a_running_instance_say_why(engine: WorkflowEngine) -> None:
    iid = start(engine, {"name": "x", "phases": [{"name": "a"}, {"name": "b"}]})
    engine.trigger_next_step(iid)
    for action in (engine.reject, engine.resume):
        with pytest.raises(InvalidTransitionError) as caught:
            action(iid)
        assert "only a paused instance can" in str(caught.value)
        assert "no further steps" not in str(caught.value)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [(".json", "[" * 100_000 + "]" * 100_000), (".yaml", "- " * 100_000 + "x")],
)
def test_deeply_nested_schema_file_is_a_schema_error(
    tmp_path: Path, engine: WorkflowEngine, suffix: str, text: str
) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(SchemaError, match="nested too deeply"):
        engine.register_schema(path)
    with pytest.raises(SchemaError):
        chatflow.load_schema(path)


def test_mermaid_refuses_an_instance_of_another_workflow(engine: WorkflowEngine) -> None:
    other = start(engine, {"name": "other", "phases": [{"name": "elsewhere"}]})
    state = engine.get_workflow_instance_status(other)
    with pytest.raises(ValidationError, match="runs workflow 'other'"):
        chatflow.to_mermaid(gated({}), instance=state)


def test_mermaid_marks_gated_phases(engine: WorkflowEngine) -> None:
    assert "exit gate" in chatflow.to_mermaid(gated({"approvals": 1}))
    assert "exit gate" not in chatflow.to_mermaid(gated({}))


def test_approve_checks_its_arguments(engine: WorkflowEngine) -> None:
    iid = start(engine, gated({"approvals": 1}))
    for by in ("", "  ", None, 3):
        with pytest.raises(ValidationError, match="by must"):
            engine.approve(iid, by=by)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="note"):
        engine.approve(iid, by="ann", note=3)  # type: ignore[arg-type]
    with pytest.raises(chatflow.InstanceNotFoundError):
        engine.approve("wfi_missing", by="ann")
    engine.approve(iid, by="ann")
    engine.trigger_next_step(iid)  # code asks for no approvals
    with pytest.raises(InvalidTransitionError, match="phase 'code' asks for no approvals"):
        engine.approve(iid, by="ann")
    engine.cancel(iid)
    with pytest.raises(InvalidTransitionError, match="cancelled"):
        engine.approve(iid, by="ann")
    with pytest.raises(SchemaError, match="path is empty"):
        engine.start_workflow_instance("", {}, "feat_g")
