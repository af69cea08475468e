"""``FileStateStore``: the default store, a plain human-readable folder.

Layout (people read and diff these files)::

    .chatflow/
      instances/wfi_abc123.json                    head: current phase, status, variables...
      instances/wfi_abc123/events.jsonl            the event log, one event per line
      instances/wfi_abc123/committed               its last committed event's seq and hash
      instances/wfi_abc123/tasks/<task>.v<N>.json            task record, version N
      instances/wfi_abc123/tasks/<task>.v<N>.prompt.md       prompt sent to the AI
      instances/wfi_abc123/tasks/<task>.v<N>.ai_response.md  the AI's response
      instances/wfi_abc123/tasks/<task>.{json,prompt.md,ai_response.md}   latest version
      features/feat_user_auth.link                 instance ids, oldest first (appended)
      features/feat_user_auth.status               "<id> <status>" per status change (appended)
      .schemas/<name>.v<version>.json              schemas kept by put_schema
      .locks/                                      sidecar lock files
      feed.jsonl                                   every committed event, in commit order
                                                   (chatflow.storage._file_feed)
      feed.checked                                 the boot the feed was last checked in
                                                   (chatflow.storage._file_feed_check)

A step appends one line to ``events.jsonl`` and fdatasyncs it: that is the commit
point. It then replaces the head file (atomically, without fsync) and, if the status
changed, appends a line to the feature's ``.status`` file. A crash after the commit
leaves a head that is behind its log; the next writer (or ``load_state``) sees the log
is longer than the head says and rebuilds the head from the events it is missing.

Concurrency: each instance has its own cross-process lock (``.locks/<id>.lock``), held
across every read-modify-write; a feature's index has its own
(``.locks/feature.<id>.lock``) taken only when an instance is created. Lock order is
always feature, then instance.

Memory: the heads this store object wrote are kept (at most ``MAX_HEADS``/``MAX_BYTES``
of ``chatflow.storage._heads``) so its next step on an instance skips re-checking them
against the log; feature roll-ups cache the parsed ``.link`` and ``.status`` files of at
most ``ROLLUP_CACHE_FEATURES`` features, reading only what was appended since. The
overview (``list_feature_counts``) keeps each feature's counts and ids keyed by its index
files' stamps, for features listing at most ``OVERVIEW_CACHE_IDS`` ids in all (each
feature counting one more): about 270 bytes per unit, so at most ~14 MB (25,000
one-instance features at ~540 bytes each; ~80 bytes per id in a bigger feature).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from chatflow._validation import id_problem, validate_id
from chatflow.errors import CorruptStateError, StorageError
from chatflow.storage import _file_feed_check, _log
from chatflow.storage._atomic import fsync_dir, not_a_file, write_atomic
from chatflow.storage._file_feed import FileFeed
from chatflow.storage._file_transaction import (
    TEXTS,
    FileTransaction,
    make_folder,
    old_commit,
    old_task_names,
)
from chatflow.storage._log import Event, Head
from chatflow.storage._raw import RawAccess
from chatflow.storage.base import (
    FeatureCounts,
    IWorkflowStateStore,
    LogTransaction,
    Problem,
    SchemaRow,
    StatusCount,
    TaskTexts,
    parse_task_texts,
)
from chatflow.storage.feed import FeedPage, check_filters
from chatflow.storage.file_lock import BaseFileLock, FileLock

ROLLUP_CACHE_FEATURES = 64
OVERVIEW_CACHE_IDS = 50_000
SETTLED_NS = 2_000_000_000
READ_RETRIES = 5  # reads of a head and log that moved on under concurrent writers
LOG_NAME = "events.jsonl"
COMMITTED_NAME = "committed"
_COMMITTED = struct.Struct("20s1s64s1s")  # "<seq, 20 digits> <link, 64 hex>\n"
_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_BINARY: int = getattr(os, "O_BINARY", 0)
_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)


class Found(NamedTuple):
    """An instance's stored head and log as ``FileStateStore._inspect`` reads them."""

    head: Head  # the head to use: the stored one if current, else the log's projection
    stored: Head | None  # the stored head, if it is a readable head
    events: list[Event]
    torn_at: int | None  # where a torn, never-acknowledged last line starts
    stale: str | None  # why the stored head must be rewritten; None if it is current
    at: tuple[int, int]  # the log's size and its last line's offset, without a torn line
    damaged: bool  # a head file is there but cannot be read: evidence to move aside


class _Rollup:
    """A feature's parsed index files, and how far each was read."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.place: dict[str, int] = {}
        self.link_size = 0
        self.link_tail = b""
        self.status: dict[str, str] = {}
        self.status_size = 0
        self.status_tail = b""
        self.counts: list[StatusCount] | None = None


# One index file's st_ino, st_size, st_mtime_ns and st_ctime_ns, packed: a feature's
# stamps (its .link file's, then its .status file's if it has one) take 97 bytes, not
# the ~490 of tuples of ints.
_STAMP = struct.Struct("<QQqq")


def _stamp(stat: os.stat_result) -> bytes:
    return _STAMP.pack(stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class _Summary(NamedTuple):
    """A feature's counts and instance ids, valid while its index files keep ``stamps``.

    Why an unchanged stamp means unchanged contents: both files change only by appends
    (which grow ``st_size``; a torn line left by a crash too), by ``write_atomic`` (a
    rename: a new inode, as the old file is still linked when its replacement is made),
    by a truncate back to the old size after a failed append, or by hand; every one
    sets ``st_mtime_ns`` and ``st_ctime_ns`` to the current time (a tool restoring an old
    mtime still moves the ctime). What a stamp alone could miss is two changes within
    one tick of a coarse file clock (a few ms; 2 s on FAT) ending at the old size, or an
    inode number freed and reused within that tick. So a summary is only kept when both
    files' ``st_mtime_ns`` was ``SETTLED_NS`` older than the clock when they were
    stamped: any later change writes a different time. Only a clock stepped back, or a
    file server's clock running behind this machine's by more than ``SETTLED_NS``, leaves
    size, inode and ctime alone to notice a change (Windows reports no inode here).
    """

    stamps: bytes
    counts: tuple[StatusCount, ...]
    ids: tuple[str, ...]

    @property
    def weight(self) -> int:
        """What it counts for against ``OVERVIEW_CACHE_IDS``."""
        return 1 + len(self.ids)


def _settled(stamps: bytes, started: int) -> bool:
    """Whether both files were last changed ``SETTLED_NS`` before ``started``."""
    return all(mtime < started - SETTLED_NS for _, _, mtime, _ in _STAMP.iter_unpack(stamps))


class TransactionSide:
    """The file store as its transactions (``_file_transaction``) see it: the small,
    named set of its internals they use, so no module but this one touches the
    store's private members. Paths, raw reads and appends, the head cache and
    inspection, repairs kept aside and told of, the committed marker and the feed."""

    def __init__(self, store: FileStateStore) -> None:
        self._store = store
        self.feed = store._feed
        self.heads = store._heads
        self.folder, self.head_file = store._folder, store._head_file
        self.log_file, self.index_file = store._log_file, store._index_file
        self.read_bytes, self.append_line = store._read_bytes, store._append_line
        self.parse_head, self.usable_head = store._parse_head, store._usable_head
        self.events, self.inspect = store._events, store._inspect
        self.read_texts = store._read_texts
        self.keep_aside, self.move_aside = store._keep_aside, store._move_aside
        self.repaired, self.write_committed = store._repaired, store._write_committed
        self.listed = store.list_instances_by_feature

    @property
    def where(self) -> str:
        return self._store.where

    @property
    def durable(self) -> bool:
        return self._store.durable


class FileStateStore(IWorkflowStateStore):
    """State in a folder of JSON and Markdown files, safe for many threads and processes.

    ``durable=False`` skips fsync: writes stay atomic (a killed process never leaves a
    torn file) but the last writes may be lost on power failure. ``lock_timeout`` is
    how long to wait for another writer before raising ``LockTimeoutError``.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] = ".chatflow",
        *,
        durable: bool = True,
        lock_timeout: float | None = 30.0,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.instances_dir = self.base_dir / "instances"
        self.features_dir = self.base_dir / "features"
        self.locks_dir = self.base_dir / ".locks"
        # Where engines on this folder find workflow schemas by name (ChatCoder writes its
        # own there); read by the engine's registry, never created by the store.
        self.schemas_dir = self.base_dir / "schemas"
        self.registered_schemas_dir = self.base_dir / ".schemas"  # put_schema, not user files
        self.durable = durable
        self.lock_timeout = lock_timeout
        self.where = str(self.base_dir)
        self._rollups: OrderedDict[str, _Rollup] = OrderedDict()
        self._rollup_lock = threading.Lock()
        self._summaries: dict[str, _Summary] = {}
        self._summary_ids = 0  # their total weight
        # Moved-aside damaged files, and the record of every repair the store made.
        self.quarantine_dir = self.base_dir / "quarantine"
        self.repairs_file = self.base_dir / "repairs.jsonl"
        self.deletions_file = self.base_dir / "deletions.jsonl"  # who deleted what, when
        self._feed = FileFeed(self)  # feed.jsonl: every committed event, in commit order
        self._side = TransactionSide(self)  # what its transactions use of it
        self._feed_checked: list[str] = []  # the boot this object saw the feed checked in
        try:
            for folder in (self.instances_dir, self.features_dir, self.locks_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            why = error.strerror or str(error)
            if self.base_dir.exists() and not self.base_dir.is_dir():
                why = "it is a file, not a folder (a file store is a folder)"
            raise StorageError(
                f"cannot create storage folder {self.base_dir}: {why}", path=str(self.base_dir)
            ) from error
        for folder in (self.instances_dir, self.features_dir, self.locks_dir):
            if folder.is_symlink():  # planted: every read and write would leave the store
                raise StorageError(f"{folder} is a symlink; refusing to use it", path=str(folder))

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.base_dir)!r}, durable={self.durable})"

    # -- paths and locks -------------------------------------------------------------

    def _head_file(self, instance_id: str) -> str:
        return f"{self.instances_dir}{os.sep}{instance_id}.json"

    def _folder(self, instance_id: str) -> str:
        return f"{self.instances_dir}{os.sep}{instance_id}"

    def _log_file(self, instance_id: str) -> str:
        return f"{self.instances_dir}{os.sep}{instance_id}{os.sep}{LOG_NAME}"

    def _committed_file(self, instance_id: str) -> str:
        return f"{self.instances_dir}{os.sep}{instance_id}{os.sep}{COMMITTED_NAME}"

    def _log_where(self, instance_id: str) -> str:
        return self._log_file(instance_id)

    def _task_file(self, instance_id: str, task: str, suffix: str) -> Path:
        return Path(self._folder(instance_id), "tasks", f"{task}.{suffix}")

    def _index_file(self, feature_id: str, kind: str = "link") -> str:
        return f"{self.features_dir}{os.sep}{validate_id(feature_id, 'feature_id')}.{kind}"

    def _instance_lock(self, instance_id: str) -> BaseFileLock:
        return FileLock(f"{self.locks_dir}{os.sep}{instance_id}.lock", self.lock_timeout)

    def _feature_lock(self, feature_id: str) -> BaseFileLock:
        # Ids cannot contain '.', so this name never collides with an instance's lock.
        return FileLock(self.locks_dir / f"feature.{feature_id}.lock", self.lock_timeout)

    @contextlib.contextmanager
    def _transaction(
        self, instance_id: str, feature_id: str | None = None
    ) -> Iterator[LogTransaction]:
        validate_id(instance_id, "instance_id")
        feature_lock = (
            contextlib.nullcontext()
            if feature_id is None
            else self._feature_lock(validate_id(feature_id, "feature_id"))
        )
        with feature_lock, self._instance_lock(instance_id):
            yield FileTransaction(self._side, instance_id, feature_id)

    # -- reading ---------------------------------------------------------------------

    def _read_bytes(self, path: str) -> bytes | None:
        try:  # O_NONBLOCK: a FIFO planted in place of a file must not hang a reader
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY | _NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}", path=path) from error
        try:  # plain reads: a file object costs more than reading a small head
            chunks = [os.read(fd, 1 << 16)]
            # Nothing read: an empty file, or a FIFO (O_NONBLOCK returns at once).
            regular = bool(chunks[0]) or stat.S_ISREG(os.fstat(fd).st_mode)
            while chunks[-1] and regular:
                chunks.append(os.read(fd, 1 << 20))
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}", path=path) from error
        finally:
            os.close(fd)
        if not regular:
            raise not_a_file(path)
        return b"".join(chunks)

    def _parse_head(self, instance_id: str, raw: bytes) -> Any:
        return _log.decode_json(raw, instance_id, self._head_file(instance_id))

    @staticmethod
    def _usable_head(raw: bytes | None) -> Head | None:
        """A head file's content if it is a current head; ``None`` if it is missing,
        garbled or from 1.x: then the log is replayed (the head is only a projection)."""
        if raw is None:
            return None
        try:
            head = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return head if isinstance(head, dict) and head.get("format") == _log.HEAD_FORMAT else None

    def _events(self, instance_id: str, raw: bytes | None = None) -> list[Event]:
        """The log's complete events (a torn last line is left to ``_inspect``), each
        checked against its hash and linked to the one before: a line edited, removed,
        repeated or moved is ``CorruptStateError``, never a different state."""
        if raw is None:
            raw = self._read_bytes(self._log_file(instance_id)) or b""
        where = self._log_file(instance_id)
        lines = raw.split(b"\n")
        events = []
        seq, link = -1, None
        for line in lines[:-1]:
            event = _log.decode_json(line, instance_id, where)
            if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
                raise _log.corrupt(instance_id, where, "an event is not an object", path=where)
            if not _log.line_is_sealed(line, event):
                problem = f"event {event['seq']}: its content does not match its hash (edited)"
                raise _log.corrupt(instance_id, where, problem, path=where, seq=event["seq"])
            if link is not None and (event["seq"] != seq + 1 or event.get("prev") != link):
                problem = f"event {event['seq']} does not follow event {seq} (removed, repeated "
                problem += "or moved)"
                raise _log.corrupt(instance_id, where, problem, path=where, seq=event["seq"])
            seq, link = event["seq"], _log.link_of(event)
            events.append(event)
        return events

    def _write_committed(self, instance_id: str, last: Event) -> None:
        """Record the log's last committed event (``seq`` and link) beside it, after the
        commit: the second record of how long the log is, for when its head is lost.

        One fixed-size ``pwrite`` in place (no fsync: the log is already durable, so
        this record is never ahead of it; a lost update leaves it behind, which only
        checks less). Best effort: the step has committed.
        """
        record = _COMMITTED.pack(
            b"%020d" % last["seq"], b" ", _log.link_of(last).encode("ascii"), b"\n"
        )
        path = self._committed_file(instance_id)
        with contextlib.suppress(OSError, UnicodeEncodeError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _BINARY | _NONBLOCK, 0o644)
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.pwrite(fd, record, 0)
            finally:
                os.close(fd)

    def _read_committed(self, instance_id: str) -> tuple[int, str] | None:
        """The last committed event's ``seq`` and link as recorded beside the log;
        ``None`` if there is no readable record (an older store, a torn write)."""
        try:
            raw = self._read_bytes(self._committed_file(instance_id))
        except StorageError:
            return None
        if raw is None or len(raw) != _COMMITTED.size:
            return None
        seq, space, link, newline = _COMMITTED.unpack(raw)
        if not (seq.isdigit() and space == b" " and newline == b"\n"):
            return None
        return int(seq), link.decode("ascii", "replace")

    def _check_committed(self, instance_id: str, last: Event) -> None:
        """``CorruptStateError`` if the log ends before the last event it committed
        (lines lost off its end, which a head lost too cannot tell)."""
        recorded = self._read_committed(instance_id)
        if recorded is None:
            return
        seq, link = recorded
        if seq > last["seq"] or (seq == last["seq"] and link != _log.link_of(last)):
            where = self._log_file(instance_id)
            problem = (
                f"its log ends at event {last['seq']}, but event {seq} was committed "
                f"(recorded in {self._committed_file(instance_id)}): lines were lost off its end"
            )
            raise _log.corrupt(instance_id, where, problem, path=where, seq=last["seq"])

    def _inspect(self, instance_id: str, raw: bytes | None, log: bytes) -> Found:
        """What the stored head and log say together, read only: the head to use, and
        what a writer must repair first. ``CorruptStateError`` naming the instance for
        damage that a writer cannot repair without losing or hiding something.

        A torn last line (no newline) is a write that never finished; it is dropped only
        when the stored head proves it was never acknowledged (the head was written
        after the last complete line). A head missing, behind its log (a crash after a
        commit) or at the log's last event but with stale offsets (a compaction killed
        between its two writes) is rebuilt from the log. A head file that is there but
        unreadable is ``damaged``: readers use the log, writers move it aside first. A
        readable head that disagrees with the log is refused (someone edited one of
        them), until ``chatflow doctor --fix`` moves it aside.
        """
        where = self._log_file(instance_id)
        end = log.rfind(b"\n") + 1
        stored = self._usable_head(raw)
        damaged = raw is not None and stored is None
        if stored is not None:
            stored = _log.check_head(stored, instance_id, self._head_file(instance_id))
        torn = end < len(log)
        if torn and (stored is None or stored.get("_log_size") != end):
            problem = "its last line is incomplete and no head proves it was never acknowledged"
            raise _log.corrupt(instance_id, where, problem, path=where)
        events = self._events(instance_id, log[:end])
        if not events:
            raise _log.corrupt(instance_id, where, "its log is empty", path=where)
        last = events[-1]
        self._check_committed(instance_id, last)
        last_at = end - 1 - len(log[: end - 1].rsplit(b"\n", 1)[-1])
        at = (end, last_at)
        if damaged and _salvaged_size(raw) > end:
            raise _log.corrupt(instance_id, where, "its log is shorter than its damaged head says")
        if stored is None:  # (so no torn line either)
            missing = "its head file is unreadable" if damaged else "its head file is missing"
            return Found(_log.project_head(events), None, events, None, missing, at, damaged)
        cut = end if torn else None
        seq, link = stored["seq"], stored.get("hash")
        if seq > last["seq"]:
            raise _log.corrupt(instance_id, where, "its log is shorter than its head says")
        if seq == last["seq"] and link == _log.link_of(last):
            current = (stored.get("_log_size"), stored.get("_last_at")) == at
            stale = None if current else "its log offsets are stale (an interrupted compaction)"
            return Found(stored, stored, events, cut, stale, at, False)
        upto = next(
            (n for n, e in enumerate(events) if e["seq"] == seq and _log.link_of(e) == link), None
        )
        if upto is None:
            where = self._head_file(instance_id)
            raise _log.corrupt(instance_id, where, "the head does not match its log")
        # Behind, and (unless edited) the head the log projected to at that event.
        edited = _log.head_problem(stored, events[: upto + 1]) is not None
        why = "its head is behind its log (a crash after a commit)"
        return Found(_log.project_head(events), stored, events, cut, why, at, edited)

    def _read(self, instance_id: str) -> tuple[Head, list[Event]] | None:
        validate_id(instance_id, "instance_id")
        head_file, log_file = self._head_file(instance_id), self._log_file(instance_id)
        raw = self._read_bytes(head_file)
        tries = READ_RETRIES
        while True:
            log = self._read_bytes(log_file)
            if log is None:
                return None if raw is None else self._upgraded(instance_id, raw)
            try:
                found = self._inspect(instance_id, raw, log)
            except CorruptStateError:
                # Unlocked: writers may have moved on between the two reads (a head read
                # before two steps, a log read amid the second's append). Damage stays.
                again, tries = self._read_bytes(head_file), tries - 1
                if again == raw or not tries:
                    raise
                raw = again
            else:
                return found.head, found.events

    def verify(self, instance_id: str) -> Problem | None:
        """As every store's, and a head file that steps refuse (unreadable: ``chatflow
        doctor --fix`` rebuilds it) is a problem too, though reads use the log."""
        problem = super().verify(instance_id)
        raw = self._read_bytes(self._head_file(instance_id))
        old = not os.path.lexists(self._log_file(instance_id))  # 1.x: read in memory
        if problem is None and raw is not None and not old and self._usable_head(raw) is None:
            where = self._head_file(instance_id)
            return Problem(instance_id, None, where, "the head file is unreadable (damaged)")
        return problem

    def _upgraded(self, instance_id: str, raw: bytes) -> tuple[Head, list[Event]] | None:
        """An instance written by ChatFlow 1.x (one whole-state file), read in memory:
        reads never write; the first step (or ``chatflow doctor --fix``) upgrades it."""
        folder = self._folder(instance_id)
        if os.path.islink(folder):  # its log "missing" behind a planted link: say so
            raise StorageError(f"{folder} is a symlink; refusing to use it", path=str(folder))
        state = self._parse_head(instance_id, raw)
        if not isinstance(state, dict) or "history" not in state:
            problem = "its log is missing" if self._usable_head(raw) else "not a ChatFlow state"
            raise _log.corrupt(instance_id, self._head_file(instance_id), problem)
        tasks = [
            (task, texts)
            for task in old_task_names(self._side, instance_id)
            if (texts := self._read_texts(instance_id, task, 1)) is not None
        ]
        commit = old_commit(self._side, instance_id, raw, tasks)
        return commit.head, commit.events

    def _read_head(self, instance_id: str) -> Head | None:
        validate_id(instance_id, "instance_id")
        head = self._usable_head(self._read_bytes(self._head_file(instance_id)))
        if head is not None:
            return _log.check_head(head, instance_id, self.where)
        found = self._read(instance_id)
        return None if found is None else found[0]

    def _read_texts(self, instance_id: str, task: str, version: int) -> TaskTexts | None:
        infix = f"v{version}."
        record_raw = self._read_bytes(str(self._task_file(instance_id, task, f"{infix}json")))
        if record_raw is None and version == 1 and not os.path.lexists(self._log_file(instance_id)):
            infix = ""  # a 1.x instance not upgraded yet: its one version has no number
            record_raw = self._read_bytes(str(self._task_file(instance_id, task, "json")))
        if record_raw is None:
            return None
        prompt, response = (
            self._read_bytes(str(self._task_file(instance_id, task, f"{infix}{suffix}"))) or b""
            for _, suffix in TEXTS
        )
        return parse_task_texts(
            instance_id, self.where, task, version, (record_raw, prompt, response)
        )

    def events_since(
        self,
        cursor: str | None = None,
        *,
        feature: str | None = None,
        instance: str | None = None,
        limit: int | None = None,
    ) -> FeedPage:
        limit = check_filters(feature, instance, limit)
        _file_feed_check.ensure(self, self._feed_checked)
        return self._feed.read(cursor, feature, instance, limit)

    def feed_end(self) -> str:
        _file_feed_check.ensure(self, self._feed_checked)
        return self._feed.end()

    # -- repairs ---------------------------------------------------------------------

    def _keep_aside(self, name: str, data: bytes) -> str:
        """Keep ``data`` (bytes about to be cut off a file) as a new file in the
        quarantine folder, before they are removed where they were; return its path."""
        make_folder(self.quarantine_dir, durable=self.durable)
        path = self.quarantine_dir / f"{name}.{time.time_ns()}"
        write_atomic(path, data, durable=self.durable)
        return str(path)

    def _move_aside(self, path: str) -> str:
        """Move a damaged file or folder into the quarantine folder (kept, never
        deleted); return where it went. Its name there starts with the instance id."""
        make_folder(self.quarantine_dir, durable=self.durable)
        kept = self.quarantine_dir / f"{os.path.basename(path)}.{time.time_ns()}"
        try:
            os.rename(path, kept)
        except OSError as error:
            raise StorageError(
                f"cannot move {path} aside: {error.strerror or error}", path=path
            ) from error
        if self.durable:
            fsync_dir(Path(path).parent)
            fsync_dir(self.quarantine_dir)
        return str(kept)

    def quarantined(self, instance_id: str) -> list[str]:
        """What was moved aside from the instance (ids hold no '.', so the prefix is its)."""
        return [p for p in self.moved_aside() if os.path.basename(p).startswith(f"{instance_id}.")]

    def _repaired(self, instance_id: str, what: str, kept: str | None = None) -> None:
        """Tell of a repair the store made by itself: a WARNING on the ``chatflow``
        logger, and a line in ``repairs.jsonl`` (which ``chatflow doctor`` shows)."""
        from chatflow._logger import logger  # noqa: PLC0415 - repairs are rare

        logger(__name__).warning(
            "repaired instance %s in %s: %s%s",
            instance_id,
            self.where,
            what,
            f" (the removed bytes are kept in {kept})" if kept else "",
        )
        record = {"at": time.time(), "instance_id": instance_id, "repair": what, "kept": kept}
        with contextlib.suppress(StorageError):  # the warning above was given regardless
            line = json.dumps(record, ensure_ascii=True).encode("ascii") + b"\n"
            self._append_line(self.repairs_file, line, sync=False)

    def note_repair(self, instance_id: str, what: str) -> None:
        self._repaired(instance_id, what)

    def repairs(self) -> list[dict[str, Any]]:
        """Every repair recorded in ``repairs.jsonl``, oldest first."""
        raw = self._read_bytes(str(self.repairs_file)) or b""
        found = []
        for line in raw.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    found.append(record)
        return found

    def raw_access(self) -> RawAccess:
        """The head file's and each log line's bytes (capability ``damage``)."""
        from chatflow.storage._raw_file import FileRawAccess  # noqa: PLC0415 - tests only

        return FileRawAccess(self)

    def moved_aside(self) -> list[str]:
        """Every file or folder kept in the quarantine folder, sorted."""
        try:
            names = os.listdir(self.quarantine_dir)
        except FileNotFoundError:
            return []
        except OSError as error:
            where = str(self.quarantine_dir)
            raise StorageError(f"cannot list {where}: {error.strerror}", path=where) from error
        return sorted(str(self.quarantine_dir / name) for name in names)

    # -- feature index ---------------------------------------------------------------

    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        return list(self._rollup(feature_id).ids)

    def list_features(self) -> list[str]:
        return sorted(feature for feature, kind, _ in self._index_entries() if kind == "link")

    def feature_status_counts(self, feature_id: str) -> list[StatusCount]:
        return self._counts(self._rollup(feature_id))

    def list_feature_counts(self) -> list[FeatureCounts]:
        """Counts from each feature's index files; last activity from one scan of the
        head files' modification times (a head is rewritten by every step), so no
        instance file is opened. A feature whose index files are unchanged since the
        last call is answered from ``_summaries`` (see ``_Summary``): a warm overview
        reads no index file, it only lists ``features/`` and ``instances/``."""
        started = time.time_ns()
        stamps = self._index_stamps()
        modified = self._head_times()
        with self._rollup_lock:
            known = dict(self._summaries)
        overview = []
        for feature_id in sorted(stamps):
            summary = known.get(feature_id)
            if summary is None or summary.stamps != stamps[feature_id]:
                summary = self._read_summary(feature_id, stamps[feature_id], started)
            latest = max([modified.get(i, 0.0) for i in summary.ids], default=0.0)
            overview.append(FeatureCounts(feature_id, list(summary.counts), latest))
        with self._rollup_lock:
            for gone in self._summaries.keys() - stamps.keys():
                self._drop_summary(gone)
        return overview

    def _index_entries(self) -> Iterator[tuple[str, str, os.DirEntry[str]]]:
        """``(feature id, "link" or "status", entry)`` for each index file of a valid id."""
        try:
            with os.scandir(self.features_dir) as entries:
                for entry in entries:
                    feature_id, _, kind = entry.name.partition(".")
                    if kind in ("link", "status") and id_problem(feature_id) is None:
                        yield feature_id, kind, entry
        except FileNotFoundError:
            return  # the folder was removed: no feature is left
        except OSError as error:
            where = str(self.features_dir)
            raise StorageError(f"cannot list {where}: {error.strerror}", path=where) from error

    def _index_stamps(self) -> dict[str, bytes]:
        """Listed feature id -> the stamps of its ``.link`` and ``.status`` files."""
        found: dict[str, dict[str, bytes]] = {"link": {}, "status": {}}
        for feature_id, kind, entry in self._index_entries():
            try:
                found[kind][feature_id] = _stamp(entry.stat(follow_symlinks=False))
            except OSError:
                continue  # deleted meanwhile
        statuses = found["status"]
        return {f: stamp + statuses.get(f, b"") for f, stamp in found["link"].items()}

    def _read_summary(self, feature_id: str, stamps: bytes, started: int) -> _Summary:
        """The feature's counts and ids, read from its index files, kept if it may be.

        ``stamps`` were taken before the files are read, so what is read is at least as
        new as they are. A summary is kept only if its counts come from the two files
        alone (see ``_counted``). Once the cache is full, new summaries are not kept (an
        overview walks every feature in turn, which would evict each before its reuse).
        """
        rollup = self._rollup(feature_id)
        counts, from_files = self._counted(rollup)
        summary = _Summary(stamps, tuple(counts), tuple(rollup.ids))
        if from_files and _settled(stamps, started):
            with self._rollup_lock:
                self._drop_summary(feature_id)
                if self._summary_ids + summary.weight <= OVERVIEW_CACHE_IDS:
                    self._summaries[feature_id] = summary
                    self._summary_ids += summary.weight
        return summary

    def _drop_summary(self, feature_id: str) -> None:
        """Forget the feature's summary; the caller holds ``_rollup_lock``."""
        gone = self._summaries.pop(feature_id, None)
        if gone is not None:
            self._summary_ids -= gone.weight

    def _head_times(self) -> dict[str, float]:
        """Instance id -> modification time of its head file."""
        times: dict[str, float] = {}
        try:
            with os.scandir(self.instances_dir) as entries:
                for entry in entries:
                    name = entry.name
                    if name.endswith(".json"):
                        with contextlib.suppress(OSError):  # deleted meanwhile
                            times[name[:-5]] = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            return times  # the folder was removed: nothing is left to date
        except OSError as error:
            where = str(self.instances_dir)
            raise StorageError(f"cannot list {where}: {error.strerror}", path=where) from error
        return times

    def _counts(self, rollup: _Rollup) -> list[StatusCount]:
        return self._counted(rollup)[0]

    def _counted(self, rollup: _Rollup) -> tuple[list[StatusCount], bool]:
        """The feature's counts, and whether they come from its index files alone: an
        id with no status line (listed by hand or by a repair) is counted from its head,
        which can change without them, so such counts are not kept."""
        if rollup.counts is not None:
            return list(rollup.counts), True
        groups: dict[str, list[Any]] = {}
        from_heads = False
        for instance_id in rollup.ids:
            status = rollup.status.get(instance_id)
            if status is None:
                from_heads, status = True, self._status_of(instance_id)
                if status is None:
                    continue  # unreadable or gone: reported by verify and doctor
            group = groups.setdefault(status, [0, instance_id])
            group[0] += 1
            group[1] = instance_id
        rows = sorted(groups.items(), key=lambda item: rollup.place[item[1][1]])
        counts = [StatusCount(status, n, newest) for status, (n, newest) in rows]
        if not from_heads:
            rollup.counts = counts
        return list(counts), not from_heads

    def _status_of(self, instance_id: str) -> str | None:
        """An instance's status from its head: for an id listed by hand or by a repair,
        which has no line in the ``.status`` file."""
        try:
            head = self._read_head(instance_id)
        except CorruptStateError:
            return None
        return None if head is None else _log.head_status(head)

    def _rollup(self, feature_id: str) -> _Rollup:
        """The feature's index files as parsed so far, brought up to date (appends only)."""
        link, status = self._index_file(feature_id), self._index_file(feature_id, "status")
        with self._rollup_lock:
            rollup = self._rollups.pop(feature_id, None) or _Rollup()
            self._rollups[feature_id] = rollup
            while len(self._rollups) > ROLLUP_CACHE_FEATURES:
                self._rollups.popitem(last=False)
            # A 1.x feature has no status file: counted from the heads (see _counted)
            # until `chatflow doctor --fix` writes it (reads never write).
            if self._read_appended(link, rollup, "link"):
                self._read_appended(status, rollup, "status")
            return rollup

    def _read_appended(self, path: str, rollup: _Rollup, kind: str) -> bool:
        """Parse what was appended to ``path`` since the last call; False if it is absent.

        The bytes just before the old end are compared again, so a file rewritten by
        hand (not appended to) is parsed from the start.
        """
        done, seen = (
            (rollup.link_size, rollup.link_tail)
            if kind == "link"
            else (
                rollup.status_size,
                rollup.status_tail,
            )
        )
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY | _NONBLOCK)
        except FileNotFoundError:
            return False
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}", path=str(path)) from error
        with open(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise not_a_file(path)
            size = info.st_size
            if size == done:
                return True
            start = max(done - len(seen), 0)
            file.seek(start)
            raw = file.read(size - start)
        if size < done or raw[: done - start] != seen:  # rewritten, not appended to
            rollup.__init__()  # type: ignore[misc]
            return self._read_appended(path, rollup, kind)
        new = raw[done - start :]
        if kind == "link":
            self._add_ids(new, rollup, path)
            rollup.link_size, rollup.link_tail = size, raw[-64:]
        else:
            end = new.rfind(b"\n") + 1  # a line still being appended is read next time
            for line in new[:end].split(b"\n"):
                instance_id, _, status = line.decode("ascii", "replace").partition(" ")
                if status:
                    rollup.status[instance_id] = status
            rollup.status_size = done + end
            rollup.status_tail = (raw[: done - start] + new[:end])[-64:]
        rollup.counts = None
        return True

    @staticmethod
    def _add_ids(raw: bytes, rollup: _Rollup, path: str) -> None:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise CorruptStateError(f"feature index {path} is not ASCII", path=str(path)) from None
        # The seed wrote comma-separated ids; this store writes one per line. Read both.
        ids = []
        for item in (part.strip() for line in text.splitlines() for part in line.split(",")):
            if not item:
                continue
            if id_problem(item) is not None:
                raise CorruptStateError(
                    f"feature index {path} lists an invalid instance id {item!r}", path=str(path)
                )
            ids.append(item)
        for item in ids:
            if item not in rollup.place:
                rollup.place[item] = len(rollup.ids)
                rollup.ids.append(item)

    def _rebuild_status(self, feature_id: str, rollup: _Rollup) -> None:
        """Write a feature's ``.status`` file from its instances' heads (a 1.x folder;
        ``chatflow doctor --fix``, under the feature's lock)."""
        lines = []
        for instance_id in rollup.ids:
            try:
                head = self._read_head(instance_id)
            except CorruptStateError:
                continue  # reported by verify; the rest of the feature still counts
            if head is not None:
                lines.append(f"{instance_id} {_log.head_status(head)}\n")
        write_atomic(
            Path(self._index_file(feature_id, "status")),
            "".join(lines).encode("ascii", "replace"),
            durable=self.durable,
        )

    def _append_line(self, path: Path | str, line: bytes, *, sync: bool) -> int:
        """Append ``line`` (one ``write``); fdatasync it if ``sync``; return the offset
        it starts at."""
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _BINARY | _NONBLOCK
            fd = os.open(path, flags, 0o644)
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise not_a_file(path)
                start = info.st_size
                try:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view) :]
                    if sync:
                        _datasync(fd)
                except OSError:
                    # Not committed: take back whatever part of the line was written, so
                    # a failed step can never reappear as a committed one.
                    os.ftruncate(fd, start)
                    raise
            finally:
                os.close(fd)
        except StorageError:
            raise
        except OSError as error:
            if error.errno == errno.ENXIO:  # a FIFO no one reads (O_NONBLOCK)
                raise not_a_file(path) from error
            raise StorageError(
                f"cannot append to {path}: {error.strerror or error}", path=str(path)
            ) from error
        return start

    # -- deleting --------------------------------------------------------------------

    def _delete_recorded(self, instance_id: str, record: dict[str, Any]) -> bool:
        """Append the record to ``deletions.jsonl`` (fsynced) first: a crash midway leaves
        a record of a deletion begun, never a deletion without one."""
        if not self._listed_in(instance_id) and not self._has_files(instance_id):
            return False
        line = json.dumps(record, ensure_ascii=True, sort_keys=True).encode("ascii") + b"\n"
        self._append_line(self.deletions_file, line, sync=self.durable)
        return self.delete_instance(instance_id)

    def deletions(self) -> list[dict[str, Any]]:
        raw = self._read_bytes(str(self.deletions_file)) or b""
        found = []
        for line in raw.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    found.append(record)
        return found

    def _listed_in(self, instance_id: str) -> list[str]:
        return [f for f in self.list_features() if instance_id in self.list_instances_by_feature(f)]

    def _has_files(self, instance_id: str) -> bool:
        return os.path.lexists(self._head_file(instance_id)) or os.path.lexists(
            self._folder(instance_id)
        )

    def delete_instance(self, instance_id: str) -> bool:
        # The index entry goes first: a crash midway leaves an unlisted instance (which
        # `chatflow doctor` reports), never an index naming a missing instance.
        validate_id(instance_id, "instance_id")
        head_file, folder = Path(self._head_file(instance_id)), Path(self._folder(instance_id))
        features = self._listed_in(instance_id)
        if not features and not self._has_files(instance_id):
            return False
        for feature_id in features:
            with self._feature_lock(feature_id):
                self._rewrite_index(feature_id, lambda ids: [i for i in ids if i != instance_id])
        with self._instance_lock(instance_id):
            try:
                head_file.unlink(missing_ok=True)
                if folder.is_symlink():
                    folder.unlink()
                elif folder.exists():
                    import shutil  # noqa: PLC0415 - deletion is rare; shutil is slow to import

                    shutil.rmtree(folder)
            except OSError as error:
                raise StorageError(
                    f"cannot delete {folder}: {error.strerror or error}", path=str(folder)
                ) from error
            if self.durable:
                fsync_dir(self.instances_dir)
        return True

    def _rewrite_index(self, feature_id: str, change: Callable[[list[str]], list[str]]) -> None:
        """Replace the feature's index with ``change(ids)``; caller holds the feature lock.
        An index left empty is removed (with its status file), so the feature is no
        longer listed."""
        ids = change(self.list_instances_by_feature(feature_id))
        index = Path(self._index_file(feature_id))
        if ids:
            data = "".join(f"{item}\n" for item in ids).encode("ascii")
            write_atomic(index, data, durable=self.durable)
            return
        try:
            index.unlink(missing_ok=True)
            Path(self._index_file(feature_id, "status")).unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot delete {index}: {error.strerror}", path=str(index)
            ) from error
        with self._rollup_lock:
            self._rollups.pop(feature_id, None)
        if self.durable:
            fsync_dir(self.features_dir)

    # -- schemas ---------------------------------------------------------------------

    def put_schema(
        self, name: str, version: int | str, content_hash: str, schema: dict[str, Any]
    ) -> None:
        self.registered_schemas_dir.mkdir(parents=True, exist_ok=True)
        data = {"name": name, "version": version, "content_hash": content_hash, "schema": schema}
        write_atomic(
            self.registered_schemas_dir / _schema_file_name(name, version),
            _log.canonical(data),
            durable=self.durable,
        )

    def add_schema(
        self,
        name: str,
        version: int | str,
        content_hash: str,
        schema: dict[str, Any],
        *,
        replace: bool = True,
    ) -> SchemaRow | None:
        # One registration at a time, across processes: the check and the write together.
        with FileLock(self.locks_dir / "schemas.lock", self.lock_timeout):
            return super().add_schema(name, version, content_hash, schema, replace=replace)

    def list_schemas(self) -> list[SchemaRow]:
        rows = []
        for path in (
            sorted(self.registered_schemas_dir.glob("*.json"))
            if self.registered_schemas_dir.is_dir()
            else []
        ):
            try:
                data = json.loads(self._read_bytes(str(path)) or b"")
                rows.append(
                    SchemaRow(data["name"], data["version"], data["content_hash"], data["schema"])
                )
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise CorruptStateError(
                    f"registered schema {path} is unreadable: {error}"
                ) from None
        return sorted(rows, key=lambda row: (row.name, str(row.version)))


def _salvaged_size(raw: bytes | None) -> int:
    """The log size a damaged head file still states on its second line (``-1`` if
    none): what proves a log that lost its last lines shorter than it was."""
    import re  # noqa: PLC0415 - damaged heads only

    found = re.match(rb'\{\n "_last_at": \d+,\n "_log_size": (\d+)[,\n]', raw or b"")
    return int(found[1]) if found else -1


def _schema_file_name(name: str, version: int | str) -> str:
    """``<name>.v<version>.json`` where that is a safe file name, else a digest of both
    (a workflow name may be any text); ``2`` and ``"2"`` share a file, as they are one
    version."""
    if id_problem(name) is None and all(part.isdigit() for part in str(version).split(".")):
        return f"{name}.v{version}.json"
    import hashlib  # noqa: PLC0415 - only for names that cannot be file names

    return hashlib.sha256(_log.canonical([name, str(version)])).hexdigest()[:32] + ".json"


def _datasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)
