"""The store-wide change feed: every committed event, in commit order, after a cursor.

``IWorkflowStateStore.events_since`` returns a ``FeedPage``; each store keeps a global
position per committed event (the file store: an append-only ``feed.jsonl``; SQL: an
indexed ``pos`` column, given at commit (SQLite) or by the next read (PostgreSQL, see
``chatflow.storage._sql``); memory: a list). A cursor is opaque text
``"<epoch>.<position>"``: ``epoch`` names the feed (so a cursor of another store, or of
a feed since replaced, is refused instead of silently skipping events) and ``position``
is where the next read goes on, so a read seeks to it and never scans the history
behind it.

What a cursor means across maintenance:

- compaction folds events away: a reader behind it gets the ``checkpoint`` event (its
  ``seq`` is that of the last event it folds) in place of the folded events, once;
- ``delete_instance``: the instance's events are no longer delivered;
- ``migrate``/``import``/``fork`` copy events into the target store, where they enter
  its feed as newly committed events; cursors never carry from one store to another.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from chatflow._validation import validate_id
from chatflow.errors import FeedCursorError, ValidationError

_CURSOR = re.compile(r"([0-9a-f]{0,32})\.([0-9]{1,19})")


class FeedEvent(NamedTuple):
    """One committed event and where it belongs."""

    instance_id: str
    feature_id: str
    seq: int
    event: dict[str, Any]
    cursor: str  # where a reader that stops after this event goes on from


class FeedPage(NamedTuple):
    """What ``events_since`` returns: the events after the cursor, oldest first, and
    the ``cursor`` to pass next time (after the last event read; unchanged if none)."""

    events: list[FeedEvent]
    cursor: str


def make_cursor(epoch: str, position: int) -> str:
    """The opaque cursor text for ``position`` in the feed named ``epoch``."""
    return f"{epoch}.{position}"


def parse_cursor(cursor: object, epoch: str) -> int:
    """The position ``cursor`` stands at in the feed named ``epoch`` (``None``: 0, the
    start). ``FeedCursorError`` for garbled text or a cursor of another feed; a cursor
    made before the feed had an epoch (``".<n>"`` with ``n`` 0) is the start."""
    if cursor is None:
        return 0
    if not isinstance(cursor, str):
        raise FeedCursorError(
            f"cursor must be a str or None, not {type(cursor).__name__}", field="cursor"
        )
    found = _CURSOR.fullmatch(cursor)
    if found is None:
        raise FeedCursorError(
            f"cursor {cursor[:80]!r} is not a feed cursor",
            field="cursor",
            hint=" ({feed_start}, or give the cursor of {feed_cursor})",
        )
    position = int(found[2])
    if found[1] != epoch and not (found[1] == "" and position == 0):
        raise FeedCursorError(
            f"cursor {cursor!r} belongs to another store's feed (or to this store's before "
            "it was replaced)",
            field="cursor",
            hint="; start again: {feed_start}",
        )
    return position


def check_filters(feature: object, instance: object, limit: object) -> int | None:
    """Validate ``events_since``'s filters; return ``limit``."""
    if feature is not None:
        validate_id(feature, "feature_id")
    if instance is not None:
        validate_id(instance, "instance_id")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be a positive int or None, not {limit!r}", field="limit")
    return limit


def past_end(cursor: str, end: int) -> FeedCursorError:
    """The error for a cursor beyond the feed's end (a feed shortened or replaced)."""
    return FeedCursorError(
        f"cursor {cursor!r} points past the end of this store's feed (position {end}): "
        "it belongs to another store or to a feed since replaced",
        field="cursor",
        hint="; start again: {feed_start}",
    )


def stands_for(event: Any, link: str) -> bool:
    """Whether a stored ``event`` is the one a feed entry names by the start of its hash
    (``link``), or the checkpoint that folded it: so an entry of a deleted instance never
    resolves to an event of a new instance given the same id."""
    if not isinstance(event, dict):
        return False
    if str(event.get("hash", "")).startswith(link):
        return True
    return event.get("kind") == "checkpoint" and str(event.get("replaced", "")).startswith(link)


LINK = 16  # hex digits of an event's hash a feed entry keeps
