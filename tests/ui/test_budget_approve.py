"""Over budget, the page's plain "approve" is refused as the command's is: recording an
exit gate's approval would look like letting the instance go on. Allowing more
(``{"extend": ...}``) is what ends a budget pause."""

from __future__ import annotations

from pathlib import Path

from ._support import serving_with_actions
from .test_server import Client

GATED = {
    "name": "gated_budget",
    "budget": {"cost_usd": 1},
    "phases": [{"name": "review", "exit_requires": {"approvals": 1}}, {"name": "ship"}],
}


def test_a_plain_approve_of_a_budget_pause_is_refused(tmp_path: Path) -> None:
    with serving_with_actions(tmp_path) as (app, engine, _):
        client = Client(app)
        iid = engine.start_workflow_instance(GATED, feature_id="feat_budget")
        engine.record_usage(iid, cost_usd=2)  # over budget: paused
        refused = client.act(iid, "approve", {"actor": "dev_dan"})
        assert refused.status == 409, refused.body
        assert "over budget" in str(refused.body)
        kinds = [event.kind.value for event in engine.get_workflow_history(iid)]
        assert kinds[-1] == "budget_exceeded" and "approved" not in kinds
        extended = client.act(iid, "approve", {"actor": "dev_dan", "extend": {"cost_usd": 5}})
        assert extended.status == 200, extended.body
        assert engine.get_workflow_instance_status(iid).status.value == "created"  # as before
