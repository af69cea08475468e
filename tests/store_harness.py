"""How the suite opens, inspects and damages each kind of store.

A harness names one store's data (a folder, a database file, a PostgreSQL schema) and
can open any number of store objects on it, in this process or a child process; it is
picklable for that reason (except the memory harness, which is per process). The
``corrupt_*``/``edit_*`` and ``hold_write_lock`` helpers reach around the store, like a
crashed disk or a stuck writer would: a log or head through the store's own raw access
(``chatflow.testing.damage``, the same for every store), task texts by their layout.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chatflow.storage import FileLock, FileStateStore, IWorkflowStateStore, MemoryStore
from chatflow.storage.postgres import PostgresStore
from chatflow.storage.spi import RawInstance
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

    def target(self) -> str:
        """The store as ``chatflow --dir`` names it (another process opens it by this)."""
        raise ValueError(f"a {self.kind} store lives in one process")

    def _rewrite(self, instance_id: str, change: Callable[[RawInstance], RawInstance]) -> None:
        """Change the instance's stored bytes through the store's raw access."""
        store = self.open()
        try:
            access = store.raw_access()
            access.write(instance_id, change(access.read(instance_id)))
        finally:
            store.close()  # (the memory harness's one store: closing it is a no-op)

    def corrupt_state(self, instance_id: str, text: str) -> None:
        """Replace every stored event of ``instance_id`` (its log, the truth) with ``text``."""
        line = text.encode()
        self._rewrite(
            instance_id,
            lambda raw: replace(raw, events=tuple(line + _separator(e) for e in raw.events)),
        )

    def edit_head(self, instance_id: str, **fields: Any) -> None:
        """Change fields of the stored head's state, as a hand edit would."""

        def edit(raw: RawInstance) -> RawInstance:
            head = json.loads(raw.head or b"")
            head["state"].update(fields)
            return replace(raw, head=json.dumps(head).encode())

        self._rewrite(instance_id, edit)

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

    def target(self) -> str:
        return self.folder

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

    def target(self) -> str:
        return f"sqlite:///{self.path}"

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute(sql, params)

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

    def target(self) -> str:
        return f"{self.url}?schema={self.schema}"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.replace("{s}", f'"{self.schema}"'), params)

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


STORE_KINDS = ["memory", "file", "sqlite", "postgres"]


def harness_of(kind: str, request: Any, folder: Path) -> Harness:
    """A fresh harness of ``kind`` for one test (data under ``folder``); PostgreSQL's
    comes from the ``pg_harness`` fixture, which skips or fails without a server."""
    if kind == "memory":
        return MemoryHarness("memory", shared_across_processes=False)
    if kind == "file":
        return FileHarness("file", folder=str((folder / ".chatflow").resolve()))
    if kind == "sqlite":
        return SQLiteHarness("sqlite", path=str(folder / "state.db"))
    harness: PostgresHarness = request.getfixturevalue("pg_harness")
    return harness


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


def _separator(event: bytes) -> bytes:
    """What a store keeps after an event's bytes (a file's newline)."""
    return event[len(event.rstrip(b"\n")) :]


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
