"""Raw access to a file store's instances (``FileStateStore.raw_access``): the head file
and the log's lines, as bytes; what it moved aside, from its quarantine folder."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from chatflow.storage._raw import RawAccess, RawInstance

if TYPE_CHECKING:
    from chatflow.storage.file_state_store import FileStateStore


class FileRawAccess(RawAccess):
    """``instances/<id>.json`` is the head; each line of ``instances/<id>/events.jsonl``
    (with its newline, if it has one) is an event."""

    def __init__(self, store: FileStateStore) -> None:
        self.store = store

    def read(self, instance_id: str) -> RawInstance:
        store = self.store
        head = store._read_bytes(store._head_file(instance_id))
        log = store._read_bytes(store._log_file(instance_id))
        if head is None and log is None:
            raise KeyError(instance_id)
        return RawInstance(head, tuple(lines(log or b"")), tuple(self._aside(instance_id)))

    def _aside(self, instance_id: str) -> list[bytes]:
        """Every file moved aside from the instance (a folder's, file by file)."""
        kept = []
        for moved in map(Path, self.store.quarantined(instance_id)):
            files = sorted(moved.rglob("*")) if moved.is_dir() else [moved]
            kept += [path.read_bytes() for path in files if path.is_file()]
        return kept

    def write(self, instance_id: str, stored: RawInstance) -> None:
        head = Path(self.store._head_file(instance_id))
        if stored.head is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(head)
        else:
            head.write_bytes(stored.head)
        Path(self.store._log_file(instance_id)).write_bytes(b"".join(stored.events))


def lines(raw: bytes) -> list[bytes]:
    """``raw`` split after each newline (only there: a log line holds no other)."""
    parts = raw.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
