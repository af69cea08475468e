"""ChatFlow: a durable workflow-state engine for AI-assisted software development.

>>> import chatflow
>>> engine = chatflow.engine          # the process-wide shared engine (opens nothing yet)

Importing ChatFlow does no I/O and loads almost nothing: every public name is imported
on first access (``bench/bench_cli.py`` holds ``import chatflow`` to its target), and
the shared engine is created then and opens its store (``$CHATFLOW_DIR`` or
``./.chatflow``) on first use. ``init(path)`` switches that same engine object to
another folder, so every module holding ``chatflow.engine`` follows the switch.
"""

from __future__ import annotations

import sys

from chatflow.errors import (
    AgentApprovalError,
    ChatFlowError,
    CorruptStateError,
    GateNotSatisfiedError,
    HistoryConflictError,
    InstanceNotFoundError,
    InvalidIdError,
    InvalidTransitionError,
    LockTimeoutError,
    SchemaError,
    SchemaNotFoundError,
    StorageError,
    StoreNotFoundError,
    StoreURLError,
    UpgradeRefusedError,
    ValidationError,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import os
    from typing import Any

    from chatflow.core.engine import WorkflowEngine
    from chatflow.core.registry import WorkflowInfo, load_schema
    from chatflow.diagram import to_mermaid
    from chatflow.domain.models import (
        EventKind,
        HistoryEntry,
        InstanceStatus,
        TaskArtifacts,
        TaskExecutionRecord,
        WorkflowEvent,
        WorkflowInstanceState,
    )
    from chatflow.storage.base import InstanceSummary, IWorkflowStateStore

    engine: WorkflowEngine

__version__ = "1.0.0"

__all__ = [
    "AgentApprovalError",
    "ChatFlowError",
    "CorruptStateError",
    "EventKind",
    "GateNotSatisfiedError",
    "HistoryConflictError",
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
    "StoreURLError",
    "TaskArtifacts",
    "TaskExecutionRecord",
    "UpgradeRefusedError",
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

# Each name is imported from its module on first access, so a tool that only needs the
# errors, or the command's start-up, never pays for modules it does not use.
_LAZY = {
    "EventKind": "chatflow.domain.models",
    "HistoryEntry": "chatflow.domain.models",
    "InstanceStatus": "chatflow.domain.models",
    "InstanceSummary": "chatflow.storage.base",
    "IWorkflowStateStore": "chatflow.storage.base",
    "TaskArtifacts": "chatflow.domain.models",
    "TaskExecutionRecord": "chatflow.domain.models",
    "WorkflowEngine": "chatflow.core.engine",
    "WorkflowEvent": "chatflow.domain.models",
    "WorkflowInfo": "chatflow.core.registry",
    "WorkflowInstanceState": "chatflow.domain.models",
    "engine": "chatflow._shared",
    "load_schema": "chatflow.core.registry",
    "to_mermaid": "chatflow.diagram",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatflow' has no attribute {name!r}")
    __import__(module)  # importlib itself would cost more than the rest of this module
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    shared: WorkflowEngine = __getattr__("engine")
    shared._configure(storage_dir, store, durable=durable)
    return shared
