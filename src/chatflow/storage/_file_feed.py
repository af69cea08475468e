"""The file store's change feed: ``feed.jsonl``, one line per committed event.

Layout: a header line ``{"epoch": ..., "feed": 1, "since": <unix time it was made>}``,
then per event
``{"at": <offset of its line in the log>, "f": feature, "i": instance, "s": seq}``.
A cursor's position is a byte offset into this file, so a read seeks straight to it;
``at`` lets it read each event from its log without reading the log's history.

Protocol (see ``FileTransaction._write``): a step appends its events to the instance's
log (the commit point), then their lines here, then replaces the head, all under the
instance's lock, so one instance's lines are in commit order. If a crash (or a failed
append) comes between the log and this file, the head was not replaced either: the
next writer finds the head behind its log and, repairing it, appends the lines this
file lacks (``missing``), so nothing committed stays out of the feed.

Appends use ``O_APPEND`` (concurrent writers never interleave); one that finds the file
not ending in a newline (a torn line a killed writer left) starts on a new line. A
reader takes only newline-terminated lines, so it never reads a line being written,
and sets a line it cannot read aside in the quarantine folder (never truncating it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow.errors import FeedCursorError, StorageError
from chatflow.storage import _log
from chatflow.storage._atomic import fsync_dir, not_a_file
from chatflow.storage._log import Event
from chatflow.storage.feed import (
    LINK,
    FeedEvent,
    FeedPage,
    make_cursor,
    parse_cursor,
    past_end,
    stands_for,
)

if TYPE_CHECKING:
    from chatflow.storage.file_state_store import FileStateStore

FEED_NAME = "feed.jsonl"
_BINARY: int = getattr(os, "O_BINARY", 0)
_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 1 << 16


def feed_lines(iid: str, feature: str, events: list[Event], starts: list[int]) -> bytes:
    """The feed lines of ``events`` of instance ``iid``, whose log lines start at ``starts``."""
    return b"".join(
        _log.canonical(
            {"at": at, "f": feature, "h": event["hash"][:LINK], "i": iid, "s": event["seq"]}
        )
        + b"\n"
        for event, at in zip(events, starts, strict=True)
    )


def line_starts(start: int, lines: list[bytes]) -> list[int]:
    """Where each of ``lines`` (written one after another from ``start``, each followed
    by a newline) begins."""
    starts = []
    for line in lines:
        starts.append(start)
        start += len(line) + 1
    return starts


class FileFeed:
    """``feed.jsonl`` of one file store."""

    def __init__(self, store: FileStateStore) -> None:
        self.store = store
        self.path = str(store.base_dir / FEED_NAME)

    # -- writing ---------------------------------------------------------------------

    def append(self, data: bytes) -> None:
        """Append feed lines (one ``write``), creating the file with its header first."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | _NOFOLLOW | _BINARY)
        except FileNotFoundError:
            self._create()
            fd = self._open_append()
        except OSError as error:
            raise self._error("append to", error) from error
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise not_a_file(self.path)
            if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
                data = b"\n" + data  # after a torn line: ours starts a line of its own
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as error:
            raise self._error("append to", error) from error
        finally:
            os.close(fd)

    def _open_append(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_APPEND | _NOFOLLOW | _BINARY)
        except OSError as error:
            raise self._error("append to", error) from error

    def _create(self) -> None:
        """Make the file, whole, with a new epoch; another process's, if first, wins."""
        # "since": when it began, so a check after a power cut can tell an instance
        # whose every line was lost from one older than the feed (_file_feed_check).
        fields = {"epoch": secrets.token_hex(8), "feed": 1, "since": int(time.time())}
        header = _log.canonical(fields) + b"\n"
        temp = f"{self.path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with open(temp, "xb") as file:
                file.write(header)
                if self.store.durable:
                    os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temp, self.path)
        except OSError as error:
            raise self._error("create", error) from error
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        if self.store.durable:
            fsync_dir(Path(self.path).parent)

    def _error(self, action: str, error: OSError) -> StorageError:
        return StorageError(
            f"cannot {action} {self.path}: {error.strerror or error}", path=self.path
        )

    def missing(self, iid: str, events: list[Event]) -> list[Event]:
        """Which of ``events`` (the instance's, after its head) have no feed line yet.

        Only a repair asks (rare): it reads the feed for the instance's lines."""
        raw = self._read_from(0)
        needle = b'"i":' + json.dumps(iid).encode()
        fed = set()
        for line in raw.split(b"\n"):
            if needle in line:
                entry = _entry(line)
                if entry is not None and entry["i"] == iid:
                    fed.add(entry["s"])
        return [event for event in events if event["seq"] not in fed]

    # -- reading ---------------------------------------------------------------------

    def _read_from(self, position: int) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | _BINARY | os.O_NONBLOCK)
        except FileNotFoundError:
            return b""
        except OSError as error:
            raise self._error("read", error) from error
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise not_a_file(self.path)
            chunks = []
            while chunk := os.pread(fd, 1 << 20, position):
                chunks.append(chunk)
                position += len(chunk)
            return b"".join(chunks)
        except OSError as error:
            raise self._error("read", error) from error
        finally:
            os.close(fd)

    def header(self) -> tuple[str, int]:
        """The feed's epoch and where its first entry starts (``("", 0)``: no feed yet)."""
        head = self._read_head()
        end = head.find(b"\n") + 1
        if not end:
            return "", 0
        try:
            epoch = json.loads(head[:end])["epoch"]
        except (ValueError, KeyError, TypeError):
            raise _log.corrupt("", self.path, "its header line is unreadable") from None
        return str(epoch), end

    def _read_head(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | _BINARY | os.O_NONBLOCK)
        except FileNotFoundError:
            return b""
        except OSError as error:
            raise self._error("read", error) from error
        try:
            return os.pread(fd, 256, 0)
        finally:
            os.close(fd)

    def read(
        self, cursor: str | None, feature: str | None, instance: str | None, limit: int | None
    ) -> FeedPage:
        """The events after ``cursor`` (see ``chatflow.storage.feed``)."""
        epoch, first = self.header()
        position = max(parse_cursor(cursor, epoch), first)
        raw = self._read_from(position - 1)  # from the newline a cursor stands after
        if cursor is not None and position > first and raw[:1] != b"\n":
            if not raw:
                raise past_end(cursor, self._size())
            raise FeedCursorError(
                f"cursor {cursor!r} does not stand at an event of this store's feed",
                field="cursor",
            )
        raw = raw[1:]
        events: list[FeedEvent] = []
        logs = _Logs(self.store)
        try:
            for end, entry in self._entries(raw, position):
                position = end
                if (feature is not None and entry["f"] != feature) or (
                    instance is not None and entry["i"] != instance
                ):
                    continue
                event = logs.event(entry["i"], entry["s"], entry["at"], entry["h"])
                if event is not None:
                    at = make_cursor(epoch, end)
                    events.append(FeedEvent(entry["i"], entry["f"], entry["s"], event, at))
                    if limit is not None and len(events) >= limit:
                        break
        finally:
            logs.close()
        return FeedPage(events, make_cursor(epoch, position))

    def end(self) -> str:
        """The cursor after the last complete line: where a reader of only new events
        starts (reads the file's last block, not its history)."""
        epoch, first = self.header()
        size = self._size()
        at = max(first, size - _CHUNK)
        tail = self._read_from(at)
        return make_cursor(epoch, max(first, at + tail.rfind(b"\n") + 1))

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def _entries(self, raw: bytes, start: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each complete line's entry and the position after it; a line that is not an
        entry (torn by a killed writer) is set aside and passed over."""
        at = 0
        while (newline := raw.find(b"\n", at)) >= 0:
            line, end = raw[at:newline], newline + 1
            if line:
                entry = _entry(line)
                if entry is None:
                    self._set_aside(line, start + at)
                else:
                    yield start + end, entry
            at = end

    def _set_aside(self, line: bytes, offset: int) -> None:
        """Keep an unreadable line in the quarantine folder, once (best effort)."""
        folder = self.store.quarantine_dir
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{FEED_NAME}.torn.{offset}", "xb") as file:
                file.write(line)


def _entry(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if (
        isinstance(entry, dict)
        and isinstance(entry.get("i"), str)
        and isinstance(entry.get("f"), str)
        and type(entry.get("s")) is int
        and type(entry.get("at")) is int
        and isinstance(entry.get("h"), str)
    ):
        return entry
    return None


class _Logs:
    """Events read from the instances' logs for one page: each by its offset (one seek),
    or, if the log changed under it (compacted), from the whole log, read once."""

    def __init__(self, store: FileStateStore) -> None:
        self.store = store
        self.files: dict[str, Any] = {}
        self.whole: dict[str, dict[int, Event]] = {}

    def event(self, iid: str, seq: int, at: int, link: str) -> Event | None:
        if iid not in self.whole:
            found = self._at(iid, seq, at)
            if found is not None and stands_for(found, link):
                return found
            self.whole[iid] = self._all(iid)
        found = self.whole[iid].get(seq)
        return found if stands_for(found, link) else None

    def _at(self, iid: str, seq: int, at: int) -> Event | None:
        file = self.files.get(iid)
        if file is None:
            try:
                file = self.files[iid] = open(self.store._log_file(iid), "rb")  # noqa: SIM115
            except OSError:
                return None
        file.seek(at)
        line = file.readline()
        if not line.endswith(b"\n"):
            return None
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            return None
        sealed = isinstance(event, dict) and event.get("seq") == seq
        return event if sealed and _log.line_is_sealed(line[:-1], event) else None

    def _all(self, iid: str) -> dict[int, Event]:
        """The instance's events by seq (a deleted instance: none; a compacted one: its
        checkpoint stands at the seq of the last event it folded)."""
        try:
            found = self.store._read(iid)
        except StorageError:
            return {}
        return {} if found is None else {event["seq"]: event for event in found[1]}

    def close(self) -> None:
        for file in self.files.values():
            file.close()
