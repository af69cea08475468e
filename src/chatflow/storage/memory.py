"""``MemoryStore``: the reference store, kept in this process's memory.

It fulfils the contract in the simplest way possible (one lock; events, heads and texts
kept as encoded JSON so nothing a caller holds can reach them), so the conformance
suite is validated against it before any real store. Useful for tests and for tools
that need no persistence.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any

from chatflow._validation import validate_id
from chatflow.storage import _log
from chatflow.storage._log import Event, Head
from chatflow.storage._raw import RawAccess
from chatflow.storage.base import (
    FeatureCounts,
    IWorkflowStateStore,
    LogTransaction,
    SchemaRow,
    StatusCount,
    TaskTexts,
    not_found,
    rebuilt_head,
)
from chatflow.storage.feed import (
    LINK,
    FeedEvent,
    FeedPage,
    check_filters,
    make_cursor,
    parse_cursor,
    past_end,
    stands_for,
)


class _Instance:
    def __init__(self, feature_id: str) -> None:
        self.feature_id = feature_id
        self.head = ""
        self.events: list[str] = []
        self.texts: dict[tuple[str, int], str] = {}
        self.first = 1  # seq of events[0] (a checkpoint's after compaction)


class MemoryStore(IWorkflowStateStore):
    """Thread-safe in-memory store; everything is lost when the process exits."""

    where = "the memory store"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._instances: dict[str, _Instance] = {}
        self._features: dict[str, list[str]] = {}
        self._counts: dict[str, dict[str, set[str]]] = {}  # feature -> status -> instances
        self._created: dict[str, int] = {}  # creation order, to find each status's newest
        self._updated: dict[str, float] = {}  # each instance's updated_at, for overviews
        self._rollups: dict[str, list[StatusCount]] = {}  # until a status changes
        self._deletions: list[dict[str, Any]] = []  # who deleted what, when (appended)
        self._schemas: dict[tuple[str, str], str] = {}
        # (instance, feature, seq, start of the event's hash), in commit order
        self._feed: list[tuple[str, str, int, str]] = []
        self._epoch = secrets.token_hex(8)

    @contextlib.contextmanager
    def _transaction(
        self, instance_id: str, feature_id: str | None = None
    ) -> Iterator[LogTransaction]:
        with self._lock:
            yield _MemoryTransaction(self, instance_id, feature_id)

    def _read(self, instance_id: str) -> tuple[Head, list[Event]] | None:
        with self._lock:
            found = self._instances.get(instance_id)
            if found is None or not self._has_head(instance_id, found):
                return None
            head, texts = found.head, list(found.events)
        return self._head(instance_id, head), self._checked(instance_id, texts)

    def _checked(self, instance_id: str, texts: list[str]) -> list[Event]:
        """The stored events, refused if one was edited or moved: never read as data."""
        events = [self._decode(instance_id, text) for text in texts]
        broken = _log.link_problem(events, texts)
        if broken is not None:
            seq, problem = broken
            where = self.where
            raise _log.corrupt(
                instance_id, where, f"event {seq}: {problem}", seq=seq, reason=problem
            )
        return events

    def _read_head(self, instance_id: str) -> Head | None:
        with self._lock:
            found = self._instances.get(instance_id)
            if found is None or not self._has_head(instance_id, found):
                return None
            head = found.head
        return self._head(instance_id, head)

    def _has_head(self, instance_id: str, found: _Instance) -> bool:
        """Whether the instance has a head; ``CorruptStateError`` if its head is gone
        but its events are kept (lost: damage, never absence)."""
        if found.head:
            return True
        if found.events:  # the log's own damage first, if any
            rebuilt_head(instance_id, self.where, self._checked(instance_id, found.events))
            raise _log.lost_head(instance_id, self.where)
        return False

    def lost_heads(self, *, thorough: bool = False) -> list[str]:
        with self._lock:
            kept = self._instances.items()
            return sorted(iid for iid, found in kept if found.events and not found.head)

    def rebuild_head(self, instance_id: str) -> bool:
        validate_id(instance_id, "instance_id")
        with self._lock:
            found = self._instances.get(instance_id)
            if found is None or not (found.head or found.events):
                raise not_found(instance_id)
            if found.head:
                return False
            events = self._checked(instance_id, list(found.events))
            head = rebuilt_head(instance_id, self.where, events)
            found.head = _log.canonical(head).decode("utf-8")
        self.note_repair(instance_id, "its lost head was rebuilt from its verified log")
        return True

    def _head(self, instance_id: str, text: str) -> Head:
        return _log.check_head(
            _log.decode_json(text, instance_id, self.where), instance_id, self.where
        )

    def _decode(self, instance_id: str, text: str) -> Event:
        event = _log.decode_json(text, instance_id, self.where)
        if not isinstance(event, dict):
            raise _log.corrupt(instance_id, self.where, "an event is not an object")
        return event

    def _read_texts(self, instance_id: str, task: str, version: int) -> TaskTexts | None:
        with self._lock:
            found = self._instances.get(instance_id)
            text = None if found is None else found.texts.get((task, version))
        if text is None:
            return None
        data = _log.decode_json(text, instance_id, self.where)
        if not isinstance(data, list) or len(data) != 3 or not isinstance(data[0], dict):
            raise _log.corrupt(
                instance_id, self.where, f"texts of task {task!r} are damaged", phase=task
            )
        return TaskTexts(*data)

    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        validate_id(feature_id, "feature_id")
        with self._lock:
            return list(self._features.get(feature_id, ()))

    def list_features(self) -> list[str]:
        with self._lock:
            return sorted(self._features)

    def feature_status_counts(self, feature_id: str) -> list[StatusCount]:
        validate_id(feature_id, "feature_id")
        with self._lock:
            cached = self._rollups.get(feature_id)
            if cached is None:
                counts = self._counts.get(feature_id, {})
                created = self._created.__getitem__
                rows = [(s, len(ids), max(ids, key=created)) for s, ids in counts.items() if ids]
                cached = self._rollups[feature_id] = _by_newest(rows, self._created)
            return list(cached)

    def list_feature_counts(self) -> list[FeatureCounts]:
        with self._lock:
            return [
                FeatureCounts(
                    feature,
                    self.feature_status_counts(feature),
                    max(self._updated[instance_id] for instance_id in ids),
                )
                for feature, ids in sorted(self._features.items())
            ]

    def _count(self, feature_id: str, instance_id: str, old: str | None, new: str) -> None:
        self._rollups.pop(feature_id, None)
        counts = self._counts.setdefault(feature_id, {})
        if old is not None:
            counts[old].discard(instance_id)
        counts.setdefault(new, set()).add(instance_id)

    def _delete_recorded(self, instance_id: str, record: dict[str, Any]) -> bool:
        with self._lock:  # (re-entrant: deleted and recorded as one)
            deleted = self.delete_instance(instance_id)
            if deleted:
                self._deletions.append(copy.deepcopy(record))
            return deleted

    def deletions(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._deletions)

    def delete_instance(self, instance_id: str) -> bool:
        validate_id(instance_id, "instance_id")
        with self._lock:
            found = self._instances.pop(instance_id, None)
            if found is None:
                return False
            ids = self._features.get(found.feature_id, [])
            if instance_id in ids:
                ids.remove(instance_id)
            if not ids:
                self._features.pop(found.feature_id, None)
            for members in self._counts.get(found.feature_id, {}).values():
                members.discard(instance_id)
            self._rollups.pop(found.feature_id, None)
            self._created.pop(instance_id, None)
            self._updated.pop(instance_id, None)
            return True

    def events_since(
        self,
        cursor: str | None = None,
        *,
        feature: str | None = None,
        instance: str | None = None,
        limit: int | None = None,
    ) -> FeedPage:
        limit = check_filters(feature, instance, limit)
        position = parse_cursor(cursor, self._epoch)
        events: list[FeedEvent] = []
        with self._lock:
            if position > len(self._feed):
                raise past_end(str(cursor), len(self._feed))
            for iid, fid, seq, link in self._feed[position:]:
                position += 1
                if (feature is not None and fid != feature) or (
                    instance is not None and iid != instance
                ):
                    continue
                found = self._instances.get(iid)
                index = -1 if found is None else seq - found.first
                if found is None or not 0 <= index < len(found.events):
                    continue  # deleted, or folded into a checkpoint
                event = self._decode(iid, found.events[index])
                if not stands_for(event, link):
                    continue  # an earlier instance of that id, deleted
                events.append(FeedEvent(iid, fid, seq, event, make_cursor(self._epoch, position)))
                if limit is not None and len(events) >= limit:
                    break
        return FeedPage(events, make_cursor(self._epoch, position))

    def feed_end(self) -> str:
        with self._lock:
            return make_cursor(self._epoch, len(self._feed))

    def raw_access(self) -> RawAccess:
        """The encoded head and events it keeps (capability ``damage``)."""
        from chatflow.storage._raw_memory import MemoryRawAccess  # noqa: PLC0415 - tests only

        return MemoryRawAccess(self)

    def put_schema(
        self, name: str, version: int | str, content_hash: str, schema: dict[str, Any]
    ) -> None:
        with self._lock:
            self._schemas[(name, str(version))] = json.dumps([version, content_hash, schema])

    def add_schema(
        self,
        name: str,
        version: int | str,
        content_hash: str,
        schema: dict[str, Any],
        *,
        replace: bool = True,
    ) -> SchemaRow | None:
        with self._lock:  # (re-entrant) the check and the write together
            return super().add_schema(name, version, content_hash, schema, replace=replace)

    def list_schemas(self) -> list[SchemaRow]:
        with self._lock:
            rows = sorted(self._schemas.items())
        return [SchemaRow(name, *json.loads(text)) for (name, _), text in rows]


def _by_newest(rows: list[tuple[str, int, str]], created: dict[str, int]) -> list[StatusCount]:
    """Status counts ordered by their newest instance's creation, oldest first."""
    return [StatusCount(*row) for row in sorted(rows, key=lambda row: created[row[2]])]


class _MemoryTransaction(LogTransaction):
    def __init__(self, store: MemoryStore, instance_id: str, feature_id: str | None) -> None:
        self.store, self.instance_id, self.feature_id = store, instance_id, feature_id
        self._texts: dict[tuple[str, int], str] = {}  # stored by the next append

    def head(self) -> Head | None:
        head = self.store._read_head(self.instance_id)
        if head is not None:
            last = self.store._instances[self.instance_id].events[-1]
            if not _log.is_tail_of(self.store._decode(self.instance_id, last), head):
                raise _log.corrupt(
                    self.instance_id, self.store.where, "its head does not match its log"
                )
        return head

    def events(self) -> list[Event]:
        found = self.store._read(self.instance_id)
        return [] if found is None else found[1]

    def append(self, commit: _log.Commit, texts: tuple[str, int, TaskTexts] | None) -> None:
        store, head = self.store, commit.head
        encoded = [line.decode("utf-8") for line in commit.lines]
        head_text = commit.head_json().decode("utf-8")
        found = store._instances.get(self.instance_id)
        old_status = None
        if found is None or not found.head:
            assert self.feature_id is not None
            found = store._instances[self.instance_id] = _Instance(self.feature_id)
            store._features.setdefault(self.feature_id, []).append(self.instance_id)
            store._created[self.instance_id] = len(store._created)
        else:
            old_status = _log.head_status(store._head(self.instance_id, found.head))
        if texts is not None:
            self.put_texts(*texts)
        found.texts.update(self._texts)
        self._texts.clear()
        if not found.events:
            found.first = commit.events[0]["seq"]
        found.events.extend(encoded)
        feature = head["state"]["feature_id"]
        store._feed.extend(
            (self.instance_id, feature, event["seq"], event["hash"][:LINK])
            for event in commit.events
        )
        found.head = head_text
        store._updated[self.instance_id] = head["state"].get("updated_at", 0.0)
        new_status = _log.head_status(head)
        if new_status != old_status:
            store._count(found.feature_id, self.instance_id, old_status, new_status)

    def put_texts(self, task: str, version: int, texts: TaskTexts) -> None:
        self._texts[(task, version)] = json.dumps(list(texts))

    def replace_prefix(self, checkpoint: Event, upto: int) -> None:
        found = self.store._instances[self.instance_id]
        kept = [
            text
            for text in found.events
            if self.store._decode(self.instance_id, text)["seq"] > upto
        ]
        found.events = [_log.canonical(checkpoint).decode("utf-8"), *kept]
        found.first = upto
