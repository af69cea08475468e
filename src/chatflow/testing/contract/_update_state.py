"""``update_state``: one atomic read-modify-write that bumps the version or changes nothing."""

from __future__ import annotations

from typing import Any

from chatflow import InstanceNotFoundError
from chatflow.storage import IWorkflowStateStore
from chatflow.testing import StoreFactory
from chatflow.testing._check import raises
from chatflow.testing._states import increment, make_state

CAPABILITY = "states"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_an_exception_in_mutate_writes_nothing",
    "test_mutate_may_return_a_new_dict_with_new_keys",
    "test_mutate_runs_once_on_the_latest_committed_state",
    "test_update_bumps_the_version_and_returns_the_stored_state",
    "test_updating_a_missing_instance_raises_without_calling_mutate",
]


def test_update_bumps_the_version_and_returns_the_stored_state(
    store: IWorkflowStateStore,
) -> None:
    state = make_state(version=7)
    store.create_state(state)
    returned = store.update_state(state["instance_id"], increment)
    assert returned["version"] == 8
    assert returned["variables"]["n"] == 1
    assert store.load_state(state["instance_id"]) == returned


def test_mutate_runs_once_on_the_latest_committed_state(
    chatflow_store_factory: StoreFactory,
) -> None:
    first, second = chatflow_store_factory(), chatflow_store_factory()
    try:
        state = make_state()
        first.create_state(state)
        first.load_state(state["instance_id"])  # let any cache in `first` warm up
        second.update_state(state["instance_id"], increment)
        seen: list[int] = []

        def record(current: dict[str, Any]) -> dict[str, Any]:
            seen.append(current["variables"]["n"])
            return increment(current)

        first.update_state(state["instance_id"], record)
        assert seen == [1]
        loaded = second.load_state(state["instance_id"])
        assert loaded is not None
        assert (loaded["variables"]["n"], loaded["version"]) == (2, 3)
    finally:
        first.close()
        second.close()


def test_an_exception_in_mutate_writes_nothing(store: IWorkflowStateStore) -> None:
    state = make_state()
    store.create_state(state)

    class Refused(Exception):
        pass

    def fail(current: dict[str, Any]) -> dict[str, Any]:
        current["variables"]["n"] = 1000
        current["status"] = "failed"
        raise Refused

    with raises(Refused):
        store.update_state(state["instance_id"], fail)
    assert store.load_state(state["instance_id"]) == state
    assert store.update_state(state["instance_id"], increment)["version"] == 2


def test_updating_a_missing_instance_raises_without_calling_mutate(
    store: IWorkflowStateStore,
) -> None:
    calls: list[object] = []

    def record(state: dict[str, Any]) -> dict[str, Any]:
        calls.append(state)
        return state

    with raises(InstanceNotFoundError) as caught:
        store.update_state("wfi_missing", record)
    assert caught.value.instance_id == "wfi_missing"  # type: ignore[attr-defined]
    assert calls == []
    assert store.load_state("wfi_missing") is None


def test_mutate_may_return_a_new_dict_with_new_keys(store: IWorkflowStateStore) -> None:
    state = make_state()
    store.create_state(state)
    store.update_state(state["instance_id"], lambda s: {**s, "events": [{"kind": "x"}]})
    loaded = store.load_state(state["instance_id"])
    assert loaded is not None
    assert loaded["events"] == [{"kind": "x"}]
    assert loaded["version"] == 2
