"""``import`` and ``migrate`` into a file store, killed (SIGKILL) at random points 100
times in all, then re-run: every instance is readable, writable, listed and verified,
with the source's digest.

Each run happens in a forked child that kills itself just before its k-th file-system
change (a write, rename, link, unlink, truncate, mkdir or fsync; a large write is cut in
half first, as a kill inside it would), for a k drawn from the changes a whole run
makes: every point of the run is as likely to be hit.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.cli import main
from chatflow.storage import FileStateStore, IWorkflowStateStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked children (POSIX)"),
]

KILLS = 100
FLOW = {"name": "killflow", "phases": [{"name": "plan"}, {"name": "build"}, {"name": "ship"}]}
CHANGES = ("write", "replace", "rename", "link", "unlink", "truncate", "ftruncate", "mkdir")
CHANGES += ("fsync", "fdatasync")


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


@contextlib.contextmanager
def _counted(on_change: Callable[[str, tuple[Any, ...]], None]) -> Iterator[None]:
    """Call ``on_change(name, args)`` before each file-system change ``os`` makes."""
    originals = {name: getattr(os, name) for name in CHANGES if hasattr(os, name)}

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def changed(*args: Any, **kwargs: Any) -> Any:
            on_change(name, args)
            return real(*args, **kwargs)

        return changed

    for name, real in originals.items():
        setattr(os, name, wrap(name, real))
    try:
        yield
    finally:
        for name, real in originals.items():
            setattr(os, name, real)


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
    count = [0]

    def tally(name: str, args: tuple[Any, ...]) -> None:
        count[0] += 1

    with _counted(tally):
        _run(copy)
    return count[0]


def _killed_at(change: int, copy: Callable[[], object]) -> bool:
    """Run ``copy`` in a child killed just before its ``change``-th file-system change;
    whether it was (a re-run after a kill has less left to do)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 2
        try:
            count = [0]
            real_write = os.write

            def kill_at(name: str, args: tuple[Any, ...]) -> None:
                count[0] += 1
                if count[0] < change:
                    return
                if name == "write" and len(args[1]) > 512:
                    real_write(args[0], bytes(args[1])[: len(args[1]) // 2])  # torn
                os.kill(os.getpid(), signal.SIGKILL)

            with _counted(kill_at):
                code = 0 if _run(copy) == 0 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert killed or os.WEXITSTATUS(status) == 0, status  # a re-run may end before it
    return killed


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
