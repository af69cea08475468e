"""``SQLiteStore``: every instance's log, head and artifacts in one SQLite file.

For a single machine with thousands of instances: listings and feature roll-ups are
index queries instead of directory scans, and a step is one small transaction. The
tables and queries are shared with PostgreSQL (``chatflow.storage._sql``); this module
is the dialect and the connection handling.

Concurrency: WAL mode lets readers run alongside the one writer. Each step is one
``BEGIN IMMEDIATE`` transaction, which takes the database's write lock before reading
the head, so a step always builds on the latest committed event and runs exactly once.
(Optimistic compare-and-swap on the version was measured against this in 1.x: no
faster for one writer, slower under contention, and it reruns the step.)

Connections: one per thread (``sqlite3`` connections must not be shared between threads
mid-transaction), reopened in a forked child: a connection inherited across ``fork`` is
never used or closed there, because SQLite's POSIX locks do not survive the fork.

Schema migrations are the numbered steps of ``chatflow.storage._migrations`` (shared
with PostgreSQL); ``PRAGMA user_version`` records how many have run.
A new database is built beside its path and linked into place whole, so no process ever
sees it half made; an empty file, or a SQLite database of another program, is therefore
refused and left untouched, never read as an empty store.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatflow.errors import (
    ChatFlowError,
    CorruptStateError,
    LockTimeoutError,
    StorageError,
)
from chatflow.storage._migrations import statements, upgrade
from chatflow.storage._sql import Cursor, SQLStore

MIGRATIONS = statements("sqlite", "")
"""Each schema version's statements (``chatflow.storage._migrations`` holds the steps)."""

# SQLite result codes (the low byte of an extended code) that get their own error.
_BUSY, _LOCKED, _CORRUPT, _FULL, _NOTADB = 5, 6, 11, 13, 26

# Connections a forked child inherited: kept referenced so they are never closed there.
_inherited: list[sqlite3.Connection] = []


class SQLiteStore(SQLStore):
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
        super().__init__()
        self.path = Path(path).resolve()
        self.where = f"SQLite database {self.path}"
        self.durable = durable
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._pid = os.getpid()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._connections_lock = threading.Lock()
        self._closed = False
        # A 1.x database, read through an upgraded copy in memory until the first write
        # upgrades the file (reads never write): see _open_old.
        self._old: sqlite3.Connection | None = None
        self._old_lock = threading.RLock()
        self._migrate()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, durable={self.durable})"

    # -- connections -----------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use in this thread and process."""
        if self._closed:
            raise StorageError(f"{self!r} is closed", path=str(self.path))
        if self._old is not None:
            return self._old
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

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        """A connection to the database (or to ``path``, one being created)."""
        with self._errors("open"):
            # check_same_thread=False only so close() can close every thread's
            # connection; each connection is still used by its own thread alone.
            conn = sqlite3.connect(
                path or self.path,
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
    def _transaction_on(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first read.

        Anything raised inside (including by ``mutate``) rolls it back; nothing is
        committed unless the block completes.
        """
        if self._old is not None:
            self.upgrade()
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
        with self._errors(action), self._old_lock:
            return self._connection().execute(sql, params).fetchall()

    def is_duplicate(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError)

    def _write_cursor(self, action: str) -> contextlib.AbstractContextManager[Cursor]:
        return self._transaction_on(action)

    @contextlib.contextmanager
    def _read_cursor(self, action: str) -> Iterator[Cursor]:
        """A deferred transaction: in WAL mode its reads share one snapshot."""
        conn = self._connection()
        with self._errors(action), self._old_lock:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    # -- schema ----------------------------------------------------------------------

    def _migrate(self) -> None:
        """Create the database if there is none, else bring its tables up to date; safe
        when many processes open it at once. A file that is not a ChatFlow database is
        refused and left as it is: never read as an empty store, never written to."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else None
        except OSError as error:
            raise StorageError(
                f"cannot open {self.where}: {error.strerror or error}", path=str(self.path)
            ) from error
        if size is None:
            self._create()
        elif size == 0:
            # Every database ChatFlow creates appears whole (see _create): an empty file
            # is damage, or a file that is not a database at all.
            raise CorruptStateError(
                f"{self.where} is empty (0 bytes): not a ChatFlow store, perhaps a damaged "
                "one; left untouched (move it away to start a new store there)",
                path=str(self.path),
            )
        with self._errors("set up"):
            version = self._connection().execute("PRAGMA user_version").fetchone()[0]
        if 1 <= version < len(MIGRATIONS):
            self._open_old()
            return
        with self._transaction_on("set up") as conn:
            self._upgrade(conn)
        with self._errors("set up"):
            # Kept in the file, so only a database made in place (see _create) lacks it.
            self._connection().execute("PRAGMA journal_mode = WAL")

    @property
    def needs_upgrade(self) -> bool:
        """Whether this is a 1.x database not upgraded yet (read as it is until then)."""
        return self._old is not None

    def _open_old(self) -> None:
        """Read a 1.x database through a copy upgraded in memory: the file is not
        written until the first write (or ``chatflow doctor --fix``) upgrades it."""
        with self._errors("read"):
            copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._connection().backup(copy)
            copy.execute("BEGIN")
            self._upgrade(copy)
            copy.execute("COMMIT")
        self.__dict__.pop("_head_cache", None)  # (the copy's heads: the file's come later)
        with self._connections_lock:
            for conn in self._connections.values():
                conn.close()
            self._connections.clear()
        self._local = threading.local()  # (opened during __init__: only this thread's)
        self._old = copy

    def upgrade(self) -> bool:
        """Upgrade a 1.x database in place (logged as a warning); False if it was not one."""
        with self._old_lock:
            old, self._old = self._old, None
            if old is None:
                return False
            old.close()
            self.__dict__.pop("_head_cache", None)
            with self._transaction_on("upgrade") as conn:
                self._upgrade(conn)
            with self._errors("upgrade"):
                self._connection().execute("PRAGMA journal_mode = WAL")
        from chatflow._logger import logger  # noqa: PLC0415 - upgrades are rare

        logger(__name__).warning("upgraded %s from ChatFlow 1.x to logs and heads", self.where)
        return True

    def _create(self) -> None:
        """Build a new database beside ``path`` and link it into place, so that no other
        process ever sees it half made. (On a file system without hard links, SQLite
        creates it in place when it is first opened.)"""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            with self._errors("create"), contextlib.closing(self._connect(temporary)) as conn:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                self._upgrade(conn)
                conn.execute("COMMIT")
            # Closing checkpointed the log into the file; now make it durable, then visible.
            if self.durable:
                _fsync(temporary)
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                return  # another process created it first: use theirs, it is whole too
            except OSError:
                return
            if self.durable:
                _fsync(self.path.parent)
        except OSError as error:
            raise StorageError(
                f"cannot create {self.where}: {error.strerror or error}", path=str(self.path)
            ) from error
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{temporary}{suffix}")

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """Run the migrations ``conn``'s database lacks, inside the caller's transaction."""
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
            if tables:
                raise StorageError(
                    f"{self.where} is a SQLite database but not a ChatFlow store (it holds "
                    f"{', '.join(sorted(tables)[:5])}): refusing to add tables to it",
                    path=str(self.path),
                )
        upgrade(self, conn, version)

    def _record_schema_version(self, cursor: Cursor, version: int) -> None:
        cursor.execute(f"PRAGMA user_version = {int(version)}")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


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
