"""One action table: what the views offer is exactly what the lifecycle accepts.

The page's buttons come from ``views.available_actions`` (app.js computes nothing), so
an action offered must succeed and one the lifecycle refuses must never be offered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatflow import WorkflowEngine, views
from chatflow.errors import InvalidTransitionError, ValidationError
from chatflow.ui import api

FLOW = {
    "name": "gated",
    "phases": [
        {"name": "draft", "exit_requires": {"approvals": 1}},
        {"name": "review", "requires_approval": True},
        {"name": "ship"},
    ],
}

Setup = Callable[[WorkflowEngine, str], None]


def _approved_draft(engine: WorkflowEngine, iid: str) -> None:
    engine.approve(iid, by="ann")


def _waiting_to_enter(engine: WorkflowEngine, iid: str) -> None:
    engine.approve(iid, by="ann")
    engine.trigger_next_step(iid)


SETUPS: dict[str, Setup] = {
    "running, gate open": lambda engine, iid: None,
    "running, gate met": _approved_draft,
    "paused by hand": lambda engine, iid: engine.pause(iid, "lunch", actor="ann") and None,
    "paused for approval": _waiting_to_enter,
    "failed": lambda engine, iid: engine.fail_phase(iid, "broke") and None,
    "cancelled": lambda engine, iid: engine.cancel(iid, "dropped") and None,
}

EXPECTED = {
    "running, gate open": ["approve", "pause", "retry", "cancel"],
    "running, gate met": ["pause", "retry", "cancel"],
    "paused by hand": ["resume", "cancel"],
    "paused for approval": ["approve", "reject", "cancel"],
    "failed": ["retry", "cancel"],
    "cancelled": [],
}


@pytest.mark.parametrize("name", SETUPS)
def test_the_view_offers_exactly_what_the_lifecycle_accepts(
    engine: WorkflowEngine, name: str
) -> None:
    iid = engine.start_workflow_instance(FLOW, {}, "feat_a")
    SETUPS[name](engine, iid)
    offered = api.instance_view(engine, iid)["actions"]
    assert offered == EXPECTED[name]
    for action in views.PAGE_ACTIONS:
        fresh = engine.start_workflow_instance(FLOW, {}, "feat_b")
        SETUPS[name](engine, fresh)
        refusal = None
        try:
            api.act(engine, fresh, action, {"actor": "bob", "note": "n"})
        except (InvalidTransitionError, ValidationError) as error:
            refusal = str(error)
        if refusal is not None:
            assert action not in offered, f"{action} is offered but refused: {refusal}"
        else:  # an extra approval of a met or paused gate is accepted, but not offered
            assert action in offered or action == "approve", f"{action} works but is hidden"
