"""Live upgrade of running instances to another version of their workflow."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from chatflow import (
    EventKind,
    GateNotSatisfiedError,
    SchemaNotFoundError,
    UpgradeRefusedError,
    WorkflowEngine,
)
from chatflow.cli import main

V1: dict[str, Any] = {
    "name": "feature",
    "version": 1,
    "phases": [{"name": "design"}, {"name": "code", "max_retries": 3}, {"name": "review"}],
}
V2: dict[str, Any] = {
    "name": "feature",
    "version": 2,
    "phases": [
        {"name": "design"},
        {"name": "implement", "max_retries": 1},
        {"name": "test"},
        {"name": "review", "exit_requires": {"approvals": 1}},
    ],
}


@pytest.fixture
def engine(storage_dir: Path) -> WorkflowEngine:
    engine = WorkflowEngine(storage_dir)
    engine.register_schema(V1)
    engine.register_schema(V2)
    return engine


def start(engine: WorkflowEngine, **kwargs: Any) -> str:
    return engine.start_workflow_instance(
        None,
        {},
        "feat_u",
        meta={"user_id": "al"},
        schema_name="feature",
        schema_version=1,
        **kwargs,
    )


def reasons_of(engine: WorkflowEngine, iid: str, **kwargs: Any) -> list[str]:
    before = engine.get_workflow_instance_status(iid)
    with pytest.raises(UpgradeRefusedError) as caught:
        engine.upgrade_instance(iid, to_version=2, **kwargs)
    assert engine.get_workflow_instance_status(iid) == before  # a refusal changes nothing
    reasons: list[str] = caught.value.reasons
    return reasons


def test_upgrade_moves_a_running_instance_and_records_it(engine: WorkflowEngine) -> None:
    iid = start(engine)
    engine.trigger_next_step(iid)
    engine.record_task_artifacts(iid, "p", "r")
    preview = engine.upgrade_instance(
        iid, to_version=2, phase_map={"code": "implement"}, dry_run=True
    )
    assert preview.current_phase == "implement"
    assert engine.get_workflow_instance_status(iid).current_phase == "code"  # type: ignore[union-attr]

    state = engine.upgrade_instance(iid, to_version=2, phase_map={"code": "implement"}, actor="ops")
    assert (state.current_phase, state.status) == ("implement", "running")
    assert state.visits == {"design": 1, "implement": 1}
    assert [e.phase for e in state.history] == ["design", "implement"]
    event = engine.get_workflow_history(iid)[-1]
    assert (event.kind, event.actor) == (EventKind.SCHEMA_UPGRADED, "ops")
    assert event.data["from"]["schema_version"] == 1
    assert event.data["to"]["schema_version"] == 2
    assert (event.data["phase_map"], event.data["by"]) == ({"code": "implement"}, "ops")
    info = engine.get_status_info(iid)
    assert (info["schema_version"], info["path"]) == (2, ["design", "implement", "test", "review"])
    # It now follows version 2: a new phase, and the new exit gate of review.
    assert engine.trigger_next_step(iid).current_phase == "test"
    assert engine.trigger_next_step(iid).current_phase == "review"
    with pytest.raises(GateNotSatisfiedError):
        engine.trigger_next_step(iid)
    engine.approve(iid, by="ann")
    assert engine.trigger_next_step(iid).status == "completed"


def test_each_refusal_reason(engine: WorkflowEngine) -> None:
    iid = start(engine)
    engine.trigger_next_step(iid)  # in code, which version 2 calls implement
    (reason,) = reasons_of(engine, iid)
    assert "current phase 'code' has no counterpart in version 2" in reason
    reasons = reasons_of(engine, iid, phase_map={"nope": "implement", "code": "gone"})
    assert "the phase map renames 'nope', which version 1 lacks" in reasons
    assert "the phase map names 'gone', which version 2 lacks" in reasons
    for _ in range(2):
        engine.fail_phase(iid, "boom")
        engine.retry_phase(iid)
    (reason,) = reasons_of(engine, iid, phase_map={"code": "implement"})
    assert reason == "phase 'implement' was retried 2 times; version 2 allows max_retries 1"

    done = start(engine)
    engine.cancel(done)
    assert "it is cancelled" in reasons_of(engine, done)[0]
    with pytest.raises(SchemaNotFoundError):
        engine.upgrade_instance(done, to_version=7)

    fresh = start(engine)
    engine.upgrade_instance(fresh, to_version=2)
    assert reasons_of(engine, fresh) == ["it already runs version 2"]


def test_refused_when_visits_exceed_the_new_limit(engine: WorkflowEngine) -> None:
    looping = {
        "name": "loop",
        "version": 1,
        "phases": [
            {"name": "code"},
            {
                "name": "review",
                "transitions": [
                    {"to": "$end", "when": {"path": "trigger.done", "op": "exists"}},
                    {"to": "code"},
                ],
            },
        ],
    }
    engine.register_schema(looping)
    limited = {**looping, "version": 2}
    limited["phases"] = [{"name": "code", "max_visits": 2}, looping["phases"][1]]
    engine.register_schema(limited)
    iid = engine.start_workflow_instance(None, {}, "feat_u", schema_name="loop", schema_version=1)
    for _ in range(4):
        engine.trigger_next_step(iid)
    (reason,) = reasons_of(engine, iid)
    assert reason == "phase 'code' was visited 3 times; version 2 allows max_visits 2"


def test_a_phase_that_now_needs_approval_waits_for_it_unless_forced(
    engine: WorkflowEngine,
) -> None:
    """Upgrading is one more way into a phase: its approval to enter is honoured."""
    gated = {**V1, "version": 2}
    gated["phases"] = [{"name": "design", "requires_approval": True}, *V1["phases"][1:]]
    engine.register_schema(gated)
    iid = start(engine)
    state = engine.upgrade_instance(iid, to_version=2, actor="ops")
    assert (state.status, state.current_phase) == ("paused", "design")
    assert state.pause is not None and state.pause["kind"] == "approval"
    assert state.open_entry is not None and state.open_entry.status == "awaiting_approval"
    kinds = [e.kind for e in engine.get_workflow_history(iid)][-2:]
    assert kinds == [EventKind.SCHEMA_UPGRADED, EventKind.APPROVAL_REQUESTED]
    assert engine.resume(iid, approved_by="boss").status == "created"

    forced = start(engine)
    state = engine.upgrade_instance(forced, to_version=2, actor="ops", force=True)
    assert (state.status, state.pause) == ("created", None)
    override = engine.get_workflow_history(forced)[-1]
    assert (override.kind, override.actor) == (EventKind.APPROVAL_OVERRIDDEN, "ops")
    assert override.data == {"reasons": ["phase 'design' requires approval"]}

    held = start(engine)
    engine.pause(held, "lunch")
    (reason,) = reasons_of(engine, held)
    assert "'design' requires approval in version 2" in reason and "paused by hand" in reason


def test_limits_reached_but_not_exceeded_may_upgrade(engine: WorkflowEngine) -> None:
    """A limit binds the next visit or retry: having used it up is not a violation."""
    looping = {
        "name": "loop",
        "version": 1,
        "phases": [
            {"name": "code"},
            {
                "name": "review",
                "transitions": [
                    {"to": "$end", "when": {"path": "trigger.done", "op": "exists"}},
                    {"to": "code"},
                ],
            },
        ],
    }
    engine.register_schema(looping)
    limited = {**looping, "version": 2}
    limited["phases"] = [{"name": "code", "max_visits": 3, "max_retries": 1}, looping["phases"][1]]
    engine.register_schema(limited)

    def looped(times: int) -> str:
        iid = engine.start_workflow_instance(None, {}, "f", schema_name="loop", schema_version=1)
        for _ in range(times):
            engine.trigger_next_step(iid)
            engine.trigger_next_step(iid)
        engine.fail_phase(iid, "boom")
        engine.retry_phase(iid)
        return iid

    at_limits = looped(1)  # code: visits 1 + 1 loop + 1 retry = 3, retries 1
    state = engine.upgrade_instance(at_limits, to_version=2)
    assert (state.visits["code"], state.retries["code"]) == (3, 1)
    assert state.workflow_schema["version"] == 2
    over = looped(2)
    assert reasons_of(engine, over) == [
        "phase 'code' was visited 4 times; version 2 allows max_visits 3"
    ]


def test_finished_and_failed_instances_are_refused_with_their_status(
    engine: WorkflowEngine,
) -> None:
    done = start(engine)
    for _ in range(3):
        engine.trigger_next_step(done)
    failed = start(engine)
    engine.fail_phase(failed, "boom")
    cancelled = start(engine)
    engine.cancel(cancelled)
    for iid, status in ((done, "completed"), (failed, "failed"), (cancelled, "cancelled")):
        reasons = reasons_of(engine, iid)
        assert f"it is {status}; only created, running or paused instances move" in reasons


def test_resume_checks_the_gate_of_the_new_version(engine: WorkflowEngine) -> None:
    iid = start(engine, automation_level=10)
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid)
    state = engine.trigger_next_step(iid, {"risk": 90})  # would complete: waits for approval
    assert (state.status, state.current_phase) == ("paused", "review")
    engine.upgrade_instance(iid, to_version=2, phase_map={"code": "implement"})
    with pytest.raises(GateNotSatisfiedError, match="1 approval, have 0"):
        engine.resume(iid, approved_by="boss")
    assert engine.get_workflow_instance_status(iid).status == "paused"  # type: ignore[union-attr]
    engine.approve(iid, by="ann")
    assert engine.resume(iid, approved_by="boss").status == "completed"


def test_bulk_upgrade_dry_run_touches_nothing(engine: WorkflowEngine) -> None:
    ready = start(engine)  # in design: upgradable as is
    stuck = start(engine)
    engine.trigger_next_step(stuck)  # in code: needs a map
    finished = start(engine)
    engine.cancel(finished)
    other = engine.start_workflow_instance({"name": "other", "phases": [{"name": "a"}]}, {}, "f2")
    before = {i: engine.get_workflow_instance_status(i) for i in (ready, stuck, other)}
    outcomes = engine.upgrade_instances(to_version=2, workflow_name="feature", dry_run=True)
    assert [(o.instance_id, o.upgraded, o.dry_run) for o in outcomes] == [
        (ready, True, True),
        (stuck, False, True),
    ]
    assert "no counterpart" in outcomes[1].reasons[0]
    assert {i: engine.get_workflow_instance_status(i) for i in before} == before
    outcomes = engine.upgrade_instances(to_version=2, feature_id="feat_u")
    assert [o.upgraded for o in outcomes] == [True, False]
    assert outcomes[0].to_dict()["from_version"] == 1
    state = engine.get_workflow_instance_status(ready)
    assert state is not None and state.workflow_schema["version"] == 2


def test_refusal_pickles(engine: WorkflowEngine) -> None:
    iid = start(engine)
    engine.cancel(iid)
    with pytest.raises(UpgradeRefusedError) as caught:
        engine.upgrade_instance(iid, to_version=2)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.reasons == caught.value.reasons


def test_upgrade_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()

    for schema in (V1, V2):
        (schemas / f"v{schema['version']}.json").write_text(json.dumps(schema))
    storage = tmp_path / ".chatflow"
    engine = WorkflowEngine(storage, schema_dirs=[schemas])
    ready = engine.start_workflow_instance(None, {}, "f", schema_name="feature", schema_version=1)
    stuck = engine.start_workflow_instance(None, {}, "f", schema_name="feature", schema_version=1)
    engine.trigger_next_step(stuck)
    base = ["--dir", str(storage), "--schema-dir", str(schemas), "upgrade"]

    assert main([*base, "--all", "--to", "2", "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert f"{ready}  would upgrade from version 1" in out and "no counterpart" in out
    assert "1 would upgrade, 0 unchanged, 1 refused (of 2 active)" in out
    assert engine.get_workflow_instance_status(ready).workflow_schema["version"] == 1  # type: ignore[union-attr]

    assert main([*base, stuck, "--to", "2", "--map", "code=implement"]) == 0
    assert f"upgraded {stuck} to version 2" in capsys.readouterr().out
    assert main([*base, stuck, "--to", "2"]) == 1
    assert "already runs version 2" in capsys.readouterr().err
    assert main([*base, "--feature", "f", "--to", "2"]) == 0  # stuck is there already
    out = capsys.readouterr().out
    assert f"{stuck}  unchanged" in out and "1 upgraded, 1 unchanged, 0 refused" in out
    assert main([*base, "--to", "2"]) == 2
    assert main([*base, ready, "--to", "2", "--map", "oops"]) == 2
    assert "OLD=NEW" in capsys.readouterr().err
    assert main([*base, "--all", "--to", ""]) == 1
    assert "--to must be" in capsys.readouterr().err  # the flag, not the argument
    assert main([*base, "--all", "--to", "2", "--map", "="]) == 2  # a malformed id: usage
    assert "invalid phase ''" in capsys.readouterr().err


def test_bulk_upgrade_counts_instances_at_the_target_as_unchanged(engine: WorkflowEngine) -> None:
    """Re-running a bulk upgrade is not a failure: those already there are unchanged."""
    moved = start(engine)
    engine.upgrade_instance(moved, to_version=2)
    fresh = start(engine)
    (first, second) = sorted(engine.upgrade_instances(to_version=2), key=lambda o: o.upgraded)
    assert (first.instance_id, first.upgraded, first.unchanged, first.reasons) == (
        moved,
        False,
        True,
        (),
    )
    assert (second.instance_id, second.upgraded, second.unchanged) == (fresh, True, False)
    assert first.to_dict()["unchanged"] is True
    assert all(o.unchanged for o in engine.upgrade_instances(to_version=2))
