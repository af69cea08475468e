"""Many threads and processes on one storage folder: no lost update, no torn file."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chatflow import LockTimeoutError, WorkflowEngine
from chatflow.storage import FileStateStore

PROCESSES = 4
STEPS_EACH = 25


def long_schema(phases: int) -> dict[str, object]:
    return {"name": "long", "phases": [{"name": f"p{i}"} for i in range(phases)]}


def trigger_many(storage_dir: str, instance_id: str, steps: int, worker: int) -> int:
    engine = WorkflowEngine(storage_dir=storage_dir)
    for step in range(steps):
        engine.trigger_next_step(instance_id, trigger_data={"worker": worker, "step": step})
    return steps


def create_many(storage_dir: str, count: int) -> list[str]:
    engine = WorkflowEngine(storage_dir=storage_dir)
    return [engine.start_workflow_instance(long_schema(2), {}, "feat_shared") for _ in range(count)]


def assert_every_step_kept(engine: WorkflowEngine, instance_id: str, steps: int) -> None:
    state = engine.get_workflow_instance_status(instance_id)
    assert state is not None
    assert len(state.history) == steps + 1
    assert state.version == steps + 1
    closed = [entry for entry in state.history if entry.ended_at is not None]
    assert len(closed) == steps
    snapshots = {(e.trigger_data_snapshot or {}).get("worker") for e in closed}
    assert len(snapshots) > 1 or steps == STEPS_EACH
    assert state.current_phase == f"p{steps}"


@pytest.mark.slow
@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_processes_triggering_one_instance_lose_nothing(
    storage_dir: Path, start_method: str
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    steps = PROCESSES * STEPS_EACH
    iid = engine.start_workflow_instance(long_schema(steps + 1), {}, "feat")
    engine.get_workflow_instance_status(iid)  # warm this process's cache before the race
    context = multiprocessing.get_context(start_method)
    with context.Pool(PROCESSES) as pool:
        args = [(str(storage_dir), iid, STEPS_EACH, worker) for worker in range(PROCESSES)]
        assert sum(pool.starmap(trigger_many, args)) == steps
    assert_every_step_kept(engine, iid, steps)


def test_threads_triggering_one_instance_lose_nothing(storage_dir: Path) -> None:
    shared = WorkflowEngine(storage_dir=storage_dir)
    threads_count, steps_each = 8, 20
    steps = threads_count * steps_each
    iid = shared.start_workflow_instance(long_schema(steps + 1), {}, "feat")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        # Half the threads share one engine, half bring their own (separate caches).
        engine = shared if worker % 2 else WorkflowEngine(storage_dir=storage_dir)
        try:
            for step in range(steps_each):
                engine.trigger_next_step(iid, trigger_data={"worker": worker, "step": step})
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_every_step_kept(shared, iid, steps)


@pytest.mark.slow
def test_processes_creating_instances_of_one_feature(storage_dir: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        created = pool.starmap(create_many, [(str(storage_dir), STEPS_EACH)] * PROCESSES)
    all_ids = [iid for ids in created for iid in ids]
    engine = WorkflowEngine(storage_dir=storage_dir)
    indexed = engine.list_feature_instances("feat_shared")
    assert sorted(indexed) == sorted(all_ids)
    assert len(set(indexed)) == PROCESSES * STEPS_EACH
    for ids in created:  # each process's own creations appear in its creation order
        positions = [indexed.index(iid) for iid in ids]
        assert positions == sorted(positions)
    status = engine.get_feature_status("feat_shared")
    assert status["total_instances"] == status["created_count"] == PROCESSES * STEPS_EACH


HOLD_LOCK = """
import sys, time
from chatflow.storage.file_lock import FileLock
with FileLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_instances_do_not_serialise_behind_one_lock(storage_dir: Path) -> None:
    store = FileStateStore(storage_dir, lock_timeout=0.3)
    engine = WorkflowEngine(store=store)
    busy = engine.start_workflow_instance(long_schema(3), {}, "feat")
    free = engine.start_workflow_instance(long_schema(3), {}, "feat")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(store.locks_dir / f"{busy}.lock"), "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert engine.trigger_next_step(free).current_phase == "p1"
        with pytest.raises(LockTimeoutError) as caught:
            engine.trigger_next_step(busy)
        assert isinstance(caught.value, TimeoutError)
        assert time.monotonic() - started < 4  # neither waited for the holder to finish
    finally:
        holder.kill()
        holder.wait()
    state = engine.trigger_next_step(busy)  # the kernel released the dead holder's lock
    assert state.current_phase == "p1"
