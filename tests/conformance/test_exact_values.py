"""A value that changes only in its JSON type (1 -> true, 1 -> 1.0) is stored as given.

Python's ``==`` says ``1 == 1.0 == True``; JSON, and whoever reads the instance back,
keeps them apart. A step must not take such a change for "nothing changed": the state
a step returns and the state a later reader loads are the same, on every store.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatflow import WorkflowEngine
from store_harness import Harness

SCHEMA: dict[str, Any] = {
    "name": "typed",
    "merge_trigger_data": "flat",
    "phases": [{"name": "draft"}, {"name": "review"}, {"name": "ship"}],
}

CHANGES = [(1, True), (True, 1), (0, False), (1, 1.0), ([1], [True]), ({"n": 1}, {"n": 1.0})]


def exact(value: Any) -> str:
    """The JSON text of ``value``: equal only for the same value of the same types."""
    return json.dumps(value, sort_keys=True)


def reloaded_state(harness: Harness, instance_id: str) -> dict[str, Any]:
    """The instance as a fresh store object on the same data reads it."""
    store = harness.open()
    try:
        state = store.load_state(instance_id)
    finally:
        store.close()
    assert state is not None
    return state


@pytest.mark.parametrize(("before", "after"), CHANGES)
def test_a_step_keeps_a_change_of_json_type(harness: Harness, before: Any, after: Any) -> None:
    store = harness.open()
    try:
        engine = WorkflowEngine(store=store)
        iid = engine.start_workflow_instance(SCHEMA, {"x": before}, "feat_typed", {"m": before})
        returned = engine.trigger_next_step(iid, {"x": after}, {"m": after})
        assert exact(returned.variables["x"]) == exact(after)
        again = engine.get_workflow_instance_status(iid)
        assert again is not None
        assert exact(again.variables["x"]) == exact(after)
        assert exact(again.meta["m"]) == exact(after)
    finally:
        store.close()
    stored = reloaded_state(harness, iid)
    assert exact(stored["variables"]["x"]) == exact(after)
    assert exact(stored["meta"]["m"]) == exact(after)


@pytest.mark.parametrize(("before", "after"), CHANGES)
def test_update_and_save_keep_a_change_of_json_type(
    harness: Harness, before: Any, after: Any
) -> None:
    store = harness.open()
    try:
        engine = WorkflowEngine(store=store)
        iid = engine.start_workflow_instance(SCHEMA, {"x": before}, "feat_typed")

        def change(state: dict[str, Any]) -> dict[str, Any]:
            state["variables"]["x"] = after
            return state

        store.update_state(iid, change)
        assert exact(reloaded_state(harness, iid)["variables"]["x"]) == exact(after)

        state = store.load_state(iid)
        assert state is not None
        state["variables"]["x"] = before
        store.save_state(iid, state)
        assert exact(reloaded_state(harness, iid)["variables"]["x"]) == exact(before)
        assert store.verify(iid) is None
    finally:
        store.close()
