"""One file-store instance under its lock: the head checked against its log's end,
rebuilt from the log after a crash, and the appends and writes of one step.

``FileStateStore._transaction`` hands these out; the store module itself keeps to
reading, the feature indexes and roll-ups (its docstring describes the layout). A
transaction uses the store only through ``TransactionSide``, the named set of its
internals it may use, never the store's private members.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from chatflow._validation import id_problem
from chatflow.errors import StorageError
from chatflow.storage import _log
from chatflow.storage._atomic import fsync_dir, not_a_file, write_atomic
from chatflow.storage._file_feed import feed_lines, line_starts
from chatflow.storage._log import Event, Head
from chatflow.storage.base import LogTransaction, TaskTexts

if TYPE_CHECKING:
    from chatflow.storage.file_state_store import Found, TransactionSide

TEXTS = (("prompt", "prompt.md"), ("response", "ai_response.md"))
"""Each task text and the suffix of its file."""


def after_newline(path: str, line: str) -> bytes:
    """``line``, preceded by a newline if the file (a seed's index) does not end in one."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return line.encode("ascii")  # (a file that is not there yet)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise not_a_file(path)
        last = os.pread(fd, 1, info.st_size - 1) if info.st_size else b"\n"
    finally:
        os.close(fd)
    return (line if last == b"\n" else "\n" + line).encode("ascii")


class FileTransaction(LogTransaction):
    """One instance under its lock: the head checked against the log's end."""

    def __init__(self, store: TransactionSide, instance_id: str, feature_id: str | None) -> None:
        self.store, self.instance_id, self.feature_id = store, instance_id, feature_id
        self.log_path = store.log_file(instance_id)
        self._head: Head | None = None
        self._events: list[Event] | None = None

    def events(self) -> list[Event]:
        if self._events is None:
            self._events = self.store.events(self.instance_id)
        return list(self._events)

    def head(self) -> Head | None:
        if self._head is None:
            self._head = self._load_head()
        return self._head

    def _load_head(self) -> Head | None:
        store, iid = self.store, self.instance_id
        folder = store.folder(iid)
        if os.path.islink(folder):  # (tasks/ is checked where texts are written)
            # A planted link would send this instance's writes outside the storage folder.
            raise StorageError(f"{folder} is a symlink; refusing to write through it", path=folder)
        raw = store.read_bytes(store.head_file(iid))
        try:
            info = os.lstat(self.log_path)
        except FileNotFoundError:
            if raw is None:
                return None
            return self._upgrade(raw)
        if not stat.S_ISREG(info.st_mode):
            raise not_a_file(self.log_path)
        size = info.st_size
        trusted = store.heads.get(iid)
        if trusted is not None and trusted.stamp == raw:
            mine = trusted.head()
            if mine["_log_size"] == size:  # nothing appended since this process wrote it
                return mine
        head = store.usable_head(raw)
        if head is not None and head.get("_log_size") == size and self._tail_matches(head):
            return _log.check_head(head, iid, store.where)
        return self._repair(raw)

    def _tail_matches(self, head: Head) -> bool:
        """The log's last event is the one the head was written after, and records it."""
        start = head.get("_last_at")
        if not isinstance(start, int):
            return False
        with open(self.log_path, "rb") as file:
            file.seek(start)
            line = file.read()
        try:
            return _log.is_tail_of(json.loads(line), head)
        except (ValueError, RecursionError):
            return False

    def _repair(self, raw: bytes | None) -> Head:
        """The unusual path: the head is not the one written after the log's last line.

        ``TransactionSide.inspect`` (the store's reading of a head and its log) decides
        what they say; what it calls a crash's leftovers is repaired here (each repair
        logged and recorded), and anything else is refused without changing a byte.
        """
        store, iid = self.store, self.instance_id
        found = store.inspect(iid, raw, store.read_bytes(self.log_path) or b"")
        if found.damaged and found.stored is not None:  # readable, yet edited: a person's call
            raise _log.corrupt(
                iid,
                store.head_file(iid),
                "its head file disagrees with its log (`chatflow doctor --fix` moves it "
                "aside and rebuilds it from the log)",
            )
        if not _log.is_tail_of(found.events[-1], found.head):
            raise _log.corrupt(iid, store.head_file(iid), "the head does not match its log")
        if found.torn_at is not None:
            self._set_aside_torn(found.torn_at)
        head = found.head
        if found.damaged:  # unreadable (a lost write, garbage): kept, then rebuilt
            kept = store.move_aside(store.head_file(iid))
            store.repaired(iid, "its unreadable head file was moved aside", kept)
        if found.stale is not None:
            self._feed_missing(found)
            self._write_head(head, _log.parts_of(head), *found.at)
            self._status_line(head["state"]["feature_id"], _log.head_status(head))
            store.repaired(iid, f"head rebuilt from its log: {found.stale}")
        self._events = found.events
        return _log.check_head(head, iid, store.where)

    def _feed_missing(self, found: Found) -> None:
        """Append the feed lines a crash between the log and the feed left out (the
        events after the stored head's, which the feed was appended before)."""
        store, iid = self.store, self.instance_id
        raw = (store.read_bytes(self.log_path) or b"")[: found.at[0]]
        starts = line_starts(0, raw.split(b"\n")[:-1])
        after = -1 if found.stored is None else found.stored["seq"]
        where = {e["seq"]: at for e, at in zip(found.events, starts, strict=False)}
        pending = [e for e in found.events if e["seq"] > after]
        missing = store.feed.missing(iid, pending) if pending else []
        if missing:
            feature = found.head["state"]["feature_id"]
            at = [where[event["seq"]] for event in missing]
            store.feed.append(feed_lines(iid, feature, missing, at))
            store.repaired(iid, f"added {len(missing)} committed events to the store's feed")

    def _set_aside_torn(self, at: int) -> None:
        """Cut a torn, never-acknowledged last line off the log (so the next event is a
        line of its own), keeping its bytes in the store's quarantine folder."""
        store = self.store
        torn = (store.read_bytes(self.log_path) or b"")[at:]
        kept = store.keep_aside(f"{self.instance_id}.events.jsonl.torn", torn)
        try:
            os.truncate(self.log_path, at)
        except OSError as error:
            where = self.log_path
            raise StorageError(f"cannot repair {where}: {error.strerror}", path=where) from error
        what = f"cut a torn, never-acknowledged last line ({len(torn)} bytes) off its log"
        store.repaired(self.instance_id, what, kept)

    def _upgrade(self, raw: bytes) -> Head | None:
        """Turn a 1.x whole-state file (and its task files) into a log and a head: on
        the first write (or ``chatflow doctor --fix``); reads use ``old_commit``."""
        store, iid = self.store, self.instance_id
        commit = old_commit(store, iid, raw, self._old_tasks())
        self._write(commit, None)
        store.repaired(iid, "upgraded from a ChatFlow 1.x state file to a log and a head")
        return commit.head

    def _old_tasks(self) -> Iterator[tuple[str, TaskTexts]]:
        """1.x task files (``<task>.json`` and its two texts), linked in as version 1."""
        folder = Path(self.store.folder(self.instance_id), "tasks")
        for task in old_task_names(self.store, self.instance_id):
            path = folder / f"{task}.json"
            files = [path] + [path.with_name(f"{task}.{suffix}") for _, suffix in TEXTS]
            try:
                for file in files:
                    version_one = file.with_name(file.name.replace(f"{task}.", f"{task}.v1.", 1))
                    if not version_one.exists():
                        os.link(file, version_one)
            except OSError as error:
                raise _log.corrupt(
                    self.instance_id, str(folder), f"task {task!r} cannot be upgraded ({error})"
                ) from None
            texts = self.store.read_texts(self.instance_id, task, 1)
            if texts is not None:
                yield task, texts

    def append(self, commit: _log.Commit, texts: tuple[str, int, TaskTexts] | None) -> None:
        if texts is not None:
            self._write_texts(*texts)
        self._write(commit, self._head)
        self._head = commit.head
        if self._events is not None:
            self._events.extend(commit.events)

    def _write(self, commit: _log.Commit, old: Head | None) -> None:
        """Append the commit's events (the commit point), then bring the head and
        indexes along.

        A create commits when its id is appended to the feature's ``.link`` file (after
        its log): a crash before that leaves an unlisted instance nobody was told of.
        """
        store, iid, head = self.store, self.instance_id, commit.head
        data, last = b"".join(line + b"\n" for line in commit.lines), len(commit.lines[-1]) + 1
        status = _log.head_status(head)
        feature_id = head["state"]["feature_id"]
        creating = old is None and self.feature_id is not None
        new_log = old is None and not os.path.lexists(self.log_path)
        if new_log:
            make_folder(Path(store.folder(iid)), durable=store.durable)
        if creating:  # before the id is listed: a listed id always has a status line
            self._status_line(feature_id, status)
        if new_log:  # whole or not at all: a killed create never leaves a torn first log
            write_atomic(Path(self.log_path), data, durable=store.durable)
            start = 0
        else:
            start = store.append_line(self.log_path, data, sync=store.durable)
        if creating:
            if store.durable and not new_log:  # (write_atomic synced the folder)
                fsync_dir(Path(store.folder(iid)))
            link = store.index_file(feature_id)
            store.append_line(link, after_newline(link, f"{iid}\n"), sync=store.durable)
        # Committed. A failure from here on must not report the step as failed (a retry
        # would do it twice): the head and the status file are projections, and the
        # next transaction rebuilds a head that is behind its log. The feed lines come
        # first: if they fail, the head is not replaced, so that repair adds them.
        with contextlib.suppress(StorageError):
            starts = line_starts(start, commit.lines)
            store.feed.append(feed_lines(iid, feature_id, commit.events, starts))
            size = start + len(data)
            self._write_head(head, commit.head_parts(), size, size - last)
            self.store.write_committed(iid, commit.events[-1])
            if not creating and (old is None or _log.head_status(old) != status):
                self._status_line(feature_id, status)

    def _status_line(self, feature_id: str, status: str) -> None:
        line = f"{self.instance_id} {status}\n".encode("ascii", "replace")
        self.store.append_line(self.store.index_file(feature_id, "status"), line, sync=False)

    def _write_head(self, head: Head, parts: dict[str, bytes], log_size: int, last_at: int) -> None:
        """Replace the head file (``parts``: its values, encoded); not fsynced, since the
        log already holds the step. Then remember it as written by this process."""
        # One top-level key per line, for people reading and diffing the file.
        lines = [b' "_last_at": %d,\n "_log_size": %d' % (last_at, log_size)]
        lines += [b' "%s": %s' % (key.encode(), parts[key]) for key in sorted(parts)]
        data = b"{\n" + b",\n".join(lines) + b"\n}\n"
        write_atomic(Path(self.store.head_file(self.instance_id)), data, durable=False)
        self.store.heads.put(
            self.instance_id, data, {**head, "_log_size": log_size, "_last_at": last_at}
        )

    def _write_texts(self, task: str, version: int, texts: TaskTexts) -> None:
        """Write a version's files (fsynced before the log commits them), then point the
        readable ``<task>.*`` names at them."""
        folder = Path(self.store.folder(self.instance_id), "tasks")
        make_folder(folder, durable=self.store.durable)
        record = json.dumps(texts.record, indent=2, ensure_ascii=False) + "\n"
        files = [("json", record), *((suffix, getattr(texts, key)) for key, suffix in TEXTS)]
        for suffix, text in files:
            write_atomic(
                folder / f"{task}.v{version}.{suffix}",
                text.encode("utf-8"),
                durable=self.store.durable,
            )
        for suffix, _ in files:
            view = folder / f"{task}.{suffix}"
            temp = folder / f".{task}.{suffix}.{os.getpid()}.link.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            try:
                os.link(folder / f"{task}.v{version}.{suffix}", temp)
                os.replace(temp, view)
            except OSError:  # views are a convenience; the versions are the data
                with contextlib.suppress(OSError):
                    os.unlink(temp)

    def put_texts(self, task: str, version: int, texts: TaskTexts) -> None:
        self._write_texts(task, version, texts)

    def ensure_listed(self) -> None:
        """List the instance in its feature's ``.link`` file if a crash after its log was
        written (the commit of its data, not yet of its listing) left it out."""
        head = self.head()
        assert head is not None
        feature_id = head["state"]["feature_id"]
        if self.instance_id in self.store.listed(feature_id):
            return  # (the feature's parsed index is cached: only appends are read)
        self._status_line(feature_id, _log.head_status(head))
        link = self.store.index_file(feature_id)
        line = after_newline(link, f"{self.instance_id}\n")
        self.store.append_line(link, line, sync=self.store.durable)

    def replace_prefix(self, checkpoint: Event, upto: int) -> None:
        kept = [event for event in self.events() if event["seq"] > upto]
        events = [checkpoint, *kept]
        lines = [_log.canonical(event) + b"\n" for event in events]
        data = b"".join(lines)
        write_atomic(Path(self.log_path), data, durable=self.store.durable)
        head = self.head()
        assert head is not None
        head = _log.content(head) | {"seq": head["seq"], "hash": head["hash"]}
        self._write_head(head, _log.parts_of(head), len(data), len(data) - len(lines[-1]))
        self.store.write_committed(self.instance_id, events[-1])
        self._events = events


def old_commit(
    store: TransactionSide, iid: str, raw: bytes, tasks: Iterable[tuple[str, TaskTexts]]
) -> _log.Commit:
    """The log a 1.x whole-state file (``raw``) and its task files (``tasks``, each as
    version 1) stand for, built in memory."""
    state = store.parse_head(iid, raw)
    if not isinstance(state, dict) or "history" not in state:
        raise _log.corrupt(iid, store.head_file(iid), "not a ChatFlow instance state")
    from chatflow.storage.base import _check_state  # noqa: PLC0415

    _check_state(state, iid, store.head_file(iid))
    commit = _log.Commit(None)
    head = _log.head_of(state, {})
    commit.add({"kind": "created", "state": state}, head)
    for task, texts in tasks:
        body = {
            "kind": "artifact",
            "task": task,
            "version": 1,
            "record": texts.record,
            "prompt_sha256": _log.sha256_hex(texts.prompt.encode("utf-8")),
            "response_sha256": _log.sha256_hex(texts.response.encode("utf-8")),
        }
        head = _log.advance_head(head, body)
        commit.add(body, head)
    return commit


def old_task_names(store: TransactionSide, iid: str) -> list[str]:
    """The tasks a 1.x instance kept (``tasks/<task>.json``), sorted."""
    folder = Path(store.folder(iid), "tasks")
    if not folder.is_dir():
        return []
    return [p.stem for p in sorted(folder.glob("*.json")) if id_problem(p.stem) is None]


def make_folder(folder: Path, *, durable: bool) -> None:
    """Create ``folder`` (a real folder: a planted symlink is refused)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"cannot create {folder}: {error.strerror}", path=str(folder)) from error
    if folder.is_symlink():
        raise StorageError(f"{folder} is a symlink; refusing to write through it", path=str(folder))
    if durable:
        fsync_dir(folder.parent)
