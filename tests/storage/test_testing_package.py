"""``chatflow.testing`` itself: it exports every contract test, and it fails a broken store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chatflow import CorruptStateError
from chatflow.storage import FileStateStore, IWorkflowStateStore, MemoryStore, SQLiteStore
from chatflow.storage.spi import (
    DAMAGE_KINDS,
    Commit,
    Event,
    Head,
    LogTransaction,
    Store,
    TaskTexts,
    capabilities,
)
from chatflow.testing import contract, validate
from store_harness import PostgresHarness, empty_postgres

BROKEN_STORE = '''
import pytest

from chatflow.storage import MemoryStore
from chatflow.storage.spi import Store
from chatflow.testing.contract import *


class UnsortedStore(MemoryStore):
    """Breaks one promise: features come back newest first, not sorted; and lacks an
    optional capability (deletes), whose checks are skipped, not failed."""

    delete_instance = Store.delete_instance

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
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfs",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            tmp_path,
        ],
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
    assert "optional capability 'delete' missing" in done.stdout
    assert not any("delet" in line for line in failed)


def test_the_library_never_needs_pytest_and_validate_runs_without_it() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "import chatflow, chatflow.cli, chatflow.storage, chatflow.testing\n"
        "from chatflow.storage import MemoryStore\n"
        "open_memory = lambda folder: MemoryStore()\n"
        "report = chatflow.testing.validate(open_memory, shared=True, file=sys.stdout)\n"
        "import chatflow.testing.contract as c; assert 'store' not in c.__all__\n"
        "sys.exit(0 if report.ok and sys.modules['pytest'] is None else 1)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("MemoryStore: ") and " 0 failed" in last, last
    assert "PASSED  states: test_created_state_loads_back_equal" in done.stdout


class NoCopyStore(MemoryStore):
    """Lacks both optional capabilities: deletes refused (the base's default, seen
    from the class) and copies refused (its transactions cannot store copied texts,
    seen only when tried)."""

    delete_instance = Store.delete_instance

    def _transaction(self, instance_id: str, feature_id: str | None = None) -> Any:
        return _Without(super()._transaction(instance_id, feature_id))


class _Without(LogTransaction):
    """A transaction without ``put_texts``, wrapping a full one."""

    def __init__(self, opened: Any) -> None:
        self.opened = opened

    def __enter__(self) -> LogTransaction:
        self.inner: LogTransaction = self.opened.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self.opened.__exit__(*exc)

    def head(self) -> Head | None:
        return self.inner.head()

    def events(self) -> list[Event]:
        return self.inner.events()

    def append(self, commit: Commit, texts: tuple[str, int, TaskTexts] | None) -> None:
        self.inner.append(commit, texts)

    def replace_prefix(self, checkpoint: Event, upto: int) -> None:
        self.inner.replace_prefix(checkpoint, upto)


def test_validate_skips_the_optional_capabilities_a_store_lacks() -> None:
    assert {"delete", "copy"} - capabilities(NoCopyStore()) == {"delete"}  # copy: when tried
    report = validate(lambda folder: NoCopyStore(), shared=True)
    assert report.ok, str(report)
    skipped = {result.capability for result in report.skipped if not result.required}
    assert skipped == {"delete", "copy", "feed"}
    lacking = [r for r in report.skipped if not r.required]
    assert all("optional capability" in r.message for r in lacking)
    # It has raw access (a memory store's), every kind held: a lost head too.
    damaged = {r.name for r in report.passed if r.capability == "damage"}
    assert damaged >= LOSE_HEAD and len(damaged) == 2 * len(DAMAGE_KINDS)
    assert {r.capability for r in report.passed} >= {"states", "artifacts", "features"}
    assert report.capabilities == capabilities(NoCopyStore())


def test_validate_reports_each_failure_with_its_message() -> None:
    class UnsortedStore(MemoryStore):
        def list_features(self) -> list[str]:
            return sorted(super().list_features(), reverse=True)

    report = validate(lambda folder: UnsortedStore(), shared=True, only={"features"})
    assert not report.ok
    failed = {result.name: result.message for result in report.failed}
    assert "test_features_are_sorted_and_separate" in failed
    assert "AssertionError" in failed["test_features_are_sorted_and_separate"]
    assert {result.capability for result in report.results} == {"features"}
    with pytest.raises(AssertionError, match="test_features_are_sorted_and_separate"):
        report.raise_for_failures()
    assert "FAILED  features: test_features_are_sorted_and_separate" in str(report)


LOSE_HEAD = {
    "test_damage_is_reported_and_reads_change_no_byte[lose_head]",
    "test_a_step_after_damage_keeps_every_damaged_byte[lose_head]",
}


def _postgres(request: pytest.FixtureRequest) -> Callable[[Path], IWorkflowStateStore]:
    """PostgreSQL stores on this test's schema, emptied for each check's new folder (a
    schema per check would cost more than the checks)."""
    harness: PostgresHarness = request.getfixturevalue("pg_harness")
    admin = request.getfixturevalue("pg_admin")
    emptied: set[Path] = set()

    def opener(folder: Path) -> IWorkflowStateStore:
        if folder not in emptied:
            emptied.add(folder)
            empty_postgres(admin, harness)
        return harness.open()

    return opener


@pytest.mark.parametrize("kind", ["file", "sqlite", "postgres"])
def test_validate_damages_our_stores_in_every_way_they_can_hold(
    request: pytest.FixtureRequest, kind: str
) -> None:
    openers: dict[str, Callable[[Path], IWorkflowStateStore]] = {
        "file": lambda folder: FileStateStore(folder / ".chatflow"),
        "sqlite": lambda folder: SQLiteStore(folder / "state.db"),
    }
    report = validate(openers.get(kind) or _postgres(request), only={"damage"})
    report.raise_for_failures()
    assert "damage" in report.capabilities
    assert not report.skipped  # every kind, a lost heads row too (listed as unreadable)
    ran = {r.name for r in report.passed}
    assert ran >= LOSE_HEAD and {name.partition("[")[2] for name in ran} == {
        f"{name}]" for name in DAMAGE_KINDS
    }


class HidingStore(SQLiteStore):
    """Reads damage as absence: what the damage checks exist to catch."""

    def load_state(self, instance_id: str) -> dict[str, Any] | None:
        try:
            return super().load_state(instance_id)
        except CorruptStateError:
            return None


def test_validate_fails_a_store_that_reads_damage_as_absent() -> None:
    report = validate(lambda folder: HidingStore(folder / "state.db"), only={"damage"})
    failed = {result.name.partition("[")[2][:-1]: result.message for result in report.failed}
    assert set(failed) == set(DAMAGE_KINDS), str(report)  # a lost head too
    assert all("read as None" in message for message in failed.values())
    assert {r.name for r in report.passed} == {  # its steps still refuse damage
        f"test_a_step_after_damage_keeps_every_damaged_byte[{kind}]" for kind in DAMAGE_KINDS
    }
