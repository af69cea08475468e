"""An instance folder replaced by a link to a folder elsewhere (holding a real copy of
its data, so everything would work through it) is refused, never written through."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chatflow import StorageError, WorkflowEngine

SCHEMA = {"name": "flow", "phases": [{"name": "a"}, {"name": "b"}]}


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_instance_folder_linked_elsewhere_is_refused(tmp_path: Path) -> None:
    storage = tmp_path / "store"
    engine = WorkflowEngine(storage_dir=storage)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_l")
    engine.record_task_artifacts(iid, "p", "r")
    folder = storage / "instances" / iid
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder, elsewhere)
    folder.symlink_to(elsewhere, target_is_directory=True)
    before = files_of(elsewhere)
    for attempt in (
        lambda e: e.trigger_next_step(iid),
        lambda e: e.record_task_artifacts(iid, "p2", "r2"),
    ):
        for engine_now in (engine, WorkflowEngine(storage_dir=storage)):  # cached head or not
            with pytest.raises(StorageError, match="refusing to write through it"):
                attempt(engine_now)
    assert files_of(elsewhere) == before
