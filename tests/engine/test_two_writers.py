"""Two store objects on one folder (``chatflow ui`` running while ``chatflow delete``
runs in a terminal): each sees what the other did, even where its caches disagree."""

from __future__ import annotations

from pathlib import Path

from chatflow import WorkflowEngine

SCHEMA = {"name": "flow", "phases": [{"name": "a"}, {"name": "b"}]}


def test_a_feature_index_rewritten_by_another_store_is_read_again(storage_dir: Path) -> None:
    page, terminal = (
        WorkflowEngine(storage_dir=storage_dir),
        WorkflowEngine(storage_dir=storage_dir),
    )
    first = page.start_workflow_instance(SCHEMA, {}, "feat_w")
    second = page.start_workflow_instance(SCHEMA, {}, "feat_w")
    assert page.list_feature_instances("feat_w") == [first, second]  # now cached
    assert terminal.state_store.delete_instance(first)  # rewrites the index without it
    third = terminal.start_workflow_instance(SCHEMA, {}, "feat_w")
    fourth = terminal.start_workflow_instance(SCHEMA, {}, "feat_w")  # longer than before
    assert page.list_feature_instances("feat_w") == [second, third, fourth]
    rollup = page.get_feature_status("feat_w")
    assert (rollup["total_instances"], rollup["latest_instance_id"]) == (3, fourth)
