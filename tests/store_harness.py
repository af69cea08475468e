"""How the suite opens, inspects and damages each kind of store.

A harness names one store's data (a folder, a database file, a PostgreSQL schema) and
can open any number of store objects on it, in this process or a child process; it is
picklable for that reason (except the memory harness, which is per process). The
``corrupt_*`` and ``hold_write_lock`` helpers reach around the store, like a crashed
disk or a stuck writer would.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatflow.storage import FileLock, FileStateStore, IWorkflowStateStore, MemoryStore
from chatflow.storage.postgres import PostgresStore
from chatflow.storage.sqlite import SQLiteStore
from chatflow.testing._states import increment

WRONG_SHAPE = '["not", "an", "instance", "state"]'
TRUNCATED = '{"instance_id": "wfi_'


@dataclass
class Harness:
    """One store's data, and the tools to open and damage it."""

    kind: str
    shared_across_processes: bool = True
    accepts_invalid_json: bool = True

    def open(self, *, timeout: float | None = None) -> IWorkflowStateStore:
        """A new store object on this data; ``timeout`` bounds waits for other writers."""
        raise NotImplementedError

    def corrupt_state(self, instance_id: str, text: str) -> None:
        """Replace every stored event of ``instance_id`` (its log, the truth) with ``text``."""
        raise NotImplementedError

    def edit_head(self, instance_id: str, **fields: Any) -> None:
        """Change fields of the stored head's state, as a hand edit would."""
        raise NotImplementedError

    def corrupt_artifacts(self, instance_id: str, phase: str) -> None:
        """Damage a phase's stored artifacts in a way the store can detect."""
        raise NotImplementedError

    def edit_text(self, instance_id: str, phase: str, what: str, old: str, new: str) -> None:
        """Replace ``old`` by ``new`` in version 1 of a phase's stored ``what`` ("prompt" or
        "response"), as a hand edit of the stored text would."""
        raise NotImplementedError

    def hold_write_lock(self, instance_id: str) -> contextlib.AbstractContextManager[None]:
        """Act as another writer holding ``instance_id`` for the duration."""
        raise NotImplementedError


@dataclass
class MemoryHarness(Harness):
    store: MemoryStore = field(default_factory=MemoryStore)

    def open(self, *, timeout: float | None = None) -> IWorkflowStateStore:
        return self.store

    def corrupt_state(self, instance_id: str, text: str) -> None:
        found = self.store._instances[instance_id]
        found.events = [text] * len(found.events)

    def edit_head(self, instance_id: str, **fields: Any) -> None:
        found = self.store._instances[instance_id]
        head = json.loads(found.head)
        head["state"].update(fields)
        found.head = json.dumps(head)

    def corrupt_artifacts(self, instance_id: str, phase: str) -> None:
        found = self.store._instances[instance_id]
        found.texts[(phase, 1)] = found.texts[(phase, 1)].replace('"prompt"', '"tampered"')

    def edit_text(self, instance_id: str, phase: str, what: str, old: str, new: str) -> None:
        texts = self.store._instances[instance_id].texts
        record, prompt, response = json.loads(texts[(phase, 1)])
        edited = {"prompt": prompt, "response": response}
        edited[what] = edited[what].replace(old, new)
        texts[(phase, 1)] = json.dumps([record, edited["prompt"], edited["response"]])


@dataclass
class FileHarness(Harness):
    folder: str = ""

    def open(self, *, timeout: float | None = None) -> IWorkflowStateStore:
        return FileStateStore(self.folder, lock_timeout=30.0 if timeout is None else timeout)

    def corrupt_state(self, instance_id: str, text: str) -> None:
        path = Path(self.folder, "instances", instance_id, "events.jsonl")
        lines = path.read_text(encoding="utf-8").count("\n")
        path.write_text(f"{text}\n" * lines, encoding="utf-8")

    def edit_head(self, instance_id: str, **fields: Any) -> None:
        path = Path(self.folder, "instances", f"{instance_id}.json")
        head = json.loads(path.read_text(encoding="utf-8"))
        head["state"].update(fields)
        path.write_text(json.dumps(head), encoding="utf-8")

    def corrupt_artifacts(self, instance_id: str, phase: str) -> None:
        path = Path(self.folder, "instances", instance_id, "tasks", f"{phase}.v1.prompt.md")
        path.write_text("tampered", encoding="utf-8")

    def edit_text(self, instance_id: str, phase: str, what: str, old: str, new: str) -> None:
        suffix = {"prompt": "prompt.md", "response": "ai_response.md"}[what]
        tasks = Path(self.folder, "instances", instance_id, "tasks")
        for path in (tasks / f"{phase}.v1.{suffix}", tasks / f"{phase}.{suffix}"):
            if path.exists():  # the versioned file, and the latest version's copy
                path.write_bytes(path.read_bytes().replace(old.encode(), new.encode()))

    @contextlib.contextmanager
    def hold_write_lock(self, instance_id: str) -> Iterator[None]:
        lock = FileLock(Path(self.folder, ".locks", f"{instance_id}.lock"))
        with _held_by_thread(lock.acquire, lock.release):
            yield


@dataclass
class SQLiteHarness(Harness):
    path: str = ""

    def open(self, *, timeout: float | None = None) -> IWorkflowStateStore:
        return SQLiteStore(self.path, busy_timeout=30.0 if timeout is None else timeout)

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute(sql, params)

    def corrupt_state(self, instance_id: str, text: str) -> None:
        self._execute("UPDATE events SET event = ? WHERE instance_id = ?", (text, instance_id))

    def edit_head(self, instance_id: str, **fields: Any) -> None:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            (text,) = conn.execute(
                "SELECT head FROM heads WHERE instance_id = ?", (instance_id,)
            ).fetchone()
            head = json.loads(text)
            head["state"].update(fields)
            conn.execute(
                "UPDATE heads SET head = ? WHERE instance_id = ?", (json.dumps(head), instance_id)
            )

    def corrupt_artifacts(self, instance_id: str, phase: str) -> None:
        self._execute(
            "UPDATE task_texts SET prompt = prompt || X'00' WHERE instance_id = ? AND task = ?",
            (instance_id, phase),
        )

    def edit_text(self, instance_id: str, phase: str, what: str, old: str, new: str) -> None:
        column = {"prompt": "prompt", "response": "response"}[what]
        self._execute(
            f"UPDATE task_texts SET {column} = CAST(replace(CAST({column} AS TEXT), ?, ?) "
            "AS BLOB) WHERE instance_id = ? AND task = ? AND version = 1",
            (old, new, instance_id, phase),
        )

    @contextlib.contextmanager
    def hold_write_lock(self, instance_id: str) -> Iterator[None]:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                conn.execute("ROLLBACK")


@dataclass
class PostgresHarness(Harness):
    url: str = ""
    schema: str = ""

    def open(self, *, timeout: float | None = None) -> IWorkflowStateStore:
        return PostgresStore(
            self.url, schema=self.schema, lock_timeout=30.0 if timeout is None else timeout
        )

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.replace("{s}", f'"{self.schema}"'), params)

    def corrupt_state(self, instance_id: str, text: str) -> None:
        self.execute("UPDATE {s}.events SET event = %s WHERE instance_id = %s", (text, instance_id))

    def edit_head(self, instance_id: str, **fields: Any) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            table = f'"{self.schema}".heads'
            row = conn.execute(
                f"SELECT head FROM {table} WHERE instance_id = %s", (instance_id,)
            ).fetchone()
            assert row is not None
            head = json.loads(row[0])
            head["state"].update(fields)
            conn.execute(
                f"UPDATE {table} SET head = %s WHERE instance_id = %s",
                (json.dumps(head), instance_id),
            )

    def corrupt_artifacts(self, instance_id: str, phase: str) -> None:
        self.execute(
            "UPDATE {s}.task_texts SET prompt = prompt || 'tampered'::bytea "
            "WHERE instance_id = %s AND task = %s",
            (instance_id, phase),
        )

    def edit_text(self, instance_id: str, phase: str, what: str, old: str, new: str) -> None:
        column = {"prompt": "prompt", "response": "response"}[what]
        self.execute(
            f"UPDATE {{s}}.task_texts SET {column} = convert_to(replace(convert_from("
            f"{column}, 'UTF8'), %s, %s), 'UTF8') "
            "WHERE instance_id = %s AND task = %s AND version = 1",
            (old, new, instance_id, phase),
        )

    @contextlib.contextmanager
    def hold_write_lock(self, instance_id: str) -> Iterator[None]:
        import psycopg

        with psycopg.connect(self.url) as conn:
            conn.execute(
                f'SELECT 1 FROM "{self.schema}".heads WHERE instance_id = %s FOR UPDATE',
                (instance_id,),
            )
            try:
                yield
            finally:
                conn.rollback()


def empty_postgres(conn: Any, harness: PostgresHarness) -> None:
    """Empty ``harness``'s schema over ``conn`` (autocommit), creating it first if missing
    (a test may have dropped it): cheaper than a new schema or connection per test.

    DELETE and an identity restart, not TRUNCATE: the same empty tables and numbering,
    but TRUNCATE gives each table new files (~70 ms a test; this is ~3 ms)."""
    import psycopg

    tables = ("heads", "events", "task_texts", "feature_counts", "schemas")
    empty = "; ".join(
        [f"DELETE FROM {{s}}.{table}" for table in tables]
        + ["ALTER TABLE {s}.heads ALTER COLUMN seq RESTART"]
    ).replace("{s}", f'"{harness.schema}"')
    try:
        with conn.transaction():
            conn.execute(empty)
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        store = harness.open()
        store.list_features()  # the first query creates the schema
        store.close()
        with conn.transaction():
            conn.execute(empty)


@contextlib.contextmanager
def _held_by_thread(acquire: Any, release: Any) -> Iterator[None]:
    """Hold a thread-owned lock from another thread, so this thread must wait for it."""
    acquired, done = threading.Event(), threading.Event()

    def hold() -> None:
        acquire()
        acquired.set()
        done.wait()
        release()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert acquired.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join(10)


# -- child-process bodies ----------------------------------------------------------


def increment_many(harness: Harness, instance_id: str, count: int) -> int:
    """Child-process body: ``count`` increments through a store of its own."""
    store = harness.open()
    try:
        for _ in range(count):
            store.update_state(instance_id, increment)
    finally:
        store.close()
    return count


def increment_with(store: IWorkflowStateStore, instance_id: str, count: int) -> int:
    """Child-process body (fork only): increments through the store the parent opened."""
    for _ in range(count):
        store.update_state(instance_id, increment)
    return count
