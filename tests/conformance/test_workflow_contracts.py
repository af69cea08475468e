"""A schema registered through one process's store is seen by another process.

The rest of the workflow contract (gates, upgrades, registered schemas) is packaged in
``chatflow.testing``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chatflow import WorkflowEngine
from chatflow.testing.contract import _workflows
from store_harness import FileHarness, Harness, PostgresHarness, SQLiteHarness

V2 = _workflows._V2  # the version the packaged contract upgrades to


_CHILD = """
import json, sys
from chatflow import WorkflowEngine
from chatflow.testing.contract import _workflows
engine = WorkflowEngine(sys.argv[1])
infos = [(w.name, w.version, w.source) for w in engine.list_workflows()]
iid = engine.start_workflow_instance(None, {}, "feat_child", schema_name="contract")
state = engine.get_workflow_instance_status(iid)
print(json.dumps({"infos": infos, "version": state.workflow_schema["version"]}))
"""


def target_of(harness: Harness) -> str:
    """The storage folder or URL a separate process opens the harness's data with."""
    if isinstance(harness, FileHarness):
        return harness.folder
    if isinstance(harness, SQLiteHarness):
        return f"sqlite:///{harness.path}"
    assert isinstance(harness, PostgresHarness)
    return f"{harness.url}?schema={harness.schema}"


def test_a_second_process_sees_registered_schemas(harness: Harness) -> None:
    if not harness.shared_across_processes:
        pytest.skip("the memory store lives in one process")
    store = harness.open()
    try:
        engine = WorkflowEngine(store=store)
        assert engine.register_schema(V2).source == "registered"
    finally:
        store.close()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, target_of(harness)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"infos": [["contract", "1.1", "registered"]], "version": "1.1"}
