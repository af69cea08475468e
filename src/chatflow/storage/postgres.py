"""``PostgresStore``: instances, artifacts and feature indexes in a PostgreSQL schema.

For teams whose tools run on several machines and must share one truth. Needs the
``chatflow-engine[postgres]`` extra (psycopg 3 and psycopg_pool), imported only when a
store is opened.

Concurrency: ``update_state`` reads the row ``SELECT ... FOR UPDATE`` and writes it in
the same transaction, so concurrent writers anywhere queue on the row lock and
``mutate`` always sees the latest committed state. A writer that waits longer than
``lock_timeout`` gets ``LockTimeoutError`` and its transaction is rolled back.

Schema: ChatFlow creates and migrates its tables itself, inside ``schema`` (default
``chatflow``). Migrations are numbered and recorded in ``<schema>.schema_migrations``;
an up-to-date database is checked with one query, and an upgrade runs under a
transaction-scoped advisory lock, so many processes starting at once apply each
migration exactly once.

Processes: each process gets its own connection pool, created on first use. A forked
child never touches the pool it inherited (its sockets belong to the parent's sessions)
and opens its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chatflow.errors import StorageError, ValidationError
from chatflow.storage._migrations import statements, upgrade
from chatflow.storage._pg_errors import describe_target, translate
from chatflow.storage._sql import Cursor, SQLStore

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    Connection = psycopg.Connection[tuple[Any, ...]]

DEFAULT_SCHEMA = "chatflow"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def migrations(s: str) -> tuple[tuple[str, ...], ...]:
    """Each schema version's statements for schema ``s`` (already quoted); the steps
    live in ``chatflow.storage._migrations``, shared with SQLite."""
    return statements("postgresql", f"{s}.")


# Every live store, so a forked child can drop the pools it inherited (see module doc).
_stores: weakref.WeakSet[PostgresStore] = weakref.WeakSet()
# Pools a forked child inherited: kept referenced so they are never closed there.
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    for store in list(_stores):
        store._forget_parent_pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class PostgresStore(SQLStore):
    """State in PostgreSQL, safe for many threads, processes and machines.

    ``url`` is a libpq URL or connection string; a ``schema`` query parameter in the URL
    (``postgresql://host/db?schema=team_a``) is used when ``schema`` is not given.
    ``durable=False`` commits with ``synchronous_commit = off``: the server may lose the
    last commits if it crashes (never corrupts), and each commit skips the WAL flush wait.
    ``min_size``/``max_size`` size this process's connection pool; ``pool_timeout`` is
    how long a call waits for a free connection; ``lock_timeout`` how long a writer
    waits for another one holding the same instance; ``connect_timeout`` how long to
    wait for the server.
    """

    dialect = "postgresql"
    counts_in_rows = True  # a round trip costs more than a column on every listed row

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        durable: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        pool_timeout: float = 30.0,
        lock_timeout: float = 30.0,
        connect_timeout: int = 10,
    ) -> None:
        super().__init__()
        self.url, url_schema = _split_schema(url)
        self.schema = _check_schema(schema or url_schema or DEFAULT_SCHEMA)
        self.durable = durable
        self.min_size, self.max_size = min_size, max_size
        self.pool_timeout = pool_timeout
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self._target = describe_target(self.url, self.schema)
        self.where = self._target
        self.prefix = f'"{self.schema}".'
        self.placeholder = "%s"
        self.schema_lock = "lock_schemas"
        self.lock_clause = " FOR UPDATE OF h"
        # One round trip; the event is numbered for the feed by its readers (see
        # chatflow.storage._sql: writers never queue on a feed row).
        self.append_query = f"WITH e AS ({self.sql('insert_unnumbered')}) {self.sql('update_head')}"
        p, key = self.prefix, _feed_lock_key(self.schema)
        self._numbering = f"""WITH r AS (SELECT instance_id, seq, row_number() OVER (ORDER BY
                instance_id, seq) AS n FROM {p}events WHERE pos IS NULL),
            f AS (SELECT pos FROM {p}feed WHERE id = 1),
            u AS (UPDATE {p}events AS e SET pos = f.pos + r.n FROM r, f
                WHERE e.instance_id = r.instance_id AND e.seq = r.seq RETURNING 1)
            UPDATE {p}feed SET pos = pos + (SELECT count(*) FROM u) WHERE id = 1"""
        self._lock_feed = f"SELECT pg_advisory_xact_lock({key})"
        # Until the pool is open (``_ensure_numbering``): numbered inline, which needs
        # UPDATE on the tables; then by NUMBER_FEED, which a SELECT-only role may call.
        self.number_at_read = (self._lock_feed, self._numbering)
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Connection] | None = None
        self._closed = False
        self._quoted = f'"{self.schema}"'
        _driver()  # without the extra, fail here with how to install it, not at first use
        _stores.add(self)

    def __repr__(self) -> str:
        return f"PostgresStore({self._target})"

    # -- connections -----------------------------------------------------------------

    def _get_pool(self) -> ConnectionPool[Connection]:
        """This process's pool, created (and the schema migrated) on first use."""
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._closed:
                raise StorageError(f"{self!r} is closed")
            if self._pool is None:
                self._pool = self._open_pool()
            return self._pool

    def exists(self) -> bool:
        """Whether this schema holds ChatFlow's tables; asks without creating anything
        (commands that only read must not create a store where a typo points)."""
        with self._errors("connect to"), self._connect() as conn:
            return self._schema_version(conn) > 0

    def _connect(self) -> Connection:
        """One plain connection: it fails fast with the server's own reason (refused, no
        such database, permission denied) instead of a pool timeout."""
        psycopg, _ = _driver()
        conn: Connection = psycopg.connect(
            self.url, autocommit=True, connect_timeout=self.connect_timeout
        )
        return conn

    def _open_pool(self) -> ConnectionPool[Connection]:
        _, pool_class = _driver()
        with self._errors("connect to"), self._connect() as conn:
            self._migrate(conn)
            self._ensure_numbering(conn)
        options: dict[str, Any] = {"autocommit": True, "connect_timeout": self.connect_timeout}
        pool: ConnectionPool[Connection] = pool_class(
            self.url,
            kwargs=options,
            min_size=self.min_size,
            max_size=self.max_size,
            timeout=self.pool_timeout,
            configure=self._configure,
            open=False,
            name=f"chatflow-{self.schema}",
        )
        pool.open(wait=False)
        return pool

    def _ensure_numbering(self, conn: Connection) -> None:
        """Make (once per schema) and use ``NUMBER_FEED()``: the feed's numbering as a
        ``SECURITY DEFINER`` function of the schema's owner, so a role that may only
        SELECT can read the feed (a read numbers what was committed since). A role that
        cannot create it, on a schema no writer of this version opened yet, numbers
        inline (``events_since`` then says which permission it lacks)."""
        name = f"{self._quoted}.{NUMBER_FEED}"
        if not self._has_function(conn, name):
            # Another process may make it first even so (the catalog lookup can miss a
            # function committed a moment ago): finding it made is as good as making it.
            with contextlib.suppress(*_cannot_or_made()), conn.transaction():
                conn.execute(self._lock_feed)  # (two creators at once: one waits)
                if not self._has_function(conn, name):
                    conn.execute(
                        f"CREATE FUNCTION {name}() RETURNS void LANGUAGE sql SECURITY DEFINER "
                        f"SET search_path = pg_catalog, pg_temp AS $chatflow$ {self._numbering} "
                        f"$chatflow$"
                    )
        if self._has_function(conn, name):
            self.number_at_read = (self._lock_feed, f"SELECT {name}()")

    @staticmethod
    def _has_function(conn: Connection, name: str) -> bool:
        row = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (f"{name}()",)).fetchone()
        return bool(row and row[0])

    def _configure(self, conn: Connection) -> None:
        conn.execute(f"SET lock_timeout = {int(self.lock_timeout * 1000)}")
        if not self.durable:
            conn.execute("SET synchronous_commit = off")

    def _forget_parent_pool(self) -> None:
        """In a forked child: set the parent's pool aside, unused and unclosed."""
        if self._pool is not None:
            _inherited.append(self._pool)
        self._pool = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn driver errors raised while doing ``action`` into ChatFlow errors."""
        try:
            yield
        except Exception as error:
            translated = translate(error, action, self._target, self.lock_timeout)
            if translated is None:
                raise
            raise translated from error

    def is_duplicate(self, error: Exception) -> bool:
        return getattr(error, "sqlstate", None) == "23505"  # unique_violation

    @contextlib.contextmanager
    def _connection(self, action: str) -> Iterator[Connection]:
        with self._errors(action), self._get_pool().connection() as conn:
            yield conn

    @contextlib.contextmanager
    def _write_cursor(self, action: str) -> Iterator[Cursor]:
        """One transaction: committed if the block completes, rolled back if it raises."""
        with self._connection(action) as conn, conn.transaction():
            yield conn

    @contextlib.contextmanager
    def _read_cursor(self, action: str) -> Iterator[Cursor]:
        """A repeatable-read transaction: its queries share one snapshot."""
        with self._connection(action) as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    def _query(self, action: str, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._connection(action) as conn:
            return conn.execute(query, params).fetchall()

    def _has_deletions_table(self) -> bool:
        query = (
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'deletions'"
        )
        return bool(self._query("list", query, (self.schema,)))

    # -- schema ----------------------------------------------------------------------

    def _migrate(self, conn: Connection) -> None:
        steps = migrations(self._quoted)
        if self._schema_version(conn) == len(steps):
            return
        with conn.transaction():
            # Serialises concurrent first starts: the loser waits, then finds nothing to do.
            key = int.from_bytes(hashlib.sha256(self._quoted.encode()).digest()[:8], "big")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (key - (1 << 63),))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._quoted}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._quoted}.schema_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            upgrade(self, conn, self._schema_version(conn))

    def _record_schema_version(self, cursor: Cursor, version: int) -> None:
        cursor.execute(
            f"INSERT INTO {self._quoted}.schema_migrations (version) VALUES (%s)", (version,)
        )

    def _schema_version(self, conn: Connection) -> int:
        table = f"{self._quoted}.schema_migrations"
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if not exists or not exists[0]:
            return 0
        row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {table}").fetchone()
        return int(row[0]) if row else 0


NUMBER_FEED = "chatflow_number_feed"
"""The function (in the store's schema) that numbers the feed's new events."""


def _cannot_or_made() -> tuple[type[Exception], ...]:
    """What making ``NUMBER_FEED`` may meet that is no failure: no right to create it
    (reads then number inline), or another process's copy already there."""
    psycopg, _ = _driver()
    errors = psycopg.errors
    return (errors.InsufficientPrivilege, errors.DuplicateFunction, errors.UniqueViolation)


def _feed_lock_key(schema: str) -> int:
    """The advisory lock that serialises numbering ``schema``'s feed (a signed bigint)."""
    digest = hashlib.sha256(f"chatflow feed {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big") - (1 << 63)


def _driver() -> tuple[Any, type[ConnectionPool[Connection]]]:
    """psycopg and psycopg_pool's ``ConnectionPool``, or a ``StorageError`` saying how to
    install them: they are the optional ``[postgres]`` extra."""
    try:
        import psycopg  # noqa: PLC0415 - optional dependency, loaded only when used
        from psycopg_pool import ConnectionPool  # noqa: PLC0415
    except ImportError as error:
        raise StorageError(
            f"PostgreSQL stores need the [postgres] extra (psycopg 3 and psycopg_pool; "
            f"{error}): pip install 'chatflow-engine[postgres]'"
        ) from error
    return psycopg, ConnectionPool


def _split_schema(url: str) -> tuple[str, str | None]:
    """``url`` without its ``schema`` query parameter (libpq would reject it), and its value."""
    if "://" not in url:
        return url, None
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in query if key == "schema"), None)
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _check_schema(schema: str) -> str:
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise ValidationError(
            f"invalid PostgreSQL schema name {schema!r}: use 1-63 lowercase letters, digits "
            "and '_', not starting with a digit"
        )
    return schema
