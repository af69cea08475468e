"""The change feed (``events_since``): every committed event once, in commit order.

The race test runs 8 writer processes and a reader process following the feed while
they write (forked, so the factory need not pickle); a store that lives in one process
(its children's writes never reach the parent) is raced by threads instead.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from chatflow.errors import FeedCursorError, ValidationError
from chatflow.storage import IWorkflowStateStore
from chatflow.storage.feed import FeedEvent
from chatflow.testing import StoreFactory
from chatflow.testing._check import raises, requires, skip
from chatflow.testing._states import increment, make_state

CAPABILITY = "feed"

__all__ = [
    "test_feed_after_compaction_and_delete",
    "test_feed_end_is_where_new_events_start",
    "test_feed_filters_and_pages",
    "test_feed_follows_commits_from_a_cursor",
    "test_feed_refuses_cursors_it_never_gave",
    "test_feed_with_8_writers_and_a_reader_misses_and_repeats_nothing",
]

WRITERS = 8
STEPS = 12  # per writer: this many steps on its own instance and on the shared one
_GIVE_UP_S = 300.0  # a reader still short of every event by then reports what it has


def _keys(events: list[FeedEvent]) -> list[tuple[str, int]]:
    return [(event.instance_id, event.seq) for event in events]


@requires(CAPABILITY)
def test_feed_follows_commits_from_a_cursor(store: IWorkflowStateStore) -> None:
    first = store.events_since()
    state = make_state("feat_feed")
    iid = state["instance_id"]
    store.create_state(state)
    store.update_state(iid, increment)
    page = store.events_since(first.cursor)
    assert _keys(page.events) == [(iid, 1), (iid, 2)]
    assert [e.event["kind"] for e in page.events] == ["created", "update"]
    assert all(e.feature_id == "feat_feed" and e.event["seq"] == e.seq for e in page.events)
    assert store.events_since(page.cursor).events == []
    assert store.events_since(page.events[0].cursor).events == page.events[1:]
    assert store.events_since(store.feed_end()).events == []
    store.save_task_artifacts("feat_feed", iid, "design", {"n": 1}, "prompt", "response")
    again = store.events_since(page.cursor)
    assert _keys(again.events) == [(iid, 3)]
    assert again.events[0].event["kind"] == "artifact"
    assert store.events_since(again.cursor).events == []
    assert _keys(store.events_since(None).events)[-3:] == [(iid, 1), (iid, 2), (iid, 3)]


@requires(CAPABILITY)
def test_feed_end_is_where_new_events_start(store: IWorkflowStateStore) -> None:
    for _ in range(3):
        store.create_state(make_state("feat_fe"))
    end = store.feed_end()
    assert store.events_since(end).events == []
    state = make_state("feat_fe")
    store.create_state(state)
    assert _keys(store.events_since(end).events) == [(state["instance_id"], 1)]


@requires(CAPABILITY)
def test_feed_filters_and_pages(store: IWorkflowStateStore) -> None:
    start = store.events_since().cursor
    a, b = make_state("feat_fa"), make_state("feat_fb")
    for state in (a, b):
        store.create_state(state)
    for _ in range(3):
        store.update_state(a["instance_id"], increment)
        store.update_state(b["instance_id"], increment)
    every = store.events_since(start).events
    assert len(every) == 8
    only_b = store.events_since(start, feature="feat_fb")
    assert _keys(only_b.events) == [(b["instance_id"], n) for n in range(1, 5)]
    assert store.events_since(only_b.cursor, feature="feat_fb").events == []
    only_a = store.events_since(start, instance=a["instance_id"]).events
    assert _keys(only_a) == [(a["instance_id"], n) for n in range(1, 5)]
    paged, cursor = [], start
    while True:
        page = store.events_since(cursor, limit=3)
        assert len(page.events) <= 3
        if not page.events:
            break
        paged += page.events
        cursor = page.cursor
    assert _keys(paged) == _keys(every)
    for bad in (0, -1, True, "3"):
        with raises(ValidationError):
            store.events_since(start, limit=bad)  # type: ignore[arg-type]
    with raises(ValidationError):
        store.events_since(start, feature="../etc")


@requires(CAPABILITY)
def test_feed_refuses_cursors_it_never_gave(store: IWorkflowStateStore) -> None:
    store.create_state(make_state("feat_fc"))
    cursor = store.events_since().cursor
    epoch, position = cursor.rsplit(".", 1)
    foreign = ("0" * 16 if epoch != "0" * 16 else "1" * 16) + "." + position
    for bad in ("", "garbage", "x.y", foreign, f"{epoch}.{int(position) + 10**9}", 17):
        with raises(FeedCursorError):
            store.events_since(bad)  # type: ignore[arg-type]


@requires(CAPABILITY)
@requires("delete")
def test_feed_after_compaction_and_delete(store: IWorkflowStateStore) -> None:
    start = store.events_since().cursor
    kept, gone = make_state("feat_fd"), make_state("feat_fd")
    for state in (kept, gone):
        store.create_state(state)
    for _ in range(4):
        store.update_state(kept["instance_id"], increment)
    seen = store.events_since(start).cursor  # a reader that read everything so far
    store.compact(kept["instance_id"], keep_last=1)  # folds events 1-4 into a checkpoint
    store.update_state(kept["instance_id"], increment)
    assert _keys(store.events_since(seen).events) == [(kept["instance_id"], 6)]
    behind = store.events_since(start, instance=kept["instance_id"]).events
    assert [(e.seq, e.event["kind"]) for e in behind] == [
        (4, "checkpoint"),
        (5, "update"),
        (6, "update"),
    ]
    store.update_state(gone["instance_id"], increment)
    assert store.delete_instance(gone["instance_id"]) is True
    assert store.events_since(start, instance=gone["instance_id"]).events == []
    again = make_state("feat_fd", gone["instance_id"])  # a new instance under that id
    store.create_state(again)
    fresh = store.events_since(start, instance=gone["instance_id"]).events
    assert [(e.seq, e.event["kind"]) for e in fresh] == [(1, "created")]
    assert fresh[0].event["hash"] == store.read_log(gone["instance_id"]).events[0]["hash"]


# -- 8 writers and a reader -------------------------------------------------------------


def _write(factory: StoreFactory, shared: str, worker: int) -> None:
    store = factory()
    try:
        own = make_state("feat_race", f"wfi_w{worker}_{os.getpid()}")
        store.create_state(own)
        for _ in range(STEPS):
            store.update_state(own["instance_id"], increment)
            store.update_state(shared, increment)
    finally:
        store.close()


def _follow(factory: StoreFactory, cursor: str | None, total: int) -> list[tuple[str, int, str]]:
    """Follow the feed until ``total`` events came (or time runs out): what it saw."""
    store, seen = factory(), list[tuple[str, int, str]]()
    try:
        deadline = time.monotonic() + _GIVE_UP_S
        while len(seen) < total and time.monotonic() < deadline:
            page = store.events_since(cursor, limit=50)
            seen += [(e.instance_id, e.seq, e.event["hash"]) for e in page.events]
            cursor = page.cursor
            if not page.events:
                time.sleep(0.002)  # a poll interval, not a synchronisation
        seen += [
            (e.instance_id, e.seq, e.event["hash"]) for e in store.events_since(cursor).events
        ]  # and anything after: nothing may come twice
    finally:
        store.close()
    return seen


def _follow_into(factory: StoreFactory, cursor: str | None, total: int, conn: Any) -> None:
    conn.send(_follow(factory, cursor, total))
    conn.close()


def _shared_across_processes(factory: StoreFactory, store: IWorkflowStateStore) -> bool:
    context = multiprocessing.get_context("fork")
    probe = make_state("feat_probe")
    child = context.Process(target=_create_in_child, args=(factory, probe))
    child.start()
    child.join()
    return store.load_state(probe["instance_id"]) is not None


def _create_in_child(factory: StoreFactory, state: dict[str, Any]) -> None:
    opened = factory()
    opened.create_state(state)
    opened.close()


def _race_processes(factory: StoreFactory, shared: str, start: str, total: int) -> list[Any]:
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe(duplex=False)
    reader = context.Process(target=_follow_into, args=(factory, start, total, theirs))
    reader.start()
    writers = [context.Process(target=_write, args=(factory, shared, n)) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    seen: list[Any] = mine.recv()
    reader.join()
    return seen


def _race_threads(factory: StoreFactory, shared: str, start: str, total: int) -> list[Any]:
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(target: Callable[..., Any], *args: Any) -> None:
        try:
            found = target(factory, *args)
            if found is not None:
                results.append(found)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    reader = threading.Thread(target=run, args=(_follow, start, total))
    writers = [threading.Thread(target=run, args=(_write, shared, n)) for n in range(WRITERS)]
    for thread in (reader, *writers):
        thread.start()
    for thread in (*writers, reader):
        thread.join()
    assert errors == []
    return list(results[0])


@requires(CAPABILITY)
def test_feed_with_8_writers_and_a_reader_misses_and_repeats_nothing(
    store: IWorkflowStateStore, chatflow_store_factory: StoreFactory
) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        skip("forks the writers")
    shared = make_state("feat_race")
    store.create_state(shared)
    start = store.events_since().cursor
    total = WRITERS * (1 + 2 * STEPS)
    race = (
        _race_processes
        if _shared_across_processes(chatflow_store_factory, store)
        else _race_threads
    )
    start = store.events_since(start).cursor  # past the probe's events
    seen = race(chatflow_store_factory, shared["instance_id"], start, total)
    keys = [(iid, seq) for iid, seq, _ in seen]
    assert len(keys) == len(set(keys)) == total  # nothing twice, nothing missed
    by_instance: dict[str, list[int]] = {}
    for iid, seq in keys:
        by_instance.setdefault(iid, []).append(seq)
    assert by_instance.pop(shared["instance_id"]) == list(range(2, 2 + WRITERS * STEPS))
    assert all(seqs == list(range(1, 2 + STEPS)) for seqs in by_instance.values())
    assert len(by_instance) == WRITERS
    # The reader's order, page after page while they wrote, is the feed's order now.
    assert seen == [
        (e.instance_id, e.seq, e.event["hash"]) for e in store.events_since(start).events
    ]
    logs = {iid: store.read_log(iid).events for iid in {iid for iid, _ in keys}}
    assert all(logs[iid][seq - 1]["hash"] == digest for iid, seq, digest in seen)
