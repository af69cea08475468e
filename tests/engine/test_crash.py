"""A writer killed with SIGKILL mid-write, many times over: state always loads, and every
step the writer saw acknowledged is still there."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatflow import WorkflowEngine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX"),
]

KILLS = 12
PHASES = 2_000

TRIGGER_LOOP = """
import sys
from chatflow import WorkflowEngine
engine = WorkflowEngine(storage_dir=sys.argv[1], durable=sys.argv[3] == "durable")
while True:
    state = engine.trigger_next_step(sys.argv[2], trigger_data={"payload": "x" * 500})
    print(state.version, flush=True)
"""

CREATE_LOOP = """
import sys
from chatflow import WorkflowEngine
engine = WorkflowEngine(storage_dir=sys.argv[1], durable=sys.argv[2] == "durable")
schema = {"name": "w", "phases": [{"name": "a"}, {"name": "b"}]}
while True:
    print(engine.start_workflow_instance(schema, {"pad": "y" * 300}, "feat_crash"), flush=True)
"""


ARTIFACT_LOOP = """
import sys
from chatflow import WorkflowEngine
engine = WorkflowEngine(storage_dir=sys.argv[1], durable=sys.argv[3] == "durable")
n = 0
while True:
    n += 1
    engine.record_task_artifacts(sys.argv[2], f"prompt {n} " + "p" * 3000, f"response {n}")
    print(n, flush=True)
"""


def run_and_kill(args: list[str]) -> list[str]:
    """Start a writer, SIGKILL it at a random moment, return the lines it acknowledged."""
    child = subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acknowledged = [child.stdout.readline().strip()]  # at least one write before the kill
    # The writer is in its loop (one write acknowledged) and a write takes a few ms: a
    # window of dozens of writes puts the kill at a random point inside one.
    time.sleep(random.uniform(0.01, 0.08))
    child.send_signal(signal.SIGKILL)
    acknowledged += [line.strip() for line in child.stdout if line.strip()]
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return acknowledged


@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_killed_trigger_loop_never_corrupts_or_loses_acknowledged_steps(
    storage_dir: Path, mode: str
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    schema = {"name": "endless", "phases": [{"name": f"p{i}"} for i in range(PHASES)]}
    iid = engine.start_workflow_instance(schema, {}, "feat")
    for _ in range(KILLS):
        acknowledged = run_and_kill([TRIGGER_LOOP, str(storage_dir), iid, mode])
        state = WorkflowEngine(storage_dir=storage_dir).get_workflow_instance_status(iid)
        assert state is not None
        assert state.version >= int(acknowledged[-1])
        assert len(state.history) == state.version  # one entry per step, plus the first
        assert state.current_phase == f"p{state.version - 1}"
        assert [e.ended_at is None for e in state.history].count(True) == 1
        assert engine.verify(iid) is None
    leftovers = [p for p in (storage_dir / "instances").iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= KILLS  # at most one torn temp file per kill, never read


@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_killed_create_loop_keeps_every_acknowledged_instance(storage_dir: Path, mode: str) -> None:
    acknowledged: list[str] = []
    for _ in range(KILLS // 2):
        acknowledged += run_and_kill([CREATE_LOOP, str(storage_dir), mode])
    engine = WorkflowEngine(storage_dir=storage_dir)
    indexed = engine.list_feature_instances("feat_crash")
    assert set(acknowledged) <= set(indexed)
    assert len(indexed) == len(set(indexed))
    positions = [indexed.index(iid) for iid in acknowledged]
    assert positions == sorted(positions)  # index order is creation order
    for iid in indexed:
        state = engine.get_workflow_instance_status(iid)
        assert state is not None and state.feature_id == "feat_crash"
    assert engine.get_feature_status("feat_crash")["total_instances"] == len(indexed)


def versions(engine: WorkflowEngine, iid: str) -> list[str]:
    """The responses of every stored version of task ``a``, oldest first."""
    found = []
    while (artifacts := engine.get_task_artifacts(iid, "a", version=len(found) + 1)) is not None:
        assert artifacts.prompt.startswith("prompt ")
        found.append(artifacts.response)
    return found


@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_killed_artifact_recording_keeps_every_acknowledged_version(
    storage_dir: Path, mode: str
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    iid = engine.start_workflow_instance({"name": "w", "phases": [{"name": "a"}]}, {}, "feat")
    for _ in range(KILLS):
        before = versions(engine, iid)
        acknowledged = run_and_kill([ARTIFACT_LOOP, str(storage_dir), iid, mode])
        reader = WorkflowEngine(storage_dir=storage_dir)
        after = versions(reader, iid)
        assert after[: len(before)] == before  # earlier versions untouched
        assert len(after) >= len(before) + int(acknowledged[-1])  # none acknowledged lost
        latest = reader.get_task_artifacts(iid, "a")
        assert latest is not None and latest.response == after[-1]
        assert reader.verify(iid) is None
