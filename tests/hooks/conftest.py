"""The hooks' tests share a git work tree bound to an instance (``chatflow use``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._support import WORKFLOW, git_repository, ok, start


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repository(tmp_path / "project")


@pytest.fixture
def bound(repo: Path) -> str:
    instance_id = start(repo)
    ok(repo, "use", instance_id)
    return instance_id


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = git_repository(tmp_path / "project")
    (folder / "flow.json").write_text(json.dumps(WORKFLOW), encoding="utf-8")
    return folder
