"""The names people who followed the seed's document import, and the package surface."""

from __future__ import annotations

import importlib.resources

import chatflow


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
