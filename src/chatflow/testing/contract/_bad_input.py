"""Unsafe ids are refused before anything is read or written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatflow import InvalidIdError
from chatflow.storage import IWorkflowStateStore
from chatflow.testing._check import parametrize, raises, skip
from chatflow.testing._states import make_state

CAPABILITY = "states"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = ["test_bad_ids_are_refused_and_nothing_is_written"]


BAD_IDS: list[Any] = ["../escape", "a/b", "..", "", "x" * 200, "has space", "C:\\x", None, 7]
RECORD = {"phase_name": "p", "status": "completed", "started_at": 1.0}

Call = Callable[[IWorkflowStateStore, Any], object]

CALLS: dict[str, Call] = {
    "load_state": lambda s, bad: s.load_state(bad),
    "update_state": lambda s, bad: s.update_state(bad, lambda state: state),
    "create_state(instance_id)": lambda s, bad: s.create_state(
        {**make_state(), "instance_id": bad}
    ),
    "create_state(feature_id)": lambda s, bad: s.create_state(make_state(feature_id=bad)),
    "save_state": lambda s, bad: s.save_state(bad, {**make_state(), "instance_id": bad}),
    "list_instances_by_feature": lambda s, bad: s.list_instances_by_feature(bad),
    "list_instances": lambda s, bad: s.list_instances(feature_id=bad),
    "save_task_artifacts(phase)": lambda s, bad: s.save_task_artifacts(
        "feat_a", "wfi_ok", bad, RECORD, "p", "r"
    ),
    "save_task_artifacts(instance)": lambda s, bad: s.save_task_artifacts(
        "feat_a", bad, "design", RECORD, "p", "r"
    ),
    "load_task_artifacts": lambda s, bad: s.load_task_artifacts("wfi_ok", bad),
}


@parametrize("call", list(CALLS), ids=list(CALLS))
@parametrize("bad", BAD_IDS, ids=repr)
def test_bad_ids_are_refused_and_nothing_is_written(
    store: IWorkflowStateStore, tmp_path: Path, call: str, bad: Any
) -> None:
    if call == "list_instances" and bad is None:
        skip("feature_id=None means every feature")
    outside = set(tmp_path.parent.iterdir())
    with raises(InvalidIdError):
        CALLS[call](store, bad)
    assert store.list_features() == []
    assert set(tmp_path.parent.iterdir()) == outside
