"""The event log: the head is its projection, artifacts keep their versions, and
compaction changes nothing a reader can see."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from chatflow import CorruptStateError, InvalidTransitionError, ValidationError, WorkflowEngine
from chatflow.errors import UnsupportedOperationError
from chatflow.storage import IWorkflowStateStore, _log
from chatflow.testing._check import parametrize, raises

CAPABILITY = "event_log"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_a_returned_state_loads_older_history_on_demand",
    "test_compaction_keeps_the_projection_and_the_chain",
    "test_head_is_the_projection_of_the_log",
    "test_lone_surrogates_are_refused_and_change_nothing",
    "test_recording_again_keeps_the_earlier_version",
    "test_unusable_stored_state_is_corrupt_and_named",
]

_SCHEMA = {
    "name": "loop",
    "phases": [
        {"name": "plan"},
        {"name": "review", "requires_approval": True},
        {
            "name": "build",
            "max_retries": 2,
            "transitions": [
                {"to": "plan", "when": {"path": "trigger.again", "op": "==", "value": True}},
                {"to": "$end"},
            ],
        },
    ],
}
_OPERATIONS = ["trigger"] * 8 + ["pause", "resume", "fail", "retry", "jump", "fork", "record"]
_OPERATIONS += ["cancel"]


def _projection_matches(store: IWorkflowStateStore, instance_id: str) -> None:
    """The stored head is exactly what replaying the stored log gives."""
    found = store._read(instance_id)
    assert found is not None
    head, events = found
    assert _log.chain_problem(events) is None
    assert _log.head_problem(head, events) is None
    assert store.verify(instance_id) is None


def _act(engine: WorkflowEngine, iid: str, operation: str, rng: random.Random) -> str | None:
    """Run one operation (refused ones are fine); return a forked child's id."""
    data = {"again": rng.random() < 0.4}
    actions: dict[str, Any] = {
        "trigger": lambda: engine.trigger_next_step(iid, data),
        "pause": lambda: engine.pause(iid, "break"),
        "resume": lambda: engine.resume(iid, approved_by="boss"),
        "fail": lambda: engine.fail_phase(iid, "boom"),
        "retry": lambda: engine.retry_phase(iid),
        "jump": lambda: engine.jump_to(iid, rng.choice(["plan", "review", "build"])),
        "cancel": lambda: engine.cancel(iid, "stop"),
        "fork": lambda: engine.fork(iid, at=0),
        "record": lambda: engine.record_task_artifacts(iid, f"p{rng.random()}", "r"),
    }
    try:
        result = actions[operation]()
    except (InvalidTransitionError, ValidationError, UnsupportedOperationError):
        return None  # refused, or a fork into a store without the "copy" capability
    return result if isinstance(result, str) else None


@parametrize("seed", range(3))
def test_head_is_the_projection_of_the_log(store: IWorkflowStateStore, seed: int) -> None:
    rng = random.Random(seed)
    engine = WorkflowEngine(store=store)
    ids: list[str] = [engine.start_workflow_instance(_SCHEMA, {"seed": seed}, "feat_log")]
    for _ in range(40):
        iid = rng.choice(ids)
        child = _act(engine, iid, rng.choice(_OPERATIONS), rng)
        ids += [child] if child else []
        for each in {iid, *([child] if child else [])}:
            _projection_matches(store, each)
            state = engine.get_workflow_instance_status(each)
            assert state is not None
            assert store.load_state(each) == state.to_dict()
    statuses = Counter(store.load_state(iid)["status"] for iid in ids)  # type: ignore[index]
    rollup = engine.get_feature_status("feat_log")
    assert rollup["total_instances"] == len(ids)
    for status, count in statuses.items():
        assert rollup[f"{status}_count"] == count


def test_a_returned_state_loads_older_history_on_demand(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(_SCHEMA, {}, "feat_log")
    for again in (True, False, True, False, True):
        if engine.trigger_next_step(iid, {"again": again}).status == "paused":
            engine.resume(iid, approved_by="boss")
    returned = engine.trigger_next_step(iid, {"n": 1})
    full = engine.get_workflow_instance_status(iid)
    assert full is not None
    assert list(returned.history) == list(full.history)
    assert returned.history == full.history and len(returned.events) == len(full.events)
    assert returned.to_dict() == full.to_dict()


def test_recording_again_keeps_the_earlier_version(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(_SCHEMA, {}, "feat_log")
    engine.record_task_artifacts(iid, "first prompt", "first", phase_name="plan")
    engine.record_task_artifacts(iid, "second prompt", "second", phase_name="plan")
    latest = engine.get_task_artifacts(iid, "plan")
    first = engine.get_task_artifacts(iid, "plan", version=1)
    assert latest is not None and latest.prompt == "second prompt"
    assert first is not None and (first.prompt, first.response) == ("first prompt", "first")
    assert engine.get_task_artifacts(iid, "plan", version=3) is None
    assert engine.verify(iid) is None


def test_compaction_keeps_the_projection_and_the_chain(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(_SCHEMA, {}, "feat_log")
    engine.record_task_artifacts(iid, "p", "r", phase_name="plan")
    for _ in range(12):
        if engine.trigger_next_step(iid, {"again": True}).status == "paused":
            engine.resume(iid, approved_by="boss")
    before = engine.get_workflow_instance_status(iid)
    digest = store.instance_digest(iid)
    assert engine.compact(iid, keep_last=3) > 0
    assert engine.get_workflow_instance_status(iid) == before
    assert engine.verify(iid) is None and store.instance_digest(iid) == digest
    assert len(store._read(iid)[1]) == 4  # type: ignore[index]
    assert engine.get_task_artifacts(iid, "plan") is not None
    engine.trigger_next_step(iid)
    assert engine.verify(iid) is None
    assert engine.compact(iid, keep_last=0) > 0 and engine.verify(iid) is None


def test_lone_surrogates_are_refused_and_change_nothing(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(_SCHEMA, {}, "feat_log")
    before = engine.get_workflow_instance_status(iid)
    with raises(ValidationError):
        store.save_task_artifacts("feat_log", iid, "plan", {}, "\ud800", "r")
    assert engine.get_workflow_instance_status(iid) == before
    assert engine.trigger_next_step(iid).current_phase == "review"


@parametrize(
    "damage",
    [
        {"workflow_schema": {}},
        {"workflow_schema": {"phases": "x"}},
        {"variables": 5},
        {"history": [{"phase": 1}]},
    ],
    ids=["no-schema", "bad-phases", "wrong-type", "bad-entry"],
)
def test_unusable_stored_state_is_corrupt_and_named(
    store: IWorkflowStateStore, damage: dict[str, Any]
) -> None:
    engine = WorkflowEngine(store=store)
    good = engine.start_workflow_instance(_SCHEMA, {}, "feat_log")
    state = engine.get_workflow_instance_status(good)
    assert state is not None
    bad = {**state.to_dict(), "instance_id": "wfi_damaged", **damage}
    store.create_state(bad)
    for call in (engine.get_workflow_instance_status, engine.trigger_next_step):
        with raises(CorruptStateError, match="wfi_damaged"):
            call("wfi_damaged")
    rollup = engine.get_feature_status("feat_log")  # the rest of the feature still counts
    assert rollup["total_instances"] == 2 and rollup["paused_count"] + rollup["created_count"] >= 1
