"""Raw access to one stored instance: what ``chatflow.testing`` damages (capability
``damage`` of ``chatflow.storage.spi``).

A store that offers it returns a ``RawAccess`` from ``Store.raw_access()``: the bytes
of an instance's head and of each of its events exactly as the store keeps them, and a
way to put other bytes in their place behind the store's back, as a failing disk, a
torn write or a careless hand would. ``chatflow.testing.damage`` turns those bytes into
each kind of damage (``DAMAGE_KINDS``), so every store is damaged the same way and a
store author writes only the reading and writing. ChatFlow itself never calls it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

DAMAGE_KINDS: dict[str, str] = {
    "flip_byte": "one byte inside a middle event changed",
    "reseal_event": "a middle event edited and its hash computed again to match",
    "reorder_events": "two middle events swapped",
    "duplicate_event": "a middle event stored twice in a row",
    "drop_last_event": "the last event removed",
    "truncate_at_event": "the log cut at an event boundary: its last two events gone",
    "truncate_mid_event": "the log cut inside its last event",
    "lose_head": "the head (the log's projection, kept to read fast) removed",
    "garble_head": "the head cut in half: bytes that are not JSON",
}
"""Every kind of damage the harness can do, by name: what it does to the instance."""
HEAD_KINDS = frozenset({"lose_head", "garble_head"})
"""The kinds that damage only the head, which the log can rebuild: the others damage
the log, the truth, so no read may give a state from it."""


@dataclass(frozen=True)
class RawInstance:
    """One instance's bytes as its store keeps them.

    ``events`` are the stored bytes of each event, oldest first, with any separator
    the store keeps after one (a file's newline); ``head`` is ``None`` if the store
    keeps none. ``aside`` is what the store moved aside from the instance (damaged
    bytes it kept instead of rewriting them); ``write`` ignores it.
    """

    head: bytes | None
    events: tuple[bytes, ...]
    aside: tuple[bytes, ...] = ()


class RawAccess(ABC):
    """Reads and overwrites stored instances' bytes, reaching around the store.

    ``kinds`` names the ``DAMAGE_KINDS`` the store can hold (a text column cannot hold
    bytes that are not UTF-8; a store whose head is also its index, and that cannot
    find an instance from its log, cannot lose its head without losing the instance);
    the harness skips the others. ChatFlow's stores hold every kind.
    """

    kinds: frozenset[str] = frozenset(DAMAGE_KINDS)

    @abstractmethod
    def read(self, instance_id: str) -> RawInstance:
        """The instance's stored bytes (``KeyError`` if it has none)."""

    @abstractmethod
    def write(self, instance_id: str, stored: RawInstance) -> None:
        """Store exactly these bytes as the instance's head and events (one event per
        item of ``events``, in order; a ``None`` head removed), changing nothing else."""
