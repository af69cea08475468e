"""Stores behind ``IWorkflowStateStore``: files (default), memory, SQLite, PostgreSQL.

Names are imported on first access, so ``import chatflow`` (which needs this package
for the store interface) does not pay for every store's start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatflow.storage._open import is_store_url as is_store_url
    from chatflow.storage._open import open_store as open_store
    from chatflow.storage._open import register_store_scheme as register_store_scheme
    from chatflow.storage._open import require_store as require_store
    from chatflow.storage.base import FeatureCounts as FeatureCounts
    from chatflow.storage.base import InstanceLog as InstanceLog
    from chatflow.storage.base import InstanceSummary as InstanceSummary
    from chatflow.storage.base import IWorkflowStateStore as IWorkflowStateStore
    from chatflow.storage.base import StatusCount as StatusCount
    from chatflow.storage.base import TaskTexts as TaskTexts
    from chatflow.storage.file_lock import FileLock as FileLock
    from chatflow.storage.file_state_store import FileStateStore as FileStateStore
    from chatflow.storage.memory import MemoryStore as MemoryStore
    from chatflow.storage.migrate import MigrationReport as MigrationReport
    from chatflow.storage.migrate import migrate as migrate
    from chatflow.storage.postgres import PostgresStore as PostgresStore
    from chatflow.storage.sqlite import SQLiteStore as SQLiteStore

_WHERE = {
    "FeatureCounts": "chatflow.storage.base",
    "FileLock": "chatflow.storage.file_lock",
    "FileStateStore": "chatflow.storage.file_state_store",
    "IWorkflowStateStore": "chatflow.storage.base",
    "InstanceLog": "chatflow.storage.base",
    "InstanceSummary": "chatflow.storage.base",
    "MemoryStore": "chatflow.storage.memory",
    "MigrationReport": "chatflow.storage.migrate",
    "PostgresStore": "chatflow.storage.postgres",
    "SQLiteStore": "chatflow.storage.sqlite",
    "StatusCount": "chatflow.storage.base",
    "TaskTexts": "chatflow.storage.base",
    "is_store_url": "chatflow.storage._open",
    "migrate": "chatflow.storage.migrate",
    "open_store": "chatflow.storage._open",
    "register_store_scheme": "chatflow.storage._open",
    "require_store": "chatflow.storage._open",
}

__all__ = [
    "FeatureCounts",
    "FileLock",
    "FileStateStore",
    "IWorkflowStateStore",
    "InstanceLog",
    "InstanceSummary",
    "MemoryStore",
    "MigrationReport",
    "PostgresStore",
    "SQLiteStore",
    "StatusCount",
    "TaskTexts",
    "is_store_url",
    "migrate",
    "open_store",
    "register_store_scheme",
    "require_store",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'chatflow.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
