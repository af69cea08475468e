"""Rows of a SQLite or PostgreSQL store edited behind its back, as damage or a careless
hand would: loading gives exactly the last acknowledged state or a ``CorruptStateError``
naming the instance; ``verify`` and ``doctor`` report it; and no damaged row is ever
rewritten by loading, a step, ``verify`` or ``doctor`` without ``--fix``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatflow import CorruptStateError, WorkflowEngine
from chatflow.errors import ChatFlowError
from cli_runner import run_in_process
from store_harness import Harness, PostgresHarness, SQLiteHarness

SCHEMA: dict[str, Any] = {
    "name": "five",
    "phases": [{"name": name} for name in ("plan", "design", "code", "test", "ship")],
}


class Rows:
    """Raw SQL on one store's tables (``{p}`` is the table prefix, ``?`` a parameter)."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        if isinstance(self.harness, SQLiteHarness):
            with contextlib.closing(sqlite3.connect(self.harness.path)) as conn, conn:
                yield conn
        else:
            assert isinstance(self.harness, PostgresHarness)
            import psycopg

            with psycopg.connect(self.harness.url) as conn:
                yield conn

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if isinstance(self.harness, PostgresHarness):
            sql = sql.replace("{p}", f'"{self.harness.schema}".').replace("?", "%s")
        else:
            sql = sql.replace("{p}", "")
        with self._cursor() as cursor:
            found = cursor.execute(sql, params)
            return list(found.fetchall()) if found.description else []

    def snapshot(self, iid: str) -> tuple[list[Any], list[Any]]:
        """Every stored row of the instance, as text."""
        head = self.run("SELECT * FROM {p}heads WHERE instance_id = ?", (iid,))
        events = self.run(
            "SELECT seq, event FROM {p}events WHERE instance_id = ? ORDER BY seq", (iid,)
        )
        return [tuple(row) for row in head], [tuple(row) for row in events]

    def event(self, iid: str, seq: int) -> str:
        return str(
            self.run("SELECT event FROM {p}events WHERE instance_id = ? AND seq = ?", (iid, seq))[
                0
            ][0]
        )

    def set_event(self, iid: str, seq: int, text: str) -> None:
        self.run(
            "UPDATE {p}events SET event = ? WHERE instance_id = ? AND seq = ?", (text, iid, seq)
        )


# Each damage: (rows, instance id, the head row's text after step 2) -> None.
Damage = Callable[[Rows, str, str], None]


def _same_length_edit(rows: Rows, iid: str, seq: int) -> None:
    text = rows.event(iid, seq)
    assert "alpha" in text
    rows.set_event(iid, seq, text.replace("alpha", "alphb", 1))


def _last_edit(rows: Rows, iid: str) -> None:
    text = rows.event(iid, 6)
    assert '"beta"' in text
    rows.set_event(iid, 6, text.replace('"beta"', '"bet4"', 1))


def _swap(rows: Rows, iid: str, first: int, second: int) -> None:
    one, two = rows.event(iid, first), rows.event(iid, second)
    rows.set_event(iid, first, two)
    rows.set_event(iid, second, one)


DAMAGES: dict[str, Damage] = {
    "head garbage": lambda rows, iid, _: rows.run(
        "UPDATE {p}heads SET head = ? WHERE instance_id = ?", ('{"format": 2, "sta', iid)
    ),
    "head empty": lambda rows, iid, _: rows.run(
        "UPDATE {p}heads SET head = '' WHERE instance_id = ?", (iid,)
    ),
    "head of an older state": lambda rows, iid, older: rows.run(
        "UPDATE {p}heads SET head = ? WHERE instance_id = ?", (older, iid)
    ),
    "head row of an older state": lambda rows, iid, older: rows.run(
        "UPDATE {p}heads SET head = ?, last_seq = 3, version = 3 WHERE instance_id = ?",
        (older, iid),
    ),
    "middle event edited, same length": lambda rows, iid, _: _same_length_edit(rows, iid, 3),
    "last event edited, same length": lambda rows, iid, _: _last_edit(rows, iid),
    "an event not JSON": lambda rows, iid, _: rows.set_event(iid, 4, '{"hash":"'),
    "first event deleted": lambda rows, iid, _: rows.run(
        "DELETE FROM {p}events WHERE instance_id = ? AND seq = 1", (iid,)
    ),
    "middle event deleted": lambda rows, iid, _: rows.run(
        "DELETE FROM {p}events WHERE instance_id = ? AND seq = 3", (iid,)
    ),
    "last event deleted": lambda rows, iid, _: rows.run(
        "DELETE FROM {p}events WHERE instance_id = ? AND seq = 6", (iid,)
    ),
    "an event duplicated over the next": lambda rows, iid, _: rows.set_event(
        iid, 4, rows.event(iid, 3)
    ),
    "last event duplicated after it": lambda rows, iid, _: rows.run(
        "INSERT INTO {p}events (instance_id, seq, event) VALUES (?, 7, ?)",
        (iid, rows.event(iid, 6)),
    ),
    "two middle events swapped": lambda rows, iid, _: _swap(rows, iid, 2, 3),
    "the last two events swapped": lambda rows, iid, _: _swap(rows, iid, 5, 6),
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


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_rows_are_reported_and_never_rewritten(harness: Harness, damage: str) -> None:
    rows = Rows(harness)
    store = harness.open()
    try:
        engine = WorkflowEngine(store=store)
        iid = engine.start_workflow_instance(SCHEMA, {}, "feat_damage")
        engine.trigger_next_step(iid, {"note": "first"})
        engine.trigger_next_step(iid, {"note": "alpha"})
        older = rows.run("SELECT head FROM {p}heads WHERE instance_id = ?", (iid,))[0][0]
        engine.record_task_artifacts(iid, "the prompt", "the response", phase_name="code")
        engine.trigger_next_step(iid, {"note": "beta"})
        last = store.load_state(iid)
        assert last is not None and engine.verify(iid) is None
        # created, two steps, the artifact and its history entry, a step
        assert [seq for seq, _ in rows.snapshot(iid)[1]] == [1, 2, 3, 4, 5, 6]
    finally:
        store.close()
    DAMAGES[damage](rows, iid, older)
    damaged = rows.snapshot(iid)

    fresh = harness.open()
    try:
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
        assert rows.snapshot(iid) == damaged
        doctor = _doctor(harness)
        assert doctor.returncode == 1, doctor.stdout + doctor.stderr
        assert iid in doctor.stdout
        assert rows.snapshot(iid) == damaged
        stepped = _outcome(lambda: engine.trigger_next_step(iid, {"note": "after the damage"}))
        if isinstance(stepped, ChatFlowError):
            assert isinstance(stepped, CorruptStateError) and iid in str(stepped), repr(stepped)
            assert rows.snapshot(iid) == damaged
        else:  # a step may follow an intact tail; the damage before it stays, and is reported
            events = dict(rows.snapshot(iid)[1])
            assert all(events.get(seq) == text for seq, text in damaged[1])
            assert fresh.verify(iid) is not None
    finally:
        fresh.close()


def _outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the ChatFlow error it raises."""
    try:
        return call()
    except ChatFlowError as error:
        return error


def _as_dict(state: Any) -> Any:
    return None if state is None else state.to_dict()
