"""Save and load: a state comes back exactly as it went in, whatever keys it holds."""

from __future__ import annotations

from chatflow import ValidationError
from chatflow.storage import IWorkflowStateStore
from chatflow.testing import StoreFactory
from chatflow.testing._check import raises
from chatflow.testing._states import make_state

CAPABILITY = "states"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_another_store_object_sees_every_write",
    "test_created_state_loads_back_equal",
    "test_creating_an_existing_instance_fails_and_keeps_the_first",
    "test_keys_and_statuses_the_store_does_not_know_are_kept",
    "test_long_history_round_trips",
    "test_save_state_overwrites_and_indexes_once",
    "test_stored_state_does_not_alias_the_callers_dicts",
    "test_unknown_instance_loads_as_none",
]


def test_created_state_loads_back_equal(store: IWorkflowStateStore) -> None:
    state = make_state(variables={"text": "héllo ✓ \x00 \n", "nested": {"a": [1, 2.5, None]}})
    store.create_state(state)
    assert store.load_state(state["instance_id"]) == state


def test_keys_and_statuses_the_store_does_not_know_are_kept(store: IWorkflowStateStore) -> None:
    state = make_state(status="paused", events=[{"kind": "paused", "at": 1.5}], extra=None)
    store.create_state(state)
    assert store.load_state(state["instance_id"]) == state
    store.update_state(state["instance_id"], lambda s: {**s, "status": "cancelled"})
    loaded = store.load_state(state["instance_id"])
    assert loaded is not None
    assert loaded["status"] == "cancelled"
    assert loaded["events"] == state["events"]


def test_unknown_instance_loads_as_none(store: IWorkflowStateStore) -> None:
    assert store.load_state("wfi_missing") is None


def test_creating_an_existing_instance_fails_and_keeps_the_first(
    store: IWorkflowStateStore,
) -> None:
    first = make_state(variables={"which": "first"})
    store.create_state(first)
    with raises(ValidationError, match="already exists"):
        store.create_state({**first, "variables": {"which": "second"}})
    assert store.load_state(first["instance_id"]) == first
    assert store.list_instances_by_feature("feat_a") == [first["instance_id"]]


def test_save_state_overwrites_and_indexes_once(store: IWorkflowStateStore) -> None:
    state = make_state()
    iid = state["instance_id"]
    store.save_state(iid, state)
    store.save_state(iid, {**state, "status": "running", "version": 2})
    loaded = store.load_state(iid)
    assert loaded is not None
    assert (loaded["status"], loaded["version"]) == ("running", 2)
    assert store.list_instances_by_feature("feat_a") == [iid]


def test_stored_state_does_not_alias_the_callers_dicts(store: IWorkflowStateStore) -> None:
    state = make_state()
    store.create_state(state)
    state["variables"]["n"] = 99
    loaded = store.load_state(state["instance_id"])
    assert loaded is not None
    assert loaded["variables"]["n"] == 0
    loaded["variables"]["n"] = 42
    again = store.load_state(state["instance_id"])
    assert again is not None
    assert again["variables"]["n"] == 0


def test_another_store_object_sees_every_write(chatflow_store_factory: StoreFactory) -> None:
    writer, reader = chatflow_store_factory(), chatflow_store_factory()
    try:
        state = make_state()
        writer.create_state(state)
        assert reader.load_state(state["instance_id"]) == state
        writer.update_state(state["instance_id"], lambda s: {**s, "status": "running"})
        loaded = reader.load_state(state["instance_id"])
        assert loaded is not None
        assert loaded["status"] == "running"
    finally:
        writer.close()
        reader.close()


def test_long_history_round_trips(store: IWorkflowStateStore) -> None:
    history = [
        {"phase": f"p{i}", "task": "", "started_at": float(i), "trigger_data_snapshot": {"i": i}}
        for i in range(2000)
    ]
    state = make_state(history=history)
    store.create_state(state)
    assert store.load_state(state["instance_id"]) == state
