"""Raw access to a memory store's instances (``MemoryStore.raw_access``): the encoded
head and events it keeps, as UTF-8 bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatflow.storage._raw import RawAccess, RawInstance

if TYPE_CHECKING:
    from chatflow.storage.memory import MemoryStore


class MemoryRawAccess(RawAccess):
    """The head and each event as the store encoded them (an empty head: none)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def read(self, instance_id: str) -> RawInstance:
        with self.store._lock:
            found = self.store._instances[instance_id]
            head = found.head.encode() if found.head else None
            return RawInstance(head, tuple(event.encode() for event in found.events))

    def write(self, instance_id: str, stored: RawInstance) -> None:
        with self.store._lock:
            found = self.store._instances[instance_id]
            found.head = "" if stored.head is None else stored.head.decode()
            found.events = [event.decode() for event in stored.events]
