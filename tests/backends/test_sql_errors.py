"""A backend's own failures surface as ChatFlow errors with a clear message, and change
nothing: a file that is not a database, a full disk, a server that is down, a missing
grant."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from chatflow import CorruptStateError, StorageError
from chatflow.storage import FileStateStore, open_store
from chatflow.storage.postgres import PostgresStore
from chatflow.storage.postgres import migrations as pg_migrations
from chatflow.storage.sqlite import MIGRATIONS, SQLiteStore
from chatflow.testing import make_state
from store_harness import PostgresHarness

# -- file store ------------------------------------------------------------------------


def test_file_store_under_a_regular_file_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create storage folder"):
        FileStateStore(tmp_path / "plain" / ".chatflow")


# -- SQLite ----------------------------------------------------------------------------


def test_sqlite_file_that_is_not_a_database_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not an SQLite database, just text " * 100)
    with pytest.raises(CorruptStateError, match="corrupt"):
        SQLiteStore(path)
    assert path.read_bytes() == b"this is not an SQLite database, just text " * 100
    assert sorted(tmp_path.iterdir()) == [path]


def test_empty_sqlite_file_is_corrupt_not_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    for opening in (lambda: SQLiteStore(path), lambda: open_store(f"sqlite:///{path}")):
        with pytest.raises(CorruptStateError, match=f"{path} is empty") as caught:
            opening()
        assert caught.value.path == str(path)
    assert path.stat().st_size == 0 and sorted(tmp_path.iterdir()) == [path]


def test_sqlite_database_of_another_program_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    before = path.read_bytes()
    with pytest.raises(StorageError, match="not a ChatFlow store"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_a_new_sqlite_database_appears_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SQLiteStore(path, durable=False).close()
    assert sorted(tmp_path.iterdir()) == [path]  # no temporary file left beside it
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_path_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(StorageError, match="plain"):
        SQLiteStore(tmp_path / "plain" / "state.db")


def test_sqlite_disk_full_is_a_storage_error_and_writes_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    state = make_state()
    store.create_state(state)
    conn = store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now full
    with pytest.raises(StorageError, match="disk full"):
        store.update_state(state["instance_id"], lambda s: {**s, "big": "x" * 100_000})
    assert store.load_state(state["instance_id"]) == state
    store.close()


def test_sqlite_database_from_a_newer_chatflow_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StorageError, match="upgrade ChatFlow"):
        SQLiteStore(path)


def _open_sqlite(path: str) -> int:
    store = SQLiteStore(path)
    store.create_state(make_state())
    store.close()
    return 1


@pytest.mark.slow
def test_sqlite_many_processes_creating_the_database_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert sum(pool.map(_open_sqlite, [path] * 8)) == 8
    store = SQLiteStore(path)
    assert len(store.list_instance_ids()) == 8
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store.close()


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.mark.usefixtures("psycopg")
def test_postgres_server_down_is_a_storage_error_without_the_password() -> None:
    store = PostgresStore("postgresql://someone:s3cret@127.0.0.1:1/test", connect_timeout=2)
    with pytest.raises(StorageError, match="unreachable") as caught:
        store.load_state("wfi_any")
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


def test_postgres_missing_database_is_a_storage_error(pg_url: str) -> None:
    url = pg_url.rsplit("/", 1)[0] + "/chatflow_no_such_database"
    with pytest.raises(StorageError, match="chatflow_no_such_database"):
        PostgresStore(url).list_features()


def test_postgres_permission_denied_is_a_storage_error(pg_harness: PostgresHarness) -> None:
    import psycopg

    role = f"{pg_harness.schema}_reader"
    pg_harness.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        url = psycopg.conninfo.make_conninfo(pg_harness.url, user=role)
        with pytest.raises(StorageError, match="permission denied"):
            PostgresStore(url, schema=pg_harness.schema).list_features()
    finally:
        pg_harness.execute(f'DROP ROLE "{role}"')


def test_postgres_schema_from_a_newer_chatflow_is_refused(pg_harness: PostgresHarness) -> None:
    pg_harness.execute("INSERT INTO {s}.schema_migrations (version) VALUES (999)")
    try:
        with pytest.raises(StorageError, match="upgrade ChatFlow"):
            PostgresStore(pg_harness.url, schema=pg_harness.schema).list_features()
    finally:
        pg_harness.execute("DELETE FROM {s}.schema_migrations WHERE version = 999")


def _open_postgres(url: str, schema: str) -> int:
    store = PostgresStore(url, schema=schema)
    store.create_state(make_state())
    store.close()
    return 1


@pytest.mark.slow
def test_postgres_many_processes_creating_the_schema_at_once(pg_url: str, pg_schema: str) -> None:
    import psycopg

    schema = f"{pg_schema}_race"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert sum(pool.starmap(_open_postgres, [(pg_url, schema)] * 8)) == 8
    store = PostgresStore(pg_url, schema=schema)
    assert len(store.list_instance_ids()) == 8
    store.close()
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_migrations').fetchall()
    assert sorted(row[0] for row in versions) == list(range(1, len(pg_migrations('"x"')) + 1))
