"""``FileStateStore``: the default store, a plain human-readable folder.

Layout (people read and diff these files, so it is kept stable)::

    .chatflow/
      instances/wfi_abc123.json                                   instance state
      instances/wfi_abc123/tasks/<phase>.json                     task record
      instances/wfi_abc123/tasks/<phase>.prompt.md                prompt sent to the AI
      instances/wfi_abc123/tasks/<phase>.ai_response.md           the AI's response
      features/feat_user_auth.link                                instance ids, oldest first
      .locks/                                                     sidecar lock files

Concurrency: each instance has its own cross-process lock (``.locks/<id>.lock``), held
across every read-modify-write; a feature's index has its own (``.locks/feature.<id>.lock``)
taken only when an instance is created. Lock order is always feature, then instance.

Caching: file contents are cached per instance together with the file's
(inode, size, mtime) signature. Every write replaces the file (new inode) and, under
the lock, makes its mtime strictly greater than the previous version's, so a cached copy
is served only while the file on disk is exactly the one it was read from.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from chatflow._validation import id_problem, validate_id
from chatflow.errors import CorruptStateError, StorageError, ValidationError
from chatflow.storage._atomic import fsync_dir, write_atomic
from chatflow.storage.base import (
    InstanceSummary,
    IWorkflowStateStore,
    Mutation,
    StateDict,
    not_found,
    summarize,
)
from chatflow.storage.file_lock import BaseFileLock, FileLock

_STATE_KEYS = ("instance_id", "feature_id", "status", "current_phase")


class _Signature(NamedTuple):
    inode: int
    size: int
    mtime_ns: int


class _Cached(NamedTuple):
    """One version of an instance file as this process last saw it.

    ``state`` and ``lines`` are kept only for versions this process wrote: the next
    ``update_state`` lends ``state`` to its mutation and re-encodes only the list items
    (history entries, events) that changed, so a step costs about the same at 10 or
    1,000 history entries.
    """

    signature: _Signature
    raw: bytes
    summary: InstanceSummary
    state: StateDict | None = None
    lines: dict[str, list[str]] | None = None


def _signature(stat: os.stat_result) -> _Signature:
    return _Signature(stat.st_ino, stat.st_size, stat.st_mtime_ns)


_dumps = json.JSONEncoder(ensure_ascii=False).encode


def encode_state(state: StateDict) -> bytes:
    """Readable, diffable JSON: one top-level key per line, one list item per line."""
    return _encode(state, _encode_lists(state, None, None))


def _encode_lists(
    state: StateDict, previous: StateDict | None, previous_lines: dict[str, list[str]] | None
) -> dict[str, list[str]]:
    """One line per item of every top-level list, reusing the line of each item equal to
    the previous version's item at the same position (comparing is far cheaper than
    encoding, and closed history entries rarely change)."""
    lines = {}
    for key, value in state.items():
        if not isinstance(value, list) or not value:
            continue
        old = previous.get(key) if previous is not None else None
        old_lines = previous_lines.get(key) if previous_lines is not None else None
        if not isinstance(old, list) or old_lines is None:
            old, old_lines = [], []
        reusable = min(len(old), len(old_lines))
        lines[key] = [
            old_lines[index] if index < reusable and item == old[index] else f"    {_dumps(item)}"
            for index, item in enumerate(value)
        ]
    return lines


def _encode(state: StateDict, lines: dict[str, list[str]]) -> bytes:
    # Built piece by piece from the C encoder: json.dumps(indent=...) falls back to the
    # pure-Python encoder and would make long histories slow to save.
    parts = []
    for key, value in state.items():
        items = lines.get(key)
        if items is None:
            parts.append(f"  {_dumps(key)}: {_dumps(value)}")
        else:
            joined = ",\n".join(items)
            parts.append(f"  {_dumps(key)}: [\n{joined}\n  ]")
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode("utf-8")


def _snapshot_lists(state: StateDict) -> StateDict:
    """Copies of the state's top-level lists and their dict items: the base the next
    version is compared against, since a mutation may change the lent state in place."""
    return {
        key: [dict(item) if isinstance(item, dict) else item for item in value]
        for key, value in state.items()
        if isinstance(value, list)
    }


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
        self.durable = durable
        self.lock_timeout = lock_timeout
        self._cache: dict[str, _Cached] = {}
        self._index_cache: dict[str, tuple[_Signature, tuple[str, ...]]] = {}
        self._cache_lock = threading.Lock()
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

    def _instance_file(self, instance_id: str) -> Path:
        return self.instances_dir / f"{validate_id(instance_id, 'instance_id')}.json"

    def _tasks_dir(self, instance_id: str) -> Path:
        return self.instances_dir / validate_id(instance_id, "instance_id") / "tasks"

    def _index_file(self, feature_id: str) -> Path:
        return self.features_dir / f"{validate_id(feature_id, 'feature_id')}.link"

    def _instance_lock(self, instance_id: str) -> BaseFileLock:
        return FileLock(self.locks_dir / f"{instance_id}.lock", self.lock_timeout)

    def _feature_lock(self, feature_id: str) -> BaseFileLock:
        # Ids cannot contain '.', so this name never collides with an instance's lock.
        return FileLock(self.locks_dir / f"feature.{feature_id}.lock", self.lock_timeout)

    # -- reading ---------------------------------------------------------------------

    def _read(self, instance_id: str) -> _Cached | None:
        """The instance's current file, from the cache when the file is unchanged."""
        return self._read_path(instance_id, self._instance_file(instance_id))

    def _read_path(self, instance_id: str, path: Path | str) -> _Cached | None:
        try:
            signature = _signature(os.stat(path))
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}", path=str(path)) from error
        cached = self._cache.get(instance_id)
        if cached is not None and cached.signature == signature:
            return cached
        try:
            with open(path, "rb") as file:
                # fstat on the open file: its contents and signature belong to one version.
                signature = _signature(os.fstat(file.fileno()))
                raw = file.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}", path=str(path)) from error
        entry = _Cached(signature, raw, summarize(self._decode(raw, Path(path), instance_id)))
        with self._cache_lock:
            self._cache[instance_id] = entry
        return entry

    @staticmethod
    def _decode(raw: bytes, path: Path, instance_id: str) -> StateDict:
        try:
            state = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CorruptStateError(
                f"state file {path} is corrupt: {error}", path=str(path), instance_id=instance_id
            ) from None
        if not isinstance(state, dict) or any(key not in state for key in _STATE_KEYS):
            raise CorruptStateError(
                f"state file {path} is not a ChatFlow instance state "
                f"(expected an object with {', '.join(_STATE_KEYS)})",
                path=str(path),
                instance_id=instance_id,
            )
        if state["instance_id"] != instance_id:
            raise CorruptStateError(
                f"state file {path} holds instance {state['instance_id']!r}, not {instance_id!r}",
                path=str(path),
                instance_id=instance_id,
            )
        return state

    def load_state(self, instance_id: str) -> StateDict | None:
        cached = self._read(instance_id)
        if cached is None:
            return None
        return self._decode(cached.raw, self._instance_file(instance_id), instance_id)

    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        path = self._index_file(feature_id)
        try:
            with open(path, "rb") as file:
                signature = _signature(os.fstat(file.fileno()))
                cached = self._index_cache.get(feature_id)
                if cached is not None and cached[0] == signature:
                    return list(cached[1])
                raw = file.read()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StorageError(
                f"cannot read feature index {path}: {error.strerror}", path=str(path)
            ) from error
        ids = self._parse_index(raw, path)
        with self._cache_lock:
            self._index_cache[feature_id] = (signature, tuple(ids))
        return ids

    @staticmethod
    def _parse_index(raw: bytes, path: Path) -> list[str]:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise CorruptStateError(f"feature index {path} is not ASCII", path=str(path)) from None
        # The seed wrote comma-separated ids; this store writes one per line. Read both.
        ids = [item.strip() for line in text.splitlines() for item in line.split(",")]
        ids = [item for item in ids if item]
        for item in ids:
            if id_problem(item) is not None:
                raise CorruptStateError(
                    f"feature index {path} lists an invalid instance id {item!r}", path=str(path)
                )
        return ids

    def list_feature_summaries(self, feature_id: str) -> list[InstanceSummary]:
        # The hot path of feature roll-ups: one stat per instance, string paths (pathlib
        # would cost more than the stat), ids already validated by the index reader.
        folder = str(self.instances_dir)
        summaries = []
        for instance_id in self.list_instances_by_feature(feature_id):
            cached = self._read_path(instance_id, f"{folder}{os.sep}{instance_id}.json")
            if cached is None:
                index = self._index_file(feature_id)
                raise CorruptStateError(
                    f"feature index {index} lists instance {instance_id!r}, "
                    f"but {self._instance_file(instance_id)} is missing",
                    path=str(index),
                    instance_id=instance_id,
                )
            summaries.append(cached.summary)
        return summaries

    def list_features(self) -> list[str]:
        stems = (path.stem for path in self.features_dir.glob("*.link"))
        return sorted(stem for stem in stems if id_problem(stem) is None)

    def load_task_artifacts(self, instance_id: str, phase_name: str) -> dict[str, Any] | None:
        base = self._tasks_dir(instance_id) / validate_id(phase_name, "phase_name")
        record_path = base.with_name(f"{phase_name}.json")
        try:
            record_text = record_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(record_text)
            prompt = base.with_name(f"{phase_name}.prompt.md").read_bytes().decode("utf-8")
            response = base.with_name(f"{phase_name}.ai_response.md").read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CorruptStateError(
                f"task artifacts of phase {phase_name!r} in {base.parent} are unreadable: {error}",
                path=str(base.parent),
                instance_id=instance_id,
            ) from error
        return {"record": record, "prompt": prompt, "response": response}

    def list_task_phases(self, instance_id: str) -> list[str]:
        # A phase's record file commits its texts (written last), so it marks the phase.
        # Temp files start with '.', which no phase name can, so they are never listed.
        try:
            names = os.listdir(self._tasks_dir(instance_id))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StorageError(
                f"cannot list {self._tasks_dir(instance_id)}: {error.strerror}",
                path=str(self._tasks_dir(instance_id)),
            ) from error
        stems = (name[: -len(".json")] for name in names if name.endswith(".json"))
        return sorted(stem for stem in stems if id_problem(stem) is None)

    # -- writing ---------------------------------------------------------------------

    def _write(
        self, instance_id: str, state: StateDict, previous: _Cached | None, *, lend: bool = False
    ) -> None:
        """Replace the instance's file; caller holds the instance lock.

        ``lend`` keeps ``state`` itself for the next ``update_state``: only for dicts the
        store owns (a mutation's result), never for a caller's dict it could still change.
        """
        if previous is not None:
            lines = _encode_lists(state, previous.state, previous.lines)
        else:
            lines = _encode_lists(state, None, None)
        raw = _encode(state, lines)
        min_mtime = previous.signature.mtime_ns + 1 if previous is not None else 0
        try:
            stat = write_atomic(
                self._instance_file(instance_id), raw, durable=self.durable, min_mtime_ns=min_mtime
            )
        except BaseException:
            self._forget(instance_id)
            raise
        kept = (state, lines) if lend else (None, None)
        entry = _Cached(_signature(stat), raw, summarize(state), *kept)
        with self._cache_lock:
            self._cache[instance_id] = entry

    def _forget(self, instance_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(instance_id, None)

    def create_state(self, state_data: StateDict) -> None:
        instance_id = validate_id(state_data["instance_id"], "instance_id")
        feature_id = validate_id(state_data["feature_id"], "feature_id")
        with self._feature_lock(feature_id), self._instance_lock(instance_id):
            if self._instance_file(instance_id).exists():
                raise ValidationError(
                    f"workflow instance {instance_id!r} already exists", instance_id=instance_id
                )
            self._write(instance_id, state_data, None)
            self._append_to_index(feature_id, instance_id)

    def _append_to_index(self, feature_id: str, instance_id: str) -> None:
        """Add an id to the feature's index; caller holds the feature lock.

        The instance file is written first, so a crash in between leaves at most an
        unlisted instance that was never acknowledged, never an index naming nothing.
        """
        self._rewrite_index(feature_id, lambda ids: [*ids, instance_id])

    def save_state(self, instance_id: str, state_data: StateDict) -> None:
        validate_id(instance_id, "instance_id")
        feature_id = validate_id(state_data["feature_id"], "feature_id")
        with self._feature_lock(feature_id), self._instance_lock(instance_id):
            previous = self._read(instance_id)
            self._write(instance_id, state_data, previous)
            if previous is None:
                self._append_to_index(feature_id, instance_id)

    def update_state(self, instance_id: str, mutate: Mutation) -> StateDict:
        path = self._instance_file(instance_id)
        with self._instance_lock(instance_id):
            previous = self._read(instance_id)
            if previous is None:
                raise not_found(instance_id)
            if previous.state is not None:
                # Lent, not copied: the cache entry is replaced by this update or
                # forgotten if it fails, so a mutation that edits it in place and then
                # raises can never leave a changed state in the cache.
                current = previous.state
                previous = previous._replace(state=_snapshot_lists(current))
            else:
                current = self._decode(previous.raw, path, instance_id)
            version = current.get("version", 0)
            try:
                new = mutate(current)
                new["version"] = version + 1
            except BaseException:
                self._forget(instance_id)
                raise
            self._write(instance_id, new, previous, lend=True)
            return new

    def delete_instance(self, instance_id: str) -> bool:
        # The index entry goes first: a crash midway leaves an unlisted instance (which
        # `chatflow doctor` reports), never an index naming a missing file, which would
        # break the feature's roll-up.
        path = self._instance_file(instance_id)
        features = [
            f for f in self.list_features() if instance_id in self.list_instances_by_feature(f)
        ]
        if not features and not path.exists():
            return False
        for feature_id in features:
            with self._feature_lock(feature_id):
                self._rewrite_index(feature_id, lambda ids: [i for i in ids if i != instance_id])
        with self._instance_lock(instance_id):
            try:
                path.unlink(missing_ok=True)
                if (self.instances_dir / instance_id).exists():
                    import shutil  # noqa: PLC0415 - deletion is rare; shutil is slow to import

                    shutil.rmtree(self.instances_dir / instance_id)
            except OSError as error:
                raise StorageError(
                    f"cannot delete {path}: {error.strerror or error}", path=str(path)
                ) from error
            finally:
                self._forget(instance_id)
            if self.durable:
                fsync_dir(self.instances_dir)
        return True

    def _rewrite_index(self, feature_id: str, change: Callable[[list[str]], list[str]]) -> None:
        """Replace the feature's index with ``change(ids)``; caller holds the feature lock.
        An index left empty is removed, so the feature is no longer listed."""
        ids = change(self.list_instances_by_feature(feature_id))
        index = self._index_file(feature_id)
        if ids:
            data = "".join(f"{item}\n" for item in ids).encode("ascii")
            write_atomic(index, data, durable=self.durable)
            return
        try:
            index.unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot delete {index}: {error.strerror}", path=str(index)
            ) from error
        if self.durable:
            fsync_dir(self.features_dir)

    def save_task_artifacts(
        self,
        feature_id: str,
        instance_id: str,
        phase_name: str,
        task_record_data: dict[str, Any],
        prompt_content: str,
        ai_response_content: str,
    ) -> None:
        validate_id(feature_id, "feature_id")
        tasks_dir = self._tasks_dir(instance_id)
        validate_id(phase_name, "phase_name")
        with self._instance_lock(instance_id):
            try:
                tasks_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StorageError(
                    f"cannot create {tasks_dir}: {error.strerror}", path=str(tasks_dir)
                ) from error
            # The record goes last: it carries the checksums, so it commits the texts.
            texts = (("prompt.md", prompt_content), ("ai_response.md", ai_response_content))
            for suffix, text in texts:
                write_atomic(
                    tasks_dir / f"{phase_name}.{suffix}", text.encode("utf-8"), durable=self.durable
                )
            record = json.dumps(task_record_data, indent=2, ensure_ascii=False) + "\n"
            write_atomic(
                tasks_dir / f"{phase_name}.json", record.encode("utf-8"), durable=self.durable
            )
