"""Shared fixtures: a fresh engine on a real temporary folder, and the SPEC's schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from chatflow import WorkflowEngine

SPEC_SCHEMA: dict[str, Any] = {
    "name": "code_generation",
    "phases": [{"name": "requirement_analysis"}, {"name": "design"}, {"name": "implementation"}],
}


@pytest.fixture
def schema() -> dict[str, Any]:
    """A private copy of the SPEC's three-phase schema."""
    return copy.deepcopy(SPEC_SCHEMA)


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / ".chatflow"


@pytest.fixture
def engine(storage_dir: Path) -> WorkflowEngine:
    """An engine on the default file store in a fresh folder."""
    return WorkflowEngine(storage_dir=storage_dir)
