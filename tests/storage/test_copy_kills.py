"""``import`` and ``migrate`` into a file store, killed (SIGKILL) at random points 100
times in all, then re-run: every instance is readable, writable, listed and verified,
with the source's digest.

Each run happens in a forked child that kills itself just before its k-th file-system
change, for a k drawn from the changes a whole run makes: every point of the run is as
likely to be hit (``chatflow.testing.kills``, the harness third-party stores run too).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.cli import main
from chatflow.storage import FileStateStore, IWorkflowStateStore
from chatflow.testing.kills import changes, killed_at

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked children (POSIX)"),
]

KILLS = 100
FLOW = {"name": "killflow", "phases": [{"name": "plan"}, {"name": "build"}, {"name": "ship"}]}


def _fill(folder: Path) -> dict[str, str]:
    """Instances in three features, with artifacts (several versions), a fork and a
    compacted log; their source digests by id."""
    engine = WorkflowEngine(storage_dir=folder, durable=False)
    for number in range(6):
        iid = engine.start_workflow_instance(FLOW, {"n": number}, f"feat_{number % 3}").instance_id
        for step in range(number % 3 + 1):
            engine.record_task_artifacts(iid, f"prompt {step}", "r" * 3000 * step)
            engine.trigger_next_step(iid, {"step": step})
        if number == 4:
            engine.fork(iid, at=1)
        if number == 5:
            engine.compact(iid, keep_last=2)
    store = engine.state_store
    return {iid: store.instance_digest(iid) for iid in store.list_instance_ids()}


def _run(copy: Callable[[], object]) -> object:
    """``copy()``, its output discarded."""
    with (
        open(os.devnull, "w") as null,
        contextlib.redirect_stdout(null),
        contextlib.redirect_stderr(null),
    ):
        return copy()


def _changes(copy: Callable[[], object]) -> int:
    """How many file-system changes a whole run of ``copy`` makes."""
    return changes(lambda: _run(copy))


def _killed_at(change: int, copy: Callable[[], object]) -> bool:
    """Run ``copy`` in a child killed just before its ``change``-th file-system change."""
    return killed_at(change, lambda: _run(copy))


def _check(target: Path, digests: dict[str, str]) -> None:
    """Every source instance is listed, loads, verifies with the source's digest, and
    takes a step."""
    store: IWorkflowStateStore = FileStateStore(target, durable=False)
    engine = WorkflowEngine(store=store)
    listed = store.list_instance_ids()
    for iid, digest in digests.items():
        assert iid in listed
        assert engine.verify(iid) is None
        assert store.instance_digest(iid) == digest
        assert engine.get_workflow_instance_status(iid) is not None
    for iid in digests:
        state = engine.get_workflow_instance_status(iid)
        assert state is not None
        if state.status.value in ("created", "running"):
            engine.trigger_next_step(iid, {"after": "the kills"})
    assert engine.verify(next(iter(digests))) is None


def _commands(source: Path, dump: Path, target: Path) -> dict[str, list[str]]:
    return {
        "import": ["--dir", str(target), "--no-fsync", "import", str(dump)],
        "migrate": ["--no-fsync", "migrate", "--from", str(source), "--to", str(target)],
    }


def test_import_and_migrate_resume_after_100_kills(tmp_path: Path) -> None:
    source = tmp_path / "source"
    digests = _fill(source)
    dump = tmp_path / "dump.jsonl"
    _run(lambda: main(["--dir", str(source), "export", "--all", "-o", str(dump)]))
    totals = {
        name: _changes(lambda args=args: main(args))
        for name, args in _commands(source, dump, tmp_path / "scratch").items()
    }
    rng = random.Random(15)
    kills, rounds = 0, 0
    while kills < KILLS:
        rounds += 1
        name = ("import", "migrate")[rounds % 2]
        target = tmp_path / f"target{rounds}"
        args = _commands(source, dump, target)[name]
        for _ in range(rng.choice((1, 1, 2))):  # sometimes the re-run is killed too
            kills += _killed_at(rng.randint(1, totals[name]), lambda args=args: main(args))
        assert _run(lambda args=args: main(args)) == 0
        _check(target, digests)
