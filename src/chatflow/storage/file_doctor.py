"""Health checks of a ``FileStateStore`` folder (``chatflow doctor``), and safe repairs.

What can go wrong in a folder that people, crashes and other tools also touch:

- ``stale_temp``: ``.<name>.<pid>.<hex>.tmp`` left by a writer killed before its rename
  (``_atomic.write_atomic``). Repair: delete it, if its process is gone.
- ``case_clash``: two ids differing only in case, which collide on case-insensitive
  filesystems (macOS, Windows). Reported only: which one is right is a human call.
- ``dangling_index_entry``: a feature index lists an instance whose file is missing;
  roll-ups of that feature fail. Repair: drop the entry (there is nothing to list).
- ``unindexed_instance``: a readable instance its feature's index does not list (a
  crash between the two writes of ``create_state``). Repair: append it to the index.
- ``unreadable_instance`` / ``unreadable_index``: a file that does not parse. Reported
  only: the bytes may still matter to whoever repairs them by hand.

Repairs take the same locks as the store's writers and re-check under them.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chatflow._validation import id_problem
from chatflow.errors import ChatFlowError, StorageError, ValidationError

if TYPE_CHECKING:
    from chatflow.storage.file_state_store import FileStateStore

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
            path = store.instances_dir / f"{instance_id}.json"
            if not path.exists():
                message = (
                    f"feature {feature_id!r} lists instance {instance_id!r}, but {path} is missing"
                )
                findings.append(
                    Finding(
                        "dangling_index_entry",
                        str(store._index_file(feature_id)),
                        message,
                        True,
                        instance_id,
                        feature_id,
                    )
                )
    files = _instance_files(store)
    for done, path in enumerate(files):
        if progress is not None:
            progress(done, len(files))
        findings += _check_instance(store, path, indexed)
    return findings


def _check_instance(store: FileStateStore, path: Path, indexed: dict[str, str]) -> list[Finding]:
    from chatflow.core.models import WorkflowInstanceState  # noqa: PLC0415

    instance_id = path.stem
    try:
        data = store.load_state(instance_id)
        if data is None:  # removed while we looked
            return []
        WorkflowInstanceState.from_dict(data)
    except ChatFlowError as error:
        return [Finding("unreadable_instance", str(path), str(error), False, instance_id)]
    feature_id = data["feature_id"]
    if instance_id in indexed:
        return []
    message = f"instance {instance_id!r} is not listed in feature {feature_id!r}'s index"
    fixable = isinstance(feature_id, str) and id_problem(feature_id) is None
    return [Finding("unindexed_instance", str(path), message, fixable, instance_id, feature_id)]


def _instance_files(store: FileStateStore) -> list[Path]:
    try:
        names = sorted(os.listdir(store.instances_dir))
    except FileNotFoundError:
        return []
    stems = (name[: -len(".json")] for name in names if name.endswith(".json"))
    return [store.instances_dir / f"{stem}.json" for stem in stems if id_problem(stem) is None]


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
    feature_id, instance_id = finding.feature_id, finding.instance_id
    if feature_id is None or instance_id is None:
        raise ValidationError(f"finding {finding.kind} names no feature and instance")
    path = store.instances_dir / f"{instance_id}.json"
    with store._feature_lock(feature_id):
        ids = store.list_instances_by_feature(feature_id)
        if finding.kind == "dangling_index_entry" and instance_id in ids and not path.exists():
            store._rewrite_index(feature_id, lambda old: [i for i in old if i != instance_id])
            return True
        if finding.kind == "unindexed_instance" and instance_id not in ids and path.exists():
            store._rewrite_index(feature_id, lambda old: [*old, instance_id])
            return True
    return False
