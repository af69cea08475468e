"""The store contract, for anyone who writes a store (``chatflow.storage.spi``).

ChatFlow's own stores (memory, file, SQLite, PostgreSQL) pass it; a third-party store
is done when it passes it too. Two ways to run it, neither needs a command line:

- without pytest: ``validate(factory)`` runs every check and returns a ``Report``
  (``report.ok``, ``report.failed``; ``print(report)`` lists each check as passed,
  failed with its message, or skipped because the store lacks an optional capability);
- with pytest, every check as a test of its own: give the suite a factory and import it::

    # test_my_store.py
    import pytest
    from chatflow.testing.contract import *  # noqa: F403 - collects the whole contract

    @pytest.fixture
    def chatflow_store_factory(tmp_path):
        # Every call opens a new store object on the same data (in-process stores may
        # return the same object); the suite closes what it opens.
        return lambda: MyStore(tmp_path / "data")

Checks are grouped by capability (``chatflow.storage.spi.CAPABILITIES``): a store that
lacks an optional one (detected from the store, or by its ``UnsupportedOperationError``)
skips that group. ``chatflow.testing.races`` and ``chatflow.testing.kills`` race
processes through a store and kill writers mid-write; ``chatflow.testing.damage``
damages a stored instance in each of ``spi.DAMAGE_KINDS`` through the store's
``raw_access()`` (capability ``damage``), for the checks that damage is reported and
never repaired by losing a byte. The library itself never imports this package, nor
pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatflow.storage.base import IWorkflowStateStore
from chatflow.testing._states import assert_counted, increment, make_state

if TYPE_CHECKING:
    from chatflow.testing._check import requires as requires
    from chatflow.testing._validate import CheckResult as CheckResult
    from chatflow.testing._validate import Report as Report
    from chatflow.testing._validate import validate as validate

StoreFactory = Callable[[], IWorkflowStateStore]
"""Opens a store object on the data under test; see ``chatflow_store_factory``."""

_LAZY = {
    "CheckResult": "chatflow.testing._validate",
    "Report": "chatflow.testing._validate",
    "requires": "chatflow.testing._check",
    "validate": "chatflow.testing._validate",
}

__all__ = [
    "CheckResult",
    "Report",
    "StoreFactory",
    "assert_counted",
    "increment",
    "make_state",
    "requires",
    "validate",
]


def __getattr__(name: str) -> Any:
    """Load the contract runner on first use (it imports every check)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'chatflow.testing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
