"""ChatFlow: a durable workflow-state engine for AI-assisted software development.

>>> import chatflow
>>> engine = chatflow.engine          # the process-wide shared engine (opens nothing yet)

Importing ChatFlow does no I/O: the shared engine opens its store (``$CHATFLOW_DIR`` or
``./.chatflow``) on first use. ``init(path)`` switches that same engine object to
another folder, so every module holding ``chatflow.engine`` follows the switch.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from chatflow.core.engine import WorkflowEngine
from chatflow.core.models import (
    EventKind,
    HistoryEntry,
    InstanceStatus,
    TaskArtifacts,
    TaskExecutionRecord,
    WorkflowEvent,
    WorkflowInstanceState,
)
from chatflow.errors import (
    ChatFlowError,
    CorruptStateError,
    InstanceNotFoundError,
    InvalidIdError,
    InvalidTransitionError,
    LockTimeoutError,
    SchemaError,
    SchemaNotFoundError,
    StorageError,
    StoreNotFoundError,
    ValidationError,
)
from chatflow.storage.base import InstanceSummary, IWorkflowStateStore

__version__ = "1.0.0"

__all__ = [
    "ChatFlowError",
    "CorruptStateError",
    "EventKind",
    "HistoryEntry",
    "IWorkflowStateStore",
    "InstanceNotFoundError",
    "InstanceStatus",
    "InstanceSummary",
    "InvalidIdError",
    "InvalidTransitionError",
    "LockTimeoutError",
    "SchemaError",
    "SchemaNotFoundError",
    "StorageError",
    "StoreNotFoundError",
    "TaskArtifacts",
    "TaskExecutionRecord",
    "ValidationError",
    "WorkflowEngine",
    "WorkflowEvent",
    "WorkflowInfo",
    "WorkflowInstanceState",
    "engine",
    "init",
    "load_schema",
    "to_mermaid",
]

engine = WorkflowEngine()

# Imported on first access: only schema-file and diagram users pay for these modules.
_LAZY = {
    "WorkflowInfo": "chatflow.core.registry",
    "load_schema": "chatflow.core.registry",
    "to_mermaid": "chatflow.diagram",
}

if TYPE_CHECKING:
    from chatflow.core.registry import WorkflowInfo as WorkflowInfo
    from chatflow.core.registry import load_schema as load_schema
    from chatflow.diagram import to_mermaid as to_mermaid


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def init(
    storage_dir: str | os.PathLike[str] | None = None,
    *,
    store: IWorkflowStateStore | None = None,
    durable: bool = True,
) -> WorkflowEngine:
    """Point the shared engine at ``storage_dir`` (a folder or store URL) or ``store``.

    The shared engine is reconfigured in place rather than replaced, so code that
    imported ``chatflow.engine`` earlier sees the new storage too.
    """
    engine._configure(storage_dir, store, durable=durable)
    return engine
