"""Progress, as the CLI, the page and MCP show it: a loop or a failure never reads 100 %."""

from __future__ import annotations

from chatflow import WorkflowEngine

LOOP = {
    "name": "loop",
    "phases": [
        {"name": "code"},
        {
            "name": "test",
            "transitions": [
                {"to": "code", "when": {"path": "trigger.passed", "op": "==", "value": False}},
                {"to": "$end"},
            ],
        },
    ],
}


def test_a_loop_back_from_the_last_phase_is_not_finished(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(LOOP, {}, "feat_p")
    assert engine.get_status_info(iid)["progress"] == 0.0
    engine.trigger_next_step(iid)  # code done: at test
    assert engine.get_status_info(iid)["progress"] == 0.5
    state = engine.trigger_next_step(iid, {"passed": False})  # tests failed: back to code
    assert state.current_phase == "code"
    assert engine.get_status_info(iid)["progress"] == 0.5  # test done, code to do again
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid, {"passed": True})
    assert engine.get_status_info(iid)["progress"] == 1.0


def test_a_failed_instance_never_reads_as_finished(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(LOOP, {}, "feat_p")
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid, {"passed": False})
    engine.trigger_next_step(iid)  # code done again: at test, every phase completed once
    engine.fail_phase(iid, "tests crashed")
    info = engine.get_status_info(iid)
    assert info["status"] == "failed"
    assert info["progress"] == 0.5
