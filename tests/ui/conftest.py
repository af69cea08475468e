"""The browser the page's tests share: Debian's Chromium driven by Playwright, one per
test module (a launch costs about a second)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._support import CHROMIUM, CHROMIUM_ARGS, require_browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = require_browser()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
