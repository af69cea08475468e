"""``list_feature_counts``: every feature's counts and last activity in one call.

Each store answers it its own way (one query, one scan, a dict walk); all must agree
with the base class's default, which groups one ``list_instances`` listing.
"""

from __future__ import annotations

from typing import Any

from chatflow import WorkflowEngine
from chatflow.storage import IWorkflowStateStore, StatusCount
from chatflow.testing._check import approx, requires

CAPABILITY = "features"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_a_deleted_instance_leaves_every_roll_up_at_once",
    "test_a_deleted_instance_leaves_the_counts",
    "test_an_empty_store_has_no_features",
    "test_counts_match_each_feature_and_the_default",
    "test_last_activity_is_the_newest_step",
]

SCHEMA: dict[str, Any] = {
    "name": "gated",
    "phases": [{"name": "plan"}, {"name": "code"}, {"name": "ship", "requires_approval": True}],
}


def _fill(engine: WorkflowEngine) -> dict[str, str]:
    """Three features mixing statuses; the last step lands on ``feat_b``."""
    ids: dict[str, str] = {
        name: engine.start_workflow_instance(SCHEMA, {}, feature)
        for name, feature in (
            ("a_done", "feat_a"),
            ("a_failed", "feat_a"),
            ("b_paused", "feat_b"),
            ("b_running", "feat_b"),
            ("c_new", "feat_c"),
        )
    }
    engine.fail_phase(ids["a_failed"], "broke")
    engine.trigger_next_step(ids["a_done"], {})
    engine.cancel(ids["a_done"], reason="dropped")
    engine.trigger_next_step(ids["b_paused"], {})
    engine.trigger_next_step(ids["b_paused"], {})  # entering `ship` waits for approval
    engine.trigger_next_step(ids["b_running"], {})
    return ids


def test_counts_match_each_feature_and_the_default(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    ids = _fill(engine)
    store = engine.state_store
    overview = store.list_feature_counts()
    assert [found.feature_id for found in overview] == ["feat_a", "feat_b", "feat_c"]
    for found in overview:
        assert found.counts == store.feature_status_counts(found.feature_id)
    by_feature = {found.feature_id: found for found in overview}
    assert by_feature["feat_b"].counts == [
        StatusCount("paused", 1, ids["b_paused"]),
        StatusCount("running", 1, ids["b_running"]),
    ]
    default = IWorkflowStateStore.list_feature_counts(store)
    assert [(f.feature_id, f.counts) for f in default] == [
        (f.feature_id, f.counts) for f in overview
    ]


def test_last_activity_is_the_newest_step(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    ids = _fill(engine)
    engine.trigger_next_step(ids["c_new"], {})
    overview = {found.feature_id: found for found in engine.state_store.list_feature_counts()}
    newest = max(overview.values(), key=lambda found: found.updated_at)
    assert newest.feature_id == "feat_c"
    updated = engine.get_workflow_instance_status(ids["c_new"]).updated_at  # type: ignore[union-attr]
    assert newest.updated_at == approx(updated, abs=1.0)


@requires("delete")
def test_a_deleted_instance_leaves_the_counts(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    ids = _fill(engine)
    engine.state_store.delete_instance(ids["c_new"])
    engine.state_store.delete_instance(ids["b_running"])
    overview = engine.state_store.list_feature_counts()
    assert [found.feature_id for found in overview] == ["feat_a", "feat_b"]
    assert overview[1].counts == [StatusCount("paused", 1, ids["b_paused"])]


@requires("delete")
def test_a_deleted_instance_leaves_every_roll_up_at_once(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    ids = _fill(engine)
    twin = engine.start_workflow_instance(SCHEMA, {}, "feat_b")  # a second running one
    engine.trigger_next_step(twin, {})
    assert store.feature_status_counts("feat_b")[-1] == StatusCount("running", 2, twin)
    assert store.delete_instance(twin)
    expected = [
        StatusCount("paused", 1, ids["b_paused"]),
        StatusCount("running", 1, ids["b_running"]),
    ]
    assert store.feature_status_counts("feat_b") == expected
    assert {found.feature_id: found.counts for found in store.list_feature_counts()}[
        "feat_b"
    ] == expected
    rollup = engine.get_feature_status("feat_b")
    assert (rollup["total_instances"], rollup["running_count"]) == (2, 1)
    assert rollup["latest_instance_id"] == ids["b_running"]
    assert store.get_current_task_id_for_feature("feat_b") == ids["b_running"]
    overview = {found["feature_id"]: found for found in engine.list_feature_rollups()}
    assert (overview["feat_b"]["total_instances"], overview["feat_b"]["running_count"]) == (2, 1)
    # The feature's last instances go too: no count, no roll-up is left behind.
    for iid in (ids["b_paused"], ids["b_running"]):
        assert store.delete_instance(iid)
    assert store.feature_status_counts("feat_b") == []
    assert "feat_b" not in {found.feature_id for found in store.list_feature_counts()}
    assert engine.get_feature_status("feat_b")["status"] == "not_started"
    # A new instance of the feature is counted from one again, not on top of stale counts.
    again = engine.start_workflow_instance(SCHEMA, {}, "feat_b")
    assert store.feature_status_counts("feat_b") == [StatusCount("created", 1, again)]


def test_an_empty_store_has_no_features(store: IWorkflowStateStore) -> None:
    assert store.list_feature_counts() == []
