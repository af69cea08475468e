"""Rows of a SQLite or PostgreSQL store edited behind its back, as damage or a careless
hand would: loading gives exactly the last acknowledged state or a ``CorruptStateError``
naming the instance; ``verify`` and ``doctor`` report it; and no damaged row is ever
rewritten by loading, a step, ``verify`` or ``doctor`` without ``--fix``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chatflow import CorruptStateError, WorkflowEngine
from chatflow.errors import ChatFlowError
from chatflow.storage.spi import RawInstance
from chatflow.testing.damage import DAMAGES, flip
from cli_runner import run_in_process
from store_harness import Harness, PostgresHarness, SQLiteHarness

SCHEMA: dict[str, Any] = {
    "name": "five",
    "phases": [{"name": name} for name in ("plan", "design", "code", "test", "ship")],
}


Damage = Callable[[RawInstance, RawInstance], RawInstance]
"""(the instance's bytes now, its bytes after step 2) -> damaged bytes."""


def _kind(kind: str) -> Damage:
    """One of the harness's damage kinds (``chatflow.testing.damage``)."""
    return lambda stored, older: DAMAGES[kind](stored)


def _events(change: Callable[[list[bytes]], object]) -> Damage:
    """A change to the event rows' texts (event n is the row of seq n), in place."""

    def damaged(stored: RawInstance, older: RawInstance) -> RawInstance:
        events = list(stored.events)
        change(events)
        return replace(stored, events=tuple(events))

    return damaged


def _swap(i: int, j: int) -> Callable[[list[bytes]], None]:
    def swap(events: list[bytes]) -> None:
        events[i], events[j] = events[j], events[i]

    return swap


DAMAGES_DONE: dict[str, Damage] = {
    "head garbage": _kind("garble_head"),
    "head empty": lambda stored, older: replace(stored, head=b""),
    "head of an older state": lambda stored, older: replace(stored, head=older.head),
    "head row of an older state": lambda stored, older: replace(stored, head=older.head),
    "middle event edited, same length": _kind("flip_byte"),
    "last event edited, same length": _events(lambda e: e.__setitem__(-1, flip(e[-1]))),
    "middle event edited and resealed": _kind("reseal_event"),
    "an event not JSON": _events(lambda e: e.__setitem__(3, b'{"hash":"')),
    "first event deleted": _events(lambda e: e.__delitem__(0)),
    "middle event deleted": _events(lambda e: e.__delitem__(2)),
    "last event deleted": _kind("drop_last_event"),
    "the log cut inside its last event": _kind("truncate_mid_event"),
    "an event duplicated over the next": _events(lambda e: e.__setitem__(3, e[2])),
    "last event duplicated after it": _events(lambda e: e.append(e[-1])),
    "two middle events swapped": _kind("reorder_events"),
    "the last two events swapped": _events(_swap(-1, -2)),
}


@pytest.fixture(params=["sqlite", "postgres"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "sqlite":
        return SQLiteHarness("sqlite", path=str(tmp_path / "state.db"))
    found: PostgresHarness = request.getfixturevalue("pg_harness")
    return found


def _target(harness: Harness) -> str:
    if isinstance(harness, SQLiteHarness):
        return f"sqlite:///{harness.path}"
    assert isinstance(harness, PostgresHarness)
    return f"{harness.url}?schema={harness.schema}"


def _doctor(harness: Harness) -> subprocess.CompletedProcess[str]:
    return run_in_process(
        ["--dir", _target(harness), "doctor", "--json"], cwd=Path.cwd(), env=os.environ
    )


@pytest.mark.parametrize("damage", list(DAMAGES_DONE))
def test_damaged_rows_are_reported_and_never_rewritten(harness: Harness, damage: str) -> None:
    store = harness.open()
    try:
        engine = WorkflowEngine(store=store)
        iid = engine.start_workflow_instance(SCHEMA, {}, "feat_damage")
        engine.trigger_next_step(iid, {"note": "first"})
        engine.trigger_next_step(iid, {"note": "alpha"})
        older = store.raw_access().read(iid)
        engine.record_task_artifacts(iid, "the prompt", "the response", phase_name="code")
        engine.trigger_next_step(iid, {"note": "beta"})
        last = store.load_state(iid)
        assert last is not None and engine.verify(iid) is None
        # created, two steps, the artifact and its history entry, a step
        stored = store.raw_access().read(iid)
        assert len(stored.events) == 6
        store.raw_access().write(iid, DAMAGES_DONE[damage](stored, older))
        if damage == "head row of an older state":  # its columns too, not only its JSON
            _execute(
                harness, "UPDATE {s}heads SET last_seq = 3, version = 3 WHERE instance_id = ?", iid
            )
    finally:
        store.close()

    fresh = harness.open()
    try:
        raw = fresh.raw_access()
        damaged = raw.read(iid)
        engine = WorkflowEngine(store=fresh)
        for loaded in (
            _outcome(lambda: fresh.load_state(iid)),
            _outcome(lambda: _as_dict(engine.get_workflow_instance_status(iid))),
        ):
            if isinstance(loaded, ChatFlowError):
                assert isinstance(loaded, CorruptStateError) and iid in str(loaded), repr(loaded)
            else:
                assert loaded == last, "an older or altered state was returned as current"
        problem = fresh.verify(iid)
        assert problem is not None and problem.instance_id == iid
        assert raw.read(iid) == damaged
        doctor = _doctor(harness)
        assert doctor.returncode == 1, doctor.stdout + doctor.stderr
        assert iid in doctor.stdout
        assert raw.read(iid) == damaged
        stepped = _outcome(lambda: engine.trigger_next_step(iid, {"note": "after the damage"}))
        if isinstance(stepped, ChatFlowError):
            assert isinstance(stepped, CorruptStateError) and iid in str(stepped), repr(stepped)
            assert raw.read(iid) == damaged
        else:  # a step may follow an intact tail; the damage before it stays, and is reported
            assert raw.read(iid).events[: len(damaged.events)] == damaged.events
            assert fresh.verify(iid) is not None
    finally:
        fresh.close()


def _execute(harness: Harness, sql: str, *params: Any) -> None:
    """One statement on the store's tables behind its back (``{s}``: their schema)."""
    if isinstance(harness, PostgresHarness):
        harness.execute(sql.replace("{s}", "{s}.").replace("?", "%s"), params)
    else:
        assert isinstance(harness, SQLiteHarness)
        harness._execute(sql.replace("{s}", ""), params)


def _outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the ChatFlow error it raises."""
    try:
        return call()
    except ChatFlowError as error:
        return error


def _as_dict(state: Any) -> Any:
    return None if state is None else state.to_dict()
