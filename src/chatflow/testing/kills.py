"""Writers killed (SIGKILL) at random points, then the store reopened and verified.

``kill_writers(open_store)`` runs a writer process over and over (record a task's
texts, take a step, now and then create an instance), each time killed at a random
point, and after each kill reopens the store and checks: every instance verifies,
loads and takes a further step; nothing the writer saw acknowledged is lost; no step is
doubled or out of order; every acknowledged instance is listed once, in creation order.

Where the store writes through Python's ``os`` module (a file store), the writer is
killed just before its k-th file-system change (a write, rename, fsync...; a large
write is cut in half first, as a kill inside it would), k drawn from the changes a
whole run makes, so every point of a run is as likely to be hit. Otherwise (a database
driver writing from C) it is killed after a random number of acknowledged writes,
somewhere inside the next one. ``killed_at`` and ``changes`` are the same machinery for
any other piece of work (ChatFlow's own ``import``/``migrate`` kill tests use them).
POSIX only (SIGKILL, fork).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from chatflow import WorkflowEngine
from chatflow.storage.base import IWorkflowStateStore
from chatflow.testing.races import context

Opener = Callable[[], IWorkflowStateStore]
CHANGES: tuple[str, ...] = (
    "write",
    "replace",
    "rename",
    "link",
    "unlink",
    "truncate",
    "ftruncate",
    "mkdir",
)
CHANGES += ("fsync", "fdatasync")
"""The ``os`` functions that change what is on disk."""
LOOP = {
    "name": "killed",
    "phases": [{"name": "a", "max_visits": 100_000}, {"name": "b", "transitions": [{"to": "a"}]}],
}
FEATURE = "feat_killed"


@contextlib.contextmanager
def counted(on_change: Callable[[str, tuple[Any, ...]], None]) -> Iterator[None]:
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


def changes(work: Callable[[], object]) -> int:
    """How many file-system changes a whole run of ``work`` makes (run here)."""
    count = [0]

    def tally(name: str, args: tuple[Any, ...]) -> None:
        count[0] += 1

    with counted(tally):
        work()
    return count[0]


def kill_before_change(change: int) -> Callable[[str, tuple[Any, ...]], None]:
    """An ``on_change`` that kills this process just before its ``change``-th change
    (tearing a large write in half first)."""
    count = [0]
    real_write = os.write

    def kill_at(name: str, args: tuple[Any, ...]) -> None:
        count[0] += 1
        if count[0] < change:
            return
        if name == "write" and len(args[1]) > 512:
            real_write(args[0], bytes(args[1])[: len(args[1]) // 2])  # torn
        os.kill(os.getpid(), signal.SIGKILL)

    return kill_at


def killed_at(change: int, work: Callable[[], object]) -> bool:
    """Run ``work`` in a forked child killed just before its ``change``-th file-system
    change; whether it was (a re-run after a kill may have less left to do). ``work``
    returning anything but ``0``/``None``, or raising, fails the child."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller
        code = 2
        try:
            with counted(kill_before_change(change)):
                code = 0 if work() in (0, None) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert killed or os.WEXITSTATUS(status) == 0, f"the child failed ({status})"
    return killed


@dataclass
class KillReport:
    """What ``kill_writers`` did: kills, how they were placed, and what it checked."""

    kills: int = 0
    mode: str = ""
    steps_acknowledged: int = 0
    steps_kept: int = 0
    instances: list[str] = field(default_factory=list)


@dataclass
class _Acks:
    """What the writers reported done, across every round."""

    steps: int = 0
    created: list[str] = field(default_factory=list)


def kill_writers(
    open_store: Opener,
    *,
    kills: int = 10,
    ops: int = 12,
    seed: int = 0,
    mode: str | None = None,
) -> KillReport:
    """Kill a writer ``kills`` times at random points and check the store after each
    (see the module docstring). ``ops`` is how many writes one writer run makes before
    it would finish; ``mode`` is ``"changes"`` or ``"acks"`` (default: ``"changes"`` if
    a writer run makes at least one file-system change through ``os`` per write)."""
    rng = random.Random(seed)
    store = open_store()
    try:
        iid = WorkflowEngine(store=store).start_workflow_instance(LOOP, {}, FEATURE).instance_id
    finally:
        store.close()
    acks = _Acks(created=[iid])
    calibration = _writer_run(open_store, iid, 0, ops, None, acks)
    # Fewer changes than writes: the store writes mostly where os cannot see it.
    report = KillReport(mode=mode or ("changes" if calibration >= ops else "acks"))
    for round_ in range(1, kills + 1):
        point = rng.randint(1, max(calibration, 1)) if report.mode == "changes" else None
        after = rng.randint(0, ops - 1)
        _writer_run(open_store, iid, round_, ops, point, acks, kill_after=after)
        report.kills += 1
        _check(open_store, iid, acks, report)
    return report


def _writer_run(
    open_store: Opener,
    iid: str,
    round_: int,
    ops: int,
    point: int | None,
    acks: _Acks,
    *,
    kill_after: int | None = None,
) -> int:
    """One writer process (killed before its ``point``-th change, or by this process
    after ``kill_after`` acknowledgements); the acknowledgements go into ``acks``.
    Returns the file-system changes it counted (for a run not killed)."""
    receive, send = multiprocessing.Pipe(duplex=False)
    processes: Any = context()
    child = processes.Process(target=_writer, args=(open_store, iid, round_, ops, point, send))
    child.start()
    send.close()
    counted_changes, seen = 0, 0
    with contextlib.closing(receive):
        while True:
            try:
                kind, value = receive.recv()
            except EOFError:  # the writer is gone; everything it sent has been read
                break
            if kind == "step":
                acks.steps, seen = acks.steps + 1, seen + 1
            elif kind == "created":
                acks.created.append(value)
            else:
                counted_changes = value
            if point is None and seen - 1 == kill_after:
                child.kill()  # somewhere inside its next write
    child.join()
    assert child.exitcode in (0, -signal.SIGKILL), f"the writer failed ({child.exitcode})"
    return counted_changes


def _writer(
    open_store: Opener, iid: str, round_: int, ops: int, point: int | None, send: Connection
) -> None:
    """Process body: ``ops`` writes, each acknowledged through ``send`` once it returned."""
    tally = [0]

    def count(name: str, args: tuple[Any, ...]) -> None:
        tally[0] += 1

    on_change = count if point is None else kill_before_change(point)
    with counted(on_change):
        store = open_store()
        engine = WorkflowEngine(store=store)
        for op in range(ops):
            if op % 4 == 3:
                created = engine.start_workflow_instance(LOOP, {"round": round_}, FEATURE)
                send.send(("created", created.instance_id))
                continue
            engine.record_task_artifacts(iid, f"prompt {round_}.{op} " + "p" * 2000, f"r{op}")
            engine.trigger_next_step(iid, {"round": round_, "op": op})
            send.send(("step", (round_, op)))
        store.close()
    send.send(("changes", tally[0]))
    send.close()


def _check(open_store: Opener, iid: str, acks: _Acks, report: KillReport) -> None:
    """After a kill: everything acknowledged is there once, in order, and verifies."""
    store = open_store()
    try:
        engine = WorkflowEngine(store=store)
        listed = store.list_instances_by_feature(FEATURE)
        doubled = [one for one, n in Counter(listed).items() if n > 1]
        lost = set(acks.created) - set(listed)
        assert not lost and not doubled, f"{len(lost)} instances lost, {len(doubled)} doubled"
        order = [one for one in listed if one in set(acks.created)]
        assert order == acks.created, "an instance is listed out of its creation order"
        for one in listed:
            assert engine.verify(one) is None, f"instance {one} does not verify"
            assert engine.get_workflow_instance_status(one) is not None
        state = engine.get_workflow_instance_status(iid)
        assert state is not None
        steps = [
            (data["round"], data["op"])
            for data in (entry.trigger_data_snapshot or {} for entry in state.history[:-1])
            if "op" in data  # not this check's own steps
        ]
        assert steps == sorted(set(steps)), f"instance {iid}: a step is doubled or reordered"
        assert len(steps) >= acks.steps, f"{acks.steps - len(steps)} acknowledged steps lost"
        artifacts = engine.get_task_artifacts(iid, state.current_phase)
        assert artifacts is None or artifacts.prompt.startswith("prompt ")
        engine.trigger_next_step(iid, {"check": len(steps)})  # still writable
        assert engine.verify(iid) is None
        report.steps_acknowledged, report.steps_kept = acks.steps, len(steps)
        report.instances = listed
    finally:
        store.close()
