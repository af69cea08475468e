"""The ChatCoder-style example workflows in examples/workflows/, run end to end; diagrams."""

from __future__ import annotations

from pathlib import Path

import pytest

import chatflow
from chatflow import WorkflowEngine
from chatflow.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workflows"


@pytest.fixture
def engine(storage_dir: Path) -> WorkflowEngine:
    return WorkflowEngine(storage_dir, schema_dirs=[EXAMPLES])


def test_examples_are_listed(engine: WorkflowEngine) -> None:
    assert [(w.name, w.version) for w in engine.list_workflows()] == [
        ("chatcoder_feature", 1),
        ("chatcoder_gated", 1),
        ("chatcoder_hotfix", "1.1"),
    ]
    assert engine.schemas.problems() == []


def test_feature_workflow_with_test_failure_and_review_loop(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(
        initial_context={"user_request": "add login"},
        feature_id="feat_login",
        meta={"user_id": "dev_alice"},
        schema_name="chatcoder_feature",
    )
    steps = [
        ({"requirements": ["email", "password"]}, "design"),
        ({"design": "jwt"}, "code"),
        ({"diff": "+120 -3"}, "test"),
        ({"failed": 2}, "code"),  # failing tests send the work back
        ({"diff": "+4 -1"}, "test"),
        ({"failed": 0}, "review"),
        ({"verdict": "changes", "blocking_issues": ["naming"]}, "code"),  # review loops back
        ({"diff": "+2 -2"}, "test"),
        ({"failed": 0}, "review"),
        ({"verdict": "approved", "blocking_issues": []}, "summary"),
    ]
    for data, expected in steps:
        phase = engine.get_workflow_instance_status(iid).current_phase  # type: ignore[union-attr]
        engine.record_task_artifacts(iid, f"prompt for {phase}", f"answer for {phase}")
        state = engine.trigger_next_step(iid, data)
        assert (state.status, state.current_phase) == ("running", expected), data
    assert state.variables["review"]["verdict"] == "approved"
    assert state.variables["user_request"] == "add login"
    state = engine.trigger_next_step(iid, {"summary": "done"})
    assert state.status == "completed"
    assert state.visits["code"] == 3
    tasks = [entry.task for entry in state.history if entry.phase == "code"]
    assert tasks == ["code", "code--2", "code--3"]
    assert engine.get_status_info(iid)["progress"] == 1.0


def test_feature_workflow_gives_up_looping_after_max_visits(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(None, {}, "feat_loop", schema_name="chatcoder_feature")
    for data in ({}, {}, {}):  # analyze, design, code
        engine.trigger_next_step(iid, data)
    for _ in range(3):  # test fails three times: code visits 2, 3, 4
        engine.trigger_next_step(iid, {"failed": 1})
        engine.trigger_next_step(iid, {"diff": "+1"})
    state = engine.trigger_next_step(iid, {"failed": 1})  # a fifth visit of code is refused
    assert state.current_phase == "summary"
    assert state.visits["code"] == 4


def test_risky_step_waits_for_a_human(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(None, {}, "feat_risk", schema_name="chatcoder_feature")
    state = engine.trigger_next_step(iid, {"risk": 85})  # above the schema's level 70
    assert (state.status, state.current_phase) == ("paused", "design")
    state = engine.resume(iid, approved_by="lead", note="reviewed the plan")
    assert state.status == "running"


def test_hotfix_json_workflow_needs_sign_off(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(None, {}, "feat_fix", schema_name="chatcoder_hotfix")
    engine.trigger_next_step(iid, {"cause": "off by one"})
    engine.fail_phase(iid, "model returned an empty patch")
    engine.retry_phase(iid)
    engine.trigger_next_step(iid, {"diff": "+1 -1"})
    state = engine.trigger_next_step(iid, {"passed": False})
    assert state.current_phase == "code"
    engine.trigger_next_step(iid, {"diff": "+2 -1"})
    state = engine.trigger_next_step(iid, {"passed": True})
    assert (state.status, state.current_phase) == ("paused", "release")
    state = engine.reject(iid, rejected_by="lead", note="add a regression test")
    assert state.current_phase == "test"
    engine.trigger_next_step(iid, {"passed": True})
    engine.resume(iid, approved_by="lead")
    assert engine.trigger_next_step(iid).status == "completed"
    kinds = [event.kind.value for event in engine.get_workflow_history(iid)]
    for kind in ("failed", "retried", "approval_requested", "rejected", "resumed", "completed"):
        assert kind in kinds


def test_mermaid_highlights_the_path(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(None, {}, "feat_d", schema_name="chatcoder_feature")
    for data in ({}, {}, {}, {"failed": 1}):
        engine.trigger_next_step(iid, data)
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    text = chatflow.to_mermaid(state.workflow_schema, state)
    assert text.startswith("flowchart TD\n")
    assert 'p3 -->|"tests fail"| p2' in text
    assert 'p2 -.->|"after 4 visits"| p5' in text
    assert "class p0,p1,p3 done" in text
    assert "class p2 current" in text
    assert "linkStyle 0,1,2,3,4 " in text  # start->analyze->design->code->test->code


def test_mermaid_escapes_labels() -> None:
    schema = {
        "name": "q",
        "phases": [
            {"name": "a", "title": 'say "hi" <b>', "requires_approval": True},
            {
                "name": "b",
                "transitions": [
                    {"to": "$end", "when": {"path": "trigger.n", "op": ">", "value": 1}},
                    {"to": "$fail"},
                ],
            },
        ],
    }
    text = chatflow.to_mermaid(schema)
    assert 'p0{{"say #quot;hi#quot; #lt;b#gt;<br/><small>a</small>"}}' in text
    assert 'p1 -->|"trigger.n #gt; 1"| wf_end' in text
    assert 'p1 -->|"otherwise"| wf_fail' in text


def test_cli_diagram_and_workflows(
    storage_dir: Path, engine: WorkflowEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--dir", str(storage_dir), "--schema-dir", str(EXAMPLES)]
    assert main([*base, "workflows"]) == 0
    assert "chatcoder_feature" in capsys.readouterr().out
    assert main([*base, "diagram", "chatcoder_hotfix"]) == 0
    assert "release" in capsys.readouterr().out
    assert main([*base, "diagram", str(EXAMPLES / "chatcoder_feature.yaml")]) == 0
    assert "flowchart TD" in capsys.readouterr().out
    iid = engine.start_workflow_instance(None, {}, "feat_cli", schema_name="chatcoder_hotfix")
    assert main([*base, "diagram", iid]) == 0
    assert "class p0 current" in capsys.readouterr().out
    assert main([*base, "diagram", "no_such_flow"]) == 3  # not found
    assert "Schema no_such_flow not found" in capsys.readouterr().err


def test_gated_workflow_end_to_end(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(
        initial_context={}, feature_id="feat_gate", schema_name="chatcoder_gated"
    )
    with pytest.raises(chatflow.GateNotSatisfiedError) as caught:
        engine.trigger_next_step(iid)
    assert [item["kind"] for item in caught.value.missing] == [
        "artifact",
        "artifact",
        "variable",
    ]
    steps = [
        ({"design_doc": "docs/login.md"}, "code"),
        ({"tests_failed": 0}, "review"),
        ({"verdict": "changes"}, "code"),
        ({"tests_failed": 0}, "review"),
        ({"verdict": "approved"}, "release"),
    ]
    for data, expected in steps:
        engine.record_task_artifacts(iid, "prompt", "response")
        assert engine.trigger_next_step(iid, data).current_phase == expected
    open_items = engine.get_status_info(iid)["open_requirements"]
    assert [item["kind"] for item in open_items] == ["approvals"]
    engine.approve(iid, by="lead")
    engine.approve(iid, by="qa")
    assert engine.trigger_next_step(iid).status == "completed"
