"""Health checks of a ``FileStateStore`` folder (``chatflow doctor``), and safe repairs.

What can go wrong in a folder that people, crashes and other tools also touch:

- ``stale_temp``: ``.<name>.<pid>.<hex>.tmp`` left by a writer killed before its rename
  (``_atomic.write_atomic``). Repair: delete it, if its process is gone.
- ``case_clash``: two ids differing only in case, which collide on case-insensitive
  filesystems (macOS, Windows). Reported only: which one is right is a human call.
- ``stale_head``: a head missing, behind its log or with stale offsets, or a torn and
  never-acknowledged last log line: what the next step repairs by itself. Repair: the
  same, now (the head is a projection, rebuilt from the log; torn bytes are kept).
- ``damaged_head``: a head file that is unreadable (the next step moves it aside and
  rebuilds it) or readable but disagrees with a whole log (steps refuse the instance).
  Repair: move the head aside and rebuild it from the log.
- ``damaged_log``: a log that does not verify (edited, cut, reordered, a torn line no
  head proves unacknowledged) or is missing: nothing can rebuild it. Repair: move the
  instance's files aside, whole, into ``quarantine/``; it stays listed in its feature
  and is reported as ``quarantined_instance`` until a person restores or deletes it.
- ``old_format``: a ChatFlow 1.x state file. Repair: upgrade it to a log and a head.
- ``dangling_index_entry``: a feature index lists an instance with no file at all (no
  head, no log, nothing moved aside). Repair: drop the entry (there is nothing to list).
- ``unindexed_instance``: a readable instance its feature's index does not list (a
  crash between the two writes of ``create_state``). Repair: append it to the index.
- ``unreadable_instance`` / ``unreadable_index``: a file that does not parse, a FIFO or
  a symlink where a file or folder belongs. Reported only.

Checking reads only. Repairs take the same locks as the store's writers and re-check
under them; nothing is deleted but stale temp files: damaged bytes are moved aside.
Every repair (these and the store's own) is logged and recorded in ``repairs.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chatflow._validation import id_problem
from chatflow.errors import ChatFlowError, CorruptStateError, StorageError, ValidationError

if TYPE_CHECKING:
    from chatflow.storage.file_state_store import FileStateStore, Found

_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
# A temp file this old is stale even if its pid is alive again (pids get reused).
STALE_TEMP_AGE_S = 3600.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Finding:
    """One problem: what kind, where, a sentence for people, and whether --fix repairs it."""

    kind: str
    path: str
    message: str
    fixable: bool
    instance_id: str | None = None
    feature_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "path": self.path,
            "message": self.message,
            "fixable": self.fixable,
            "instance_id": self.instance_id,
            "feature_id": self.feature_id,
        }


def check(store: FileStateStore, progress: Progress | None = None) -> list[Finding]:
    """Every problem found in the store's folder (reads only)."""
    findings = list(_stale_temps(store))
    findings += _case_clashes(store)
    indexed: dict[str, str] = {}
    present = set(_instance_ids(store))
    for feature_id in store.list_features():
        try:
            ids = store.list_instances_by_feature(feature_id)
        except ChatFlowError as error:
            findings.append(
                Finding("unreadable_index", str(store._index_file(feature_id)), str(error), False)
            )
            continue
        for instance_id in ids:
            indexed.setdefault(instance_id, feature_id)
            if instance_id not in present:
                findings.append(_absent(store, feature_id, instance_id))
    ids = sorted(present)
    for done, instance_id in enumerate(ids):
        if progress is not None:
            progress(done, len(ids))
        findings += _check_instance(store, instance_id, indexed)
    return findings


def _absent(store: FileStateStore, feature_id: str, instance_id: str) -> Finding:
    """A listed instance with no head and no log: moved aside, or gone."""
    index = str(store._index_file(feature_id))
    kept = store.quarantined(instance_id)
    if kept:
        message = (
            f"instance {instance_id!r} of feature {feature_id!r} was moved aside as damaged "
            f"({', '.join(kept)}): restore it by hand, or `chatflow delete {instance_id}`"
        )
        return Finding("quarantined_instance", index, message, False, instance_id, feature_id)
    message = f"feature {feature_id!r} lists instance {instance_id!r}, which has no files"
    return Finding("dangling_index_entry", index, message, True, instance_id, feature_id)


def _check_instance(
    store: FileStateStore, instance_id: str, indexed: dict[str, str]
) -> list[Finding]:
    from chatflow.domain.models import WorkflowInstanceState  # noqa: PLC0415

    path = store._head_file(instance_id)
    try:
        found = _writable(store, instance_id)
        if found is not None:
            return [found]
        data = store.load_state(instance_id)
        if data is None:  # removed while we looked
            return []
        WorkflowInstanceState.from_dict(data)
    except ChatFlowError as error:
        return [Finding("unreadable_instance", path, str(error), False, instance_id)]
    feature_id = data["feature_id"]
    if instance_id in indexed:
        return []
    message = f"instance {instance_id!r} is not listed in feature {feature_id!r}'s index"
    fixable = isinstance(feature_id, str) and id_problem(feature_id) is None
    return [Finding("unindexed_instance", path, message, fixable, instance_id, feature_id)]


def _writable(store: FileStateStore, instance_id: str) -> Finding | None:
    """What a step on the instance would have to repair, or would refuse (read only)."""
    path, folder = store._head_file(instance_id), store._folder(instance_id)
    if os.path.islink(folder):
        message = f"{folder} is a symlink: steps refuse to write through it"
        return Finding("unreadable_instance", folder, message, False, instance_id)
    raw = store._read_bytes(path)
    log = store._read_bytes(store._log_file(instance_id))
    if log is None:
        if raw is not None and _is_old_state(raw):
            message = f"instance {instance_id!r} is a ChatFlow 1.x state file"
            return Finding("old_format", path, message, True, instance_id)
        message = f"instance {instance_id!r} has a head but no log: nothing can rebuild it"
        return Finding("damaged_log", path, message, True, instance_id)
    try:
        return _verdict(store, instance_id, store._inspect(instance_id, raw, log))
    except CorruptStateError as error:
        return Finding("damaged_log", store._log_file(instance_id), str(error), True, instance_id)


def _verdict(store: FileStateStore, instance_id: str, found: Found) -> Finding | None:
    """What ``_inspect``'s reading means for the next step on the instance."""
    from chatflow.storage import _log  # noqa: PLC0415

    path = store._head_file(instance_id)
    if not _log.is_tail_of(found.events[-1], found.head):
        if found.head is not found.stored:  # the log's own projection: the log lies
            raise _log.corrupt(instance_id, path, "its last event does not record its state")
        kind, what = "damaged_head", "its head file disagrees with its log, which is whole"
    elif found.damaged:
        kind, what = "damaged_head", "its head file is damaged; its log is whole"
    elif found.torn_at is not None:
        kind, what = "stale_head", "its log ends in a torn, never-acknowledged line"
    elif found.stale is not None:
        kind, what = "stale_head", found.stale
    else:
        return None
    return Finding(kind, path, f"instance {instance_id!r}: {what}", True, instance_id)


def _is_old_state(raw: bytes) -> bool:
    try:
        state = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(state, dict) and "history" in state


def _instance_ids(store: FileStateStore) -> list[str]:
    """Every instance with a head file or a folder (a head is only a projection)."""
    try:
        names = os.listdir(store.instances_dir)
    except FileNotFoundError:
        return []
    stems = {name[: -len(".json")] if name.endswith(".json") else name for name in names}
    return sorted(stem for stem in stems if id_problem(stem) is None)


def _stale_temps(store: FileStateStore) -> Iterator[Finding]:
    folders = [store.instances_dir, store.features_dir]
    folders += sorted(store.instances_dir.glob("*/tasks"))
    now = time.time()
    for folder in folders:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            match = _TEMP.match(name)
            if match is None:
                continue
            path = folder / name
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age >= STALE_TEMP_AGE_S or not _alive(int(match["pid"])):
                message = f"temp file left by a killed writer (pid {match['pid']})"
                yield Finding("stale_temp", str(path), message, True)


def _alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # no cheap check: rely on the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _case_clashes(store: FileStateStore) -> Iterator[Finding]:
    for folder, suffix, what in (
        (store.instances_dir, ".json", "instance"),
        (store.features_dir, ".link", "feature"),
    ):
        groups: dict[str, list[str]] = {}
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            stem = name[: -len(suffix)]
            if name.endswith(suffix) and id_problem(stem) is None:
                groups.setdefault(stem.casefold(), []).append(stem)
        for stems in groups.values():
            if len(stems) > 1:
                listed = ", ".join(sorted(stems))
                message = f"{what} ids differ only in case ({listed}); they collide on "
                message += "case-insensitive filesystems"
                yield Finding("case_clash", str(folder), message, False)


def fix(store: FileStateStore, findings: list[Finding]) -> list[Finding]:
    """Repair the fixable findings; return those repaired (each re-checked under its lock)."""
    fixed = []
    for finding in findings:
        if finding.fixable and _repair(store, finding):
            fixed.append(finding)
    return fixed


def _repair(store: FileStateStore, finding: Finding) -> bool:
    if finding.kind == "stale_temp":
        try:
            Path(finding.path).unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            raise StorageError(f"cannot delete {finding.path}: {error.strerror}") from error
        return True
    instance_id = finding.instance_id
    if instance_id is None:
        raise ValidationError(f"finding {finding.kind} names no instance")
    if finding.kind in ("stale_head", "damaged_head", "damaged_log", "old_format"):
        return _repair_instance(store, finding.kind, instance_id)
    feature_id = finding.feature_id
    if feature_id is None:
        raise ValidationError(f"finding {finding.kind} names no feature")
    with store._feature_lock(feature_id):
        ids = store.list_instances_by_feature(feature_id)
        if (
            finding.kind == "dangling_index_entry"
            and instance_id in ids
            and instance_id not in _instance_ids(store)
            and not store.quarantined(instance_id)
        ):
            store._rewrite_index(feature_id, lambda old: [i for i in old if i != instance_id])
            store._repaired(instance_id, f"dropped from feature {feature_id!r}: it has no files")
            return True
        if finding.kind == "unindexed_instance" and instance_id not in ids:
            store._rewrite_index(feature_id, lambda old: [*old, instance_id])
            store._repaired(instance_id, f"listed in feature {feature_id!r}'s index")
            return True
    return False


def _repair_instance(store: FileStateStore, kind: str, instance_id: str) -> bool:
    """Re-check under the instance's lock, then rebuild what can be rebuilt and move
    aside what cannot."""
    with store._instance_lock(instance_id):
        found = _writable(store, instance_id)
        if found is None or found.kind != kind:
            return False
        if kind == "damaged_log":
            for path in (store._head_file(instance_id), store._folder(instance_id)):
                if os.path.lexists(path):
                    kept = store._move_aside(path)
                    store._repaired(instance_id, "moved aside: its log cannot be read", kept)
            return True
        if kind == "damaged_head":
            kept = store._move_aside(store._head_file(instance_id))
            store._repaired(instance_id, "its damaged head file was moved aside", kept)
        with store._transaction(instance_id) as txn:  # rebuilds, as a step would
            txn.head()
    return True
