"""The store contract as a pytest suite, for anyone who writes an ``IWorkflowStateStore``.

ChatFlow's own stores (memory, file, SQLite, PostgreSQL) pass this suite; a third-party
store is done when it passes it too. Give the suite a factory and import it::

    # test_my_store.py
    import pytest
    from chatflow.testing.contract import *  # noqa: F403 - collects the whole contract

    @pytest.fixture
    def chatflow_store_factory(tmp_path):
        # Every call opens a new store object on the same data (in-process stores may
        # return the same object); the suite closes what it opens.
        return lambda: MyStore(tmp_path / "data")

``chatflow.testing.contract`` needs pytest (and imports it), so import it from tests
only; the library itself never does. Tests that damage a backend's files or tables, or
race several processes through one backend, stay in ChatFlow's own ``tests/``: they
need to know how that backend keeps its data.
"""

from __future__ import annotations

from collections.abc import Callable

from chatflow.storage.base import IWorkflowStateStore
from chatflow.testing._states import assert_counted, increment, make_state

StoreFactory = Callable[[], IWorkflowStateStore]
"""Opens a store object on the data under test; see ``chatflow_store_factory``."""

__all__ = ["StoreFactory", "assert_counted", "increment", "make_state"]
