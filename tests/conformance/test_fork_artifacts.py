"""A fork carries verified copies of every artifact of the history it inherits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.core import fork_repair
from chatflow.storage import IWorkflowStateStore
from store_harness import FileHarness, Harness, PostgresHarness, SQLiteHarness

FLOW = {"name": "forkflow", "phases": [{"name": "plan"}, {"name": "build"}, {"name": "ship"}]}


def test_a_fork_sees_and_verifies_every_inherited_artifact(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    engine = WorkflowEngine(store=store)
    parent = engine.start_workflow_instance(FLOW, feature_id="feat_fork").instance_id
    engine.record_task_artifacts(parent, "prompt", "plan, first try")
    engine.record_task_artifacts(parent, "prompt", "plan, second try")
    engine.trigger_next_step(parent)
    engine.record_task_artifacts(parent, "prompt", "the build")
    engine.trigger_next_step(parent)
    child = engine.fork(parent, at=2)

    for task, version, response in [
        ("plan", None, "plan, second try"),
        ("plan", 1, "plan, first try"),
        ("build", None, "the build"),
    ]:
        found = engine.get_task_artifacts(child, task, version=version)
        assert found is not None and found.response == response
    assert store.list_task_phases(child) == ["build", "plan"]
    assert engine.verify(child) is None

    # The copies are the fork's own: damage to them is what verify reports.
    harness.corrupt_artifacts(child, "plan")
    fresh = harness.open()
    try:
        problem = WorkflowEngine(store=fresh).verify(child)
        assert problem is not None and "'plan' version 1" in str(problem)
        assert WorkflowEngine(store=fresh).verify(parent) is None
    finally:
        fresh.close()


def test_verify_reports_a_history_naming_a_missing_task_record(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_fork").instance_id

    def name_a_lost_record(state: dict[str, object]) -> dict[str, object]:
        history = state["history"]
        assert isinstance(history, list)
        history[0]["task"] = "plan"  # as forks made before their artifacts were copied
        return state

    store.update_state(iid, name_a_lost_record)
    problem = engine.verify(iid)
    assert problem is not None and "task record 'plan'" in str(problem)


def _old_fork(engine: WorkflowEngine, parent: str, at: int) -> str:
    """A fork as ChatFlow made them before forks carried artifacts: no copies."""
    inherited = engine._inherited_artifacts
    engine._inherited_artifacts = lambda parent, child: []  # type: ignore[method-assign]
    try:
        return engine.fork(parent, at=at)
    finally:
        engine._inherited_artifacts = inherited  # type: ignore[method-assign]


def test_doctor_fix_gives_an_old_fork_its_parents_verified_artifacts(
    harness: Harness, store: IWorkflowStateStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = WorkflowEngine(store=store)
    parent = engine.start_workflow_instance(FLOW, feature_id="feat_old_fork").instance_id
    engine.record_task_artifacts(parent, "prompt", "plan, first try")
    engine.record_task_artifacts(parent, "prompt", "plan, second try")
    engine.trigger_next_step(parent)
    engine.record_task_artifacts(parent, "prompt", "the build")
    engine.trigger_next_step(parent)
    child = _old_fork(engine, parent, 2)
    problem = engine.verify(child)
    assert problem is not None and "task record 'plan'" in str(problem)
    [finding] = fork_repair.findings(engine, set())
    assert (finding.kind, finding.instance_id, finding.fixable) == (fork_repair.KIND, child, True)

    if harness.kind != "memory":  # through the command, in a process of its own
        target = doctor_target(harness)
        listed = run_chatflow(tmp_path, target, "doctor", "--json")
        assert listed.returncode == 1, listed.stderr
        kinds = [(p["kind"], p["instance_id"]) for p in json.loads(listed.stdout)["problems"]]
        assert kinds == [(fork_repair.KIND, child)]
        fixed = run_chatflow(tmp_path, target, "doctor", "--fix")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "fixed" in fixed.stdout and child in fixed.stdout
        assert "copied task records plan, build" in fixed.stderr  # the repair's warning
        engine = WorkflowEngine(store=harness.open())
    else:
        with caplog.at_level("WARNING", logger="chatflow"):
            assert fork_repair.fix(engine, [finding]) == [finding]
        assert any("copied task records plan, build" in r.getMessage() for r in caplog.records)
    assert engine.verify(child) is None
    for task, version, response in [
        ("plan", None, "plan, second try"),
        ("plan", 1, "plan, first try"),
        ("build", None, "the build"),
    ]:
        found = engine.get_task_artifacts(child, task, version=version)
        assert found is not None and found.response == response
    assert fork_repair.findings(engine, set()) == []
    engine.state_store.close()


def doctor_target(harness: Harness) -> str:
    if isinstance(harness, FileHarness):
        return harness.folder
    if isinstance(harness, SQLiteHarness):
        return f"sqlite:///{harness.path}"
    assert isinstance(harness, PostgresHarness)
    return f"{harness.url}?schema={harness.schema}"


def run_chatflow(cwd: Path, target: str, *args: str) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return subprocess.run(
        [sys.executable, "-m", "chatflow", "--dir", target, *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
        cwd=cwd,
    )
