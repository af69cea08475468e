"""``FileStateStore``: the default store, a plain human-readable folder.

Layout (people read and diff these files)::

    .chatflow/
      instances/wfi_abc123.json                    head: current phase, status, variables...
      instances/wfi_abc123/events.jsonl            the event log, one event per line
      instances/wfi_abc123/tasks/<task>.v<N>.json            task record, version N
      instances/wfi_abc123/tasks/<task>.v<N>.prompt.md       prompt sent to the AI
      instances/wfi_abc123/tasks/<task>.v<N>.ai_response.md  the AI's response
      instances/wfi_abc123/tasks/<task>.{json,prompt.md,ai_response.md}   latest version
      features/feat_user_auth.link                 instance ids, oldest first (appended)
      features/feat_user_auth.status               "<id> <status>" per status change (appended)
      .schemas/<name>.v<version>.json              schemas kept by put_schema
      .locks/                                      sidecar lock files

A step appends one line to ``events.jsonl`` and fdatasyncs it: that is the commit
point. It then replaces the head file (atomically, without fsync) and, if the status
changed, appends a line to the feature's ``.status`` file. A crash after the commit
leaves a head that is behind its log; the next writer (or ``load_state``) sees the log
is longer than the head says and rebuilds the head from the events it is missing.

Concurrency: each instance has its own cross-process lock (``.locks/<id>.lock``), held
across every read-modify-write; a feature's index has its own
(``.locks/feature.<id>.lock``) taken only when an instance is created. Lock order is
always feature, then instance.

Memory: nothing per instance is cached; feature roll-ups cache the parsed ``.link`` and
``.status`` files of at most ``ROLLUP_CACHE_FEATURES`` features, reading only what was
appended since.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chatflow._validation import id_problem, validate_id
from chatflow.errors import CorruptStateError, StorageError
from chatflow.storage import _log
from chatflow.storage._atomic import fsync_dir, write_atomic
from chatflow.storage._log import Event, Head
from chatflow.storage.base import (
    IWorkflowStateStore,
    LogTransaction,
    SchemaRow,
    StatusCount,
    TaskTexts,
    parse_task_texts,
)
from chatflow.storage.file_lock import BaseFileLock, FileLock

ROLLUP_CACHE_FEATURES = 64
LOG_NAME = "events.jsonl"
_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_BINARY: int = getattr(os, "O_BINARY", 0)
_TEXTS = (("prompt", "prompt.md"), ("response", "ai_response.md"))


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
        try:
            for folder in (self.instances_dir, self.features_dir, self.locks_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot create storage folder {self.base_dir}: {error.strerror or error}",
                path=str(self.base_dir),
            ) from error

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.base_dir)!r}, durable={self.durable})"

    # -- paths and locks -------------------------------------------------------------

    def _head_file(self, instance_id: str) -> str:
        return f"{self.instances_dir}{os.sep}{instance_id}.json"

    def _folder(self, instance_id: str) -> str:
        return f"{self.instances_dir}{os.sep}{instance_id}"

    def _log_file(self, instance_id: str) -> str:
        return f"{self.instances_dir}{os.sep}{instance_id}{os.sep}{LOG_NAME}"

    def _log_where(self, instance_id: str) -> str:
        return self._log_file(instance_id)

    def _task_file(self, instance_id: str, task: str, suffix: str) -> Path:
        return Path(self._folder(instance_id), "tasks", f"{task}.{suffix}")

    def _index_file(self, feature_id: str, kind: str = "link") -> Path:
        return self.features_dir / f"{validate_id(feature_id, 'feature_id')}.{kind}"

    def _instance_lock(self, instance_id: str) -> BaseFileLock:
        return FileLock(self.locks_dir / f"{instance_id}.lock", self.lock_timeout)

    def _feature_lock(self, feature_id: str) -> BaseFileLock:
        # Ids cannot contain '.', so this name never collides with an instance's lock.
        return FileLock(self.locks_dir / f"feature.{feature_id}.lock", self.lock_timeout)

    @contextlib.contextmanager
    def _transaction(
        self, instance_id: str, feature_id: str | None = None
    ) -> Iterator[LogTransaction]:
        validate_id(instance_id, "instance_id")
        with contextlib.ExitStack() as stack:
            if feature_id is not None:
                stack.enter_context(self._feature_lock(validate_id(feature_id, "feature_id")))
            stack.enter_context(self._instance_lock(instance_id))
            yield _FileTransaction(self, instance_id, feature_id)

    # -- reading ---------------------------------------------------------------------

    def _read_bytes(self, path: str) -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}", path=path) from error
        with open(fd, "rb") as file:
            return file.read()

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
        """The log's complete events (a torn last line, never acknowledged, is ignored)."""
        if raw is None:
            raw = self._read_bytes(self._log_file(instance_id)) or b""
        where = self._log_file(instance_id)
        lines = raw.split(b"\n")
        events = []
        for line in lines[:-1]:
            event = _log.decode_json(line, instance_id, where)
            if not isinstance(event, dict):
                raise _log.corrupt(instance_id, where, "an event is not an object", path=where)
            events.append(event)
        return events

    def _read(self, instance_id: str) -> tuple[Head, list[Event]] | None:
        validate_id(instance_id, "instance_id")
        raw = self._read_bytes(self._head_file(instance_id))
        log = self._read_bytes(self._log_file(instance_id))
        if raw is not None and log is None:
            return self._upgraded(instance_id)
        if log is None:
            return None
        events = self._events(instance_id, log)
        head = self._usable_head(raw)
        if head is None:
            head = _log.project_head(events)  # lost in a crash: the log is the truth
        return _log.check_head(head, instance_id, self.where), events

    def _upgraded(self, instance_id: str) -> tuple[Head, list[Event]] | None:
        """An instance written by ChatFlow 1.x (one whole-state file), upgraded in place."""
        with self._transaction(instance_id) as txn:
            head = txn.head()
            return None if head is None else (head, txn.events())

    def _read_head(self, instance_id: str) -> Head | None:
        validate_id(instance_id, "instance_id")
        head = self._usable_head(self._read_bytes(self._head_file(instance_id)))
        if head is not None:
            return _log.check_head(head, instance_id, self.where)
        found = self._read(instance_id)
        return None if found is None else found[0]

    def _read_texts(self, instance_id: str, task: str, version: int) -> TaskTexts | None:
        record_raw = self._read_bytes(str(self._task_file(instance_id, task, f"v{version}.json")))
        if record_raw is None:
            return None
        prompt, response = (
            self._read_bytes(str(self._task_file(instance_id, task, f"v{version}.{suffix}"))) or b""
            for _, suffix in _TEXTS
        )
        return parse_task_texts(
            instance_id, self.where, task, version, (record_raw, prompt, response)
        )

    # -- feature index ---------------------------------------------------------------

    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        return list(self._rollup(feature_id).ids)

    def list_features(self) -> list[str]:
        stems = (path.stem for path in self.features_dir.glob("*.link"))
        return sorted(stem for stem in stems if id_problem(stem) is None)

    def feature_status_counts(self, feature_id: str) -> list[StatusCount]:
        rollup = self._rollup(feature_id)
        if rollup.counts is None:
            groups: dict[str, list[Any]] = {}
            for instance_id in rollup.ids:
                status = rollup.status.get(instance_id) or self._status_of(instance_id)
                if status is None:
                    continue  # unreadable or gone: reported by verify and doctor
                group = groups.setdefault(status, [0, instance_id])
                group[0] += 1
                group[1] = instance_id
            rows = sorted(groups.items(), key=lambda item: rollup.place[item[1][1]])
            rollup.counts = [StatusCount(status, n, newest) for status, (n, newest) in rows]
        return list(rollup.counts)

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
            if self._read_appended(link, rollup, "link"):
                if not status.exists():
                    with self._feature_lock(feature_id):
                        if not status.exists():
                            self._rebuild_status(feature_id, rollup)
                self._read_appended(status, rollup, "status")
            return rollup

    def _read_appended(self, path: Path, rollup: _Rollup, kind: str) -> bool:
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
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY)
        except FileNotFoundError:
            return False
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}", path=str(path)) from error
        with open(fd, "rb") as file:
            size = os.fstat(fd).st_size
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
    def _add_ids(raw: bytes, rollup: _Rollup, path: Path) -> None:
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
        """Write a feature's ``.status`` file from its instances' heads (a 1.x folder)."""
        lines = []
        for instance_id in rollup.ids:
            try:
                head = self._read_head(instance_id)
            except CorruptStateError:
                continue  # reported by verify; the rest of the feature still counts
            if head is not None:
                lines.append(f"{instance_id} {_log.head_status(head)}\n")
        write_atomic(
            self._index_file(feature_id, "status"),
            "".join(lines).encode("ascii", "replace"),
            durable=self.durable,
        )

    def _append_line(self, path: Path | str, line: bytes, *, sync: bool) -> int:
        """Append ``line`` (one ``write``); fdatasync it if ``sync``; return the offset
        it starts at."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _BINARY, 0o644)
            try:
                start = os.fstat(fd).st_size
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
        except OSError as error:
            raise StorageError(
                f"cannot append to {path}: {error.strerror or error}", path=str(path)
            ) from error
        return start

    # -- deleting --------------------------------------------------------------------

    def delete_instance(self, instance_id: str) -> bool:
        # The index entry goes first: a crash midway leaves an unlisted instance (which
        # `chatflow doctor` reports), never an index naming a missing instance.
        validate_id(instance_id, "instance_id")
        head_file, folder = Path(self._head_file(instance_id)), Path(self._folder(instance_id))
        features = [
            f for f in self.list_features() if instance_id in self.list_instances_by_feature(f)
        ]
        if not features and not head_file.exists() and not folder.exists():
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
        index = self._index_file(feature_id)
        if ids:
            data = "".join(f"{item}\n" for item in ids).encode("ascii")
            write_atomic(index, data, durable=self.durable)
            return
        try:
            index.unlink(missing_ok=True)
            self._index_file(feature_id, "status").unlink(missing_ok=True)
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

    def list_schemas(self) -> list[SchemaRow]:
        rows = []
        for path in (
            sorted(self.registered_schemas_dir.glob("*.json"))
            if self.registered_schemas_dir.is_dir()
            else []
        ):
            try:
                data = json.loads(path.read_bytes())
                rows.append(
                    SchemaRow(data["name"], data["version"], data["content_hash"], data["schema"])
                )
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise CorruptStateError(
                    f"registered schema {path} is unreadable: {error}"
                ) from None
        return sorted(rows, key=lambda row: (row.name, str(row.version)))


def _schema_file_name(name: str, version: int | str) -> str:
    """``<name>.v<version>.json`` where that is a safe file name, else a digest of both
    (a workflow name may be any text); ``2`` and ``"2"`` share a file, as they are one
    version."""
    if id_problem(name) is None and all(part.isdigit() for part in str(version).split(".")):
        return f"{name}.v{version}.json"
    import hashlib  # noqa: PLC0415 - only for names that cannot be file names

    return hashlib.sha256(_log.canonical([name, str(version)])).hexdigest()[:32] + ".json"


_dumps = json.JSONEncoder(ensure_ascii=False).encode


def _after_newline(path: Path, line: str) -> bytes:
    """``line``, preceded by a newline if the file (a seed's index) does not end in one."""
    try:
        with open(path, "rb") as file:
            file.seek(-1, os.SEEK_END)
            last = file.read(1)
    except (FileNotFoundError, OSError):
        last = b"\n"
    return (line if last == b"\n" else "\n" + line).encode("ascii")


def _datasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


class _FileTransaction(LogTransaction):
    """One instance under its lock: the head checked against the log's end."""

    def __init__(self, store: FileStateStore, instance_id: str, feature_id: str | None) -> None:
        self.store, self.instance_id, self.feature_id = store, instance_id, feature_id
        self.log_path = store._log_file(instance_id)
        self._head: Head | None = None
        self._events: list[Event] | None = None

    def events(self) -> list[Event]:
        if self._events is None:
            self._events = self.store._events(self.instance_id)
        return list(self._events)

    def head(self) -> Head | None:
        if self._head is None:
            self._head = self._load_head()
        return self._head

    def _load_head(self) -> Head | None:
        store, iid = self.store, self.instance_id
        folder = store._folder(iid)
        if os.path.islink(folder) or os.path.islink(os.path.join(folder, "tasks")):
            # A planted link would send this instance's writes outside the storage folder.
            raise StorageError(
                f"{folder} (or its tasks/) is a symlink; refusing to write through it", path=folder
            )
        raw = store._read_bytes(store._head_file(iid))
        try:
            size = os.lstat(self.log_path).st_size
        except FileNotFoundError:
            if raw is None:
                return None
            return self._upgrade(raw)
        head = store._usable_head(raw)
        if head is not None:
            end = head.get("_log_size")
            if end == size and self._tail_matches(head):
                return _log.check_head(head, iid, store.where)
            if isinstance(end, int) and end > size:
                raise _log.corrupt(iid, self.log_path, "its log is shorter than its head says")
            if isinstance(end, int) and end < size:
                return self._catch_up()
            raise _log.corrupt(iid, store._head_file(iid), "the head does not match its log")
        return self._catch_up()

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

    def _catch_up(self) -> Head:
        """Rebuild the head from the log after a crash between a commit and its head
        write (or a lost head file); drop a torn, never-acknowledged last line."""
        raw = self.store._read_bytes(self.log_path) or b""
        end = raw.rfind(b"\n") + 1
        if end < len(raw):
            os.truncate(self.log_path, end)
            raw = raw[:end]
        events = self.store._events(self.instance_id, raw)
        if not events:
            raise _log.corrupt(self.instance_id, self.log_path, "its log is empty")
        broken = _log.chain_problem(events)
        if broken is not None:
            raise _log.corrupt(self.instance_id, self.log_path, f"event {broken[0]}: {broken[1]}")
        head = _log.project_head(events)
        last_at = len(raw) - len(raw[: end - 1].rsplit(b"\n", 1)[-1]) - 1
        self._write_head(head, len(raw), last_at)
        self._status_line(head["state"]["feature_id"], _log.head_status(head))
        self._events = events
        return head

    def _upgrade(self, raw: bytes) -> Head | None:
        """Turn a 1.x whole-state file (and its task files) into a log and a head."""
        store, iid = self.store, self.instance_id
        state = store._parse_head(iid, raw)
        if not isinstance(state, dict) or "history" not in state:
            raise _log.corrupt(iid, store._head_file(iid), "not a ChatFlow instance state")
        from chatflow.storage.base import _check_state  # noqa: PLC0415

        _check_state(state, iid, store._head_file(iid))
        events: list[Event] = []
        head = _log.head_of(state, {})
        events.append(_log.seal({"kind": "created", "state": state}, head, 1, _log.GENESIS))
        for task, texts in self._old_tasks():
            body = {
                "kind": "artifact",
                "task": task,
                "version": 1,
                "record": texts.record,
                "prompt_sha256": _log.sha256_hex(texts.prompt.encode("utf-8")),
                "response_sha256": _log.sha256_hex(texts.response.encode("utf-8")),
            }
            head = _log.advance_head(head, body)
            events.append(_log.seal(body, head, events[-1]["seq"] + 1, events[-1]["hash"]))
        self._write(events, head, None)
        return head

    def _old_tasks(self) -> Iterator[tuple[str, TaskTexts]]:
        """1.x task files (``<task>.json`` and its two texts), linked in as version 1."""
        folder = Path(self.store._folder(self.instance_id), "tasks")
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            task = path.stem
            if id_problem(task) is not None:
                continue
            files = [path] + [path.with_name(f"{task}.{suffix}") for _, suffix in _TEXTS]
            try:
                for file in files:
                    version_one = file.with_name(file.name.replace(f"{task}.", f"{task}.v1.", 1))
                    if not version_one.exists():
                        os.link(file, version_one)
            except OSError as error:
                raise _log.corrupt(
                    self.instance_id, str(folder), f"task {task!r} cannot be upgraded ({error})"
                ) from None
            texts = self.store._read_texts(self.instance_id, task, 1)
            if texts is not None:
                yield task, texts

    def append(
        self, events: list[Event], head: Head, texts: tuple[str, int, TaskTexts] | None
    ) -> None:
        old = self._head
        if texts is not None:
            self._write_texts(*texts)
        self._write(events, head, old)
        self._head = head
        if self._events is not None:
            self._events.extend(events)

    def _write(self, events: list[Event], head: Head, old: Head | None) -> None:
        """Append ``events`` (the commit point), then bring the head and indexes along.

        A create commits when its id is appended to the feature's ``.link`` file (after
        its log): a crash before that leaves an unlisted instance nobody was told of.
        """
        store, iid = self.store, self.instance_id
        data = b"".join(_log.canonical(event) + b"\n" for event in events)
        last = len(_log.canonical(events[-1])) + 1
        status = _log.head_status(head)
        feature_id = head["state"]["feature_id"]
        creating = old is None and self.feature_id is not None
        if old is None and not os.path.lexists(self.log_path):
            _make_folder(Path(store._folder(iid)), durable=store.durable)
        if creating:  # before the id is listed: a listed id always has a status line
            self._status_line(feature_id, status)
        start = store._append_line(self.log_path, data, sync=store.durable)
        if creating:
            if store.durable:
                fsync_dir(Path(store._folder(iid)))
            link = store._index_file(feature_id)
            store._append_line(link, _after_newline(link, f"{iid}\n"), sync=store.durable)
        # Committed. A failure from here on must not report the step as failed (a retry
        # would do it twice): the head and the status file are projections, and the
        # next transaction rebuilds a head that is behind its log.
        with contextlib.suppress(StorageError):
            size = start + len(data)
            self._write_head(head, size, size - last)
            if not creating and (old is None or _log.head_status(old) != status):
                self._status_line(feature_id, status)

    def _status_line(self, feature_id: str, status: str) -> None:
        line = f"{self.instance_id} {status}\n".encode("ascii", "replace")
        self.store._append_line(self.store._index_file(feature_id, "status"), line, sync=False)

    def _write_head(self, head: Head, log_size: int, last_at: int) -> None:
        """Replace the head file: not fsynced, since the log already holds the step."""
        stored = {**head, "_log_size": log_size, "_last_at": last_at}
        # One top-level key per line, each encoded by the C encoder (indent= is slow).
        lines = ",\n".join(f" {_dumps(key)}: {_dumps(stored[key])}" for key in sorted(stored))
        data = ("{\n" + lines + "\n}\n").encode("utf-8")
        write_atomic(Path(self.store._head_file(self.instance_id)), data, durable=False)

    def _write_texts(self, task: str, version: int, texts: TaskTexts) -> None:
        """Write a version's files (fsynced before the log commits them), then point the
        readable ``<task>.*`` names at them."""
        folder = Path(self.store._folder(self.instance_id), "tasks")
        _make_folder(folder, durable=self.store.durable)
        record = json.dumps(texts.record, indent=2, ensure_ascii=False) + "\n"
        files = [("json", record), *((suffix, getattr(texts, key)) for key, suffix in _TEXTS)]
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

    def replace_prefix(self, checkpoint: Event, upto: int) -> None:
        kept = [event for event in self.events() if event["seq"] > upto]
        events = [checkpoint, *kept]
        data = b"".join(_log.canonical(event) + b"\n" for event in events)
        write_atomic(Path(self.log_path), data, durable=self.store.durable)
        last = _log.canonical(events[-1]) + b"\n"
        head = self.head()
        assert head is not None
        self._write_head(head, len(data), len(data) - len(last))
        self._events = events


def _make_folder(folder: Path, *, durable: bool) -> None:
    """Create ``folder`` (a real folder: a planted symlink is refused)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"cannot create {folder}: {error.strerror}", path=str(folder)) from error
    if folder.is_symlink():
        raise StorageError(f"{folder} is a symlink; refusing to write through it", path=str(folder))
    if durable:
        fsync_dir(folder.parent)
