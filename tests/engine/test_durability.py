"""``durable=True`` (the default) means a step is on disk when it returns; ``False``
trades that for speed. A power cut cannot be staged in a test, so these watch the one
thing it would depend on: which files reach the disk (fsync) before a step returns,
and in which order. Linux only (``/proc/self/fd`` names a descriptor's file)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to name synced files"
)

SCHEMA = {"name": "flow", "phases": [{"name": "draft"}, {"name": "review"}]}


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of every file or folder fsynced (or fdatasynced) from now on, in order."""
    paths: list[str] = []

    def recording(real: Callable[[int], None]) -> Callable[[int], None]:
        def sync(fd: int) -> None:
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
            real(fd)

        return sync

    monkeypatch.setattr(os, "fsync", recording(os.fsync))
    if hasattr(os, "fdatasync"):
        monkeypatch.setattr(os, "fdatasync", recording(os.fdatasync))
    return paths


def test_a_durable_step_syncs_its_log_line_before_returning(
    tmp_path: Path, synced: list[str]
) -> None:
    engine = WorkflowEngine(storage_dir=tmp_path / ".chatflow")
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_d")
    folder = (tmp_path / ".chatflow" / "instances" / iid).resolve()
    log = str(folder / "events.jsonl")
    # The first event is written whole: its temporary file is synced, renamed into
    # place, and then the folder holding the new name is synced.
    temp = [i for i, path in enumerate(synced) if path.startswith(f"{folder}/.events.jsonl.")]
    assert temp and str(folder) in synced[temp[0] + 1 :]
    synced.clear()
    engine.trigger_next_step(iid)
    assert log in synced


def test_artifact_texts_reach_the_disk_before_the_log_commits_them(
    tmp_path: Path, synced: list[str]
) -> None:
    engine = WorkflowEngine(storage_dir=tmp_path / ".chatflow")
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_d")
    synced.clear()
    engine.record_task_artifacts(iid, "the prompt", "the response")
    tasks = (tmp_path / ".chatflow" / "instances" / iid / "tasks").resolve()
    log = str(tasks.parent / "events.jsonl")
    committed = synced.index(log)
    for name in ("draft.v1.prompt.md", "draft.v1.ai_response.md", "draft.v1.json"):
        # Written to a temp file beside it, synced, then renamed over it.
        temp = [i for i, path in enumerate(synced) if path.startswith(f"{tasks}/.{name}.")]
        assert temp and temp[0] < committed, name
    assert synced.index(str(tasks)) < committed  # their renames too


def test_without_durability_nothing_is_synced(tmp_path: Path, synced: list[str]) -> None:
    engine = WorkflowEngine(storage_dir=tmp_path / ".chatflow", durable=False)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_d")
    engine.record_task_artifacts(iid, "the prompt", "the response")
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid)
    assert synced == []


@pytest.mark.parametrize(("durable", "level"), [(True, 2), (False, 1)])
def test_sqlite_commits_with_a_full_sync_only_when_durable(
    tmp_path: Path, durable: bool, level: int
) -> None:
    store = SQLiteStore(tmp_path / "state.db", durable=durable)
    try:
        # PRAGMA synchronous is per connection: ask the one the store commits with.
        assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == level
    finally:
        store.close()
