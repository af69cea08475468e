"""The ``store`` fixture: every conformance test runs once per store kind.

PostgreSQL tests use the server on 127.0.0.1:5432 (database ``test``, trust auth), or
``$CHATFLOW_TEST_PG_URL``. Each test session works in its own uniquely named schema and
drops it at the end. Without a reachable server the PostgreSQL cases are skipped, unless
``$CI`` is set: CI has a server, so there they fail instead of silently passing.
"""

from __future__ import annotations

import getpass
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatflow.storage import IWorkflowStateStore

from ._harness import FileHarness, Harness, MemoryHarness, PostgresHarness, SQLiteHarness

STORE_KINDS = ["memory", "file", "sqlite", "postgres"]
PG_URL_ENV = "CHATFLOW_TEST_PG_URL"


def _candidate_urls() -> list[str]:
    if os.environ.get(PG_URL_ENV):
        return [os.environ[PG_URL_ENV]]
    return [
        f"postgresql://{user}@127.0.0.1:5432/test"
        for user in dict.fromkeys(["postgres", getpass.getuser()])
    ]


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A URL of a reachable PostgreSQL server, or skip (fail under CI) saying why."""
    import psycopg

    problems = []
    for url in _candidate_urls():
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error as error:
            problems.append(f"{url}: {str(error).strip().splitlines()[0]}")
    reason = f"no PostgreSQL server reachable ({'; '.join(problems)}); set {PG_URL_ENV}"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_schema(pg_url: str) -> Iterator[str]:
    """This session's schema name; it and every schema named after it are dropped at the end."""
    import psycopg

    name = f"chatflow_test_{os.getpid()}_{secrets.token_hex(3)}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{name}%",)
        ).fetchall()
        for (schema,) in rows:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_harness(request: pytest.FixtureRequest) -> PostgresHarness:
    """A PostgreSQL harness on the session schema, emptied for this test."""
    url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("pg_schema")
    harness = PostgresHarness("postgres", url=url, schema=schema)
    store = harness.open()
    store.list_features()  # the first query creates the schema
    store.close()
    harness.execute(
        "TRUNCATE {s}.heads, {s}.events, {s}.task_texts, {s}.feature_counts, {s}.schemas "
        "RESTART IDENTITY"
    )
    return harness


@pytest.fixture(params=STORE_KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """One kind of store's data, fresh for the test."""
    kind: str = request.param
    if kind == "memory":
        return MemoryHarness("memory", shared_across_processes=False)
    if kind == "file":
        return FileHarness("file", folder=str((tmp_path / ".chatflow").resolve()))
    if kind == "sqlite":
        return SQLiteHarness("sqlite", path=str(tmp_path / "state.db"))
    harness: PostgresHarness = request.getfixturevalue("pg_harness")
    return harness


@pytest.fixture
def store(harness: Harness) -> Iterator[IWorkflowStateStore]:
    """An open store of the parametrised kind, closed after the test."""
    opened = harness.open()
    yield opened
    opened.close()
