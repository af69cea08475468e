"""``chatflow compact`` killed (SIGKILL) at 100 random moments: each time the instance
is readable, writable and verified, ``doctor`` finds nothing or only what the next step
repairs, and no event is lost: each is still in the log or in the archive.

Each run is a forked child running the command in-process that kills itself just
before its k-th file-system change (``test_copy_kills``: a large write is torn in half
first), for a k drawn at random from the changes a whole run makes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_copy_kills import _changes, _killed_at, _run

from chatflow import WorkflowEngine
from chatflow.cli import main
from chatflow.storage import FileStateStore, file_doctor

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked children (POSIX)"),
]

KILLS = 100
SCHEMA = {
    "name": "loop",
    "phases": [{"name": "a", "max_visits": 500}, {"name": "b", "transitions": [{"to": "a"}]}],
}


def _events(path: Path) -> list[dict[str, Any]]:
    """The whole lines of a log or archive (a torn last line is a write cut short)."""
    if not path.exists():
        return []
    found = []
    for line in path.read_bytes().split(b"\n"):
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def _compact(folder: Path, iid: str, keep: int, archive: Path) -> list[str]:
    return [
        "--dir",
        str(folder),
        "compact",
        iid,
        "--keep-last",
        str(keep),
        "--archive",
        str(archive),
    ]


def test_compact_killed_at_100_random_moments_loses_nothing(tmp_path: Path) -> None:
    template = tmp_path / "template"
    engine = WorkflowEngine(storage_dir=template)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_kill")
    for n in range(12):
        engine.trigger_next_step(iid, {"n": n, "pad": "x" * 300})
        if n % 4 == 1:
            engine.record_task_artifacts(iid, f"prompt {n}", f"response {n}")
    original = _events(template / "instances" / iid / "events.jsonl")
    expected = FileStateStore(template).load_state(iid)
    assert expected is not None
    scratch = shutil.copytree(template, tmp_path / "scratch")
    total = _changes(lambda: main(_compact(scratch, iid, 0, tmp_path / "scratch.jsonl")))
    assert total >= 5
    rng = random.Random(1515)
    kills, rounds, seen = 0, 0, set()
    while kills < KILLS:
        rounds += 1
        folder = shutil.copytree(template, tmp_path / f"kill{rounds}")
        archive = tmp_path / f"archive{rounds}.jsonl"
        args = _compact(folder, iid, rng.choice((0, 1, 3)), archive)
        kills += _killed_at(rng.randint(1, total), lambda args=args: main(args))
        seen |= _check_after_kill(folder, iid, expected, original, archive, rounds)
        assert _run(lambda args=args: main(args)) == 0  # and a re-run completes
        assert FileStateStore(folder).verify(iid) is None
    assert "stale_head" in seen  # a kill between the log's switch and the head's was hit


def _check_after_kill(
    folder: Path,
    iid: str,
    expected: dict[str, Any],
    original: list[dict[str, Any]],
    archive: Path,
    kill: int,
) -> set[str]:
    store = FileStateStore(folder)
    assert store.load_state(iid) == expected, kill
    assert store.verify(iid) is None, kill
    kinds = {finding.kind for finding in file_doctor.check(store)} - {"stale_temp"}
    assert kinds <= {"stale_head"}, (kill, kinds)  # clean, or what the next step repairs
    kept = {event["hash"] for event in _events(folder / "instances" / iid / "events.jsonl")}
    archived = {event["hash"] for event in _events(archive)}
    lost = [event["seq"] for event in original if event["hash"] not in kept | archived]
    assert not lost, (kill, lost)
    state = WorkflowEngine(store=store).trigger_next_step(iid, {"n": "after"})
    assert state.version == expected["version"] + 1
    fresh = FileStateStore(folder)
    assert fresh.verify(iid) is None
    assert {finding.kind for finding in file_doctor.check(fresh)} <= {"stale_temp"}
    return kinds
