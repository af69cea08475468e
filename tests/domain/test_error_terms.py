"""Errors name what to do in the caller's terms: the library's calls by default, a
front end's own words through ``ChatFlowError.phrased`` (the CLI: commands and flags)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from chatflow import InvalidTransitionError, ValidationError, WorkflowEngine
from chatflow.cli.context import TERMS as COMMAND_TERMS
from chatflow.errors import TERMS


def test_the_library_names_its_calls_and_the_command_its_commands(tmp_path: Path) -> None:
    engine = WorkflowEngine(tmp_path / ".chatflow", durable=False)
    flow = {"name": "f", "phases": [{"name": "a"}, {"name": "b", "requires_approval": True}]}
    iid = engine.start_workflow_instance(flow, {}, "feat_f")
    engine.trigger_next_step(iid)  # paused: b needs approval to be entered
    with pytest.raises(InvalidTransitionError) as caught:
        engine.pause(iid)
    error = caught.value
    assert str(error).endswith("first resume(approved_by=<who approves>) or reject()")
    command = f"first chatflow approve {iid} --by NAME or chatflow reject {iid} --by NAME"
    assert error.phrased(COMMAND_TERMS).endswith(command)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.phrased(COMMAND_TERMS) == error.phrased(COMMAND_TERMS)
    with pytest.raises(ValidationError) as missing:
        engine.resume(iid)
    assert "approve it with resume(approved_by=<who approves>)" in str(missing.value)
    assert f"chatflow approve {iid} --by NAME" in missing.value.phrased(COMMAND_TERMS)


def test_every_library_term_has_the_commands_words() -> None:
    """So no message seen from the command falls back to (or fails on) a Python name."""
    assert set(TERMS) <= set(COMMAND_TERMS)
    assert not any("()" in words for words in COMMAND_TERMS.values())
