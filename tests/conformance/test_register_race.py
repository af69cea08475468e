"""Registering a workflow is read-then-write, done atomically on every store: processes
racing to register lose no version, and one version never keeps two contents (issue 15).

Every process registers versions of its own and, at the same moments, the shared
versions every other one registers too, each with its own content and ``replace=False``
(as ``chatflow workflows register`` does): exactly one content wins each shared
version, the others are refused naming both hashes.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest

from chatflow import ValidationError, WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from store_harness import Harness

PROCESSES = 4
ROUNDS = 6
NAME = "raced"

pytestmark = pytest.mark.slow


def _schema(version: int, worker: int) -> dict[str, Any]:
    return {"name": NAME, "version": version, "phases": [{"name": f"by_worker_{worker}"}]}


def register_versions(harness: Harness, worker: int) -> list[tuple[int, str | None]]:
    """Register this worker's own versions and the shared ones, in turn; for each, the
    version and the hash it was kept with (``None``: refused)."""
    store = harness.open()
    engine = WorkflowEngine(store=store)
    done: list[tuple[int, str | None]] = []
    try:
        for round_ in range(ROUNDS):
            for version in (100 + round_, 1 + worker * ROUNDS + round_):  # shared, own
                try:
                    info = engine.register_schema(_schema(version, worker), replace=False)
                except ValidationError as error:
                    assert "already registered with other content" in str(error)  # noqa: PT017
                    done.append((version, None))
                else:
                    done.append((version, info.hash))
    finally:
        store.close()
    return done


def _race(harness: Harness) -> list[list[tuple[int, str | None]]]:
    if not harness.shared_across_processes:  # the memory store: threads, one store
        results: list[list[tuple[int, str | None]]] = [[] for _ in range(PROCESSES)]

        def run(worker: int) -> None:
            results[worker] = register_versions(harness, worker)

        threads = [threading.Thread(target=run, args=(w,)) for w in range(PROCESSES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(PROCESSES) as pool:
        return pool.starmap(register_versions, [(harness, w) for w in range(PROCESSES)])


def test_racing_registrations_lose_no_version_and_keep_one_content_each(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    results = _race(harness)
    rows = [row for row in store.list_schemas() if row.name == NAME]
    versions = [row.version for row in rows]
    assert len(versions) == len(set(versions))  # unique
    own = {1 + w * ROUNDS + r for w in range(PROCESSES) for r in range(ROUNDS)}
    shared = {100 + r for r in range(ROUNDS)}
    assert set(versions) == own | shared  # none lost
    kept = {row.version: row.content_hash for row in rows}
    for version in own:  # each worker's own versions all registered
        assert [h for done in results for v, h in done if v == version] == [kept[version]]
    for version in shared:  # one winner; every other worker refused or agreed with it
        outcomes = [h for done in results for v, h in done if v == version]
        assert len(outcomes) == PROCESSES
        assert set(outcomes) - {None} == {kept[version]}, (version, outcomes)
