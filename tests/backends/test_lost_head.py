"""A head lost while the log remains (a ``heads`` row deleted by hand, a partial restore)
in the SQLite, PostgreSQL and memory stores: the instance is damaged, never gone.

Loads raise ``CorruptStateError`` naming it (never "not found"), steps and creations are
refused, every listing names it as unreadable, ``verify`` and ``chatflow doctor`` report
it, and ``doctor --fix`` rebuilds the head from the log only if the log verifies: no
event is deleted or rewritten.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chatflow import CorruptStateError, InstanceNotFoundError, WorkflowEngine
from chatflow.storage import IWorkflowStateStore, MemoryStore
from chatflow.storage._log import LOST_HEAD
from chatflow.storage.base import UNREADABLE
from chatflow.storage.spi import RawInstance
from chatflow.testing.damage import DAMAGES, flip
from cli_runner import run_in_process
from store_harness import Harness, PostgresHarness, SQLiteHarness

SCHEMA: dict[str, Any] = {
    "name": "three",
    "phases": [{"name": name} for name in ("plan", "code", "ship")],
}


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Harness | None]]:
    """(a function opening a new store object on the same data, its harness)."""
    if request.param == "memory":
        store = MemoryStore()
        yield (lambda: store), None
        return
    harness: Harness
    if request.param == "sqlite":
        harness = SQLiteHarness("sqlite", path=str(tmp_path / "state.db"))
    else:
        harness = request.getfixturevalue("pg_harness")
    yield harness.open, harness


def _fill(store: IWorkflowStateStore) -> tuple[list[str], str]:
    """Three instances of feat_a (the middle one stepped twice), one of feat_b."""
    engine = WorkflowEngine(store=store)
    ids = [engine.start_workflow_instance(SCHEMA, {}, "feat_a") for _ in range(3)]
    engine.trigger_next_step(ids[1], {"note": "one"})
    engine.trigger_next_step(ids[1], {"note": "two"})
    return ids, engine.start_workflow_instance(SCHEMA, {}, "feat_b")


def _lose_head(store: IWorkflowStateStore, instance_id: str) -> RawInstance:
    access = store.raw_access()
    access.write(instance_id, DAMAGES["lose_head"](access.read(instance_id)))
    return access.read(instance_id)


def _without(listed: list[str], instance_id: str) -> list[str]:
    """``listed`` without ``instance_id``, which it holds exactly once."""
    assert listed.count(instance_id) == 1, listed
    return [iid for iid in listed if iid != instance_id]


def _close(store: IWorkflowStateStore) -> None:
    if not isinstance(store, MemoryStore):
        store.close()


@contextmanager
def _opened(open_store: Callable[[], IWorkflowStateStore]) -> Iterator[IWorkflowStateStore]:
    """A new store object on the same data, closed after (the memory store stays open)."""
    store = open_store()
    try:
        yield store
    finally:
        _close(store)


def test_a_lost_head_is_damage_named_everywhere_never_absence(opened: Any) -> None:
    open_store, _ = opened
    store = open_store()
    ids, other = _fill(store)
    lost = ids[1]
    last = store.load_state(lost)
    damaged = _lose_head(store, lost)
    assert damaged.head is None and len(damaged.events) == 3
    _close(store)

    with _opened(open_store) as fresh:
        engine = WorkflowEngine(store=fresh)
        for load in (fresh.load_state, engine.get_workflow_instance_status, fresh.read_log):
            with pytest.raises(CorruptStateError, match=lost) as caught:
                load(lost)
            assert not isinstance(caught.value, InstanceNotFoundError)
            assert LOST_HEAD in str(caught.value)
        problem = fresh.verify(lost)
        assert problem is not None and problem.instance_id == lost and problem.what == LOST_HEAD
        with pytest.raises(CorruptStateError, match=lost):
            engine.trigger_next_step(lost, {"note": "after"})
        with pytest.raises(CorruptStateError, match=lost):
            fresh.create_state({**last, "version": 0})  # never created again over its log
        assert fresh.raw_access().read(lost) == damaged  # refused: nothing written

        # Listed in its feature: the SQL stores after the others (its place in creation
        # order went with its head row), the memory store where it was.
        assert _without(fresh.list_instances_by_feature("feat_a"), lost) == [ids[0], ids[2]]
        assert _without(fresh.list_instance_ids(), lost) == [ids[0], ids[2], other]
        assert fresh.list_features() == ["feat_a", "feat_b"]
        listed = {s.instance_id: s for s in fresh.list_instances()}
        assert set(listed) == {*ids, other}
        assert listed[lost].status == UNREADABLE and listed[lost].feature_id == "feat_a"
        if not isinstance(fresh, MemoryStore):  # (the base's summary has no time)
            assert listed[lost].created_at == last["created_at"]  # from its first event
        in_feature = [s.instance_id for s in fresh.list_instances("feat_a")]
        assert _without(in_feature, lost) == [ids[0], ids[2]]
        assert [s.instance_id for s in fresh.list_feature_summaries("feat_a")] == in_feature
        assert [s.instance_id for s in fresh.list_instances(status=UNREADABLE)] == [lost]
        assert lost not in {s.instance_id for s in fresh.list_instances(status="running")}
        # The counts every step keeps still hold it: roll-ups never shrink.
        assert sum(c.instances for c in fresh.feature_status_counts("feat_a")) == 3
        overview = {f.feature_id: f for f in fresh.list_feature_counts()}
        assert sum(c.instances for c in overview["feat_a"].counts) == 3
        assert fresh.lost_heads() == [lost] == fresh.lost_heads(thorough=True)
        assert engine.get_feature_status("feat_a")["total_instances"] == 3  # (kept O(statuses))
        rollups = {r["feature_id"]: r for r in engine.list_feature_rollups()}
        assert rollups["feat_a"]["unreadable_instances"] == [lost]
        assert "unreadable_instances" not in rollups["feat_b"]
        assert fresh.raw_access().read(lost) == damaged  # reading changed nothing
        # The others still load, step and verify.
        engine.trigger_next_step(ids[0], {"note": "fine"})
        assert fresh.verify(ids[0]) is None and fresh.verify(other) is None


def test_a_feature_whose_every_head_is_lost_is_still_listed(opened: Any) -> None:
    open_store, _ = opened
    with _opened(open_store) as store:
        _, other = _fill(store)
        _lose_head(store, other)
        assert store.list_features() == ["feat_a", "feat_b"]
        assert store.list_instances_by_feature("feat_b") == [other]
        assert [s.status for s in store.list_instances("feat_b")] == [UNREADABLE]
        overview = {f.feature_id: f for f in store.list_feature_counts()}
        assert [c.instances for c in overview["feat_b"].counts] == [1]


def test_rebuild_head_needs_a_log_that_verifies_and_deletes_nothing(opened: Any) -> None:
    open_store, _ = opened
    with _opened(open_store) as store:
        ids, _ = _fill(store)
        lost, broken = ids[1], ids[0]
        last = store.load_state(lost)
        damaged = _lose_head(store, lost)
        access = store.raw_access()
        stored = access.read(broken)
        access.write(broken, replace(stored, head=None, events=(flip(stored.events[0]),)))
        bad = access.read(broken)

        problem = store.verify(broken)  # the log's own damage, not only its lost head
        assert problem is not None and problem.what != LOST_HEAD
        with pytest.raises(CorruptStateError, match=broken):
            store.rebuild_head(broken)
        assert access.read(broken) == bad

        assert store.rebuild_head(lost) is True
        assert store.rebuild_head(lost) is False  # nothing to do now
        assert access.read(lost).events == damaged.events
        assert store.load_state(lost) == last and store.verify(lost) is None
        assert store.lost_heads() == [broken]
        with pytest.raises(InstanceNotFoundError):
            store.rebuild_head("wfi_never_there")


def _target(harness: Harness) -> str:
    if isinstance(harness, SQLiteHarness):
        return f"sqlite:///{harness.path}"
    assert isinstance(harness, PostgresHarness)
    return f"{harness.url}?schema={harness.schema}"


def _chatflow(harness: Harness, *args: str) -> Any:
    return run_in_process(["--dir", _target(harness), *args], cwd=Path.cwd(), env=os.environ)


def test_the_cli_lists_reports_and_fixes_a_lost_head(opened: Any) -> None:
    open_store, harness = opened
    if harness is None:
        pytest.skip("the command line opens stores by URL; a memory store has none")
    with _opened(open_store) as store:
        ids, _ = _fill(store)
        lost = ids[1]
        last = store.load_state(lost)
        damaged = _lose_head(store, lost)

    listed = _chatflow(harness, "list", "--json")
    assert listed.returncode == 1 and lost in listed.stderr, listed.stderr
    rows = {row["instance_id"]: row for row in json.loads(listed.stdout)}
    assert rows[lost]["status"] == UNREADABLE and rows[lost]["feature_id"] == "feat_a"
    assert LOST_HEAD in rows[lost]["problem"]
    shown = _chatflow(harness, "show", lost)
    assert shown.returncode == 1 and lost in shown.stderr and "not found" not in shown.stderr
    features = _chatflow(harness, "features", "--json")
    assert features.returncode == 1 and lost in features.stderr, features.stderr
    rollups = {r["feature_id"]: r for r in json.loads(features.stdout)}
    assert rollups["feat_a"]["total_instances"] == 3  # still counted, and named
    assert rollups["feat_a"]["unreadable_instances"] == [lost]
    assert rollups["feat_b"]["unreadable_instances"] == []
    totals = _chatflow(harness, "features", "--totals")
    assert totals.returncode == 1 and "4 instance(s)" in totals.stdout
    assert "; 1 unreadable" in totals.stdout
    one = _chatflow(harness, "status", "--feature", "feat_a")
    assert one.returncode == 1 and any(
        line.split()[:4] == [lost, "feat_a", "-", UNREADABLE] for line in one.stdout.splitlines()
    )
    verified = _chatflow(harness, "verify", "--feature", "feat_a")
    assert verified.returncode == 1 and lost in verified.stderr + verified.stdout

    doctor = _chatflow(harness, "doctor", "--json")
    assert doctor.returncode == 1, doctor.stderr
    problems = json.loads(doctor.stdout)["problems"]
    assert [(p["kind"], p["instance_id"], p["fixable"]) for p in problems] == [
        ("lost_head", lost, True)
    ]
    with _opened(open_store) as checked:
        assert checked.raw_access().read(lost) == damaged  # doctor without --fix reads only

    fixed = _chatflow(harness, "doctor", "--fix", "--json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    answer = json.loads(fixed.stdout)
    assert [f["instance_id"] for f in answer["fixed"]] == [lost] and answer["problems"] == []
    with _opened(open_store) as after:
        assert after.raw_access().read(lost).events == damaged.events  # no event touched
        assert after.load_state(lost) == last and after.verify(lost) is None
        assert {s.status for s in after.list_instances()} != {UNREADABLE}
        assert after.lost_heads() == []
    assert _chatflow(harness, "list", "--json").returncode == 0


def test_doctor_leaves_a_lost_head_over_a_damaged_log_as_it_is(opened: Any) -> None:
    open_store, harness = opened
    if harness is None:
        pytest.skip("the command line opens stores by URL; a memory store has none")
    with _opened(open_store) as store:
        ids, _ = _fill(store)
        access = store.raw_access()
        stored = access.read(ids[1])
        access.write(ids[1], replace(stored, head=None, events=(*stored.events[:1], b"{}")))
        damaged = access.read(ids[1])
    fixed = _chatflow(harness, "doctor", "--fix", "--json")
    assert fixed.returncode == 1
    problems = json.loads(fixed.stdout)["problems"]
    assert [(p["kind"], p["instance_id"], p["fixable"]) for p in problems] == [
        ("damaged_instance", ids[1], False)
    ]
    with _opened(open_store) as after:
        assert after.raw_access().read(ids[1]) == damaged


def test_deleting_an_instance_whose_head_is_lost_uncounts_it(opened: Any) -> None:
    open_store, _ = opened
    with _opened(open_store) as store:
        ids, _ = _fill(store)
        _lose_head(store, ids[1])
        assert store.delete_instance_by(ids[1], "alice") is True
        assert store.load_state(ids[1]) is None  # deleted now: gone, and recorded
        assert store.deletions()[-1]["instance_id"] == ids[1]
        assert store.lost_heads(thorough=True) == []
        assert sum(c.instances for c in store.feature_status_counts("feat_a")) == 2
        assert [s.instance_id for s in store.list_instances("feat_a")] == [ids[0], ids[2]]
        assert store.delete_instance(ids[1]) is False
