"""``chatflow.testing`` itself: it exports every contract test, and it fails a broken store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chatflow.testing import contract

BROKEN_STORE = '''
import pytest

from chatflow.storage import MemoryStore
from chatflow.testing.contract import *


class UnsortedStore(MemoryStore):
    """Breaks one promise: features come back newest first, not sorted."""

    def list_features(self):
        return sorted(super().list_features(), reverse=True)


@pytest.fixture
def chatflow_store_factory():
    opened = UnsortedStore()
    return lambda: opened
'''


def test_every_contract_test_is_exported_once() -> None:
    defined = [
        name for module in contract.MODULES for name in vars(module) if name.startswith("test_")
    ]
    assert sorted(defined) == sorted(set(defined))
    assert set(contract.__all__) == {*defined, "store"}


def test_a_broken_store_fails_the_contract_where_it_is_broken(tmp_path: Path) -> None:
    (tmp_path / "test_broken_store.py").write_text(BROKEN_STORE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tmp_path],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert failed, done.stdout
    assert all("test_broken_store.py::" in line for line in failed)
    assert any("test_features_are_sorted_and_separate" in line for line in failed)
    assert " passed" in done.stdout.splitlines()[-1]  # the rest of the contract still ran


def test_the_library_never_needs_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "import chatflow, chatflow.cli, chatflow.storage, chatflow.testing\n"
        "try:\n    import chatflow.testing.contract\nexcept ImportError:\n    print('needs pytest')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "needs pytest"), done.stderr
