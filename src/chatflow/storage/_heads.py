"""Heads this process committed, so its next step on an instance can skip re-checking them.

Before a step trusts a stored head it checks that head against its log's last event:
decode both, re-encode and re-hash them. For a head this very process sealed and wrote,
that check proves nothing new. A store keeps what it wrote here, with the exact stored
form (the *stamp*: the head file's bytes, or the head row's text); a stored head still
equal to its stamp is the one this process sealed, and the step takes a private copy
of it instead. Anything else (another writer, a crash repair, a hand edit) differs from
the stamp and goes through the full check.

Bounded: at most ``MAX_HEADS`` heads and ``MAX_BYTES`` of stamps and copies, least
recently used dropped first.
"""

from __future__ import annotations

import marshal
import threading
from collections import OrderedDict
from typing import NamedTuple

from chatflow.storage._log import Head

MAX_HEADS = 1024
MAX_BYTES = 8 * 1024 * 1024


class Trusted(NamedTuple):
    """A committed head's stored form, and the head itself (frozen by ``marshal``)."""

    stamp: bytes | str
    frozen: bytes

    def head(self) -> Head:
        """A private copy of the head: the caller may change it freely."""
        head: Head = marshal.loads(self.frozen)
        return head


class HeadCache:
    """Heads committed by this process, by instance id (thread-safe, bounded)."""

    def __init__(self, max_heads: int = MAX_HEADS, max_bytes: int = MAX_BYTES) -> None:
        self._entries: OrderedDict[str, Trusted] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.max_heads, self.max_bytes = max_heads, max_bytes

    def get(self, instance_id: str) -> Trusted | None:
        with self._lock:
            found = self._entries.get(instance_id)
            if found is not None:
                self._entries.move_to_end(instance_id)
            return found

    def put(self, instance_id: str, stamp: bytes | str, head: Head) -> None:
        """Remember ``head``, committed and stored as ``stamp``."""
        entry = Trusted(stamp, marshal.dumps(head))
        with self._lock:
            self._forget(instance_id)
            self._entries[instance_id] = entry
            self._bytes += _size(entry)
            while self._entries and (
                len(self._entries) > self.max_heads or self._bytes > self.max_bytes
            ):
                self._forget(next(iter(self._entries)))

    def drop(self, instance_id: str) -> None:
        with self._lock:
            self._forget(instance_id)

    def _forget(self, instance_id: str) -> None:
        old = self._entries.pop(instance_id, None)
        if old is not None:
            self._bytes -= _size(old)


def _size(entry: Trusted) -> int:
    return len(entry.stamp) + len(entry.frozen)
