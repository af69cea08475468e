"""Many threads and processes on one storage folder: no lost update, no torn file."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chatflow import LockTimeoutError, WorkflowEngine
from chatflow.storage import FileStateStore
from chatflow.testing import races

PROCESSES = 4
STEPS_EACH = 25


def long_schema(phases: int) -> dict[str, object]:
    return {"name": "long", "phases": [{"name": f"p{i}"} for i in range(phases)]}


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
    opener = functools.partial(FileStateStore, storage_dir)
    races.race_one_instance(
        opener, processes=PROCESSES, steps_each=STEPS_EACH, start_method=start_method
    )


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
    opener = functools.partial(FileStateStore, storage_dir)
    ids = races.race_many_instances(
        opener, processes=PROCESSES, instances_each=STEPS_EACH, start_method="spawn"
    )
    status = WorkflowEngine(storage_dir=storage_dir).get_feature_status("feat_race_many")
    assert status["total_instances"] == len(ids) == PROCESSES * STEPS_EACH


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
