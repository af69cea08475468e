"""The PostgreSQL feed read by a role that may only SELECT: a read numbers the events
committed since, through ``chatflow_number_feed()`` (owned by the schema's writer), so
it works without UPDATE; without that function it says which permission is missing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from chatflow.errors import StorageError
from chatflow.storage.postgres import NUMBER_FEED, PostgresStore
from chatflow.testing import increment, make_state


def _as(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@pytest.fixture
def reader_role(pg_admin: Any) -> Iterator[str]:
    role = f"chatflow_reader_{secrets.token_hex(4)}"
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN')
    yield role
    pg_admin.execute(f'DROP OWNED BY "{role}"')
    pg_admin.execute(f'DROP ROLE "{role}"')


def _grant_select(pg_admin: Any, schema: str, role: str) -> None:
    pg_admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    pg_admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')


def _keys(store: PostgresStore, cursor: str | None = None) -> list[tuple[str, int]]:
    return [(e.instance_id, e.seq) for e in store.events_since(cursor).events]


def test_a_select_only_role_reads_the_feed(
    pg_url: str, pg_schema: str, pg_admin: Any, reader_role: str
) -> None:
    schema = f"{pg_schema}_ro_{secrets.token_hex(3)}"
    writer = PostgresStore(pg_url, schema=schema)
    reader = PostgresStore(_as(pg_url, reader_role), schema=schema)
    try:
        state = make_state("feat_x")
        iid = state["instance_id"]
        writer.create_state(state)
        _grant_select(pg_admin, schema, reader_role)
        writer.update_state(iid, increment)  # committed unnumbered: the read numbers it
        assert _keys(reader) == [(iid, 1), (iid, 2)]
        end = reader.feed_end()
        writer.update_state(iid, increment)
        assert _keys(reader, end) == [(iid, 3)]
        with pytest.raises(StorageError, match="permission denied"):
            reader.update_state(iid, increment)  # (the role really cannot write)
    finally:
        reader.close()
        writer.close()


def test_without_the_numbering_function_a_select_only_role_is_told_what_it_needs(
    pg_url: str, pg_schema: str, pg_admin: Any, reader_role: str
) -> None:
    schema = f"{pg_schema}_ro_{secrets.token_hex(3)}"
    writer = PostgresStore(pg_url, schema=schema)
    try:
        writer.create_state(make_state("feat_x"))
    finally:
        writer.close()
    pg_admin.execute(f'DROP FUNCTION "{schema}".{NUMBER_FEED}()')  # (a schema of 3.0)
    _grant_select(pg_admin, schema, reader_role)
    reader = PostgresStore(_as(pg_url, reader_role), schema=schema)
    try:
        with pytest.raises(StorageError, match="needs UPDATE on the schema's events") as caught:
            reader.events_since()
        assert NUMBER_FEED in str(caught.value)
    finally:
        reader.close()
    writer = PostgresStore(pg_url, schema=schema)
    try:
        writer.feed_end()  # a writer opens it: the function is back
    finally:
        writer.close()
    reader = PostgresStore(_as(pg_url, reader_role), schema=schema)
    try:
        assert len(reader.events_since().events) == 1
    finally:
        reader.close()
