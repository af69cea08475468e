"""The ``run`` fixture: the ``chatflow`` command in a fresh temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._cli import Runner, SubprocessRunner


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture
def run_subprocess(tmp_path: Path) -> SubprocessRunner:
    """The real executable, for the smoke tests that need a process of their own."""
    return SubprocessRunner(tmp_path)
