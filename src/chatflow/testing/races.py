"""Processes racing through one store: every step kept once, in each writer's order.

For any store shared between processes (not an in-process one). ``open_store`` opens a
store object on the data under test; each process calls it for a store of its own, so
under the ``spawn`` start method it must pickle (a class and its arguments through
``functools.partial``, a module-level function, a bound method of a picklable object).
The functions raise ``AssertionError`` saying how many steps were lost, doubled or
reordered; ChatFlow's own race tests are these calls.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable
from typing import Any

from chatflow import WorkflowEngine
from chatflow.storage.base import IWorkflowStateStore

Opener = Callable[[], IWorkflowStateStore]


def chain(phases: int) -> dict[str, Any]:
    """A workflow of ``phases`` phases in a row: each step moves to the next one."""
    return {"name": "race", "phases": [{"name": f"p{i}"} for i in range(phases)]}


def context(start_method: str | None = None) -> multiprocessing.context.BaseContext:
    """``start_method``'s context; by default fork where there is one, else spawn."""
    if start_method is None:
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(start_method)


def race_one_instance(
    open_store: Opener,
    *,
    processes: int = 4,
    steps_each: int = 25,
    start_method: str | None = None,
) -> str:
    """``processes`` processes step one instance ``steps_each`` times each; every step
    must be in its history exactly once, each process's in the order it made them.
    Returns the instance's id."""
    total = processes * steps_each
    store = open_store()
    try:
        engine = WorkflowEngine(store=store)
        iid = engine.start_workflow_instance(chain(total + 1), {}, "feat_race").instance_id
        with context(start_method).Pool(processes) as pool:
            done = pool.starmap(
                _step, [(open_store, iid, worker, steps_each) for worker in range(processes)]
            )
        assert sum(done) == total, f"the writers made {sum(done)} steps, not {total}"
        check_steps_kept(engine, iid, dict.fromkeys(range(processes), steps_each))
    finally:
        store.close()
    return iid


def race_many_instances(
    open_store: Opener,
    *,
    processes: int = 4,
    instances_each: int = 10,
    steps_each: int = 3,
    start_method: str | None = None,
) -> list[str]:
    """Each of ``processes`` processes creates ``instances_each`` instances of one feature
    and steps each ``steps_each`` times; the feature must list every instance once, each
    process's in its creation order, and every step must be kept. Returns the ids."""
    with context(start_method).Pool(processes) as pool:
        created = pool.starmap(
            _create_and_step,
            [(open_store, worker, instances_each, steps_each) for worker in range(processes)],
        )
    store = open_store()
    try:
        indexed = store.list_instances_by_feature("feat_race_many")
        doubled = [iid for iid, n in Counter(indexed).items() if n > 1]
        lost = {iid for ids in created for iid in ids} - set(indexed)
        assert not lost and not doubled, f"{len(lost)} instances lost, {len(doubled)} doubled"
        assert len(indexed) == processes * instances_each, f"{len(indexed)} instances listed"
        for ids in created:
            order = [iid for iid in indexed if iid in ids]
            assert order == ids, "an instance is listed out of its creation order"
        engine = WorkflowEngine(store=store)
        for worker, ids in enumerate(created):
            for iid in ids:
                check_steps_kept(engine, iid, {worker: steps_each})
    finally:
        store.close()
    return indexed


def check_steps_kept(engine: WorkflowEngine, instance_id: str, made: dict[int, int]) -> None:
    """The instance's history holds each worker's ``made[worker]`` steps (trigger data
    ``{"worker", "step"}``) exactly once each, in the order the worker made them."""
    state = engine.get_workflow_instance_status(instance_id)
    assert state is not None, f"instance {instance_id} is gone"
    closed = [entry.trigger_data_snapshot or {} for entry in state.history[:-1]]
    steps = [(data.get("worker"), data.get("step")) for data in closed]
    wanted = {(worker, step) for worker, count in made.items() for step in range(count)}
    counts = Counter(steps)
    lost = wanted - set(counts)
    doubled = [step for step, n in counts.items() if n > 1]
    assert not lost and not doubled, (
        f"instance {instance_id}: {len(lost)} steps lost, {len(doubled)} doubled"
    )
    assert len(steps) == len(wanted), f"instance {instance_id}: steps no writer made"
    for worker in made:
        own = [int(step or 0) for who, step in steps if who == worker]
        assert own == sorted(own), f"instance {instance_id}: worker {worker}'s steps reordered"
    assert state.version == len(wanted) + 1, f"instance {instance_id}: version {state.version}"
    assert engine.verify(instance_id) is None


def _step(open_store: Opener, instance_id: str, worker: int, steps: int) -> int:
    """Process body: ``steps`` steps of one instance through a store of its own."""
    store = open_store()
    try:
        engine = WorkflowEngine(store=store)
        for step in range(steps):
            engine.trigger_next_step(instance_id, {"worker": worker, "step": step})
    finally:
        store.close()
    return steps


def _create_and_step(open_store: Opener, worker: int, count: int, steps: int) -> list[str]:
    """Process body: create ``count`` instances, then step them in turn."""
    store = open_store()
    try:
        engine = WorkflowEngine(store=store)
        ids = [
            engine.start_workflow_instance(chain(steps + 1), {}, "feat_race_many").instance_id
            for _ in range(count)
        ]
        for step in range(steps):
            for iid in ids:
                engine.trigger_next_step(iid, {"worker": worker, "step": step})
    finally:
        store.close()
    return ids
