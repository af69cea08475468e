"""A hook on ``approved`` hears approvals only: a person allowing more budget resumes the
instance (``resumed`` with ``approved_by``) but approves nothing, as the history says."""

from __future__ import annotations

import json

from chatflow import WorkflowEngine, views
from chatflow.storage import MemoryStore
from chatflow.webhooks import Sender, hooks

FLOW = {
    "name": "budget_then_review",
    "budget": {"cost_usd": 1},
    "phases": [{"name": "code"}, {"name": "review", "requires_approval": True}, {"name": "ship"}],
}


def test_a_budget_extension_is_not_sent_as_approved() -> None:
    store = MemoryStore()
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_a")
    hooks.add(store, "https://example.com/in", events=["approved"], cursor=store.feed_end())
    engine.record_usage(iid, cost_usd=2)  # over budget: paused
    engine.extend_budget(iid, by="ana", cost_usd=5)
    engine.trigger_next_step(iid)  # into review: waits for approval
    engine.resume(iid, approved_by="bob")
    sent: list[dict[str, object]] = []

    def transport(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        sent.append(json.loads(body))
        return 200

    Sender(store, transport=transport).deliver_all()
    assert [(body["event"], body["events"][-1]["actor"]) for body in sent] == [("approved", "bob")]
    history = views.history_view(engine.get_workflow_history(iid))
    assert [(e["kind"], e["actor"]) for e in history if e["approval"]] == [("resumed", "bob")]
