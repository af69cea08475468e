"""Webhook tests run once per kind of store (memory, file, SQLite, PostgreSQL), each
with ``url``: the same store as ``chatflow --dir`` takes it (``None`` for memory, which
lives in one process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatflow.storage import IWorkflowStateStore
from store_harness import STORE_KINDS, Harness, harness_of


@pytest.fixture(params=STORE_KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """One kind of store's data, fresh for the test."""
    return harness_of(request.param, request, tmp_path)


@pytest.fixture
def store(harness: Harness) -> Iterator[IWorkflowStateStore]:
    opened = harness.open()
    yield opened
    opened.close()
