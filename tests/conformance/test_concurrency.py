"""Racing writers in processes: every update kept, every instance indexed.

(Threads racing on one store object are part of ``chatflow.testing``; the process races
and writer kills are ``chatflow.testing.races`` and ``chatflow.testing.kills``, which
third-party stores run too.) PostgreSQL's
children each open their own connections, so these are also races between
several connections from several processes.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest

from chatflow.storage import IWorkflowStateStore
from chatflow.testing import assert_counted, increment, kills, make_state, races
from store_harness import Harness, increment_many, increment_with

PROCESSES = 4
EACH = 25

pytestmark = pytest.mark.slow


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _require_shared(harness: Harness) -> None:
    if not harness.shared_across_processes:
        pytest.skip(f"a {harness.kind} store lives in one process")


def test_processes_racing_on_one_instance_lose_nothing(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    _require_shared(harness)
    state = make_state()
    store.create_state(state)
    with _context().Pool(PROCESSES) as pool:
        done = pool.starmap(increment_many, [(harness, state["instance_id"], EACH)] * PROCESSES)
    assert sum(done) == PROCESSES * EACH
    assert_counted(store, state["instance_id"], PROCESSES * EACH)


def test_processes_stepping_one_instance_keep_every_step_once_in_order(harness: Harness) -> None:
    _require_shared(harness)
    races.race_one_instance(harness.open, processes=PROCESSES, steps_each=EACH)


def test_processes_creating_and_stepping_instances_list_them_all(harness: Harness) -> None:
    _require_shared(harness)
    races.race_many_instances(harness.open, processes=PROCESSES, instances_each=20)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked writers (POSIX)")
def test_writers_killed_at_random_points_lose_nothing_acknowledged(harness: Harness) -> None:
    _require_shared(harness)
    report = kills.kill_writers(harness.open, kills=6, seed=16)
    assert report.kills == 6 and report.steps_kept >= report.steps_acknowledged


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs os.fork")
def test_a_store_used_before_fork_works_in_children_and_after(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    _require_shared(harness)
    state = make_state()
    store.create_state(state)
    store.update_state(state["instance_id"], increment)  # connections/pools now open
    # Process, not Pool: the children must get this very store object, not a pickled copy.
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=increment_with, args=(store, state["instance_id"], EACH))
        for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0] * PROCESSES
    # The parent's own connections must have survived its children.
    store.update_state(state["instance_id"], increment)
    assert_counted(store, state["instance_id"], PROCESSES * EACH + 2)
