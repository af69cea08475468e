"""Stores behind ``IWorkflowStateStore``: files (default), memory, and more to come."""

from chatflow.storage._open import open_store
from chatflow.storage.base import InstanceSummary, IWorkflowStateStore
from chatflow.storage.file_lock import FileLock
from chatflow.storage.file_state_store import FileStateStore
from chatflow.storage.memory import MemoryStore

__all__ = [
    "FileLock",
    "FileStateStore",
    "IWorkflowStateStore",
    "InstanceSummary",
    "MemoryStore",
    "open_store",
]
