"""The one place that turns domain states into a store's head and events, and back.

Every store keeps an instance as an event log plus a small *head* (``_log`` builds and
checks both). A step needs the state its head describes, and hands back the ``update``
event that turns that head's state into the new one; both directions of that wire
format live here, so the domain (``chatflow.domain``) knows nothing of heads or events
and the engine (``chatflow.core``) reaches them only through these public names.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
from typing import Any

from chatflow._validation import copy_json, same_json
from chatflow.domain.models import HistoryEntry, WorkflowEvent, WorkflowInstanceState
from chatflow.errors import CorruptStateError, ValidationError
from chatflow.storage._lazy import LazyList
from chatflow.storage._log import Head, list_change, sha256_hex

__all__ = [
    "Head",
    "head_seq",
    "head_version",
    "list_change",
    "sha256_hex",
    "state_from_head",
    "update_event",
]

Load = Callable[[], dict[str, Any]]


def state_from_head(head: Head, load: Load) -> WorkflowInstanceState:
    """The state an instance's head describes, its lists loading from ``load()`` (the
    whole state) only when an item older than the head's tail is read.

    A malformed head raises ``ValidationError`` (or the ``KeyError``/``TypeError`` of a
    missing part); the caller names the instance in the ``CorruptStateError`` it reports.
    """
    lists = head["lists"]
    instance_id = head["state"].get("instance_id")

    def lazy(key: str, parse: Callable[[Any], Any], dump: Callable[[Any], Any]) -> Any:
        stored = lists.get(key) or {"len": 0, "tail": []}
        if not isinstance(stored.get("len"), int) or not isinstance(stored.get("tail"), list):
            raise ValidationError(f"instance head has a malformed {key!r} list")

        def checked(item: Any) -> Any:
            try:
                return parse(item)
            except ValidationError as error:  # stored data, read later: not user input
                raise CorruptStateError(
                    f"stored {key} of instance {instance_id!r} is invalid: {error}",
                    instance_id=instance_id,
                ) from None

        return LazyList(stored["len"], stored["tail"], checked, dump, lambda: _list(load(), key))

    history = lazy("history", HistoryEntry.from_dict, HistoryEntry.to_dict)
    events = lazy("events", WorkflowEvent.from_dict, WorkflowEvent.to_dict)
    # ``head`` is the step's own (a store hands each step a private copy), so the state
    # may keep its values, but not the objects a step changes in place, which
    # ``update_event`` compares with the head's: those are copied. That is every dict but
    # the schema, which is only ever replaced (an upgrade) and is the largest value of all.
    stored = head["state"]
    changing = {k: v for k, v in stored.items() if type(v) is dict and k != "workflow_schema"}
    return WorkflowInstanceState.from_dict(
        {**stored, **copy_json(changing)}, lists=(history, events)
    )


def update_event(state: WorkflowInstanceState, head: Head, load: Load) -> dict[str, Any]:
    """The ``update`` event that turns the state ``head`` describes into ``state``."""
    small, stored = state.small_dict(), head["state"]
    body: dict[str, Any] = {
        "kind": "update",
        "set": {k: v for k, v in small.items() if k not in stored or not same_json(stored[k], v)},
        "unset": [k for k in stored if k not in small],
        "lists": {},
    }
    lists: tuple[tuple[str, MutableSequence[Any]], ...] = (
        ("history", state.history),
        ("events", state.events),
    )
    for key, items in lists:
        if isinstance(items, LazyList):
            change = items.change()
        else:  # replaced by a plain list: compare with the stored one
            change = list_change(_list(load(), key), [item.to_dict() for item in items])
        if change:
            body["lists"][key] = change
    return body


def head_version(head: Head) -> int:
    """The state version a committed head records."""
    version: int = head["state"]["version"]
    return version


def head_seq(head: Head) -> int:
    """The sequence number of the last event a committed head was written after."""
    seq: int = head["seq"]
    return seq


def _list(state: dict[str, Any], key: str) -> list[Any]:
    value = state.get(key, [])
    if not isinstance(value, list):
        raise ValidationError(f"instance state field {key!r} must be a list")
    return value
