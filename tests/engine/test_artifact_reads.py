"""Reading recorded prompts and responses back: every version by its number, and
never a text that no longer matches the checksum recorded for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatflow import CorruptStateError, WorkflowEngine

SCHEMA = {"name": "flow", "phases": [{"name": "plan"}, {"name": "code"}]}


def test_each_version_is_read_by_its_number_the_latest_included(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_a")
    for n in (1, 2, 3):
        engine.record_task_artifacts(iid, f"prompt {n}", f"response {n}")
    for n in (1, 2, 3):
        found = engine.get_task_artifacts(iid, "plan", version=n)
        assert found is not None and (found.prompt, found.response) == (
            f"prompt {n}",
            f"response {n}",
        )
    for missing in (0, 4, -1):
        assert engine.get_task_artifacts(iid, "plan", version=missing) is None


@pytest.mark.parametrize("suffix", ["prompt.md", "ai_response.md"])
def test_an_edited_text_is_refused_not_returned(
    engine: WorkflowEngine, storage_dir: Path, suffix: str
) -> None:
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_a")
    engine.record_task_artifacts(iid, "the prompt", "the response")
    text = storage_dir / "instances" / iid / "tasks" / f"plan.v1.{suffix}"
    text.write_text(text.read_text(encoding="utf-8") + " (edited)", encoding="utf-8")
    what = "prompt" if suffix == "prompt.md" else "response"
    with pytest.raises(CorruptStateError, match=what):
        engine.get_task_artifacts(iid, "plan")
    with pytest.raises(CorruptStateError, match=what):
        engine.get_task_artifacts(iid, "plan", version=1)
