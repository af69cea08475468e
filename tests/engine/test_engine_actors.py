"""Who acted, through the library: every call takes ``actor=`` (approvals their own
``by=``/``approved_by=``/``rejected_by=``); left out, the instance's meta names the
actor, as before. A manual resume is never an approval (issue 20)."""

from __future__ import annotations

import getpass
from typing import Any

import pytest

from chatflow import EventKind, WorkflowEngine, views
from chatflow.cli.context import os_user

FLOW: dict[str, Any] = {"name": "flow", "phases": [{"name": "a"}, {"name": "b"}]}


def actor_of_kind(engine: WorkflowEngine, iid: str, kind: EventKind) -> list[str | None]:
    return [e.actor for e in engine.get_workflow_history(iid) if e.kind is kind]


def test_new_actor_arguments_are_recorded(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(FLOW, {}, "f", meta={"user_id": "al"}, actor="starter")
    engine.record_task_artifacts(iid, "p", "r", actor="recorder")
    engine.trigger_next_step(iid, {"x": 1}, meta={"user_id": "meta_user"}, actor="stepper")
    child = engine.fork(iid, at=0, actor="forker")
    assert actor_of_kind(engine, iid, EventKind.STARTED) == ["starter"]
    assert actor_of_kind(engine, iid, EventKind.TASK_RECORDED) == ["recorder"]
    assert actor_of_kind(engine, iid, EventKind.PHASE_COMPLETED) == ["stepper"]
    assert actor_of_kind(engine, iid, EventKind.FORKED) == ["forker"]
    assert actor_of_kind(engine, child, EventKind.STARTED) == ["forker"]
    recorded = engine.get_workflow_history(iid)[2]
    assert (recorded.kind, recorded.data) == (
        EventKind.TASK_RECORDED,
        {"task": "a", "history_index": 0},
    )


def test_without_actor_the_meta_names_who_acted_as_before(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(FLOW, {}, "f", meta={"user_id": "al"})
    engine.record_task_artifacts(iid, "p", "r")
    engine.pause(iid)
    engine.resume(iid)
    engine.trigger_next_step(iid, meta={"actor": "bo"})
    child = engine.fork(iid, at=0)
    events = engine.get_workflow_history(iid)
    assert [(e.kind.value, e.actor) for e in events] == [
        ("started", "al"),
        ("phase_entered", "al"),
        ("task_recorded", "al"),
        ("paused", "al"),
        ("resumed", "al"),
        ("phase_completed", "bo"),
        ("phase_entered", "bo"),
        ("forked", "bo"),  # the trigger's meta was merged into the instance's
    ]
    assert actor_of_kind(engine, child, EventKind.STARTED) == ["bo"]


def test_resuming_a_manual_pause_is_never_an_approval(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(FLOW, {}, "f")
    engine.pause(iid, "lunch", actor="carol")
    state = engine.resume(iid, approved_by="dan", note="back")  # nothing waited for approval
    resumed = engine.get_workflow_history(iid)[-1]
    assert (resumed.kind, resumed.actor) == (EventKind.RESUMED, "dan")
    assert resumed.data == {"kind": "manual", "approved_by": None, "note": "back"}
    assert [row["approvals"] for row in views.instance_view(state)["timeline"]] == [[]]
    (shown,) = views.history_view([resumed])
    assert (shown["kind"], shown["data"]["approved_by"]) == ("resumed", None)


def test_a_stored_manual_resume_naming_approved_by_is_still_no_decision(
    engine: WorkflowEngine,
) -> None:
    """Logs written before the fix hold ``approved_by`` on manual resumes: the view
    decides by the pause's kind, not by the name."""
    iid = engine.start_workflow_instance(FLOW, {}, "f")
    engine.pause(iid)
    state = engine.resume(iid, actor="dan")
    state.events[-1].data["approved_by"] = "dan"
    assert [row["approvals"] for row in views.instance_view(state)["timeline"]] == [[]]


def test_os_user_falls_back_when_the_system_names_no_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "zoe")
    assert os_user() == "zoe"

    def nobody() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert os_user().startswith("uid ")
    monkeypatch.setattr(getpass, "getuser", lambda: "bad\nname")
    assert os_user().startswith("uid ")
