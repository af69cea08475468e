"""Damage one stored instance, the same way in every store that gives raw access.

A store with the optional capability ``damage`` returns a ``RawAccess`` from
``raw_access()`` (``chatflow.storage.spi``): an instance's head and events as the bytes
it keeps. Each kind of damage below (``DAMAGE_KINDS`` says what each does) is a
function from those bytes to damaged ones, so the file, SQLite and PostgreSQL stores
and any third-party store are damaged alike; ``damage(store, instance_id, kind)`` does
one. The contract's checks (``chatflow.testing.contract``, capability ``damage``) then
read, verify and step the instance; ChatFlow's own damage tests build their
layout-specific cases from the same pieces (``cut``, ``flip``, ``reseal``).

Every kind keeps the damaged bytes valid UTF-8 without NUL (a text column holds them)
and needs at least five events (damage in the middle of a log, away from both ends).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from chatflow.errors import UnsupportedOperationError
from chatflow.storage.spi import (
    DAMAGE_KINDS,
    HEAD_KINDS,
    RawInstance,
    Store,
    canonical,
    sha256_hex,
)

Damage = Callable[[RawInstance], RawInstance]
MIN_EVENTS = 5
"""The fewest events an instance needs for every kind (two middle events, not ends)."""

__all__ = [
    "DAMAGES",
    "DAMAGE_KINDS",
    "HEAD_KINDS",
    "MIN_EVENTS",
    "Damage",
    "cut",
    "damage",
    "flip",
    "reseal",
]


def cut(data: bytes, fraction: float = 0.5) -> bytes:
    """``data`` cut ``fraction`` of the way in (at least one byte kept, at least one
    lost), at a character boundary: a torn write, still UTF-8."""
    at = min(max(1, int(len(data) * fraction)), len(data) - 1)
    while at > 1 and data[at] & 0xC0 == 0x80:  # inside a multi-byte character
        at -= 1
    return data[:at]


def _split(unit: bytes) -> tuple[bytes, bytes]:
    """An event's stored bytes as (the event, the separator after it, if any)."""
    body = unit.rstrip(b"\r\n")
    return body, unit[len(body) :]


def flip(unit: bytes) -> bytes:
    """One letter or digit near the middle of ``unit`` changed (a bit rotted on disk):
    same length, still text; a digit becomes the next, a letter changes case."""
    body, tail = _split(unit)
    start = len(body) // 2
    for at in [*range(start, len(body)), *range(start)]:
        byte = body[at : at + 1]
        if byte.isdigit():
            return body[:at] + b"%d" % ((int(byte) + 1) % 10) + body[at + 1 :] + tail
        if byte.isalpha():
            return body[:at] + byte.swapcase() + body[at + 1 :] + tail
    raise ValueError("no letter or digit to flip")


def reseal(unit: bytes) -> bytes:
    """The event edited (what a step set, or a field added) and its ``hash`` computed
    again over the edit, stored canonically: damage the event's own hash cannot show,
    only the chain (the next event's ``prev``, the head) can."""
    body, tail = _split(unit)
    event = json.loads(body)
    edited = event["set"] if isinstance(event.get("set"), dict) else event
    edited["forged"] = True
    event["hash"] = sha256_hex(canonical({k: v for k, v in event.items() if k != "hash"}))
    return canonical(event) + tail


def _middle(stored: RawInstance) -> int:
    if len(stored.events) < MIN_EVENTS:
        raise ValueError(f"damage needs at least {MIN_EVENTS} events, not {len(stored.events)}")
    return len(stored.events) // 2


def _events(stored: RawInstance, events: list[bytes]) -> RawInstance:
    return replace(stored, events=tuple(events))


def _at_middle(change: Callable[[bytes], bytes]) -> Damage:
    def damaged(stored: RawInstance) -> RawInstance:
        events, at = list(stored.events), _middle(stored)
        events[at] = change(events[at])
        return _events(stored, events)

    return damaged


def _reordered(stored: RawInstance) -> RawInstance:
    events, at = list(stored.events), _middle(stored)
    events[at - 1], events[at] = events[at], events[at - 1]
    return _events(stored, events)


def _duplicated(stored: RawInstance) -> RawInstance:
    events, at = list(stored.events), _middle(stored)
    events.insert(at + 1, events[at])
    return _events(stored, events)


def _dropped(count: int) -> Damage:
    def damaged(stored: RawInstance) -> RawInstance:
        _middle(stored)
        return _events(stored, list(stored.events[:-count]))

    return damaged


def _torn(stored: RawInstance) -> RawInstance:
    _middle(stored)
    return _events(stored, [*stored.events[:-1], cut(stored.events[-1])])


def _garbled(stored: RawInstance) -> RawInstance:
    if stored.head is None:
        raise ValueError("the instance has no head to garble")
    return replace(stored, head=cut(stored.head))


DAMAGES: dict[str, Damage] = {
    "flip_byte": _at_middle(flip),
    "reseal_event": _at_middle(reseal),
    "reorder_events": _reordered,
    "duplicate_event": _duplicated,
    "drop_last_event": _dropped(1),
    "truncate_at_event": _dropped(2),
    "truncate_mid_event": _torn,
    "lose_head": lambda stored: replace(stored, head=None),
    "garble_head": _garbled,
}
"""Each of ``DAMAGE_KINDS``, as what it does to an instance's bytes."""
assert DAMAGES.keys() == DAMAGE_KINDS.keys()


def damage(store: Store, instance_id: str, kind: str) -> RawInstance:
    """Damage the instance in the ``kind`` way, behind ``store``'s back; return its
    bytes as now stored. ``UnsupportedOperationError`` if the store gives no raw access
    or cannot hold that kind."""
    access = store.raw_access()
    if kind not in access.kinds:
        raise UnsupportedOperationError(
            f"{type(store).__name__} cannot hold damage of kind {kind!r}", operation=kind
        )
    access.write(instance_id, DAMAGES[kind](access.read(instance_id)))
    return access.read(instance_id)
