"""The names people who followed the seed's document import, and the package surface."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

import chatflow

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def test_seed_module_paths_keep_working() -> None:
    from chatflow.core.engine import WorkflowEngine
    from chatflow.core.models import HistoryEntry, TaskExecutionRecord, WorkflowInstanceState
    from chatflow.storage.file_lock import FileLock
    from chatflow.storage.file_state_store import FileStateStore, IWorkflowStateStore

    assert WorkflowEngine is chatflow.WorkflowEngine
    assert issubclass(FileStateStore, IWorkflowStateStore)
    assert {HistoryEntry, TaskExecutionRecord, WorkflowInstanceState} <= {
        getattr(chatflow, name) for name in chatflow.__all__
    }
    assert callable(FileLock)


def test_public_surface_is_sorted_and_typed() -> None:
    assert list(chatflow.__all__) == sorted(chatflow.__all__)
    for name in chatflow.__all__:
        assert getattr(chatflow, name) is not None
    assert importlib.resources.files("chatflow").joinpath("py.typed").is_file()
    assert issubclass(chatflow.LockTimeoutError, TimeoutError)
    assert issubclass(chatflow.InstanceNotFoundError, KeyError)
    assert issubclass(chatflow.ValidationError, ValueError)


ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "chatflow"
# What a user of the sdist needs beyond the code: the licence, the documents, the
# examples and the tests that check an install; each must be in it.
SDIST_MUST_HOLD = (
    "LICENSE",
    "README.md",
    "CHANGELOG.md",
    "docs/storage.md",
    "docs/ui-overview.png",
    "examples/workflows/chatcoder_feature.yaml",
    "tests/fixtures/chatflow_1x_store.json",
)


def _data_files() -> list[str]:
    """Every file of the package that is not Python source, relative to it."""
    return sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )


def test_every_data_file_of_the_package_is_package_data() -> None:
    """A new template, stub or static file is shipped in the wheel, not left behind."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["chatflow"]
    files = _data_files()
    assert {"py.typed", "workflow.schema.json", "ui/static/index.html"} <= set(files)
    assert any(name.endswith(".pyi") for name in files)
    unshipped = [name for name in files if not any(fnmatch(name, p) for p in patterns)]
    assert unshipped == []


def test_the_sdist_and_the_wheel_hold_what_users_need(tmp_path: Path) -> None:
    """Built for real (``python -m build``, isolated: setuptools from the index)."""
    if importlib.util.find_spec("build") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but the build package is not installed ([test] extra)")
        pytest.skip("the build package is not installed: pip install build")
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    assert set(SDIST_MUST_HOLD) <= in_sdist
    assert {f"src/chatflow/{name}" for name in _data_files()} <= in_sdist
    assert {f"chatflow/{name}" for name in _data_files()} <= in_wheel
    assert any(name.endswith("licenses/LICENSE") for name in in_wheel)
    assert not any("__pycache__" in name for name in in_sdist | in_wheel)


_NOT_SOURCE = (
    ".git",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".venv",
    ".chatflow",
    ".hypothesis",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
)
