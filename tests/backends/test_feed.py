"""The change feed where a store keeps it: a crash between an instance's commit and the
file store's feed append, a torn feed line, and stores upgraded from 1.x (the contract
itself is in ``chatflow.testing.contract._feed``)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from chatflow.errors import FeedCursorError, StorageError
from chatflow.storage import FileStateStore, _file_feed_check, file_doctor
from chatflow.storage._file_feed import FileFeed
from chatflow.storage.sqlite import MIGRATIONS, SQLiteStore
from chatflow.testing import increment, make_state

from .test_upgrade import FIXTURE, artifact_rows, old_rows


def _keys(store: FileStateStore | SQLiteStore, cursor: str | None = None) -> list[tuple[str, int]]:
    return [(e.instance_id, e.seq) for e in store.events_since(cursor).events]


def test_a_failed_feed_append_is_repaired_by_the_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStateStore(tmp_path)
    state = make_state("feat_x")
    iid = state["instance_id"]
    store.create_state(state)
    store.events_since()  # (the feed's once-a-boot check is done)

    def fail(self: FileFeed, data: bytes) -> None:
        raise StorageError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(FileFeed, "append", fail)
        store.update_state(iid, increment)  # committed: the step is not reported failed
    assert store.load_state(iid)["variables"]["n"] == 1  # type: ignore[index]
    assert _keys(store) == [(iid, 1)]
    store.update_state(iid, increment)
    assert _keys(store) == [(iid, 1), (iid, 2), (iid, 3)]
    assert any("feed" in r["repair"] for r in store.repairs())


def _step_then_die(folder: str, iid: str) -> None:
    def die(self: FileFeed, data: bytes) -> None:
        os._exit(3)  # killed between the log's commit and the feed's append

    FileFeed.append = die  # type: ignore[method-assign]
    FileStateStore(folder).update_state(iid, increment)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="forks")
def test_a_process_killed_before_its_feed_append_loses_no_event(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    state = make_state("feat_x")
    iid = state["instance_id"]
    store.create_state(state)
    other = make_state("feat_y")
    store.create_state(other)
    store.events_since()  # (the feed's once-a-boot check is done)
    child = multiprocessing.get_context("fork").Process(
        target=_step_then_die, args=(str(tmp_path), iid)
    )
    child.start()
    child.join()
    assert child.exitcode == 3
    cursor = store.events_since().cursor
    assert store.load_state(iid)["variables"]["n"] == 1  # type: ignore[index]
    store.update_state(iid, increment)  # its next writer repairs the feed first
    assert _keys(store, cursor) == [(iid, 2), (iid, 3)]
    assert _keys(store) == [(iid, 1), (other["instance_id"], 1), (iid, 2), (iid, 3)]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="forks")
def test_doctor_fix_adds_what_a_killed_writer_left_out_of_the_feed(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    state = make_state("feat_x")
    iid = state["instance_id"]
    store.create_state(state)
    store.events_since()  # (the feed's once-a-boot check is done)
    child = multiprocessing.get_context("fork").Process(
        target=_step_then_die, args=(str(tmp_path), iid)
    )
    child.start()
    child.join()
    assert _keys(store) == [(iid, 1)]  # the instance is never written again...
    findings = file_doctor.check(store)
    assert [f.kind for f in findings] == ["stale_head"]
    file_doctor.fix(store, findings)  # ...but `chatflow doctor --fix` repairs it
    assert _keys(store) == [(iid, 1), (iid, 2)]


def test_a_torn_feed_line_is_set_aside_never_cut(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    state = make_state("feat_x")
    iid = state["instance_id"]
    store.create_state(state)
    feed = tmp_path / "feed.jsonl"
    with open(feed, "ab") as file:
        file.write(b'{"at":0,"f":"feat_x","i":"wf')  # a writer killed mid-line
    cursor = store.events_since().cursor  # stops before the unfinished line
    store.update_state(iid, increment)
    assert _keys(store, cursor) == [(iid, 2)]
    assert _keys(store) == [(iid, 1), (iid, 2)]
    assert b'"i":"wf\n' in feed.read_bytes()  # kept where it was
    kept = list((tmp_path / "quarantine").glob("feed.jsonl.torn.*"))
    assert [path.read_bytes() for path in kept] == [b'{"at":0,"f":"feat_x","i":"wf']


def test_events_stored_before_the_feed_existed_are_in_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.executemany(
            "INSERT INTO instances (instance_id, feature_id, status, current_phase, created_at, "
            "updated_at, version, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            old_rows(),
        )
        conn.executemany(
            "INSERT INTO task_artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", artifact_rows(str)
        )
    store = SQLiteStore(path)
    try:
        page = store.events_since()
        assert {e.instance_id for e in page.events} == set(FIXTURE["instances"])
        for iid in FIXTURE["instances"]:
            seqs = [e.seq for e in page.events if e.instance_id == iid]
            assert seqs == list(range(1, len(seqs) + 1))
        first = next(iter(FIXTURE["instances"]))
        store.update_state(first, lambda state: state)
        # Reads of a 1.x file go through an upgraded copy in memory (reads never write),
        # so their cursor names that copy's feed: after the first write upgrades the file,
        # it is refused (never silently misread) and the whole feed reads again.
        with pytest.raises(FeedCursorError):
            store.events_since(page.cursor)
        again = store.events_since().events
        assert len(again) == len(page.events) + 1
        assert (again[-1].instance_id, again[-1].event["kind"]) == (first, "update")
    finally:
        store.close()


def _lose_last_feed_line(folder: Path) -> None:
    """What a power cut after a step's log commit can leave: the log line (fdatasynced),
    its head and ``committed`` record, but not its feed line (appended without fsync)."""
    feed = folder / "feed.jsonl"
    raw = feed.read_bytes()
    feed.write_bytes(raw[: raw.rstrip(b"\n").rfind(b"\n") + 1])


@pytest.fixture
def boot(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Sets the machine's boot the file feed's power-cut check sees (``boot-1`` first)."""

    def booted(key: str) -> None:
        monkeypatch.setattr(_file_feed_check, "boot_key", lambda: key)

    booted("boot-1")
    return booted


def test_a_feed_line_a_power_cut_lost_is_back_after_the_reboot(
    tmp_path: Path, boot: Callable[[str], None]
) -> None:
    store = FileStateStore(tmp_path)
    state = make_state("feat_x")
    iid = state["instance_id"]
    store.create_state(state)
    store.update_state(iid, increment)
    assert _keys(store) == [(iid, 1), (iid, 2)]  # (checked in boot-1)
    _lose_last_feed_line(tmp_path)
    assert store._read_committed(iid) is not None and store._read_committed(iid)[0] == 2  # type: ignore[index]
    boot("boot-2")  # the reboot
    after = FileStateStore(tmp_path)
    assert after.load_state(iid)["variables"]["n"] == 1  # type: ignore[index]
    assert _keys(after) == [(iid, 1), (iid, 2)]  # the first read rebuilt the lost line
    assert any("left out of the store's feed" in r["repair"] for r in after.repairs())
    assert (tmp_path / "feed.checked").read_text() == "boot-2\n"
    assert _keys(FileStateStore(tmp_path)) == [(iid, 1), (iid, 2)]  # once, not twice


def test_feed_end_after_a_reboot_stands_after_the_rebuilt_lines(
    tmp_path: Path, boot: Callable[[str], None]
) -> None:
    store = FileStateStore(tmp_path)
    state = make_state("feat_x")
    store.create_state(state)
    store.update_state(state["instance_id"], increment)
    _lose_last_feed_line(tmp_path)
    boot("boot-2")
    after = FileStateStore(tmp_path)
    assert after.events_since(after.feed_end()).events == []


def test_within_a_boot_the_feed_is_checked_once(
    tmp_path: Path, boot: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStateStore(tmp_path)
    store.create_state(make_state("feat_x"))
    store.events_since()
    calls: list[int] = []
    monkeypatch.setattr(_file_feed_check, "check", lambda s: calls.append(1) or 0)
    store.events_since()
    FileStateStore(tmp_path).events_since()  # another reader, same boot: reads feed.checked
    assert calls == []


def test_a_new_instance_whose_every_feed_line_was_lost_is_back_after_the_reboot(
    tmp_path: Path, boot: Callable[[str], None]
) -> None:
    store = FileStateStore(tmp_path)
    first = make_state("feat_x")
    store.create_state(first)
    assert len(_keys(store)) == 1
    state = make_state("feat_x")
    store.create_state(state)
    _lose_last_feed_line(tmp_path)  # its only line
    boot("boot-2")
    assert _keys(FileStateStore(tmp_path)) == [(first["instance_id"], 1), (state["instance_id"], 1)]


def test_a_lost_feed_line_of_an_event_longer_than_the_tail_read_is_back(
    tmp_path: Path, boot: Callable[[str], None]
) -> None:
    store = FileStateStore(tmp_path)
    state = make_state("feat_x")
    iid = state["instance_id"]
    store.create_state(state)
    assert len(_keys(store)) == 1

    def big(current: dict[str, object]) -> dict[str, object]:
        current["variables"] = {"blob": "x" * (_file_feed_check._TAIL * 2)}  # type: ignore[index]
        return current

    store.update_state(iid, big)
    _lose_last_feed_line(tmp_path)
    boot("boot-2")
    assert _keys(FileStateStore(tmp_path)) == [(iid, 1), (iid, 2)]
