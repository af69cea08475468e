"""Webhook tests run once per kind of store (memory, file, SQLite, PostgreSQL), each
with ``url``: the same store as ``chatflow --dir`` takes it (``None`` for memory, which
lives in one process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatflow.storage import IWorkflowStateStore
from store_harness import FileHarness, Harness, MemoryHarness, PostgresHarness, SQLiteHarness

STORE_KINDS = ["memory", "file", "sqlite", "postgres"]


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
    opened = harness.open()
    yield opened
    opened.close()


def store_url(harness: Harness) -> str:
    """The store as ``--dir`` names it."""
    if isinstance(harness, FileHarness):
        return harness.folder
    if isinstance(harness, SQLiteHarness):
        return f"sqlite:///{harness.path}"
    if isinstance(harness, PostgresHarness):
        return f"{harness.url}?schema={harness.schema}"
    raise ValueError(f"a {harness.kind} store lives in one process")
