"""One ordered list of schema migrations for both SQL stores, and the one runner.

Step ``n`` (1-based) brings a database from schema version ``n - 1`` to ``n``: its
statements, in the store's dialect (``SQLStore.dialect``), then its conversion of the
rows, if any, all inside the caller's transaction; the runner then records ``n``
(SQLite: ``PRAGMA user_version``; PostgreSQL: a ``schema_migrations`` row), through the
store's ``_record_schema_version``. Never edit a step that has shipped: add one.

1: ChatFlow 1.x's tables (whole states in ``instances``, ``task_artifacts``);
2: the event log (``chatflow.storage._sql``), 1.x rows converted by ``upgrade_v1``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chatflow.errors import StorageError
from chatflow.storage._sql import Cursor, SQLStore, feed_tables, tables, upgrade_v1

Statements = Callable[[str], tuple[str, ...]]
"""A step's statements for one dialect, given the tables' prefix (``""``, ``'"s".'``)."""


@dataclass(frozen=True)
class Migration:
    """One schema version: what it is, its statements by dialect, its row conversion."""

    what: str
    statements: Mapping[str, Statements]
    convert: Callable[[SQLStore, Cursor], None] | None = None


def _v1_sqlite(p: str) -> tuple[str, ...]:
    return (
        # seq is the rowid: creation order, so a feature's newest instance is its max(seq).
        f"""CREATE TABLE {p}instances (
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
        f"""CREATE INDEX instances_by_feature ON {p}instances
            (feature_id, seq, instance_id, status, current_phase, created_at, updated_at)""",
        f"CREATE INDEX instances_by_status ON {p}instances (status, feature_id, seq)",
        f"""CREATE TABLE {p}task_artifacts (
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
    )


def _v1_postgres(p: str) -> tuple[str, ...]:
    return (
        # seq is the creation order: a feature's newest instance is its max(seq).
        # state is json, not jsonb: jsonb rejects "\u0000", which user data may hold.
        f"""CREATE TABLE {p}instances (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            instance_id text PRIMARY KEY,
            feature_id text NOT NULL,
            status text NOT NULL,
            current_phase text NOT NULL,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            version bigint NOT NULL,
            state json NOT NULL
        )""",
        # Covers feature roll-ups and listings without reading the state column.
        f"""CREATE INDEX instances_by_feature ON {p}instances (feature_id, seq)
            INCLUDE (instance_id, status, current_phase, created_at, updated_at)""",
        f"CREATE INDEX instances_by_status ON {p}instances (status, feature_id, seq)",
        # The texts are bytea: PostgreSQL text cannot hold NUL characters.
        f"""CREATE TABLE {p}task_artifacts (
            instance_id text NOT NULL,
            phase_name text NOT NULL,
            feature_id text NOT NULL,
            record json NOT NULL,
            prompt bytea NOT NULL,
            response bytea NOT NULL,
            prompt_sha256 text NOT NULL,
            response_sha256 text NOT NULL,
            PRIMARY KEY (instance_id, phase_name)
        )""",
    )


def _v2_sqlite(p: str) -> tuple[str, ...]:
    return tables(p, blob="BLOB", real="REAL", seq="INTEGER PRIMARY KEY", json_type="TEXT")


def _v2_postgres(p: str) -> tuple[str, ...]:
    return tables(
        p,
        blob="bytea",
        real="double precision",
        seq="bigint GENERATED ALWAYS AS IDENTITY UNIQUE",
        json_type="text",
    )


def _v3_sqlite(p: str) -> tuple[str, ...]:
    # Events already stored are numbered in the order they were inserted (their rowid:
    # commit order, as SQLite commits one writer at a time).
    return feed_tables(
        p, epoch="lower(hex(randomblob(8)))", backfill="UPDATE events SET pos = rowid"
    )


def _v3_postgres(p: str) -> tuple[str, ...]:
    # Events already stored are numbered instance by instance (creation order), each
    # instance's in its own order; new events are committed unnumbered (found by the index).
    return (
        *feed_tables(
            p,
            epoch="substr(md5(random()::text || clock_timestamp()::text), 1, 16)",
            backfill=f"""UPDATE {p}events AS e SET pos = r.n FROM (SELECT x.instance_id,
            x.seq, row_number() OVER (ORDER BY h.seq, x.seq) AS n FROM {p}events AS x
            JOIN {p}heads AS h ON h.instance_id = x.instance_id) AS r
            WHERE e.instance_id = r.instance_id AND e.seq = r.seq""",
        ),
        f"CREATE INDEX events_unnumbered ON {p}events (instance_id, seq) WHERE pos IS NULL",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration("ChatFlow 1.x tables", {"sqlite": _v1_sqlite, "postgresql": _v1_postgres}),
    Migration(
        "the event log; 1.x rows converted",
        {"sqlite": _v2_sqlite, "postgresql": _v2_postgres},
        upgrade_v1,
    ),
    Migration("the change feed", {"sqlite": _v3_sqlite, "postgresql": _v3_postgres}),
)
"""Every schema version, oldest first; its length is the current version."""


def statements(dialect: str, prefix: str) -> tuple[tuple[str, ...], ...]:
    """Every step's statements in one dialect (what each store used to list itself)."""
    return tuple(step.statements[dialect](prefix) for step in MIGRATIONS)


def upgrade(store: SQLStore, cursor: Cursor, version: int) -> None:
    """Run the steps a database at schema ``version`` lacks, recording each version;
    ``StorageError`` if the database is newer than this ChatFlow knows."""
    if version > len(MIGRATIONS):
        raise StorageError(
            f"{store.where} has schema version {version}; this ChatFlow knows up to "
            f"{len(MIGRATIONS)}: upgrade ChatFlow"
        )
    for number in range(version, len(MIGRATIONS)):
        step = MIGRATIONS[number]
        for statement in step.statements[store.dialect](store.prefix):
            cursor.execute(statement)
        if step.convert is not None:
            step.convert(store, cursor)
        store._record_schema_version(cursor, number + 1)
