"""Feature indexes and listings: creation order, filters, and roll-ups by query."""

from __future__ import annotations

from chatflow import InstanceSummary, WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.storage.base import StatusCount
from chatflow.testing._check import parametrize, raises
from chatflow.testing._states import make_state

CAPABILITY = "features"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_engine_roll_up_names_the_newest_instance",
    "test_features_are_sorted_and_separate",
    "test_instances_are_listed_in_creation_order",
    "test_list_instances_filters_by_feature_and_status",
    "test_status_counts_name_the_newest_instance_of_each_status",
    "test_status_filter_must_be_a_string",
    "test_summaries_follow_updates",
    "test_unknown_feature_has_no_instances",
]


# Descending ids: creation order must come from the store, not from sorting ids.
IDS = ["wfi_zz", "wfi_mm", "wfi_aa", "wfi_0b"]


def _create(store: IWorkflowStateStore, feature: str, ids: list[str], **extra: object) -> None:
    for iid in ids:
        store.create_state(make_state(feature, instance_id=iid, **extra))


def test_instances_are_listed_in_creation_order(store: IWorkflowStateStore) -> None:
    _create(store, "feat_a", IDS)
    assert store.list_instances_by_feature("feat_a") == IDS
    assert [s.instance_id for s in store.list_feature_summaries("feat_a")] == IDS


def test_features_are_sorted_and_separate(store: IWorkflowStateStore) -> None:
    _create(store, "feat_b", ["wfi_b1"])
    _create(store, "feat_a", ["wfi_a1", "wfi_a2"])
    assert store.list_features() == ["feat_a", "feat_b"]
    assert store.list_instances_by_feature("feat_b") == ["wfi_b1"]
    assert store.list_instance_ids() == ["wfi_a1", "wfi_a2", "wfi_b1"]


def test_unknown_feature_has_no_instances(store: IWorkflowStateStore) -> None:
    assert store.list_features() == []
    assert store.list_instances_by_feature("feat_none") == []
    assert store.list_feature_summaries("feat_none") == []
    assert store.list_instances() == []


def test_summaries_follow_updates(store: IWorkflowStateStore) -> None:
    state = make_state("feat_a", instance_id="wfi_one", created_at=10.0, updated_at=10.0)
    store.create_state(state)
    store.update_state(
        "wfi_one",
        lambda s: {**s, "status": "running", "current_phase": "design", "updated_at": 20.5},
    )
    expected = InstanceSummary("wfi_one", "feat_a", "running", "design", 10.0, 20.5)
    assert store.list_feature_summaries("feat_a") == [expected]
    assert store.list_instances() == [expected]


def test_list_instances_filters_by_feature_and_status(store: IWorkflowStateStore) -> None:
    _create(store, "feat_b", ["wfi_b1", "wfi_b2"])
    _create(store, "feat_a", ["wfi_a1"], status="completed")
    _create(store, "feat_a", ["wfi_a2"], status="paused")
    ids = [s.instance_id for s in store.list_instances()]
    assert ids == ["wfi_a1", "wfi_a2", "wfi_b1", "wfi_b2"]
    assert [s.instance_id for s in store.list_instances(feature_id="feat_b")] == [
        "wfi_b1",
        "wfi_b2",
    ]
    assert [s.instance_id for s in store.list_instances(status="created")] == ["wfi_b1", "wfi_b2"]
    assert [s.instance_id for s in store.list_instances("feat_a", "paused")] == ["wfi_a2"]
    assert store.list_instances("feat_b", "paused") == []


def test_engine_roll_up_names_the_newest_instance(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    schema = {"name": "two", "phases": [{"name": "one"}, {"name": "two"}]}
    ids = [engine.start_workflow_instance(schema, {}, "feat_x") for _ in range(5)]
    engine.trigger_next_step(ids[0])
    engine.trigger_next_step(ids[0])
    engine.trigger_next_step(ids[1])
    status = engine.get_feature_status("feat_x")
    assert status["latest_instance_id"] == ids[-1]
    assert (status["total_instances"], status["completed_count"]) == (5, 1)
    assert (status["running_count"], status["status"]) == (1, "in_progress")
    assert [s.instance_id for s in engine.list_instances(status="completed")] == [ids[0]]
    assert [s.instance_id for s in engine.list_instances(feature_id="feat_x")] == ids


@parametrize("status", [5, b"created"])
def test_status_filter_must_be_a_string(store: IWorkflowStateStore, status: object) -> None:
    with raises(ValueError, match="status"):
        store.list_instances(status=status)  # type: ignore[arg-type]


def test_status_counts_name_the_newest_instance_of_each_status(
    store: IWorkflowStateStore,
) -> None:
    _create(store, "feat_a", ["wfi_zz"], status="running")
    _create(store, "feat_a", ["wfi_mm", "wfi_aa"], status="completed")
    _create(store, "feat_a", ["wfi_0b"], status="running")
    _create(store, "feat_b", ["wfi_b1"], status="failed")
    assert store.feature_status_counts("feat_a") == [
        StatusCount("completed", 2, "wfi_aa"),
        StatusCount("running", 2, "wfi_0b"),
    ]
    assert store.feature_status_counts("feat_none") == []
