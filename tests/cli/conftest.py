"""The ``run`` fixture: the ``chatflow`` command in a fresh temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._cli import Runner


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)
