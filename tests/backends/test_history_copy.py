"""``migrate`` copies each instance event for event, between every pair of stores: the
same events with the same hashes (a compaction checkpoint too), every version of every
task's texts, the same feature digests; and ``install_log`` refuses what does not verify."""

from __future__ import annotations

import copy
import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatflow import CorruptStateError, HistoryConflictError, WorkflowEngine
from chatflow.storage import (
    FileStateStore,
    InstanceLog,
    IWorkflowStateStore,
    MemoryStore,
    SQLiteStore,
    TaskTexts,
)
from chatflow.storage.migrate import migrate
from store_harness import PostgresHarness

KINDS = ["memory", "file", "sqlite", "postgres"]
FLOW = {
    "name": "copyflow",
    "phases": [{"name": "plan"}, {"name": "build"}, {"name": "review"}, {"name": "ship"}],
}


@pytest.fixture
def open_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``open_store(kind, side)``: a fresh store of that kind, closed after the test."""
    opened: list[IWorkflowStateStore] = []

    def make(kind: str, side: str) -> IWorkflowStateStore:
        store: IWorkflowStateStore
        if kind == "memory":
            store = MemoryStore()
        elif kind == "file":
            store = FileStateStore(tmp_path / side)
        elif kind == "sqlite":
            store = SQLiteStore(tmp_path / f"{side}.db")
        else:
            url: str = request.getfixturevalue("pg_url")
            schema = f"{request.getfixturevalue('pg_schema')}_{side}_{secrets.token_hex(3)}"
            store = PostgresHarness("postgres", url=url, schema=schema).open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def fill(store: IWorkflowStateStore) -> dict[str, str]:
    """Instances with long histories, three versions of one artifact, a fork and a
    compacted log, in two features; their ids by role."""
    engine = WorkflowEngine(store=store)
    long = engine.start_workflow_instance(FLOW, {"n": 1}, "feat_copy").instance_id
    for attempt in range(3):
        engine.record_task_artifacts(long, f"plan prompt {attempt}", f"plan response {attempt}")
    engine.trigger_next_step(long, {"step": 1})
    engine.record_task_artifacts(long, "build prompt", "build response")
    engine.trigger_next_step(long, {"step": 2})
    forked = engine.fork(long, at=1)
    compacted = engine.start_workflow_instance(FLOW, {"n": 2}, "feat_other").instance_id
    for step in range(3):
        engine.record_task_artifacts(compacted, f"p{step}", f"r{step}")
        engine.trigger_next_step(compacted, {"step": step})
    assert engine.compact(compacted, keep_last=2) > 0
    return {"long": long, "forked": forked, "compacted": compacted}


def picture(store: IWorkflowStateStore) -> dict[str, Any]:
    """Every listed instance's events and texts, feature by feature in listing order,
    and each feature's digest."""
    engine = WorkflowEngine(store=store)
    return {
        feature: (
            engine.feature_digest(feature),
            [
                (iid, store.read_log(iid).events, store.read_log(iid).texts)
                for iid in store.list_instances_by_feature(feature)
            ],
        )
        for feature in store.list_features()
    }


@pytest.mark.parametrize(("source_kind", "target_kind"), list(itertools.product(KINDS, KINDS)))
def test_migrate_copies_every_event_and_version_between_every_pair_of_stores(
    open_store: Any, source_kind: str, target_kind: str
) -> None:
    source, target = open_store(source_kind, "src"), open_store(target_kind, "dst")
    ids = fill(source)
    before = picture(source)
    long_log = source.read_log(ids["long"])
    assert len(long_log.events) >= 10
    assert {version for task, version in long_log.texts if task == "plan"} == {1, 2, 3}
    assert source.read_log(ids["compacted"]).events[0]["kind"] == "checkpoint"

    report = migrate(source, target)
    assert (report.instances_copied, report.conflicts) == (3, [])
    assert picture(target) == before
    assert all(target.verify(iid) is None for iid in ids.values())
    engine = WorkflowEngine(store=target)
    assert engine.get_task_artifacts(ids["long"], "plan", version=1) is not None
    assert engine.verify(ids["forked"]) is None

    again = migrate(source, target)
    assert (again.instances_unchanged, again.artifacts_copied) == (3, 0)
    WorkflowEngine(store=source).trigger_next_step(ids["forked"], {"more": True})
    third = migrate(source, target)
    assert (third.instances_updated, third.instances_unchanged) == (1, 2)
    assert picture(target) == picture(source)


def test_a_target_that_went_its_own_way_is_a_conflict_left_untouched() -> None:
    source, target = MemoryStore(), MemoryStore()
    ids = fill(source)
    migrate(source, target)
    WorkflowEngine(store=target).trigger_next_step(ids["forked"], {"here": 1})
    WorkflowEngine(store=source).trigger_next_step(ids["forked"], {"there": 2})
    kept = target.read_log(ids["forked"])
    report = migrate(source, target)
    assert report.conflicts == [ids["forked"]]
    assert target.read_log(ids["forked"]) == kept
    with pytest.raises(HistoryConflictError, match=ids["forked"]):
        target.install_log(source.read_log(ids["forked"]))


def _edited(log: InstanceLog, seq: int, change: Any) -> InstanceLog:
    events = copy.deepcopy(log.events)
    change(next(event for event in events if event["seq"] == seq))
    return InstanceLog(log.instance_id, events, dict(log.texts))


def test_install_log_refuses_a_log_that_does_not_verify() -> None:
    source = MemoryStore()
    ids = fill(source)
    log = source.read_log(ids["long"])
    texts_at = next(e["seq"] for e in log.events if e.get("kind") == "artifact")
    bad = [
        (_edited(log, 3, lambda e: e.setdefault("set", {}).update(status="completed")), 3),
        (InstanceLog(log.instance_id, log.events[:4] + log.events[5:], log.texts), 5),
        (
            InstanceLog(
                log.instance_id,
                log.events,
                {**log.texts, ("plan", 1): TaskTexts(log.texts[("plan", 1)].record, "x", "y")},
            ),
            texts_at,
        ),
    ]
    for tampered, seq in bad:
        target = MemoryStore()
        with pytest.raises(CorruptStateError, match=f"{log.instance_id} at event {seq} "):
            target.install_log(tampered)
        assert target.list_instance_ids() == []
    # Over an existing copy, a tampered later version never becomes the latest.
    target = MemoryStore()
    first = InstanceLog(log.instance_id, log.events[:1], {})
    assert target.install_log(first) == "copied"
    with pytest.raises(CorruptStateError):
        target.install_log(bad[2][0])
    assert target.read_log(log.instance_id).events == first.events
    assert target.install_log(log) == "updated"
    assert target.read_log(log.instance_id) == log
