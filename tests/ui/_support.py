"""Shared by the UI's server and browser tests: a store with realistic work in it.
The browser itself is the session's (``tests/browser_support.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatflow import WorkflowEngine
from chatflow.ui import UIServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"
HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(2)>'

Served = tuple[UIServer, WorkflowEngine, dict[str, str]]
"""A running server that allows actions, its engine, and ``populate``'s instance ids."""

GATED: dict[str, Any] = {
    "name": "gated_release",
    "version": 2,
    "title": "Release with sign-off",
    "phases": [
        {"name": "draft", "title": "Draft changes"},
        {"name": "sign_off", "title": "Sign-off", "requires_approval": True},
        {"name": "ship", "title": "Ship it"},
    ],
}


def populate(engine: WorkflowEngine) -> dict[str, str]:
    """Features in every interesting state; returns their instance ids by role."""
    engine.register_schema(EXAMPLES / "chatcoder_feature.yaml")
    ids: dict[str, str] = {}

    done = _start(engine, "feat_login", {"user_request": "log in with email"})
    for phase, trigger in [
        ("analyze", {}),
        ("design", {}),
        ("code", {}),
        ("test", {"failed": 2}),
        ("code", {}),
        ("test", {"failed": 0}),
        ("review", {"verdict": "approved"}),
        ("summary", {}),
    ]:
        engine.record_task_artifacts(done, f"# {phase}\nWrite the {phase}.", f"{phase} done.")
        engine.trigger_next_step(done, trigger, meta={"actor": "ai_agent"})
    ids["completed"] = done

    running = _start(engine, "feat_login", {"user_request": "remember me"})
    engine.record_task_artifacts(running, "# analyze\nRemember the user.", "Use a cookie.")
    engine.trigger_next_step(running, {}, meta={"actor": "ai_agent"})
    engine.record_task_artifacts(running, HOSTILE, f"response {HOSTILE}")
    ids["running"] = running

    waiting = _start(engine, "feat_payments", {"user_request": "refunds"})
    engine.trigger_next_step(waiting, {}, meta={"actor": "ai_agent"})
    engine.trigger_next_step(waiting, {"risk": 90}, meta={"actor": "ai_agent"})
    ids["awaiting_approval"] = waiting

    failed = _start(engine, "feat_search", {"user_request": "fuzzy search"})
    engine.trigger_next_step(failed, {}, meta={"actor": "ai_agent"})
    engine.trigger_next_step(failed, {}, meta={"actor": "ai_agent"})
    engine.fail_phase(failed, "AI call timed out", actor="ai_agent")
    engine.retry_phase(failed, note="try a smaller prompt", actor="dev_alice")
    engine.fail_phase(failed, "AI call timed out again", actor="ai_agent")
    ids["failed"] = failed

    gated = engine.start_workflow_instance(
        GATED, {"ticket": "REL-7"}, "feat_release", meta={"actor": "dev_bob"}
    )
    engine.record_task_artifacts(gated, "# draft\nDraft the release notes.", "Notes drafted.")
    engine.trigger_next_step(gated, {"notes": "ready"}, meta={"actor": "ai_agent"})
    ids["gated"] = gated
    return ids


@contextmanager
def serving_with_actions(folder: Path) -> Iterator[Served]:
    """A server allowing actions on a fresh, populated file store in ``folder/store``."""
    engine = WorkflowEngine(storage_dir=folder / "store", durable=False)
    ids = populate(engine)
    app = UIServer(engine, allow_actions=True).start()
    try:
        yield app, engine, ids
    finally:
        app.shutdown()


def _start(engine: WorkflowEngine, feature: str, context: dict[str, Any]) -> str:
    return engine.start_workflow_instance(
        schema_name="chatcoder_feature",
        initial_context=context,
        feature_id=feature,
        meta={"actor": "dev_alice"},
    )
