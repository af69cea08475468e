"""The page's feature list and a feature's page follow a deletion at once, on every store
(the store-level counts are in the packaged contract, ``chatflow.testing``)."""

from __future__ import annotations

from typing import Any

from chatflow import WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.ui import api

SCHEMA: dict[str, Any] = {"name": "two", "phases": [{"name": "plan"}, {"name": "code"}]}


def test_the_pages_roll_ups_follow_a_deletion(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    kept, *gone = (engine.start_workflow_instance(SCHEMA, {}, "feat_ui") for _ in range(3))
    engine.trigger_next_step(gone[1], {})  # running, the others created
    other = engine.start_workflow_instance(SCHEMA, {}, "feat_other")
    for iid in gone:
        assert store.delete_instance(iid)
    listed = {row["feature_id"]: row for row in api.feature_rollups(engine)}
    for view in (listed["feat_ui"], api.feature(engine, "feat_ui")):
        assert view["total_instances"] == 1
        assert view["counts"]["created"] == 1 and view["counts"]["running"] == 0
        assert view["latest_instance_id"] == view["active_instance_id"] == kept
    assert listed["feat_other"]["latest_instance_id"] == other
    assert store.delete_instance(kept)
    assert [row["feature_id"] for row in api.feature_rollups(engine)] == ["feat_other"]
