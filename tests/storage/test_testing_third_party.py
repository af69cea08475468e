"""``chatflow.testing`` used exactly as its docstring tells a third party to use it: a
store defined here, a ``chatflow_store_factory`` fixture, and one star import that
collects the whole contract, which the store must pass."""

from __future__ import annotations

import pytest

from chatflow.storage import MemoryStore
from chatflow.testing import StoreFactory
from chatflow.testing.contract import *  # noqa: F403


class ThirdPartyStore(MemoryStore):
    """A store someone else wrote (here: ChatFlow's reference store under a new name)."""


@pytest.fixture
def chatflow_store_factory() -> StoreFactory:
    opened = ThirdPartyStore()
    return lambda: opened  # an in-process store: every "open" is the same object
