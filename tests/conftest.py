"""Shared fixtures: a fresh engine on a real temporary folder, the SPEC's schema, and
the PostgreSQL server.

PostgreSQL tests use the server on 127.0.0.1:5432 (database ``test``, trust auth), or
``$CHATFLOW_TEST_PG_URL``. Each test session (each pytest-xdist worker) works in its own
uniquely named schema and drops it at the end. Without psycopg or a reachable server the
PostgreSQL cases are skipped, unless ``$CI`` is set: CI has both, so there they fail
instead of silently passing.
"""

from __future__ import annotations

import copy
import gc
import getpass
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

import bytecode_once
from chatflow import WorkflowEngine
from store_harness import PostgresHarness, empty_postgres

WRITTEN_BYTECODE = pytest.StashKey[list[Path]]()


def pytest_configure(config: pytest.Config) -> None:
    """Compile and rewrite once for all workers (``bytecode_once``); a worker finds it done."""
    if not hasattr(config, "workerinput"):
        config.stash[WRITTEN_BYTECODE] = bytecode_once.prepare(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection made (modules, items, fixtures: ~200,000 objects a worker)
    out of the garbage collector's reach: each full collection walked them all again,
    several seconds of CPU a run, though none of them ever becomes garbage."""
    gc.freeze()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Where no bytecode is wanted (``PYTHONDONTWRITEBYTECODE``, ``-B``), leave none behind."""
    written = config.stash.get(WRITTEN_BYTECODE, [])
    if written and sys.dont_write_bytecode:
        bytecode_once.remove(written)


SPEC_SCHEMA: dict[str, Any] = {
    "name": "code_generation",
    "phases": [{"name": "requirement_analysis"}, {"name": "design"}, {"name": "implementation"}],
}


@pytest.fixture(scope="session", autouse=True)
def neutral_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test runs from a folder in no git repository, not from the checkout.

    A step that opens or closes a visit stamps the git state of the current folder
    (``chatflow.core.gitlinks``): from the checkout, every such step in every test ran
    ``git status`` on it, which was a large part of the suite's time, and what it
    recorded depended on the checkout's state. Git links are tested in repositories the
    tests make (``tests/engine/test_git_links.py``). ``PYTHONPATH`` is made absolute so
    child processes still find the sources from here.
    """
    folder = tmp_path_factory.mktemp("cwd")
    assert not any((place / ".git").exists() for place in (folder, *folder.parents)), folder
    with pytest.MonkeyPatch.context() as patch:
        entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        absolute = [str(Path(entry).resolve()) for entry in entries if entry]
        if absolute:
            patch.setenv("PYTHONPATH", os.pathsep.join(absolute))
        patch.chdir(folder)
        yield folder


@pytest.fixture
def schema() -> dict[str, Any]:
    """A private copy of the SPEC's three-phase schema."""
    return copy.deepcopy(SPEC_SCHEMA)


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / ".chatflow"


@pytest.fixture
def engine(storage_dir: Path) -> WorkflowEngine:
    """An engine on the default file store in a fresh folder."""
    return WorkflowEngine(storage_dir=storage_dir)


PG_URL_ENV = "CHATFLOW_TEST_PG_URL"


def _skip_unless_ci(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


def _psycopg() -> ModuleType:
    """psycopg, or skip (fail under CI): without it there is no PostgreSQL to test."""
    try:
        import psycopg
    except ImportError as error:
        _skip_unless_ci(
            f"psycopg is not installed ({error}); pip install 'chatflow-engine[postgres]'"
        )
    return psycopg


def _candidate_urls() -> list[str]:
    if os.environ.get(PG_URL_ENV):
        return [os.environ[PG_URL_ENV]]
    return [
        f"postgresql://{user}@127.0.0.1:5432/test"
        for user in dict.fromkeys(["postgres", getpass.getuser()])
    ]


@pytest.fixture(name="psycopg", scope="session")
def psycopg_fixture() -> ModuleType:
    """The psycopg module, or skip (fail under CI)."""
    return _psycopg()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A URL of a reachable PostgreSQL server, or skip (fail under CI) saying why."""
    psycopg = _psycopg()

    problems = []
    for url in _candidate_urls():
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error as error:
            problems.append(f"{url}: {str(error).strip().splitlines()[0]}")
    _skip_unless_ci(f"no PostgreSQL server reachable ({'; '.join(problems)}); set {PG_URL_ENV}")


@pytest.fixture(scope="session")
def pg_schema(pg_url: str) -> Iterator[str]:
    """This session's schema name; it and every schema named after it are dropped at the end."""
    psycopg = _psycopg()

    name = f"chatflow_test_{os.getpid()}_{secrets.token_hex(3)}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{name}%",)
        ).fetchall()
        for (schema,) in rows:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def pg_admin(pg_url: str, pg_schema: str) -> Iterator[Any]:
    """One autocommit connection for the session's housekeeping (emptying the schema):
    a connection per test cost more than most PostgreSQL tests themselves."""
    psycopg = _psycopg()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pg_harness(request: pytest.FixtureRequest) -> PostgresHarness:
    """A PostgreSQL harness on the session schema, emptied for this test."""
    url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("pg_schema")
    harness = PostgresHarness("postgres", url=url, schema=schema)
    empty_postgres(request.getfixturevalue("pg_admin"), harness)
    return harness


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than there are cores. Many tests wait on a child
    process, a browser or a server; the extra worker keeps the cores busy meanwhile
    (measured on 2 cores: 3 workers ran the suite in 66.5 s, 2 in 73.7 s, 4 in 68.6 s)."""
    return (os.cpu_count() or 1) + 1
