"""Damage to one stored instance is reported, never read as a state, and never repaired
by losing a byte (``chatflow.testing.damage`` does each kind of damage).

After each kind (a fresh store object reads, as another process would): a damaged log
never loads (``CorruptStateError`` naming the instance), a damaged head loads exactly
the last state or is corrupt too; ``verify`` reports it (a lost head may verify only if
the log rebuilds it exactly); the instance stays listed; reads change no byte; other
instances stay readable and writable. A step afterwards is refused changing nothing,
or appends after the damage, keeping every damaged byte in place or moved aside.
"""

from __future__ import annotations

from typing import Any

from chatflow.errors import ChatFlowError, CorruptStateError
from chatflow.storage.spi import DAMAGE_KINDS, HEAD_KINDS, Head, RawAccess, Store
from chatflow.testing._check import parametrize, requires, skip
from chatflow.testing._states import increment, make_state
from chatflow.testing.damage import MIN_EVENTS, damage

CAPABILITY = "damage"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_a_step_after_damage_keeps_every_damaged_byte",
    "test_damage_is_reported_and_reads_change_no_byte",
]

FEATURE = "feat_damage"
NOTE = "after the damage"


def _access(store: Store, kind: str) -> RawAccess:
    """The store's raw access, or skip: the store cannot hold this kind of damage."""
    access = store.raw_access()
    if kind not in access.kinds:
        skip(f"damage kind {kind!r} not supported by {type(store).__name__}")
    return access


def _instance(store: Store) -> str:
    """A new instance with one event more than every kind of damage needs."""
    state = make_state(FEATURE)
    store.create_state(state)
    for _ in range(MIN_EVENTS):
        store.update_state(state["instance_id"], increment)
    return str(state["instance_id"])


def _outcome(call: Any, *args: Any) -> Any:
    """What ``call(*args)`` returns, or the ChatFlow error it raises."""
    try:
        return call(*args)
    except ChatFlowError as error:
        return error


def _is_corrupt_and_named(found: Any, instance_id: str) -> bool:
    return isinstance(found, CorruptStateError) and instance_id in str(found)


def _note(head: Head, load: Any) -> dict[str, Any]:
    """A step: one value set (the store adds the version bump)."""
    return {"kind": "update", "set": {"note": NOTE}}


def _close(opened: Store, store: Store) -> None:
    if opened is not store:  # an in-process store's factory gives the store itself
        opened.close()


@requires(CAPABILITY)
@parametrize("kind", list(DAMAGE_KINDS), ids=str)
def test_damage_is_reported_and_reads_change_no_byte(
    store: Store, chatflow_store_factory: Any, kind: str
) -> None:
    access = _access(store, kind)
    iid, other = _instance(store), _instance(store)
    last, other_state = store.load_state(iid), store.load_state(other)
    before = access.read(iid)
    damaged = damage(store, iid, kind)
    assert damaged != before, "the damage changed no stored byte"
    fresh = chatflow_store_factory()
    try:
        loaded = _outcome(fresh.load_state, iid)
        if kind in HEAD_KINDS and not isinstance(loaded, ChatFlowError):
            assert loaded == last, f"a damaged head read as {loaded!r}, not the last state"
        else:
            assert _is_corrupt_and_named(loaded, iid), f"a damaged log read as {loaded!r}"
        problem = fresh.verify(iid)
        if problem is None:  # only a lost head the log rebuilt, exactly
            assert kind == "lose_head" and loaded == last, "verify found nothing"
        else:
            assert problem.instance_id == iid
        assert iid in fresh.list_instances_by_feature(FEATURE), "the damaged instance is hidden"
        assert fresh.raw_access().read(iid) == damaged, "reading changed stored bytes"
        assert fresh.load_state(other) == other_state, "another instance changed"
        fresh.update_state(other, increment)
        assert fresh.verify(other) is None
    finally:
        _close(fresh, store)


@requires(CAPABILITY)
@parametrize("kind", list(DAMAGE_KINDS), ids=str)
def test_a_step_after_damage_keeps_every_damaged_byte(
    store: Store, chatflow_store_factory: Any, kind: str
) -> None:
    _access(store, kind)
    iid = _instance(store)
    damaged = damage(store, iid, kind)
    fresh = chatflow_store_factory()
    try:
        stepped = _outcome(fresh.step, iid, _note)
        after = fresh.raw_access().read(iid)
        if isinstance(stepped, ChatFlowError):
            assert _is_corrupt_and_named(stepped, iid), repr(stepped)
            assert after == damaged, "a refused step changed stored bytes"
            return
        count = len(damaged.events)
        assert after.events[:count] == damaged.events, "an event was rewritten, not appended to"
        assert set(damaged.aside) <= set(after.aside), "bytes moved aside were lost"
        if kind not in HEAD_KINDS:  # a step may follow an intact tail; the damage stays
            assert fresh.verify(iid) is not None, "damage before a step is no longer reported"
            return
        if damaged.head is not None:  # an unusable head: replaced, but kept
            assert damaged.head in (after.head, *after.aside), "the damaged head was lost"
        assert fresh.verify(iid) is None
        state = fresh.load_state(iid)
        assert state is not None and state["note"] == NOTE
    finally:
        _close(fresh, store)
