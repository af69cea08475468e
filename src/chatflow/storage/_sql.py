"""What SQLite and PostgreSQL stores share: the tables, every query, and the log
transaction. The two stores differ only in dialect (placeholders, types, row locks,
schema prefix) and connection handling, which they supply.

Tables::

    heads           one row per instance: indexed fields (feature, status, ...) + head JSON
    events          (instance_id, seq) -> event JSON: the log
    task_texts      (instance_id, task, version) -> record, prompt, response
    feature_counts  (feature_id, status) -> number of instances, kept by every step
    schemas         (name, version) -> content hash, schema JSON
    feed            one row: the feed's epoch and the last position given to an event

Each event row also holds ``pos``, its place in the store-wide feed (``events_since``,
indexed), so a reader never finds a smaller position committed after a larger one it
has read. SQLite (one writer at a time) numbers an event as it commits, bumping the
``feed`` row. PostgreSQL would make every writer queue on that row until its commit is
flushed, so its events are committed unnumbered and each feed read first numbers, under
an advisory lock, every event committed since (``SQLStore.number_at_read``; PostgreSQL
calls ``chatflow_number_feed()``, its owner's function, so a SELECT-only role can read):
an event is numbered only once committed, and always after every event numbered before it.

A step is one transaction: read the head (locked), append its event row, update the
head row and, if the status changed, two ``feature_counts`` rows (in status order, so
concurrent steps never deadlock). The commit is the commit point.
"""

from __future__ import annotations

import contextlib
import json
import operator
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, Protocol

from chatflow._validation import validate_id
from chatflow.errors import ChatFlowError, CorruptStateError
from chatflow.storage import _log
from chatflow.storage._log import Event, Head
from chatflow.storage._raw import RawAccess
from chatflow.storage.base import (
    UNREADABLE,
    FeatureCounts,
    InstanceSummary,
    IWorkflowStateStore,
    LogTransaction,
    SchemaRow,
    StatusCount,
    TaskTexts,
    check_status_filter,
    not_found,
    parse_task_texts,
    rebuilt_head,
    same_version,
    unreadable_summary,
)
from chatflow.storage.feed import (
    FeedEvent,
    FeedPage,
    check_filters,
    make_cursor,
    parse_cursor,
    past_end,
)


class Cursor(Protocol):
    """What a store's transaction hands out: ``execute`` returning rows."""

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...


def feed_tables(p: str, *, epoch: str, backfill: str) -> tuple[str, ...]:
    """The feed's column, table and index for prefix ``p``: ``epoch`` is the dialect's
    random text, ``backfill`` numbers the events already stored."""
    return (
        f"ALTER TABLE {p}events ADD COLUMN pos BIGINT",
        f"""CREATE TABLE {p}feed (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            epoch TEXT NOT NULL,
            pos BIGINT NOT NULL
        )""",
        backfill,
        f"CREATE INDEX events_by_pos ON {p}events (pos)",
        f"""INSERT INTO {p}feed (id, epoch, pos)
            SELECT 1, {epoch}, coalesce(max(pos), 0) FROM {p}events""",
    )


def tables(p: str, *, blob: str, real: str, seq: str, json_type: str) -> tuple[str, ...]:
    """The log model's tables for prefix ``p``, in one dialect."""
    return (
        f"""CREATE TABLE {p}heads (
            seq {seq},
            instance_id TEXT NOT NULL UNIQUE,
            feature_id TEXT NOT NULL,
            status TEXT NOT NULL,
            current_phase TEXT NOT NULL,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL,
            version BIGINT NOT NULL,
            last_seq BIGINT NOT NULL,
            head {json_type} NOT NULL
        )""",
        # Narrow on purpose: an index holding updated_at would be rewritten by every step.
        f"CREATE INDEX heads_by_feature ON {p}heads (feature_id, seq)",
        f"CREATE INDEX heads_by_status ON {p}heads (feature_id, status, seq)",
        f"""CREATE TABLE {p}events (
            instance_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            event TEXT NOT NULL,
            PRIMARY KEY (instance_id, seq)
        )""",
        f"""CREATE TABLE {p}task_texts (
            instance_id TEXT NOT NULL,
            task TEXT NOT NULL,
            version BIGINT NOT NULL,
            record TEXT NOT NULL,
            prompt {blob} NOT NULL,
            response {blob} NOT NULL,
            PRIMARY KEY (instance_id, task, version)
        )""",
        f"""CREATE TABLE {p}feature_counts (
            feature_id TEXT NOT NULL,
            status TEXT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (feature_id, status)
        )""",
        f"""CREATE TABLE {p}schemas (
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            schema TEXT NOT NULL,
            PRIMARY KEY (name, version)
        )""",
    )


_SUMMARY = "instance_id, feature_id, status, current_phase, created_at, updated_at"
# What every step keeps counted, summed: a listing compares it with the heads it found,
# so a head lost behind the store's back (its log still there) is noticed for the cost
# of a few index rows. Read in the listing's snapshot: as a column of its rows
# ({counted}, evaluated once; a dialect whose round trips cost more than a column) or
# by a second query in its read transaction (SQLite: no column on every row).
_COUNTED = """(SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM {p}feature_counts
    WHERE (CAST(? AS TEXT) IS NULL OR feature_id = ?)
    AND (CAST(? AS TEXT) IS NULL OR status = ?))"""
_COUNTED_IN = """(SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM {p}feature_counts
    WHERE feature_id = ?)"""

_QUERIES = {
    "head": "SELECT head FROM {p}heads WHERE instance_id = ?",
    # A step's one read: the head and the event it claims to follow, row-locked in PG;
    # both NULL if the head is still the one this process wrote (given as text, and the
    # start of its last event: see chatflow.storage._heads).
    "head_and_tail": """SELECT CASE WHEN h.head = ? AND substr(e.event, 1, 74) = ? THEN NULL
        ELSE h.head END, CASE WHEN h.head = ? AND substr(e.event, 1, 74) = ? THEN NULL
        ELSE e.event END FROM {p}heads AS h LEFT JOIN {p}events AS e
        ON e.instance_id = h.instance_id AND e.seq = h.last_seq WHERE h.instance_id = ?""",
    "event": "SELECT event FROM {p}events WHERE instance_id = ? AND seq = ?",
    "first_event": "SELECT event FROM {p}events WHERE instance_id = ? ORDER BY seq LIMIT 1",
    # Each instance id of the log once (one index seek per instance, not a row per
    # event), and those without a head: what a lost head leaves.
    "lost_heads": """WITH RECURSIVE ids(id) AS (SELECT min(instance_id) FROM {p}events
        UNION ALL SELECT (SELECT min(instance_id) FROM {p}events WHERE instance_id > ids.id)
        FROM ids WHERE ids.id IS NOT NULL)
        SELECT id FROM ids WHERE id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {p}heads WHERE instance_id = ids.id) ORDER BY id""",
    "counted": f"SELECT {_COUNTED}",
    "counted_in": f"SELECT {_COUNTED_IN}",
    "tripwire": f"SELECT (SELECT count(*) FROM {{p}}heads), {_COUNTED}",
    "events": "SELECT event FROM {p}events WHERE instance_id = ? ORDER BY seq",
    "insert_event": "INSERT INTO {p}events (instance_id, seq, event, pos) VALUES (?, ?, ?, ?)",
    "insert_unnumbered": "INSERT INTO {p}events (instance_id, seq, event) VALUES (?, ?, ?)",
    "take_positions": "UPDATE {p}feed SET pos = pos + ? WHERE id = 1 RETURNING pos",
    "event_pos": "SELECT pos FROM {p}events WHERE instance_id = ? AND seq = ?",
    "feed_end": "SELECT epoch, pos FROM {p}feed WHERE id = 1",
    "feed": """SELECT e.pos, e.instance_id, h.feature_id, e.seq, e.event FROM {p}events AS e
        JOIN {p}heads AS h ON h.instance_id = e.instance_id WHERE e.pos > ?
        AND (CAST(? AS TEXT) IS NULL OR h.feature_id = ?)
        AND (CAST(? AS TEXT) IS NULL OR e.instance_id = ?) ORDER BY e.pos LIMIT ?""",
    "delete_events": "DELETE FROM {p}events WHERE instance_id = ? AND seq <= ?",
    "insert_head": """INSERT INTO {p}heads (instance_id, feature_id, status, created_at,
        current_phase, updated_at, version, last_seq, head) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
    # A step changes only these; the indexed keys below rarely (SQLite rewrites an index
    # entry whenever its column is SET, even to the same value).
    "update_head": """UPDATE {p}heads SET current_phase = ?, updated_at = ?, version = ?,
        last_seq = ?, head = ? WHERE instance_id = ?""",
    "update_keys": """UPDATE {p}heads SET feature_id = ?, status = ?, created_at = ?
        WHERE instance_id = ?""",
    "count": """INSERT INTO {p}feature_counts (feature_id, status, n) VALUES (?, ?, ?)
        ON CONFLICT (feature_id, status) DO UPDATE SET n = {p}feature_counts.n + excluded.n""",
    "texts": """SELECT record, prompt, response FROM {p}task_texts
        WHERE instance_id = ? AND task = ? AND version = ?""",
    "insert_texts": """INSERT INTO {p}task_texts (instance_id, task, version, record, prompt,
        response) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id, task, version)
        DO UPDATE SET record = excluded.record, prompt = excluded.prompt,
        response = excluded.response""",
    "feature_ids": """SELECT instance_id{counted_in} FROM {p}heads WHERE feature_id = ?
        ORDER BY seq""",
    "feature_summaries": f"""SELECT {_SUMMARY}{{counted_in}} FROM {{p}}heads
        WHERE feature_id = ? ORDER BY seq""",
    # Counts kept by every step; one index probe per status names its newest instance.
    # (LEFT joins: a status whose every instance lost its head is still counted.)
    "status_counts": """SELECT c.status, c.n, h.instance_id FROM {p}feature_counts AS c
        LEFT JOIN {p}heads AS h ON h.seq = (SELECT max(seq) FROM {p}heads
            WHERE feature_id = c.feature_id AND status = c.status)
        WHERE c.feature_id = ? AND c.n > 0 ORDER BY coalesce(h.seq, 0)""",
    # Every feature's counts, each status's newest instance and the feature's last step.
    "all_counts": """SELECT c.feature_id, c.status, c.n, h.instance_id, coalesce(u.updated_at, 0)
        FROM {p}feature_counts AS c
        LEFT JOIN {p}heads AS h ON h.seq = (SELECT max(seq) FROM {p}heads
            WHERE feature_id = c.feature_id AND status = c.status)
        LEFT JOIN (SELECT feature_id, max(updated_at) AS updated_at FROM {p}heads
            GROUP BY feature_id) AS u ON u.feature_id = c.feature_id
        WHERE c.n > 0 ORDER BY c.feature_id, coalesce(h.seq, 0)""",
    "filtered": f"""SELECT {_SUMMARY}{{counted}} FROM {{p}}heads
        WHERE (CAST(? AS TEXT) IS NULL OR feature_id = ?)
        AND (CAST(? AS TEXT) IS NULL OR status = ?) ORDER BY feature_id, seq""",
    "features": """SELECT feature_id, count(*){counted} FROM {p}heads
        GROUP BY feature_id ORDER BY feature_id""",
    "all_ids": "SELECT instance_id{counted} FROM {p}heads ORDER BY feature_id, seq",
    "all_ids_by_feature": "SELECT feature_id, instance_id FROM {p}heads ORDER BY feature_id, seq",
    "delete_head": "DELETE FROM {p}heads WHERE instance_id = ? RETURNING feature_id, status",
    "delete_all_events": "DELETE FROM {p}events WHERE instance_id = ?",
    "delete_texts": "DELETE FROM {p}task_texts WHERE instance_id = ?",
    "put_schema": """INSERT INTO {p}schemas (name, version, content_hash, schema)
        VALUES (?, ?, ?, ?) ON CONFLICT (name, version) DO UPDATE SET
        content_hash = excluded.content_hash, schema = excluded.schema""",
    "deletions_table": "CREATE TABLE IF NOT EXISTS {p}deletions "
    "(at DOUBLE PRECISION NOT NULL, instance_id TEXT NOT NULL, record TEXT NOT NULL)",
    "insert_deletion": "INSERT INTO {p}deletions (at, instance_id, record) VALUES (?, ?, ?)",
    "deletions": "SELECT record FROM {p}deletions ORDER BY at",
    "schemas_named": "SELECT name, version, content_hash FROM {p}schemas WHERE name = ?",
    "lock_schemas": "LOCK TABLE {p}schemas IN SHARE ROW EXCLUSIVE MODE",
    "schemas": "SELECT name, version, content_hash, schema FROM {p}schemas ORDER BY name, version",
}


_SUMMARY_OF = operator.itemgetter(slice(0, len(InstanceSummary._fields)))
"""A listing row's summary columns (the kept counts' sum follows them)."""


class SQLStore(IWorkflowStateStore):
    """The log model over SQL; subclasses give a dialect and connections."""

    prefix = ""
    placeholder = "?"
    dialect = "sqlite"
    """Which statements of ``chatflow.storage._migrations`` build its tables."""
    lock_clause = ""
    # Dialects that can append the event and update the head in one statement (one
    # round trip to a server) give it here, parameters: event's, then head's.
    append_query: str | None = None
    # A statement serialising registrations (``add_schema``), if the write lock does not.
    schema_lock: str | None = None
    # Stores whose writers must not queue on one feed row (PostgreSQL) leave new events
    # unnumbered and give these statements, run by each feed read (in a write
    # transaction) to number what has been committed since, in commit order per instance.
    number_at_read: tuple[str, ...] = ()
    # Whether a listing reads the kept counts as a column of its rows (one round trip),
    # else by a second query in the same read transaction (no column on every row).
    counts_in_rows = False

    def __init__(self) -> None:
        self._sql_cache: dict[str, str] = {}

    def _record_schema_version(self, cursor: Cursor, version: int) -> None:
        """Record that the database is at schema ``version`` (``_migrations.upgrade``)."""
        raise NotImplementedError

    def sql(self, name: str) -> str:
        """Query ``name`` in this store's dialect."""
        text = self._sql_cache.get(name)
        if text is None:
            template = _QUERIES.get(name, name)
            for column, counted in (("{counted}", _COUNTED), ("{counted_in}", _COUNTED_IN)):
                template = template.replace(column, f", {counted}" if self.counts_in_rows else "")
            text = template.replace("{p}", self.prefix).replace("?", self.placeholder)
            self._sql_cache[name] = text
        return text

    @abstractmethod
    def is_duplicate(self, error: Exception) -> bool:
        """Whether ``error`` is the driver's unique-key violation."""

    @abstractmethod
    def _write_cursor(self, action: str) -> contextlib.AbstractContextManager[Cursor]:
        """A write transaction; committed if the block completes, else rolled back."""

    @abstractmethod
    def _read_cursor(self, action: str) -> contextlib.AbstractContextManager[Cursor]:
        """A read-only snapshot for several queries."""

    @abstractmethod
    def _query(self, action: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """One query outside any transaction."""

    # -- primitives ------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(
        self, instance_id: str, feature_id: str | None = None
    ) -> Iterator[LogTransaction]:
        validate_id(instance_id, "instance_id")
        with self._write_cursor("write") as cursor:
            txn = _SQLTransaction(self, cursor, instance_id, feature_id)
            yield txn
        if txn.written is not None:  # committed: the next step may trust this head
            self._heads.put(instance_id, *txn.written)

    def _decode_head(self, instance_id: str, text: Any) -> Head:
        head = _log.decode_json(text, instance_id, self.where)
        return _log.check_head(head, instance_id, self.where)

    def _decode_events(self, instance_id: str, rows: list[Any]) -> list[Event]:
        """The stored log, checked link by link: an edited, deleted, duplicated or
        reordered row is a ``CorruptStateError`` (with its ``seq``), never read as data."""
        where = self._log_where(instance_id)
        events = []
        for (text,) in rows:
            event = _log.decode_json(text, instance_id, where)
            if not isinstance(event, dict):
                raise _log.corrupt(instance_id, where, "an event is not an object")
            events.append(event)
        broken = _log.link_problem(events, [text for (text,) in rows])
        if broken is not None:
            seq, problem = broken
            raise _log.corrupt(
                instance_id, where, f"event {seq}: {problem}", seq=seq, reason=problem
            )
        return events

    def _read(self, instance_id: str) -> tuple[Head, list[Event]] | None:
        validate_id(instance_id, "instance_id")
        with self._read_cursor("read") as cursor:
            row = cursor.execute(self.sql("head"), (instance_id,)).fetchone()
            if row is None:
                self._absent(instance_id, cursor)
                return None
            rows = cursor.execute(self.sql("events"), (instance_id,)).fetchall()
        return self._decode_head(instance_id, row[0]), self._decode_events(instance_id, rows)

    def _read_head(self, instance_id: str) -> Head | None:
        validate_id(instance_id, "instance_id")
        rows = self._query("read", self.sql("head"), (instance_id,))
        if not rows:
            return self._absent(instance_id, None)
        return self._decode_head(instance_id, rows[0][0])

    def _absent(self, instance_id: str, cursor: Cursor | None) -> Head | None:
        """``None`` for an instance with no head row, unless its log is stored: then its
        head was lost (every commit writes both), which is damage, never absence: the
        log's own damage if it has any, else ``lost_head`` (a head it can rebuild)."""
        query, params = self.sql("events"), (instance_id,)
        rows = (
            cursor.execute(query, params).fetchall()
            if cursor is not None
            else self._query("read", query, params)
        )
        if rows:
            events = self._decode_events(instance_id, rows)
            rebuilt_head(instance_id, self._log_where(instance_id), events)
            raise _log.lost_head(instance_id, self.where)
        return None

    def _read_texts(self, instance_id: str, task: str, version: int) -> TaskTexts | None:
        rows = self._query("read", self.sql("texts"), (instance_id, task, version))
        if not rows:
            return None
        return parse_task_texts(instance_id, self.where, task, version, rows[0])

    def _log_where(self, instance_id: str) -> str:
        return f"table {self.prefix}events of {self.where}"

    def raw_access(self) -> RawAccess:
        """The head column's and each event row's text (capability ``damage``)."""
        from chatflow.storage._raw_sql import SQLRawAccess  # noqa: PLC0415 - tests only

        return SQLRawAccess(self)

    def events_since(
        self,
        cursor: str | None = None,
        *,
        feature: str | None = None,
        instance: str | None = None,
        limit: int | None = None,
    ) -> FeedPage:
        limit = check_filters(feature, instance, limit)
        opened = self._write_cursor if self.number_at_read else self._read_cursor
        with opened("read the feed of") as sql:
            for statement in self.number_at_read:
                sql.execute(statement)
            epoch, end = sql.execute(self.sql("feed_end")).fetchone()
            position = parse_cursor(cursor, epoch)
            if position > end:
                raise past_end(str(cursor), end)
            params = (position, feature, feature, instance, instance, limit or 1 << 62)
            rows = sql.execute(self.sql("feed"), params).fetchall()
        events = []
        for pos, iid, fid, seq, text in rows:
            event = _log.decode_json(text, iid, self._log_where(iid))
            if not isinstance(event, dict):
                raise _log.corrupt(iid, self._log_where(iid), "an event is not an object")
            events.append(FeedEvent(iid, fid, seq, event, make_cursor(epoch, pos)))
            position = pos
        if limit is None or len(rows) < limit:
            position = end  # nothing more is committed: skip what the filters passed over
        return FeedPage(events, make_cursor(epoch, position))

    # -- listings --------------------------------------------------------------------

    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        """The feature's heads in creation order, then any instance of it whose head is
        lost (its place in that order went with its head)."""
        validate_id(feature_id, "feature_id")
        rows, counted = self._listing("feature_ids", (feature_id,), "counted_in", (feature_id,))
        lost = self._lost(len(rows), counted, feature_id, None)
        return [row[0] for row in rows] + [summary.instance_id for summary in lost]

    def feed_end(self) -> str:
        if not self.number_at_read:
            epoch, end = self._query("read the feed of", self.sql("feed_end"))[0]
            return make_cursor(epoch, end)
        with self._write_cursor("read the feed of") as sql:
            for statement in self.number_at_read:  # so what is committed now is behind it
                sql.execute(statement)
            epoch, end = sql.execute(self.sql("feed_end")).fetchone()
        return make_cursor(epoch, end)

    def list_feature_summaries(self, feature_id: str) -> list[InstanceSummary]:
        validate_id(feature_id, "feature_id")
        rows, counted = self._listing(
            "feature_summaries", (feature_id,), "counted_in", (feature_id,)
        )
        found = list(map(InstanceSummary._make, map(_SUMMARY_OF, rows)))
        return found + self._lost(len(rows), counted, feature_id, None)

    def feature_status_counts(self, feature_id: str) -> list[StatusCount]:
        validate_id(feature_id, "feature_id")
        rows = self._query("count", self.sql("status_counts"), (feature_id,))
        return list(map(StatusCount._make, rows))

    def list_feature_counts(self) -> list[FeatureCounts]:
        features: dict[str, FeatureCounts] = {}
        for feature, status, n, newest, updated_at in self._query("count", self.sql("all_counts")):
            found = features.get(feature) or features.setdefault(
                feature, FeatureCounts(feature, [], updated_at)
            )
            found.counts.append(StatusCount(status, n, newest))
        return list(features.values())

    def list_instances(
        self, feature_id: str | None = None, status: str | None = None
    ) -> list[InstanceSummary]:
        if feature_id is not None:
            validate_id(feature_id, "feature_id")
        check_status_filter(status)
        params = (feature_id, feature_id, status, status)
        rows, counted = self._listing("filtered", params, "counted", params)
        found = list(map(InstanceSummary._make, map(_SUMMARY_OF, rows)))
        lost = self._lost(len(rows), counted, feature_id, status)
        # Each feature's heads, then its lost ones (a stable sort keeps creation order).
        return sorted(found + lost, key=lambda summary: summary.feature_id) if lost else found

    def list_features(self) -> list[str]:
        rows, counted = self._listing("features", (), "counted", (None,) * 4)
        if sum(row[1] for row in rows) == counted:
            return [row[0] for row in rows]
        lost = {summary.feature_id for summary in self._lost_summaries()}
        return sorted({row[0] for row in rows} | (lost - {""}))

    def list_instance_ids(self) -> list[str]:
        rows, counted = self._listing("all_ids", (), "counted", (None,) * 4)
        lost = self._lost(len(rows), counted, None, None)
        if not lost:
            return [row[0] for row in rows]
        found = self._query("list", self.sql("all_ids_by_feature"))  # (damage: read again)
        found += [(summary.feature_id, summary.instance_id) for summary in lost]
        return [iid for _, iid in sorted(found, key=lambda pair: pair[0])]

    # -- lost heads ------------------------------------------------------------------

    def _listing(
        self, name: str, params: tuple[Any, ...], counted: str, counted_params: tuple[Any, ...]
    ) -> tuple[list[Any], int]:
        """The rows of listing ``name`` and, from the same snapshot, what the kept counts
        say it should hold (query ``counted`` with ``counted_params``)."""
        if self.counts_in_rows:
            rows = self._query("list", self.sql(name), counted_params + params)
            if rows:
                return rows, int(rows[0][-1])
            return rows, int(self._query("list", self.sql(counted), counted_params)[0][0])
        with self._read_cursor("list") as cursor:
            rows = cursor.execute(self.sql(name), params).fetchall()
            total = cursor.execute(self.sql(counted), counted_params).fetchone()[0]
        return rows, int(total)

    def _lost(
        self, listed: int, counted: int, feature_id: str | None, status: str | None
    ) -> list[InstanceSummary]:
        """What a listing of ``listed`` heads missed, which the kept counts say should
        hold ``counted``: instances of ``feature_id`` whose head is lost, listed with no
        status filter or the ``UNREADABLE`` one. The log is scanned only when the two
        disagree (or ``UNREADABLE`` is asked for): a lost head leaves its instance
        counted (only a deletion, which removes the log too, uncounts one)."""
        if status is not None and status != UNREADABLE:
            return []
        if status is None and listed == counted:
            return []
        return [s for s in self._lost_summaries() if feature_id in (None, s.feature_id)]

    def _lost_summaries(self) -> list[InstanceSummary]:
        """``unreadable_summary`` of every instance with a log but no head (a scan of
        the log's index: one seek per instance), its feature from its first event."""
        found = []
        for (instance_id,) in self._query("list", self.sql("lost_heads")):
            feature_id, created_at = self._origin(instance_id)
            found.append(unreadable_summary(instance_id, feature_id, created_at))
        return found

    def _origin(self, instance_id: str) -> tuple[str, float]:
        """The feature and creation time the first event (``created``, or a checkpoint)
        of a log gives; ``("", 0.0)`` if it cannot be read."""
        rows = self._query("list", self.sql("first_event"), (instance_id,))
        try:
            state = json.loads(rows[0][0])["state"]
            created = state.get("created_at", 0.0)
            return validate_id(state["feature_id"], "feature_id"), float(created or 0.0)
        except (ChatFlowError, LookupError, TypeError, ValueError, AttributeError):
            return "", 0.0

    def lost_heads(self, *, thorough: bool = False) -> list[str]:
        if not thorough:
            heads, counted = self._query("list", self.sql("tripwire"), (None,) * 4)[0]
            if int(heads) == int(counted):
                return []
        return [row[0] for row in self._query("list", self.sql("lost_heads"))]

    def rebuild_head(self, instance_id: str) -> bool:
        """The head row projected from the log, checked under the write lock; the
        instance is already counted (a lost head leaves its counts), so only the row is
        added, as the feature's newest (its old place in creation order is not kept)."""
        validate_id(instance_id, "instance_id")
        with self._write_cursor("repair") as cursor:
            if cursor.execute(self.sql("head"), (instance_id,)).fetchone() is not None:
                return False
            rows = cursor.execute(self.sql("events"), (instance_id,)).fetchall()
            if not rows:
                raise not_found(instance_id)
            events = self._decode_events(instance_id, rows)
            head = rebuilt_head(instance_id, self._log_where(instance_id), events)
            text = _log.canonical(head).decode("utf-8")
            keys, moving = head_keys(head), head_moving(head, text)
            cursor.execute(self.sql("insert_head"), (instance_id, *keys, *moving))
        self._heads.drop(instance_id)
        self.note_repair(instance_id, "its lost head was rebuilt from its verified log")
        return True

    def delete_instance(self, instance_id: str) -> bool:
        validate_id(instance_id, "instance_id")
        return self._delete(instance_id, None)

    def _delete_recorded(self, instance_id: str, record: dict[str, Any]) -> bool:
        return self._delete(instance_id, record)

    def _delete(self, instance_id: str, record: dict[str, Any] | None) -> bool:
        """Delete the instance, and append ``record`` (if any) to the deletion table in
        the same transaction. The table is made by the first recorded deletion (so
        opening a store never needs it, and reads never create it)."""
        with self._write_cursor("delete") as cursor:
            found = cursor.execute(self.sql("delete_head"), (instance_id,)).fetchone()
            if found is None:  # its head lost? Then it is counted under its log's status.
                rows = cursor.execute(self.sql("events"), (instance_id,)).fetchall()
                if not rows:
                    return False
                found = _counted_as([text for (text,) in rows])
            cursor.execute(self.sql("delete_all_events"), (instance_id,))
            cursor.execute(self.sql("delete_texts"), (instance_id,))
            if found is not None:
                cursor.execute(self.sql("count"), (found[0], found[1], -1))
            if record is not None:
                cursor.execute(self.sql("deletions_table"))
                text = json.dumps(record, ensure_ascii=True, sort_keys=True)
                cursor.execute(self.sql("insert_deletion"), (record["at"], instance_id, text))
        return True

    def deletions(self) -> list[dict[str, Any]]:
        if not self._has_deletions_table():
            return []
        rows = self._query("list", self.sql("deletions"))
        return [json.loads(text) for (text,) in rows]

    def _has_deletions_table(self) -> bool:
        """Whether a deletion was ever recorded here (the table exists; SQLite's
        catalogue, a dialect may ask its own)."""
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'deletions'"
        return bool(self._query("list", query))

    def put_schema(
        self, name: str, version: int | str, content_hash: str, schema: dict[str, Any]
    ) -> None:
        # The version is stored as JSON text, so 2 and "2.1" come back as they went in.
        row = (name, json.dumps(version), content_hash, _log.canonical(schema).decode("utf-8"))
        with self._write_cursor("write") as cursor:
            cursor.execute(self.sql("put_schema"), row)

    def add_schema(
        self,
        name: str,
        version: int | str,
        content_hash: str,
        schema: dict[str, Any],
        *,
        replace: bool = True,
    ) -> SchemaRow | None:
        """The check and the write in one transaction, registrations serialised (SQLite:
        its write lock; PostgreSQL: ``schema_lock``, as the rows may not exist yet)."""
        with self._write_cursor("write") as cursor:
            if self.schema_lock:
                cursor.execute(self.sql(self.schema_lock))
            rows = cursor.execute(self.sql("schemas_named"), (name,)).fetchall()
            kept = [SchemaRow(n, json.loads(v), digest, {}) for n, v, digest in rows]
            old = same_version(kept, name, version)
            if old is None or (replace and old.content_hash != content_hash):
                text = _log.canonical(schema).decode("utf-8")
                row = (name, json.dumps(version), content_hash, text)
                cursor.execute(self.sql("put_schema"), row)
        return old

    def list_schemas(self) -> list[SchemaRow]:
        rows = self._query("list", self.sql("schemas"))
        try:
            return [
                SchemaRow(name, json.loads(v), digest, json.loads(text))
                for name, v, digest, text in rows
            ]
        except ValueError as error:
            message = f"a registered workflow schema in {self.where} is unreadable: {error}"
            raise CorruptStateError(message) from None


def _counted_as(texts: list[str]) -> tuple[str, str] | None:
    """The feature and status a log whose head is lost is counted under: the last ones
    its events set (read leniently, past damage: only to uncount it when it is deleted);
    ``None`` if no event says."""
    feature = status = None
    for text in texts:
        try:
            event = json.loads(text)
            state = event.get("state") or {}
            changed = event.get("set") or {}
        except (ValueError, RecursionError, AttributeError):
            continue
        if isinstance(state, dict) and isinstance(changed, dict):
            feature = state.get("feature_id", changed.get("feature_id", feature))
            status = changed.get("status", state.get("status", status))
    if isinstance(feature, str) and isinstance(status, str):
        return feature, status
    return None


def head_keys(head: Head) -> tuple[str, str, float]:
    """The columns of a head row that listings are indexed by, and rarely change."""
    state = head["state"]
    return state["feature_id"], str(state["status"]), float(state.get("created_at", 0.0))


def head_moving(head: Head, text: str) -> tuple[Any, ...]:
    """The columns of a head row every step changes, ending with the head JSON ``text``."""
    state = head["state"]
    return (
        str(state["current_phase"]),
        float(state.get("updated_at", 0.0)),
        int(state.get("version", 0)),
        head["seq"],
        text,
    )


class _SQLTransaction(LogTransaction):
    def __init__(
        self,
        store: SQLStore,
        cursor: Cursor,
        instance_id: str,
        feature_id: str | None,
        *,
        feed: bool = True,
    ) -> None:
        self.store, self.cursor, self.feed = store, cursor, feed
        self.instance_id, self.feature_id = instance_id, feature_id
        self._head: Head | None = None
        self.written: tuple[str, Head] | None = None  # the head text and head appended

    def head(self) -> Head | None:
        if self._head is not None:
            return self._head
        store, iid = self.store, self.instance_id
        query = store.sql("head_and_tail") + store.lock_clause
        trusted = store._heads.get(iid)
        mine = trusted.head() if trusted is not None else None
        stamp = (trusted.stamp, _log.line_start(mine["hash"])) if trusted and mine else (None, None)
        row = self.cursor.execute(query, (*stamp, *stamp, iid)).fetchone()
        if row is None:
            return store._absent(iid, self.cursor)  # (a lost head: refused, not created)
        if row[0] is None and mine is not None:
            self._head = mine
            return mine
        head = store._decode_head(iid, row[0])
        event = _log.decode_json(row[1], iid, store._log_where(iid)) if row[1] else None
        if not _log.is_tail_of(event, head):
            # PostgreSQL re-reads a row-locked head that a concurrent step changed, but
            # not the joined event: now that the lock is held, read both afresh.
            head = store._decode_head(
                iid, self.cursor.execute(store.sql("head"), (iid,)).fetchone()[0]
            )
            last = self.cursor.execute(store.sql("event"), (iid, head["seq"])).fetchone()
            event = _log.decode_json(last[0], iid, store._log_where(iid)) if last else None
        if not _log.is_tail_of(event, head):
            raise _log.corrupt(
                iid, store.where, "its head does not match the last event of its log"
            )
        self._head = head
        return head

    def events(self) -> list[Event]:
        rows = self.cursor.execute(self.store.sql("events"), (self.instance_id,)).fetchall()
        return self.store._decode_events(self.instance_id, rows)

    def append(self, commit: _log.Commit, texts: tuple[str, int, TaskTexts] | None) -> None:
        store, cursor, iid = self.store, self.cursor, self.instance_id
        events, head = commit.events, commit.head
        if texts is not None:
            self.put_texts(*texts)
        texts_of = [line.decode("utf-8") for line in commit.lines]
        keys, moving = head_keys(head), head_moving(head, commit.head_json().decode("utf-8"))
        old = self._head
        try:
            if old is not None and len(events) == 1 and store.append_query is not None:
                row = (iid, events[0]["seq"], texts_of[0], *moving, iid)
                cursor.execute(store.append_query, row)
            else:
                self._insert_events(events, texts_of)
                if old is None:
                    cursor.execute(store.sql("insert_head"), (iid, *keys, *moving))
                else:
                    cursor.execute(store.sql("update_head"), (*moving, iid))
        except Exception as error:
            if not store.is_duplicate(error):
                raise
            # The head was checked against the event it names, so the log runs on past
            # it: the head is older than the log. Nothing is written (rolled back).
            raise _log.corrupt(
                iid,
                store.where,
                f"its log already holds event {events[0]['seq']} (its head is older than its log)",
                seq=events[0]["seq"],
            ) from error
        if old is not None and keys != head_keys(old):
            cursor.execute(store.sql("update_keys"), (*keys, iid))
        feature, new_status = keys[0], keys[1]
        old_status = None if old is None else _log.head_status(old)
        if new_status != old_status:
            changes = [(new_status, 1)] + ([(old_status, -1)] if old_status is not None else [])
            for status, delta in sorted(changes):
                cursor.execute(store.sql("count"), (feature, status, delta))
        self._head = head
        self.written = (moving[-1], head)

    def _insert_events(self, events: list[Event], texts: list[str]) -> None:
        store, iid = self.store, self.instance_id
        for event, text, at in zip(events, texts, self._positions(len(events)), strict=True):
            if at is None:
                self.cursor.execute(store.sql("insert_unnumbered"), (iid, event["seq"], text))
            else:
                self.cursor.execute(store.sql("insert_event"), (iid, event["seq"], text, at))

    def _positions(self, n: int) -> list[int | None]:
        """Feed positions for ``n`` events, taken last-come (the row stays locked to the
        commit); none while upgrading a 1.x database (the feed's migration numbers them)."""
        if not self.feed or self.store.number_at_read:
            return [None] * n
        end = int(self.cursor.execute(self.store.sql("take_positions"), (n,)).fetchone()[0])
        return list(range(end - n + 1, end + 1))

    def put_texts(self, task: str, version: int, texts: TaskTexts) -> None:
        record = json.dumps(texts.record)
        blobs = (texts.prompt.encode("utf-8"), texts.response.encode("utf-8"))
        row = (self.instance_id, task, version, record, *blobs)
        self.cursor.execute(self.store.sql("insert_texts"), row)

    def replace_prefix(self, checkpoint: Event, upto: int) -> None:
        store, cursor, iid = self.store, self.cursor, self.instance_id
        # The checkpoint keeps the feed position of the last event it folds.
        pos = cursor.execute(store.sql("event_pos"), (iid, upto)).fetchone()[0]
        cursor.execute(store.sql("delete_events"), (iid, upto))
        text = _log.canonical(checkpoint).decode("utf-8")
        cursor.execute(store.sql("insert_event"), (iid, checkpoint["seq"], text, pos))


def upgrade_v1(store: SQLStore, cursor: Cursor) -> None:
    """Turn ChatFlow 1.x rows (``instances`` with whole states, ``task_artifacts``) into
    logs and heads, each artifact becoming version 1 of its task; then drop the old tables."""
    p = store.prefix
    rows = cursor.execute(f"SELECT instance_id, state FROM {p}instances ORDER BY seq").fetchall()
    for instance_id, text in rows:
        state = text if isinstance(text, dict) else _log.decode_json(text, instance_id, store.where)
        if not isinstance(state, dict) or state.get("instance_id") != instance_id:
            raise _log.corrupt(instance_id, store.where, "its 1.x state cannot be upgraded")
        head = _log.head_of(state, {})
        commit = _log.Commit(None)
        commit.add({"kind": "created", "state": state}, head)
        artifacts = cursor.execute(
            f"SELECT phase_name, record, prompt, response FROM {p}task_artifacts "
            f"WHERE instance_id = {store.placeholder} ORDER BY phase_name",
            (instance_id,),
        ).fetchall()
        txn = _SQLTransaction(store, cursor, instance_id, state.get("feature_id"), feed=False)
        for task, record, prompt, response in artifacts:
            texts = [
                value if isinstance(value, str) else bytes(value).decode("utf-8")
                for value in (prompt, response)
            ]
            record_data = json.loads(record) if isinstance(record, str) else record
            body = {
                "kind": "artifact",
                "task": task,
                "version": 1,
                "record": record_data,
                "prompt_sha256": _log.sha256_hex(texts[0].encode("utf-8")),
                "response_sha256": _log.sha256_hex(texts[1].encode("utf-8")),
            }
            head = _log.advance_head(head, body)
            commit.add(body, head)
            blobs = (texts[0].encode("utf-8"), texts[1].encode("utf-8"))
            cursor.execute(
                store.sql("insert_texts"), (instance_id, task, 1, json.dumps(record_data), *blobs)
            )
        txn.append(commit, None)
    cursor.execute(f"DROP TABLE {p}task_artifacts")
    cursor.execute(f"DROP TABLE {p}instances")
