"""The MCP ``record`` tool takes usage; the record or step that crosses a budget
pauses the instance and tells the agent a person must allow more; bad usage is an
error naming the problem, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from _mcp_support import call, error, session, write_workflow

from chatflow.core.engine import WorkflowEngine

BUDGETED: dict[str, Any] = {
    "name": "budgeted",
    "budget": {"cost_usd": 1},
    "phases": [{"name": "code"}, {"name": "review"}, {"name": "ship"}],
}


def test_record_with_usage_and_a_budget_crossed_by_a_step(tmp_path: Path) -> None:
    store, workflow = tmp_path / "store", write_workflow(tmp_path, BUDGETED)

    async def scenario() -> None:
        async with session(store) as client:
            started = await call(client, "start", workflow=str(workflow), feature_id="feat_m")
            iid = started["instance"]["instance_id"]
            usage = {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.5, "model": "m"}
            await call(client, "record", instance_id=iid, prompt="P", response="R", usage=usage)
            wrong = await error(
                client, "record", instance_id=iid, prompt="P", response="R", usage={"cost": 1}
            )
            assert "did you mean 'cost_usd'" in wrong
            crossed = await call(client, "next", instance_id=iid, data={"cost_usd": 0.75})
            assert crossed["outcome"] == "over_budget"
            assert crossed["instance"]["next_action"] == "extend_budget"
            assert "--extend" in crossed["instance"]["what_to_do"]

    anyio.run(scenario)
    engine = WorkflowEngine(storage_dir=store)
    (iid,) = engine.list_feature_instances("feat_m")
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.usage is not None
    assert state.usage["total"]["cost_usd"] == 1.25
    assert state.usage["phases"]["code"]["records"] == 2
    assert engine.verify(iid) is None
    engine.close()
