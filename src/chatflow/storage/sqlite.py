"""``SQLiteStore``: every instance, artifact and feature index in one SQLite file.

For a single machine with thousands of instances: listings and feature roll-ups are
index queries instead of directory scans, and a step is one small transaction.

Concurrency: WAL mode lets readers run alongside the one writer. Each read-modify-write
(``update_state``, ``create_state``) is one ``BEGIN IMMEDIATE`` transaction, which takes
the database's write lock before reading, so ``mutate`` always sees the latest committed
state and runs exactly once. ``python bench/bench_stores.py --sqlite-cas`` compares this
with optimistic compare-and-swap on the ``version`` column (read outside a transaction,
then ``UPDATE ... WHERE version = ?``, retrying on a miss): the same speed for one
writer, 5-10% slower with four processes on distinct instances and about 20% slower on
one shared instance (retries redo the work), and it calls ``mutate`` more than once,
which the store contract forbids.

Connections: one per thread (``sqlite3`` connections must not be shared between threads
mid-transaction), reopened in a forked child: a connection inherited across ``fork`` is
never used or closed there, because SQLite's POSIX locks do not survive the fork.

Schema migrations are numbered; ``PRAGMA user_version`` records how many have run.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatflow._validation import validate_id
from chatflow.errors import (
    ChatFlowError,
    CorruptStateError,
    LockTimeoutError,
    StorageError,
    ValidationError,
)
from chatflow.storage._codec import (
    ArtifactRow,
    decode_artifacts,
    decode_state,
    encode_artifacts,
    encode_state,
)
from chatflow.storage.base import (
    InstanceSummary,
    IWorkflowStateStore,
    Mutation,
    StateDict,
    StatusCount,
    check_status_filter,
    not_found,
)

# Each entry upgrades the database by one version; never edit one that has shipped.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # seq is the rowid: creation order, so a feature's newest instance is its max(seq).
        """CREATE TABLE instances (
            seq INTEGER PRIMARY KEY,
            instance_id TEXT NOT NULL UNIQUE,
            feature_id TEXT NOT NULL,
            status TEXT NOT NULL,
            current_phase TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            version INTEGER NOT NULL,
            state TEXT NOT NULL
        )""",
        # Covers feature roll-ups and listings without touching the (large) state rows.
        """CREATE INDEX instances_by_feature ON instances
            (feature_id, seq, instance_id, status, current_phase, created_at, updated_at)""",
        "CREATE INDEX instances_by_status ON instances (status, feature_id, seq)",
        """CREATE TABLE task_artifacts (
            instance_id TEXT NOT NULL,
            phase_name TEXT NOT NULL,
            feature_id TEXT NOT NULL,
            record TEXT NOT NULL,
            prompt TEXT NOT NULL,
            response TEXT NOT NULL,
            prompt_sha256 TEXT NOT NULL,
            response_sha256 TEXT NOT NULL,
            PRIMARY KEY (instance_id, phase_name)
        )""",
    ),
)

_SUMMARY_COLUMNS = "instance_id, feature_id, status, current_phase, created_at, updated_at"

# SQLite result codes (the low byte of an extended code) that get their own error.
_BUSY, _LOCKED, _CORRUPT, _FULL, _NOTADB = 5, 6, 11, 13, 26

# Connections a forked child inherited: kept referenced so they are never closed there.
_inherited: list[sqlite3.Connection] = []


class SQLiteStore(IWorkflowStateStore):
    """State in one SQLite database file, safe for many threads and processes.

    ``durable=False`` commits with ``synchronous=NORMAL``: a crash of the process loses
    nothing, a power failure may lose the last commits (never corrupts). ``busy_timeout``
    is how long a writer waits for another one before raising ``LockTimeoutError``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durable: bool = True,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path).resolve()
        self.durable = durable
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._pid = os.getpid()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._connections_lock = threading.Lock()
        self._closed = False
        self._migrate()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, durable={self.durable})"

    # -- connections -----------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use in this thread and process."""
        if self._closed:
            raise StorageError(f"{self!r} is closed", path=str(self.path))
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == pid:
            return conn
        if self._pid != pid:
            self._forget_parent_connections(pid)
        conn = self._connect()
        self._local.conn, self._local.pid = conn, pid
        with self._connections_lock:
            self._close_dead_threads()
            self._connections[threading.current_thread()] = conn
        return conn

    def _forget_parent_connections(self, pid: int) -> None:
        _inherited.extend(self._connections.values())
        self._connections = {}
        self._connections_lock = threading.Lock()
        self._pid = pid

    def _close_dead_threads(self) -> None:
        for thread in [thread for thread in self._connections if not thread.is_alive()]:
            self._connections.pop(thread).close()

    def _connect(self) -> sqlite3.Connection:
        with self._errors("open"):
            # check_same_thread=False only so close() can close every thread's
            # connection; each connection is still used by its own thread alone.
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                # SQLite's default busy timeout is 0: a writer that finds another
                # process mid-transaction fails at once with "database is locked".
                # Waiting (like the file store's lock timeout) turns contention into
                # queueing; only a writer stuck past the timeout is an error.
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
            except BaseException:
                conn.close()
                raise
        return conn

    def close(self) -> None:
        with self._connections_lock:
            self._closed = True
            connections = list(self._connections.values()) if self._pid == os.getpid() else []
            self._connections.clear()
        for conn in connections:
            conn.close()

    # -- errors and transactions -------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn ``sqlite3`` errors raised while doing ``action`` into ChatFlow errors."""
        try:
            yield
        except sqlite3.Error as error:
            raise self._translate(error, action) from error

    def _translate(self, error: sqlite3.Error, action: str) -> ChatFlowError:
        code = _result_code(error)
        where = f"SQLite database {self.path}"
        if code in (_BUSY, _LOCKED):
            return LockTimeoutError(
                f"cannot {action} {where}: still locked by another writer after "
                f"{self.busy_timeout} s",
                path=str(self.path),
                timeout=self.busy_timeout,
            )
        if code in (_CORRUPT, _NOTADB):
            return CorruptStateError(f"{where} is corrupt: {error}", path=str(self.path))
        if code == _FULL:
            return StorageError(f"cannot {action} {where}: disk full", path=str(self.path))
        return StorageError(f"cannot {action} {where}: {error}", path=str(self.path))

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first read.

        Anything raised inside (including by ``mutate``) rolls it back; nothing is
        committed unless the block completes.
        """
        conn = self._connection()
        with self._errors(action):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

    def _query(self, action: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._errors(action):
            return self._connection().execute(sql, params).fetchall()

    # -- schema ----------------------------------------------------------------------

    def _migrate(self) -> None:
        """Bring the database's tables up to date; safe when many processes open it at once."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot create folder {self.path.parent}: {error.strerror or error}",
                path=str(self.path),
            ) from error
        with self._transaction("set up") as conn:
            version: int = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"SQLite database {self.path} has schema version {version}; this ChatFlow "
                    f"knows up to {len(MIGRATIONS)}: upgrade ChatFlow",
                    path=str(self.path),
                )
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")

    # -- instances -------------------------------------------------------------------

    def load_state(self, instance_id: str) -> StateDict | None:
        validate_id(instance_id, "instance_id")
        rows = self._query(
            "read", "SELECT state FROM instances WHERE instance_id = ?", (instance_id,)
        )
        return decode_state(rows[0][0], instance_id, str(self.path)) if rows else None

    def create_state(self, state_data: StateDict) -> None:
        row = encode_state(validate_id(state_data.get("instance_id"), "instance_id"), state_data)
        with self._transaction("write") as conn:
            if conn.execute(
                "SELECT 1 FROM instances WHERE instance_id = ?", (row.instance_id,)
            ).fetchone():
                raise ValidationError(
                    f"workflow instance {row.instance_id!r} already exists",
                    instance_id=row.instance_id,
                )
            conn.execute(_INSERT, row)

    def save_state(self, instance_id: str, state_data: StateDict) -> None:
        row = encode_state(instance_id, state_data)
        with self._transaction("write") as conn:
            conn.execute(_UPSERT, row)

    def update_state(self, instance_id: str, mutate: Mutation) -> StateDict:
        validate_id(instance_id, "instance_id")
        with self._transaction("update") as conn:
            found = conn.execute(
                "SELECT state FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone()
            if found is None:
                raise not_found(instance_id)
            current = decode_state(found[0], instance_id, str(self.path))
            version = current.get("version", 0)
            new = mutate(current)
            new["version"] = version + 1
            conn.execute(_UPDATE, encode_state(instance_id, new))
        return new

    def delete_instance(self, instance_id: str) -> bool:
        validate_id(instance_id, "instance_id")
        with self._transaction("delete") as conn:
            conn.execute("DELETE FROM task_artifacts WHERE instance_id = ?", (instance_id,))
            deleted = conn.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))
            return deleted.rowcount > 0

    # -- listings --------------------------------------------------------------------

    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        validate_id(feature_id, "feature_id")
        rows = self._query(
            "list",
            "SELECT instance_id FROM instances WHERE feature_id = ? ORDER BY seq",
            (feature_id,),
        )
        return [row[0] for row in rows]

    def list_feature_summaries(self, feature_id: str) -> list[InstanceSummary]:
        validate_id(feature_id, "feature_id")
        rows = self._query(
            "list",
            f"SELECT {_SUMMARY_COLUMNS} FROM instances WHERE feature_id = ? ORDER BY seq",
            (feature_id,),
        )
        return list(map(InstanceSummary._make, rows))

    def feature_status_counts(self, feature_id: str) -> list[StatusCount]:
        validate_id(feature_id, "feature_id")
        rows = self._query("count", _STATUS_COUNTS, (feature_id,))
        return list(map(StatusCount._make, rows))

    def list_instances(
        self, feature_id: str | None = None, status: str | None = None
    ) -> list[InstanceSummary]:
        where, params = _filters(feature_id, status)
        rows = self._query(
            "list",
            f"SELECT {_SUMMARY_COLUMNS} FROM instances {where} ORDER BY feature_id, seq",
            params,
        )
        return list(map(InstanceSummary._make, rows))

    def list_features(self) -> list[str]:
        rows = self._query("list", "SELECT DISTINCT feature_id FROM instances ORDER BY feature_id")
        return [row[0] for row in rows]

    def list_instance_ids(self) -> list[str]:
        rows = self._query("list", "SELECT instance_id FROM instances ORDER BY feature_id, seq")
        return [row[0] for row in rows]

    # -- task artifacts --------------------------------------------------------------

    def save_task_artifacts(
        self,
        feature_id: str,
        instance_id: str,
        phase_name: str,
        task_record_data: dict[str, Any],
        prompt_content: str,
        ai_response_content: str,
    ) -> None:
        ids = (
            validate_id(instance_id, "instance_id"),
            validate_id(phase_name, "phase_name"),
            validate_id(feature_id, "feature_id"),
        )
        row = encode_artifacts(task_record_data, prompt_content, ai_response_content)
        with self._transaction("write") as conn:
            conn.execute(_UPSERT_ARTIFACTS, ids + tuple(row))

    def load_task_artifacts(self, instance_id: str, phase_name: str) -> dict[str, Any] | None:
        validate_id(instance_id, "instance_id")
        validate_id(phase_name, "phase_name")
        rows = self._query(
            "read",
            "SELECT record, prompt, response, prompt_sha256, response_sha256 "
            "FROM task_artifacts WHERE instance_id = ? AND phase_name = ?",
            (instance_id, phase_name),
        )
        if not rows:
            return None
        return decode_artifacts(ArtifactRow._make(rows[0]), instance_id, phase_name, str(self.path))

    def list_task_phases(self, instance_id: str) -> list[str]:
        validate_id(instance_id, "instance_id")
        rows = self._query(
            "list",
            "SELECT phase_name FROM task_artifacts WHERE instance_id = ? ORDER BY phase_name",
            (instance_id,),
        )
        return [row[0] for row in rows]


def _filters(feature_id: str | None, status: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause and its parameters for ``list_instances``'s optional filters."""
    clauses, params = [], []
    if feature_id is not None:
        clauses.append("feature_id = ?")
        params.append(validate_id(feature_id, "feature_id"))
    check_status_filter(status)
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _result_code(error: sqlite3.Error) -> int | None:
    """The primary SQLite result code of ``error`` (Python < 3.11: guessed from its text)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF
    text = str(error).lower()
    for needle, guessed in (
        ("locked", _BUSY),
        ("malformed", _CORRUPT),
        ("not a database", _NOTADB),
        ("disk is full", _FULL),
    ):
        if needle in text:
            return guessed
    return None


# Counts come from the covering feature index; one row lookup per status names its newest.
_STATUS_COUNTS = """SELECT g.status, g.n, i.instance_id FROM
    (SELECT status, count(*) AS n, max(seq) AS newest FROM instances
     WHERE feature_id = ? GROUP BY status) AS g
    JOIN instances AS i ON i.seq = g.newest
    ORDER BY g.newest"""

_INSERT = """INSERT INTO instances
    (instance_id, feature_id, status, current_phase, created_at, updated_at, version, state)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""

_UPSERT = (
    _INSERT
    + """ ON CONFLICT (instance_id) DO UPDATE SET
    feature_id = excluded.feature_id, status = excluded.status,
    current_phase = excluded.current_phase, created_at = excluded.created_at,
    updated_at = excluded.updated_at, version = excluded.version, state = excluded.state"""
)

_UPDATE = """UPDATE instances SET
    feature_id = ?2, status = ?3, current_phase = ?4, created_at = ?5, updated_at = ?6,
    version = ?7, state = ?8
    WHERE instance_id = ?1"""

_UPSERT_ARTIFACTS = """INSERT INTO task_artifacts
    (instance_id, phase_name, feature_id, record, prompt, response, prompt_sha256,
     response_sha256)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (instance_id, phase_name) DO UPDATE SET
    feature_id = excluded.feature_id, record = excluded.record, prompt = excluded.prompt,
    response = excluded.response, prompt_sha256 = excluded.prompt_sha256,
    response_sha256 = excluded.response_sha256"""
