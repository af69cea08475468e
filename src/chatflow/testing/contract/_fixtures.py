"""The one fixture every contract test builds on: an open store from the user's factory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatflow.storage.base import IWorkflowStateStore
from chatflow.testing import StoreFactory

__all__ = ["store"]


@pytest.fixture
def store(chatflow_store_factory: StoreFactory) -> Iterator[IWorkflowStateStore]:
    """A store opened by ``chatflow_store_factory`` (which the suite's user defines)."""
    opened = chatflow_store_factory()
    yield opened
    opened.close()
