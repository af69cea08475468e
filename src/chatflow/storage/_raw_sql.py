"""Raw access to a SQLite or PostgreSQL store's instances (``SQLStore.raw_access``): the
``head`` column of its ``heads`` row and each ``events`` row's text, as UTF-8 bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatflow.storage._raw import RawAccess, RawInstance

if TYPE_CHECKING:
    from chatflow.storage._sql import SQLStore

_EVENTS = "SELECT seq, event FROM {p}events WHERE instance_id = ? ORDER BY seq"
_SET_HEAD = "UPDATE {p}heads SET head = ? WHERE instance_id = ?"
_SET_EVENT = "UPDATE {p}events SET event = ? WHERE instance_id = ? AND seq = ?"
_CUT_EVENTS = "DELETE FROM {p}events WHERE instance_id = ? AND seq > ?"


class SQLRawAccess(RawAccess):
    """Event ``n`` (from 1) is the row of ``seq`` ``n``; a write changes only the rows
    whose text differs (one transaction, the store's own connection)."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def read(self, instance_id: str) -> RawInstance:
        store = self.store
        with store._read_cursor("read") as cursor:
            row = cursor.execute(store.sql("head"), (instance_id,)).fetchone()
            rows = cursor.execute(store.sql(_EVENTS), (instance_id,)).fetchall()
        if row is None and not rows:
            raise KeyError(instance_id)
        head = None if row is None else _bytes(row[0])
        return RawInstance(head, tuple(_bytes(text) for _, text in rows))

    def write(self, instance_id: str, stored: RawInstance) -> None:
        store = self.store
        with store._write_cursor("damage") as cursor:
            if stored.head is None:
                cursor.execute(
                    store.sql("DELETE FROM {p}heads WHERE instance_id = ?"), (instance_id,)
                )
            else:
                cursor.execute(store.sql(_SET_HEAD), (stored.head.decode(), instance_id))
            rows = cursor.execute(store.sql(_EVENTS), (instance_id,)).fetchall()
            now = {seq: _bytes(text) for seq, text in rows}
            for seq, event in enumerate(stored.events, 1):
                if seq not in now:
                    row = (instance_id, seq, event.decode())
                    cursor.execute(store.sql("insert_unnumbered"), row)
                elif now[seq] != event:
                    cursor.execute(store.sql(_SET_EVENT), (event.decode(), instance_id, seq))
            cursor.execute(store.sql(_CUT_EVENTS), (instance_id, len(stored.events)))
        store._heads.drop(instance_id)


def _bytes(text: Any) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else bytes(text)
