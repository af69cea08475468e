"""Who deleted what, and when, outlives the deleted instance, on every store (issue 15):
``chatflow delete --by NAME`` appends to the store's deletion record, which
``store.deletions()`` and ``chatflow deleted`` read back from a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from store_harness import Harness

SCHEMA = {"name": "two", "phases": [{"name": "a"}, {"name": "b"}]}


def _records(store: IWorkflowStateStore, instance_id: str) -> list[dict[str, object]]:
    return [r for r in store.deletions() if r["instance_id"] == instance_id]


def test_a_deletion_is_recorded_with_who_what_and_when(
    harness: Harness, store: IWorkflowStateStore
) -> None:
    engine = WorkflowEngine(store=store)
    gone = engine.start_workflow_instance(SCHEMA, {}, "feat_gone")
    kept = engine.start_workflow_instance(SCHEMA, {}, "feat_gone")
    last = engine.trigger_next_step(gone)
    head = store._read_head(gone)
    assert head is not None
    assert store.delete_instance_by(gone, "alice") is True
    assert store.delete_instance_by(gone, "alice") is False  # nothing left: not recorded
    assert store.load_state(gone) is None and store.load_state(kept) is not None
    reopened = store if harness.kind == "memory" else harness.open()
    try:
        [record] = _records(reopened, gone)
        assert record["by"] == "alice" and record["feature_id"] == "feat_gone"
        assert record["status"] == last.status
        assert (record["seq"], record["hash"]) == (head["seq"], head["hash"])
        assert isinstance(record["at"], float)
        assert _records(reopened, kept) == []
    finally:
        if reopened is not store:
            reopened.close()


def test_chatflow_delete_by_is_shown_by_chatflow_deleted(
    harness: Harness, store: IWorkflowStateStore, tmp_path: Path
) -> None:
    if not harness.shared_across_processes:
        pytest.skip("the memory store lives in one process")
    target = harness.target()
    iid = WorkflowEngine(store=store).start_workflow_instance(SCHEMA, {}, "feat_cli")
    src = str(Path(__file__).resolve().parents[2] / "src")

    def chatflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chatflow", "--dir", target, *args],
            capture_output=True,
            text=True,
            check=False,
            env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
        )

    deleted = chatflow("delete", iid, "--yes", "--by", "bob")
    assert deleted.returncode == 0, deleted.stderr
    shown = chatflow("deleted", "--json")
    assert shown.returncode == 0, shown.stderr
    [record] = [r for r in json.loads(shown.stdout) if r["instance_id"] == iid]
    assert (record["by"], record["feature_id"], record["status"]) == ("bob", "feat_cli", "created")
    table = chatflow("deleted", "--feature", "feat_cli")
    assert iid in table.stdout and "bob" in table.stdout
