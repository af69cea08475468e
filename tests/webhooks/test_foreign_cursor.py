"""A hook whose cursor is another store's (copied by ``chatflow migrate``) is reported
with the command's remedy only, not the library's ("pass None ...")."""

from __future__ import annotations

from chatflow import WorkflowEngine
from chatflow.storage import MemoryStore
from chatflow.webhooks import Sender, hooks

FLOW = {"name": "one_step", "phases": [{"name": "draft"}, {"name": "ship"}]}


def test_a_foreign_cursor_names_webhook_reset_only() -> None:
    old, new = MemoryStore(), MemoryStore()
    WorkflowEngine(store=old).start_workflow_instance(FLOW, feature_id="feat_a")
    hook = hooks.add(new, "https://example.com/in", cursor=old.feed_end())
    WorkflowEngine(store=new).start_workflow_instance(FLOW, feature_id="feat_a")
    (report,) = Sender(new, sleep=lambda _: None).deliver_all()
    assert report.failing is not None
    error = report.failing["error"]
    assert f"to go on: chatflow webhook reset {hook['id']} [--from-start]" in error
    assert "None" not in error and "events_since" not in error
