"""The page's "approve" is a person's decision: it lets an instance waiting for approval
go on, and is refused for one that someone merely paused (that takes "resume")."""

from __future__ import annotations

from pathlib import Path

from ._support import serving_with_actions
from .test_server import Client


def test_approve_refuses_a_manual_pause_and_resume_continues_it(tmp_path: Path) -> None:
    with serving_with_actions(tmp_path) as (app, engine, ids):
        client, iid = Client(app), ids["running"]
        assert client.act(iid, "pause", {"actor": "dev_dan", "note": "lunch"}).status == 200
        refused = client.act(iid, "approve", {"actor": "dev_dan"})
        assert refused.status == 409, refused.body
        state = engine.get_workflow_instance_status(iid)
        assert state is not None and state.status.value == "paused"
        assert [e.kind.value for e in engine.get_workflow_history(iid)][-1] == "paused"
        assert client.act(iid, "resume", {"actor": "dev_dan"}).status == 200
        resumed = engine.get_workflow_history(iid)[-1]
        assert resumed.kind.value == "resumed" and resumed.data["approved_by"] is None
