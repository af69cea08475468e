"""The browser the page's tests share: one for the whole ``ui`` package, not one per
module (a launch costs a second or more); each test opens its own context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from browser_support import launched


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with launched() as opened:
        yield opened
