"""States the contract suite stores: realistic, unique, and easy to change."""

from __future__ import annotations

import time
from typing import Any

from chatflow.storage.base import IWorkflowStateStore

_counter = iter(range(10**9))


def make_state(
    feature_id: str = "feat_a", instance_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A realistic state dict (as ``WorkflowInstanceState.to_dict`` makes) plus ``extra``."""
    now = time.time()
    state: dict[str, Any] = {
        "format": 1,
        "instance_id": instance_id or f"wfi_{next(_counter):04d}_{int(now * 1e6) % 10**8:08d}",
        "feature_id": feature_id,
        "workflow_name": "code_generation",
        "current_phase": "requirement_analysis",
        "status": "created",
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "variables": {"user_request": "create user registration", "n": 0},
        "meta": {"user_id": "dev_alice"},
        "workflow_schema": {
            "name": "code_generation",
            "phases": [{"name": "requirement_analysis"}],
        },
        "history": [
            {
                "phase": "requirement_analysis",
                "task": "",
                "started_at": now,
                "ended_at": None,
                "status": "running",
                "trigger_data_snapshot": None,
            }
        ],
    }
    state.update(extra)
    return state


def increment(state: dict[str, Any]) -> dict[str, Any]:
    """A read-modify-write that loses counts if two writers interleave."""
    state["variables"]["n"] += 1
    state["history"].append({"phase": "p", "task": "", "started_at": time.time()})
    return state


def assert_counted(store: IWorkflowStateStore, instance_id: str, total: int) -> None:
    """``total`` racing ``increment`` s were all kept: none lost, none doubled."""
    state = store.load_state(instance_id)
    assert state is not None
    assert state["variables"]["n"] == total
    assert len(state["history"]) == total + 1
    assert state["version"] == total + 1
