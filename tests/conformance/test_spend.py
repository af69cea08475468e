"""Time and money on every store: usage summed exactly under racing processes, budgets
that pause the step that crosses them, extensions, and deadlines acted on exactly once
by racing ``apply_due`` calls (with an injected clock).

The memory store lives in one process: its races are threads on one engine.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.core.models import EventKind, InstanceStatus
from chatflow.errors import InvalidTransitionError, SchemaError, ValidationError
from chatflow.storage import IWorkflowStateStore
from store_harness import Harness

RECORDERS = 8
RECORDS_EACH = 15
DUE_PROCESSES = 4
HOUR = 3600.0

BUDGETED: dict[str, Any] = {
    "name": "budgeted",
    "budget": {"cost_usd": 1},
    "phases": [
        {"name": "code", "budget": {"tokens": 1000, "visits": 2}},
        {"name": "review"},
        {"name": "ship"},
    ],
}


def deadlined(on_timeout: str, **more: Any) -> dict[str, Any]:
    """A workflow whose ``review`` waits for approval under a one-hour deadline."""
    review = {"name": "review", "requires_approval": True, "deadline": "1h"}
    review.update(on_timeout=on_timeout, **more)
    return {
        "name": f"deadline_{on_timeout}",
        "phases": [{"name": "code"}, review, {"name": "ship"}, {"name": "rollback"}],
    }


@pytest.fixture
def engine(store: IWorkflowStateStore) -> Iterator[WorkflowEngine]:
    engine = WorkflowEngine(store=store)
    yield engine
    engine.close()


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _race(
    harness: Harness, engine: WorkflowEngine, body: Callable[..., Any], jobs: list[tuple[Any, ...]]
) -> list[Any]:
    """Run ``body(engine_or_harness, *job)`` for every job at once: in processes, each
    with its own store, or (memory) in threads on the one engine."""
    if harness.shared_across_processes:
        with _context().Pool(len(jobs)) as pool:
            return pool.starmap(_in_process, [(harness, body, job) for job in jobs])
    results: list[Any] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(index: int) -> None:
        start.wait()
        results[index] = body(engine, *jobs[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def _in_process(harness: Harness, body: Callable[..., Any], job: tuple[Any, ...]) -> Any:
    engine = WorkflowEngine(store=harness.open())
    try:
        return body(engine, *job)
    finally:
        engine.state_store.close()


def _record_many(engine: WorkflowEngine, instance_id: str, count: int) -> int:
    for _ in range(count):
        engine.record_usage(instance_id, input_tokens=7, output_tokens=3, cost_usd=0.01)
    return count


def _apply_due(engine: WorkflowEngine, now: float) -> list[tuple[str, str | None]]:
    return [(t.instance_id, t.outcome) for t in engine.apply_due(now)]


def _kinds(engine: WorkflowEngine, instance_id: str) -> list[str]:
    return [event.kind.value for event in engine.get_workflow_history(instance_id)]


# -- usage ------------------------------------------------------------------------------


@pytest.mark.slow
def test_usage_is_summed_exactly_under_racing_recorders(
    harness: Harness, engine: WorkflowEngine
) -> None:
    iid = engine.start_workflow_instance({"name": "w", "phases": [{"name": "a"}]}, {}, "feat")
    jobs = [(iid, RECORDS_EACH)] * RECORDERS
    assert sum(_race(harness, engine, _record_many, jobs)) == RECORDERS * RECORDS_EACH
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.usage is not None
    records = RECORDERS * RECORDS_EACH
    total = state.usage["total"]
    assert total["records"] == records
    assert total["input_tokens"] == 7 * records and total["output_tokens"] == 3 * records
    assert total["cost_usd"] == round(0.01 * records, 10)  # 1.2, not 1.2000000000000008
    assert _kinds(engine, iid).count("usage") == records
    assert engine.verify(iid) is None


def test_usage_rolls_up_per_visit_phase_instance_and_feature(engine: WorkflowEngine) -> None:
    from chatflow import views

    schema = {"name": "w", "phases": [{"name": "a"}, {"name": "b"}]}
    first = engine.start_workflow_instance(schema, {}, "feat")
    engine.record_usage(first, input_tokens=100, cost_usd=0.25, model="m1")
    engine.trigger_next_step(first, {"output_tokens": 50, "cost_usd": 0.5, "model": "m2"})
    engine.record_usage(first, duration_s=2.5)
    second = engine.start_workflow_instance(schema, {}, "feat")
    engine.record_usage(second, "a", input_tokens=1, cost_usd=0.25)
    state = engine.get_workflow_instance_status(first)
    assert state is not None
    view = views.usage_view(state)
    assert view["total"]["gen_ai.usage.input_tokens"] == 100
    assert view["total"]["gen_ai.usage.output_tokens"] == 50
    assert view["total"]["chatflow.cost_usd"] == 0.75
    assert view["total"]["gen_ai.request.models"] == ["m1", "m2"]
    assert view["phases"]["a"]["chatflow.records"] == 2  # the trigger's usage is a's
    assert view["phases"]["b"]["chatflow.duration_s"] == 2.5
    assert [(v["index"], v["phase"]) for v in view["visits"]] == [(0, "a"), (1, "b")]
    states = [
        s
        for i in engine.list_feature_instances("feat")
        if (s := engine.get_workflow_instance_status(i))
    ]
    feature = views.feature_usage(states)
    assert feature["total"]["chatflow.cost_usd"] == 1.0
    assert feature["phases"]["a"]["chatflow.records"] == 3


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"cost_usd": -1}, "non-negative"),
        ({"cost_usd": float("nan")}, "non-negative"),
        ({"cost_usd": float("inf")}, "non-negative"),
        ({"input_tokens": "many"}, "non-negative"),
        ({"input_tokens": 1.5}, "whole number"),
        ({"input_tokens": True}, "non-negative"),
        ({"model": ""}, "model"),
        ({}, "at least one"),
    ],
)
def test_bad_usage_is_refused_and_nothing_is_written(
    engine: WorkflowEngine, values: dict[str, Any], says: str
) -> None:
    iid = engine.start_workflow_instance({"name": "w", "phases": [{"name": "a"}]}, {}, "feat")
    before = engine.get_workflow_instance_status(iid)
    with pytest.raises(ValidationError, match=says):
        engine.record_usage(iid, **values)
    after = engine.get_workflow_instance_status(iid)
    assert before is not None and after is not None and after.version == before.version


def test_unknown_usage_names_are_refused_with_the_closest_one(engine: WorkflowEngine) -> None:
    schema = {"name": "w", "phases": [{"name": "a"}, {"name": "b"}]}
    iid = engine.start_workflow_instance(schema, {}, "feat")
    with pytest.raises(ValidationError, match="did you mean 'cost_usd'"):
        engine.record_task_artifacts(iid, "p", "r", usage={"cost_ud": 1})
    with pytest.raises(ValidationError, match="non-negative"):
        engine.trigger_next_step(iid, {"cost_usd": -2})
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.current_phase == "a" and state.usage is None


# -- budgets ----------------------------------------------------------------------------


def test_the_step_that_crosses_a_budget_pauses_and_an_extension_resumes(
    engine: WorkflowEngine,
) -> None:
    iid = engine.start_workflow_instance(BUDGETED, {}, "feat")
    engine.record_usage(iid, cost_usd=0.85)  # 85 %: a warning, still running
    assert "budget_warning" in _kinds(engine, iid)
    state = engine.trigger_next_step(iid, {"cost_usd": 0.25})  # this step crosses
    assert state.status is InstanceStatus.PAUSED and state.current_phase == "review"
    assert state.pause is not None and state.pause["kind"] == "budget"
    (crossed,) = state.pause["crossed"]
    assert crossed == {
        "scope": "workflow",
        "key": "cost_usd",
        "used": 1.1,
        "limit": 1.0,
        "share": 1.1,
    }
    with pytest.raises(InvalidTransitionError):
        engine.trigger_next_step(iid)
    with pytest.raises(InvalidTransitionError, match="over budget"):
        engine.resume(iid, approved_by="ana")
    with pytest.raises(ValidationError, match="still be over budget"):
        engine.extend_budget(iid, by="ana", cost_usd=0.05)
    state = engine.extend_budget(iid, by="ana", cost_usd=1, note="worth it")
    assert state.status is InstanceStatus.RUNNING and state.pause is None
    kinds = _kinds(engine, iid)
    assert kinds[-3:] == ["budget_exceeded", "budget_extended", "resumed"]
    extended = [e for e in engine.get_workflow_history(iid) if e.kind is EventKind.BUDGET_EXTENDED]
    assert extended[0].actor == "ana" and extended[0].data["more"] == {"cost_usd": 1.0}
    assert engine.trigger_next_step(iid).current_phase == "ship"
    assert engine.verify(iid) is None


def test_one_visit_too_many_pauses_on_entering(engine: WorkflowEngine) -> None:
    schema = {
        "name": "loop",
        "phases": [
            {
                "name": "code",
                "budget": {"visits": 2},
                "transitions": [
                    {"to": "code", "when": {"path": "trigger.again", "op": "==", "value": True}},
                    {"to": "$end"},
                ],
            },
        ],
        "merge_trigger_data": "flat",
    }
    iid = engine.start_workflow_instance(schema, {}, "feat")
    assert engine.trigger_next_step(iid, {"again": True}).status is InstanceStatus.RUNNING
    state = engine.trigger_next_step(iid, {"again": True})  # the third visit
    assert state.status is InstanceStatus.PAUSED and state.visits["code"] == 3
    assert state.pause is not None and state.pause["crossed"][0]["scope"] == "phase:code"
    assert engine.extend_budget(iid, by="ana", visits=1).status is InstanceStatus.RUNNING


def test_a_budget_pause_keeps_the_approval_it_interrupted(engine: WorkflowEngine) -> None:
    schema = {
        "name": "gated",
        "budget": {"cost_usd": 1},
        "phases": [{"name": "code"}, {"name": "review", "requires_approval": True}],
    }
    iid = engine.start_workflow_instance(schema, {}, "feat")
    engine.trigger_next_step(iid)
    state = engine.record_usage(iid, "code", cost_usd=2)
    assert state.pause is not None and state.pause["kind"] == "budget"
    state = engine.extend_budget(iid, by="ana", cost_usd=5)
    assert state.pause is not None and state.pause["kind"] == "approval"
    assert engine.resume(iid, approved_by="bo").status is InstanceStatus.RUNNING


def test_a_start_budget_limits_the_run(engine: WorkflowEngine) -> None:
    schema = {"name": "w", "phases": [{"name": "a"}]}
    iid = engine.start_workflow_instance(schema, {}, "feat", budget={"tokens": 10})
    state = engine.record_usage(iid, input_tokens=11)
    assert state.pause is not None and state.pause["crossed"][0]["scope"] == "feature"


@pytest.mark.parametrize(
    ("budget", "says"),
    [
        ({"cost": 5}, "did you mean 'cost_usd'"),
        ({"wall": "two hours"}, "cannot read 'two hours' as a duration"),
        ({"tokens": -1}, "non-negative"),
        ({"visits": 1.5}, "whole number"),
    ],
)
def test_bad_budgets_are_refused(engine: WorkflowEngine, budget: dict[str, Any], says: str) -> None:
    with pytest.raises(SchemaError, match=says):
        engine.start_workflow_instance({"name": "w", "budget": budget, "phases": [{"name": "a"}]})
    with pytest.raises(ValidationError, match=says):
        engine.start_workflow_instance(
            {"name": "w", "phases": [{"name": "a"}]}, {}, "f", budget=budget
        )
    assert engine.list_features() == []


def test_bad_deadlines_are_refused() -> None:
    from chatflow.core.schema import validate_schema

    def phase(**keys: Any) -> dict[str, Any]:
        return {"name": "w", "phases": [{"name": "a", **keys}, {"name": "b"}]}

    with pytest.raises(SchemaError, match="cannot read '4 hours'"):
        validate_schema(phase(deadline="4 hours"))
    with pytest.raises(SchemaError, match="did you mean 'escalate'"):
        validate_schema(phase(deadline="4h", on_timeout="escalte"))
    with pytest.raises(SchemaError, match="needs a transition target"):
        validate_schema(phase(deadline="4h", on_timeout="default", default="nowhere"))
    with pytest.raises(SchemaError, match="needs requires_approval"):
        validate_schema(phase(deadline="4h", on_timeout="reject"))
    with pytest.raises(SchemaError, match="did you mean 'deadline'"):
        validate_schema(phase(dedline="4h"))


def test_upgrade_and_fork_keep_spend(engine: WorkflowEngine) -> None:
    v1 = {"name": "kept", "version": 1, "phases": [{"name": "a"}, {"name": "b"}]}
    v2 = {**v1, "version": 2, "budget": {"cost_usd": 10}}
    engine.register_schema(v1)
    engine.register_schema(v2)
    iid = engine.start_workflow_instance(schema_name="kept", schema_version=1, feature_id="f")
    engine.record_usage(iid, cost_usd=2, input_tokens=5)
    engine.trigger_next_step(iid, {"cost_usd": 1})
    engine.record_usage(iid, cost_usd=4)
    upgraded = engine.upgrade_instance(iid, to_version=2)
    assert upgraded.usage is not None and upgraded.usage["total"]["cost_usd"] == 7
    child = engine.get_workflow_instance_status(engine.fork(iid, 1))
    assert child is not None and child.usage is not None
    assert child.usage["total"] == {"cost_usd": 3.0, "input_tokens": 5, "records": 2}
    assert engine.verify(child.instance_id) is None and engine.verify(iid) is None


# -- deadlines --------------------------------------------------------------------------


def _waiting(engine: WorkflowEngine, schema: dict[str, Any], feature: str = "feat") -> str:
    iid = engine.start_workflow_instance(schema, {}, feature)
    engine.trigger_next_step(iid)  # into review, which waits for approval
    return iid


@pytest.mark.parametrize(
    ("on_timeout", "more", "status", "phase", "after"),
    [
        (
            "escalate",
            {"escalate_to": ["lead"]},
            InstanceStatus.PAUSED,
            "review",
            "deadline_passed",
        ),
        ("reject", {}, InstanceStatus.RUNNING, "code", "rejected"),
        ("fail", {}, InstanceStatus.FAILED, "review", "failed"),
        ("default", {"default": "rollback"}, InstanceStatus.RUNNING, "rollback", "phase_entered"),
    ],
)
def test_each_on_timeout_with_an_injected_clock(
    engine: WorkflowEngine,
    on_timeout: str,
    more: dict[str, Any],
    status: InstanceStatus,
    phase: str,
    after: str,
) -> None:
    iid = _waiting(engine, deadlined(on_timeout, **more))
    now = time.time()
    assert engine.due(now) == []
    assert engine.apply_due(now + 0.5 * HOUR) == []
    (listed,) = engine.due(now + 2 * HOUR)
    assert (listed.instance_id, listed.on_timeout, listed.outcome) == (iid, on_timeout, None)
    (done,) = engine.apply_due(now + 2 * HOUR)
    assert done.outcome == on_timeout
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and (state.status, state.current_phase) == (status, phase)
    kinds = _kinds(engine, iid)
    assert kinds.count("deadline_passed") == 1 and after in kinds[kinds.index("deadline_passed") :]
    passed = next(
        e for e in engine.get_workflow_history(iid) if e.kind is EventKind.DEADLINE_PASSED
    )
    assert passed.data["outcome"] == on_timeout and passed.data["waited_s"] >= HOUR
    assert engine.apply_due(now + 3 * HOUR) == []  # acted on once
    assert engine.verify(iid) is None


def test_a_clock_passed_in_judges_but_never_dates_the_log(engine: WorkflowEngine) -> None:
    """``apply_due(now)`` acts on what is due at ``now``, but its events carry the real
    time: a preview clock in the future never leaves the log dated ahead of itself."""
    iid = _waiting(engine, deadlined("fail"))
    before = time.time()
    (done,) = engine.apply_due(before + 100 * HOUR)
    assert done.outcome == "fail"
    history = engine.get_workflow_history(iid)
    stamps = [event.at for event in history]
    assert stamps == sorted(stamps) and stamps[-1] < time.time() + 1
    passed = next(e for e in history if e.kind is EventKind.DEADLINE_PASSED)
    assert passed.data["waited_s"] >= 99 * HOUR  # judged at the clock passed in


def test_a_wait_that_ended_in_time_is_never_due(engine: WorkflowEngine) -> None:
    iid = _waiting(engine, deadlined("fail"))
    engine.resume(iid, approved_by="ana")
    assert engine.due(time.time() + 5 * HOUR) == []


@pytest.mark.slow
def test_racing_apply_due_acts_on_each_timeout_exactly_once(
    harness: Harness, engine: WorkflowEngine
) -> None:
    ids = [
        _waiting(engine, deadlined(kind), f"feat_{i}")
        for i, kind in enumerate(["escalate", "reject", "fail"] * 3)
    ]
    now = time.time() + 2 * HOUR
    results = _race(harness, engine, _apply_due, [(now,)] * DUE_PROCESSES)
    acted = [iid for result in results for iid, outcome in result if outcome is not None]
    assert sorted(acted) == sorted(ids)  # each once, by one of them
    for iid in ids:
        assert _kinds(engine, iid).count("deadline_passed") == 1
        assert engine.verify(iid) is None
    assert engine.due(now) == []
