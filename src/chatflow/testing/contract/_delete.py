"""Deleting an instance removes its state, its artifacts and its feature-index entry."""

from __future__ import annotations

from chatflow.storage import IWorkflowStateStore
from chatflow.testing._check import requires
from chatflow.testing._states import make_state

CAPABILITY = "delete"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_delete_removes_state_artifacts_and_index_entry",
    "test_deleting_a_features_last_instance_removes_the_feature",
]


RECORD = {"phase_name": "design", "status": "completed", "started_at": 1.0, "ended_at": 2.0}


@requires(CAPABILITY)
def test_delete_removes_state_artifacts_and_index_entry(store: IWorkflowStateStore) -> None:
    for iid in ("wfi_keep", "wfi_gone"):
        store.create_state(make_state(instance_id=iid))
        store.save_task_artifacts("feat_a", iid, "design", RECORD, "prompt", "response")
    assert store.delete_instance("wfi_gone") is True
    assert store.load_state("wfi_gone") is None
    assert store.load_task_artifacts("wfi_gone", "design") is None
    assert store.list_instances_by_feature("feat_a") == ["wfi_keep"]
    assert store.load_task_artifacts("wfi_keep", "design") is not None
    assert store.delete_instance("wfi_gone") is False


@requires(CAPABILITY)
def test_deleting_a_features_last_instance_removes_the_feature(store: IWorkflowStateStore) -> None:
    store.create_state(make_state(instance_id="wfi_only"))
    assert store.delete_instance("wfi_only")
    assert store.list_features() == []
    assert store.list_instances() == []
    store.create_state(make_state(instance_id="wfi_only"))  # the id is free again
    assert store.list_instances_by_feature("feat_a") == ["wfi_only"]
