"""Property tests: random valid schemas driven by random operations stay consistent,
refused operations change nothing, and everything reads back the same in a fresh process."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatflow import (
    EventKind,
    InvalidTransitionError,
    ValidationError,
    WorkflowEngine,
    WorkflowEvent,
    WorkflowInstanceState,
)
from chatflow.core.definition import Workflow
from chatflow.core.schema import validate_schema
from chatflow.storage.memory import MemoryStore

# Operation -> weight; cancelling ends everything, so it is rare.
OPERATIONS = {"trigger": 12, "dry_run": 2, "pause": 2, "resume": 3, "reject": 1, "fail": 2}
OPERATIONS |= {"retry": 2, "cancel": 0.3, "jump": 1, "approve": 2, "record": 2, "force_jump": 0.5}


def random_schema(rng: random.Random) -> Workflow:
    """A valid schema: a chain (so every phase is reachable and can exit) plus random
    conditional branches, loops, visit limits, approvals, retry limits and exit gates."""
    count = rng.randint(1, 5)
    names = [f"p{i}" for i in range(count)]
    targets = [*names, "$end", "$fail"]
    phases: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        phase: dict[str, Any] = {"name": name}
        following = names[index + 1] if index + 1 < count else "$end"
        if rng.random() < 0.6:
            branches = [
                {"to": rng.choice(targets), "when": random_condition(rng)}
                for _ in range(rng.randint(1, 2))
            ]
            phase["transitions"] = [*branches, {"to": following}]
        if rng.random() < 0.3:
            phase["max_visits"] = rng.randint(1, 3)
            phase["fallback"] = rng.choice(targets)
        if rng.random() < 0.2:
            phase["requires_approval"] = True
        if rng.random() < 0.3:
            phase["max_retries"] = rng.randint(0, 2)
        if rng.random() < 0.3:
            gates = [
                ("approvals", rng.randint(1, 2)),
                ("artifacts", ["prompt"]),
                ("condition", {"path": "trigger.x", "op": "!=", "value": 2}),
            ]
            phase["exit_requires"] = dict(rng.sample(gates, rng.randint(1, 3)))
        phases.append(phase)
    merge = rng.choice(["none", "phase", "flat"])
    return validate_schema({"name": "random", "merge_trigger_data": merge, "phases": phases})


def random_condition(rng: random.Random) -> dict[str, Any]:
    leaf = {"path": "trigger.x", "op": rng.choice(["==", "<", ">=", "!="]), "value": 1}
    choice = rng.random()
    if choice < 0.5:
        return leaf
    if choice < 0.7:
        return {"not": leaf}
    other = {"path": "variables.p0.x", "op": "in", "value": [0, 2]}
    return {rng.choice(["all", "any"]): [leaf, other]}


def apply(engine: WorkflowEngine, iid: str, operation: str, rng: random.Random) -> None:
    """Run one operation; refused ones raise and must leave the instance unchanged."""
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    data = {"x": rng.randint(0, 2), "risk": rng.choice([0, 50, 90])}
    actions = {
        "trigger": lambda: engine.trigger_next_step(iid, data, meta={"user_id": "u"}),
        "dry_run": lambda: engine.trigger_next_step(iid, data, dry_run=True),
        "pause": lambda: engine.pause(iid, "break"),
        "resume": lambda: engine.resume(iid, approved_by="boss"),
        "reject": lambda: engine.reject(iid, rejected_by="boss"),
        "fail": lambda: engine.fail_phase(iid, "boom"),
        "retry": lambda: engine.retry_phase(iid),
        "cancel": lambda: engine.cancel(iid, "stop"),
        "jump": lambda: engine.jump_to(iid, rng.choice(state.workflow_schema["phases"])["name"]),
        "force_jump": lambda: engine.jump_to(
            iid, rng.choice(state.workflow_schema["phases"])["name"], actor="lead", force=True
        ),
        "approve": lambda: engine.approve(iid, by=rng.choice(["ann", "bob"])),
        "record": lambda: engine.record_task_artifacts(iid, "p", "r"),
    }
    try:
        actions[operation]()
    except (InvalidTransitionError, ValidationError):
        assert engine.get_workflow_instance_status(iid) == state, operation
    if operation == "dry_run":
        assert engine.get_workflow_instance_status(iid) == state


def check_consistent(state: WorkflowInstanceState, engine: WorkflowEngine) -> None:
    open_entries = [entry for entry in state.history if entry.ended_at is None]
    if state.status.is_finished:
        assert open_entries == [], state.status
    else:
        assert len(open_entries) == 1 and state.history[-1].ended_at is None
    assert state.current_phase == state.history[-1].phase
    assert (state.status == "paused") == (state.pause is not None)
    assert state.visits == Counter(entry.phase for entry in state.history)
    events = engine.get_workflow_history(state.instance_id)
    kinds = Counter(event.kind for event in events)
    assert kinds[EventKind.STARTED] == 1
    assert kinds[EventKind.PHASE_ENTERED] == len(state.history)
    completed = sum(entry.status == "completed" for entry in state.history)
    assert kinds[EventKind.PHASE_COMPLETED] == completed
    retried = Counter(e.phase for e in events if e.kind is EventKind.RETRIED)
    assert state.retries == retried
    assert kinds[EventKind.COMPLETED] == (state.status == "completed")
    assert kinds[EventKind.CANCELLED] == (state.status == "cancelled")
    assert kinds[EventKind.RESUMED] <= kinds[EventKind.PAUSED] + kinds[EventKind.APPROVAL_REQUESTED]
    check_entry_approvals(state, events)


def check_entry_approvals(state: WorkflowInstanceState, events: list[WorkflowEvent]) -> None:
    """Every visit of a phase that requires approval (entered by this instance, not
    copied from a fork's parent) began by asking for it, or by logging who forced it."""
    gated = {p["name"] for p in state.workflow_schema["phases"] if p.get("requires_approval")}
    first = state.parent["history_index"] if state.parent else 0
    for index in range(first, len(state.history)):
        if state.history[index].phase not in gated:
            continue
        visit = [e.kind for e in events if e.history_index == index and e.while_open]
        assert visit[:2] in (
            [EventKind.PHASE_ENTERED, EventKind.APPROVAL_REQUESTED],
            [EventKind.PHASE_ENTERED, EventKind.APPROVAL_OVERRIDDEN],
        ), (index, visit)


def run_random(engine: WorkflowEngine, seed: int, steps: int) -> str:
    rng = random.Random(seed)
    iid = engine.start_workflow_instance(
        random_schema(rng), {"seed": seed}, "feat_prop", automation_level=rng.choice([None, 60])
    )
    for _ in range(steps):
        (operation,) = rng.choices(list(OPERATIONS), weights=list(OPERATIONS.values()))
        apply(engine, iid, operation, rng)
        state = engine.get_workflow_instance_status(iid)
        assert state is not None
        check_consistent(state, engine)
    return iid


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(0, 40))
def test_random_operations_keep_instances_consistent(seed: int, steps: int) -> None:
    run_random(WorkflowEngine(store=MemoryStore()), seed, steps)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32))
def test_random_schema_is_always_valid_and_forkable(seed: int) -> None:
    engine = WorkflowEngine(store=MemoryStore())
    iid = run_random(engine, seed, 25)
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    for at in range(len(state.history)):
        child = engine.get_workflow_instance_status(engine.fork(iid, at=at))
        assert child is not None
        check_consistent(child, engine)
        assert len(child.history) == at + 1


_READER = """
import json, sys
from chatflow import WorkflowEngine
engine = WorkflowEngine(sys.argv[1], durable=False)
out = {}
for iid in engine.list_feature_instances("feat_prop"):
    state = engine.get_workflow_instance_status(iid)
    out[iid] = {
        "state": state.to_dict(),
        "events": [e.to_dict() for e in engine.get_workflow_history(iid)],
        "info": engine.get_status_info(iid),
    }
print(json.dumps(out))
"""


def test_random_instances_survive_reload_in_a_fresh_process(tmp_path: Path) -> None:
    folder = tmp_path / ".chatflow"
    engine = WorkflowEngine(folder, durable=False)
    ids = [run_random(engine, seed, 30) for seed in range(25)]
    done = subprocess.run(
        [sys.executable, "-c", _READER, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(done.stdout)
    assert sorted(seen) == sorted(ids)
    for iid in ids:
        state = engine.get_workflow_instance_status(iid)
        assert state is not None
        assert WorkflowInstanceState.from_dict(seen[iid]["state"]) == state
        assert seen[iid]["events"] == [e.to_dict() for e in engine.get_workflow_history(iid)]
        assert seen[iid]["info"] == json.loads(json.dumps(engine.get_status_info(iid)))
        if state.status in ("created", "running"):  # a reloaded instance keeps working
            for approver in ("ann", "bob"):  # meet any exit gate
                with contextlib.suppress(InvalidTransitionError):  # it asks for none
                    engine.approve(iid, by=approver)
            engine.record_task_artifacts(iid, "p", "r")
            check_consistent(engine.trigger_next_step(iid, {"x": 0}), engine)
