"""The file and SQLite stores' index of waiting instances stays a superset of the real
waits, whatever a kill left behind, and the heads stay the truth: entries never
committed or already ended are cleared by ``due``; a lost or damaged index is rebuilt
(on the first ``due`` without one, and by ``doctor --fix``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.storage.waits import WaitKey, index_of

SCHEMA: dict[str, Any] = {
    "name": "waits",
    "phases": [
        {"name": "code"},
        {"name": "review", "requires_approval": True, "deadline": "1h", "on_timeout": "fail"},
        {"name": "ship"},
    ],
}
LATER = 2 * 3600.0


@pytest.fixture(params=["file", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / ".chatflow")
    return f"sqlite:///{tmp_path / 'state.db'}"


def waiting(engine: WorkflowEngine) -> str:
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat")
    engine.trigger_next_step(iid)
    return iid


def test_a_wait_is_indexed_and_cleared_when_it_ends(target: str) -> None:
    engine = WorkflowEngine(target)
    iid = waiting(engine)
    index = index_of(engine.state_store)
    assert index is not None
    (key,) = index.live()[iid]
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.wait is not None and key.due_at == state.wait["due_at"]
    engine.resume(iid, approved_by="ana")
    assert iid not in index.live()
    assert engine.due(time.time() + LATER) == []


def test_entries_a_kill_left_behind_are_cleared_not_acted_on(target: str) -> None:
    engine = WorkflowEngine(target)
    iid = waiting(engine)
    other = waiting(engine)
    engine.resume(other, approved_by="ana")
    index = index_of(engine.state_store)
    assert index is not None
    # A step killed before its commit (a wait that never was), and one killed after its
    # commit but before its '-' line (a wait that ended): both stay listed.
    index.add(iid, WaitKey(7, time.time()))
    index.add(other, WaitKey(1, time.time()))
    due = engine.due(time.time() + LATER)
    assert [timeout.instance_id for timeout in due] == [iid]
    assert list(index.live()) == [iid] and len(index.live()[iid]) == 1


def test_a_lost_index_is_rebuilt_from_the_heads(target: str) -> None:
    engine = WorkflowEngine(target)
    iid = waiting(engine)
    index = index_of(engine.state_store)
    assert index is not None
    index.path.unlink()
    assert [timeout.instance_id for timeout in engine.due(time.time() + LATER)] == [iid]
    index.path.write_text("+ wfi_torn 1 1", encoding="utf-8")  # damaged: a torn line
    assert engine.due(time.time() + LATER) == []  # iid's wait is not in it
    assert engine.rebuild_waits() == 2  # every head's wait, and what the journal held
    assert [timeout.instance_id for timeout in engine.due(time.time() + LATER)] == [iid]
    assert list(index.live()) == [iid]  # the entry without an instance was cleared


def test_doctor_fix_rebuilds_the_index(tmp_path: Path) -> None:
    folder = tmp_path / ".chatflow"
    engine = WorkflowEngine(folder)
    iid = waiting(engine)
    (folder / "waits.log").write_text("", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "chatflow", "--dir", str(folder), "doctor", "--fix", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"waits_indexed": 1' in result.stdout
    assert [timeout.instance_id for timeout in engine.due(time.time() + LATER)] == [iid]


def test_a_dry_run_indexes_nothing(target: str) -> None:
    engine = WorkflowEngine(target)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat")
    engine.trigger_next_step(iid, dry_run=True)
    index = index_of(engine.state_store)
    assert index is not None and index.live() == {}


def test_a_migrated_wait_is_indexed_in_the_target(tmp_path: Path) -> None:
    from chatflow.storage.migrate import migrate

    source = WorkflowEngine(tmp_path / "source")
    moved = waiting(source)
    source.close()
    target = f"sqlite:///{tmp_path / 'target.db'}"
    engine = WorkflowEngine(target)
    there = waiting(engine)  # the target's index exists already
    assert migrate(str(tmp_path / "source"), target).instances_copied == 1
    due = engine.due(time.time() + LATER)
    assert sorted(timeout.instance_id for timeout in due) == sorted([moved, there])
