"""Racing writers in processes: every update kept, every instance indexed.

(Threads racing on one store object are part of ``chatflow.testing``.) PostgreSQL's
children each open their own connections, so these are also races between
several connections from several processes.
"""

from __future__ import annotations

import multiprocessing

import pytest

from chatflow.storage import IWorkflowStateStore
from chatflow.testing import assert_counted, increment, make_state
from store_harness import Harness, create_many, increment_many, increment_with

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


def test_processes_creating_instances_of_one_feature_index_them_all(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    _require_shared(harness)
    with _context().Pool(PROCESSES) as pool:
        created = pool.starmap(
            create_many, [(harness, "feat_shared", 20, worker) for worker in range(PROCESSES)]
        )
    indexed = store.list_instances_by_feature("feat_shared")
    assert len(indexed) == len(set(indexed)) == PROCESSES * 20
    assert set(indexed) == {iid for ids in created for iid in ids}
    for ids in created:  # each worker's instances stay in the order it created them
        assert [iid for iid in indexed if iid in ids] == ids
    assert len(store.list_feature_summaries("feat_shared")) == PROCESSES * 20


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
