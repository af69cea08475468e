"""Every conformance test runs once per store kind: memory, file, SQLite, PostgreSQL.

``test_contract.py`` runs the packaged contract (``chatflow.testing``) through
``chatflow_store_factory``; the other modules damage or race a backend through its
harness. PostgreSQL fixtures live in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatflow.storage import IWorkflowStateStore
from chatflow.testing import StoreFactory
from store_harness import STORE_KINDS, Harness, harness_of


@pytest.fixture(params=STORE_KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """One kind of store's data, fresh for the test."""
    return harness_of(request.param, request, tmp_path)


@pytest.fixture
def store(harness: Harness) -> Iterator[IWorkflowStateStore]:
    """An open store of the parametrised kind, closed after the test."""
    opened = harness.open()
    yield opened
    opened.close()


@pytest.fixture
def chatflow_store_factory(harness: Harness) -> StoreFactory:
    """What ``chatflow.testing`` opens stores with: the harness, on this test's data."""
    return harness.open
