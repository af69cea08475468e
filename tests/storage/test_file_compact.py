"""Compaction on the file store is crash-safe: SIGKILLed at every write it makes, the
instance stays readable, writable, verified, and its folded events are archived first."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.storage import FileStateStore, file_doctor

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")

SCHEMA = {
    "name": "loop",
    "phases": [{"name": "a", "max_visits": 50}, {"name": "b", "transitions": [{"to": "a"}]}],
}

# Compacts, killing itself at its KILL_AT-th write point: just before or after each
# os.replace, just before each fsync (the archive's comes first). KILL_AT=0 counts them.
COMPACT = """
import os, signal, sys
from chatflow import WorkflowEngine
folder, iid, keep, archive, kill_at = sys.argv[1:6]
points = 0
def point():
    global points
    points += 1
    if points == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
def wrap(real, after):
    def call(*args, **kwargs):
        point()
        result = real(*args, **kwargs)
        if after:
            point()
        return result
    return call
os.replace = wrap(os.replace, True)
os.fsync = wrap(os.fsync, False)
WorkflowEngine(storage_dir=folder).compact(iid, int(keep), archive=archive)
print(points)
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("compact") / ".chatflow"
    engine = WorkflowEngine(storage_dir=folder)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_compact")
    for n in range(8):
        engine.trigger_next_step(iid, {"n": n})
    expected = FileStateStore(folder).load_state(iid)
    assert expected is not None
    return folder, iid, expected


def compact(folder: Path, iid: str, keep: int, archive: Path, kill_at: int) -> int:
    """Run the compaction in a child; the number of write points it passed, or -1 if
    it was killed."""
    child = subprocess.run(
        [sys.executable, "-c", COMPACT, str(folder), iid, str(keep), str(archive), str(kill_at)],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode == -signal.SIGKILL:
        return -1
    assert child.returncode == 0, child.stderr
    return int(child.stdout)


@pytest.mark.parametrize("keep", [3, 0])
def test_a_compaction_killed_at_any_write_leaves_the_instance_whole_and_writable(
    template: tuple[Path, str, dict[str, Any]], tmp_path: Path, keep: int
) -> None:
    source, iid, expected = template
    events = [json.loads(line) for line in (source / "instances" / iid / "events.jsonl").open()]
    points = compact(shutil.copytree(source, tmp_path / "count"), iid, keep, tmp_path / "a", 0)
    assert points >= 5  # archive fsync; log and head replaced, each before and after
    seen = set()
    for kill_at in range(1, points + 1):
        folder = shutil.copytree(source, tmp_path / f"kill{kill_at}")
        archive = tmp_path / f"archive{kill_at}.jsonl"
        assert compact(folder, iid, keep, archive, kill_at) == -1
        store = FileStateStore(folder)
        assert store.load_state(iid) == expected
        assert store.verify(iid) is None
        kinds = {finding.kind for finding in file_doctor.check(store)} - {"stale_temp"}
        assert kinds <= {"stale_head"}, kinds  # what the next step repairs, and says so
        seen |= kinds
        log = [json.loads(line) for line in (folder / "instances" / iid / "events.jsonl").open()]
        if log[0]["seq"] != 1:  # compacted: every folded event was archived first
            archived = [json.loads(line) for line in archive.open()]
            assert archived == events[: len(events) - keep]
        state = WorkflowEngine(store=store).trigger_next_step(iid, {"n": "after"})
        assert state.version == expected["version"] + 1
        fresh = FileStateStore(folder)
        assert fresh.verify(iid) is None
        assert {finding.kind for finding in file_doctor.check(fresh)} <= {"stale_temp"}
        assert WorkflowEngine(store=fresh).compact(iid, keep, archive=archive) > 0  # again
        assert FileStateStore(folder).verify(iid) is None
    assert seen == {"stale_head"}  # a kill between the log and the head was exercised


def test_compact_into_a_missing_folder_folds_nothing(
    template: tuple[Path, str, dict[str, Any]], tmp_path: Path
) -> None:
    source, iid, _ = template
    folder = shutil.copytree(source, tmp_path / ".chatflow")
    log = folder / "instances" / iid / "events.jsonl"
    before = log.read_bytes()
    archive = str(tmp_path / "missing" / "archive.jsonl")
    command = ["compact", iid, "--keep-last", "1", "--archive", archive]
    child = subprocess.run(
        [sys.executable, "-m", "chatflow", "--dir", str(folder), *command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 1 and "Traceback" not in child.stderr
    assert "archive" in child.stderr and "nothing was folded" in child.stderr
    assert log.read_bytes() == before
    assert not (tmp_path / "missing").exists()
