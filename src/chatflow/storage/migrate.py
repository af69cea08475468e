"""Copy every instance, history and artifact from one store to another, verified.

``migrate(".chatflow", "sqlite:///state.db")`` (or ``chatflow migrate --from ... --to ...``)
walks the source feature by feature in creation order, so the target's feature indexes
keep the same order and ``latest_instance_id`` stays the same instance.

Safe to re-run: an instance already identical in the target is left alone, one with an
older ``version`` there is brought up to date, and one that is newer or different there
(someone kept working in the target) is reported as a conflict and never overwritten.
Artifacts are checked against the SHA-256 checksums in their task record before they are
copied, and read back from the target afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatflow._text import counted
from chatflow.errors import CorruptStateError
from chatflow.storage._log import sha256_hex
from chatflow.storage._open import is_store_url, open_store, require_store
from chatflow.storage.base import IWorkflowStateStore

StoreLike = IWorkflowStateStore | str | os.PathLike[str]


@dataclass
class MigrationReport:
    """What ``migrate`` did; ``conflicts`` lists instances it refused to overwrite."""

    features: int = 0
    instances_copied: int = 0
    instances_updated: int = 0
    instances_unchanged: int = 0
    artifacts_copied: int = 0
    artifacts_unchanged: int = 0
    schemas_copied: int = 0
    conflicts: list[str] = field(default_factory=list)

    @property
    def instances_verified(self) -> int:
        """Instances now identical in source and target."""
        return self.instances_copied + self.instances_updated + self.instances_unchanged

    def summary(self) -> str:
        """One line for people: counts of what was copied, updated and left alone."""
        text = (
            f"{counted(self.instances_copied, 'instance')} copied, "
            f"{self.instances_updated} updated, {self.instances_unchanged} already present; "
            f"{counted(self.artifacts_copied, 'artifact')} copied, "
            f"{self.artifacts_unchanged} already present; "
            f"{counted(self.instances_verified, 'instance')} in "
            f"{counted(self.features, 'feature')} verified; "
            f"{counted(self.schemas_copied, 'registered schema')} copied"
        )
        if self.conflicts:
            conflicts = counted(len(self.conflicts), "conflict")
            text += f"; {conflicts} left untouched: {', '.join(self.conflicts)}"
        return text


def display_name(where: StoreLike) -> str:
    """How to name a store in messages: its URL with any password masked."""
    if isinstance(where, IWorkflowStateStore):
        return repr(where)
    text = os.fspath(where)
    if not is_store_url(text):
        return text
    parts = urlsplit(text)
    if parts.password is None:
        return text
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def migrate(
    source: StoreLike,
    target: StoreLike,
    *,
    durable: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> MigrationReport:
    """Copy ``source`` into ``target`` (stores, folders or store URLs); return the report.

    Stores given as folders or URLs are opened here and closed afterwards; a source
    folder or SQLite file must already exist (a typo must not migrate nothing).
    ``progress(done, total)`` is called before each instance (for a progress bar).
    """
    opened: list[IWorkflowStateStore] = []
    try:
        src = _open(source, opened, must_exist=True, durable=durable)
        dst = _open(target, opened, must_exist=False, durable=durable)
        report = MigrationReport()
        features = [(f, src.list_instances_by_feature(f)) for f in src.list_features()]
        total, done = sum(len(ids) for _, ids in features), 0
        for feature_id, ids in features:
            report.features += 1
            for instance_id in ids:
                if progress is not None:
                    progress(done, total)
                done += 1
                if _copy_instance(src, dst, instance_id, report):
                    _copy_artifacts(src, dst, feature_id, instance_id, report)
            _verify_order(src, dst, feature_id)
        _copy_schemas(src, dst, report)
        if progress is not None:
            progress(done, total)
        return report
    finally:
        for store in opened:
            store.close()


def _copy_schemas(
    src: IWorkflowStateStore, dst: IWorkflowStateStore, report: MigrationReport
) -> None:
    """Copy registered schemas the target lacks; a different one there is a conflict."""
    present = {(row.name, str(row.version)): row.content_hash for row in dst.list_schemas()}
    for row in src.list_schemas():
        there = present.get((row.name, str(row.version)))
        if there is None:
            dst.put_schema(row.name, row.version, row.content_hash, row.schema)
            report.schemas_copied += 1
        elif there != row.content_hash:
            report.conflicts.append(f"schema {row.name!r} version {row.version!r}")


def _open(
    where: StoreLike, opened: list[IWorkflowStateStore], *, must_exist: bool, durable: bool
) -> IWorkflowStateStore:
    if isinstance(where, IWorkflowStateStore):
        return where
    if must_exist:
        require_store(where, "source")
    store = open_store(where, durable=durable)
    opened.append(store)
    return store


def _copy_instance(
    src: IWorkflowStateStore, dst: IWorkflowStateStore, instance_id: str, report: MigrationReport
) -> bool:
    """Bring the target's copy of one instance up to date; False if it is in conflict."""
    state = src.load_state(instance_id)
    if state is None:
        raise CorruptStateError(
            f"source lists instance {instance_id!r} in a feature index but has no state for it",
            instance_id=instance_id,
        )
    existing = dst.load_state(instance_id)
    if existing is None:
        dst.create_state(state)
        report.instances_copied += 1
    elif existing == state:
        report.instances_unchanged += 1
    elif existing.get("version", 0) < state.get("version", 0):
        dst.save_state(instance_id, state)
        report.instances_updated += 1
    else:
        report.conflicts.append(instance_id)
        return False
    _check_equal(state, dst.load_state(instance_id), f"state of instance {instance_id!r}")
    return True


def _copy_artifacts(
    src: IWorkflowStateStore,
    dst: IWorkflowStateStore,
    feature_id: str,
    instance_id: str,
    report: MigrationReport,
) -> None:
    for phase in src.list_task_phases(instance_id):
        artifacts = src.load_task_artifacts(instance_id, phase)
        if artifacts is None:
            continue
        _verify_checksums(artifacts, instance_id, phase)
        if dst.load_task_artifacts(instance_id, phase) == artifacts:
            report.artifacts_unchanged += 1
            continue
        record, prompt, response = artifacts["record"], artifacts["prompt"], artifacts["response"]
        dst.save_task_artifacts(feature_id, instance_id, phase, record, prompt, response)
        report.artifacts_copied += 1
        copied = dst.load_task_artifacts(instance_id, phase)
        _check_equal(artifacts, copied, f"artifacts of phase {phase!r} of {instance_id!r}")


def _verify_checksums(artifacts: dict[str, Any], instance_id: str, phase: str) -> None:
    """Refuse to copy texts that do not match the checksums their task record carries."""
    record = artifacts["record"]
    for text_key, checksum_key in (
        ("prompt", "prompt_checksum"),
        ("response", "response_checksum"),
    ):
        expected = record.get(checksum_key) if isinstance(record, dict) else None
        if expected and sha256_hex(artifacts[text_key]) != expected:
            raise CorruptStateError(
                f"source {text_key} of phase {phase!r} of instance {instance_id!r} does not "
                "match its recorded SHA-256 checksum; not copied",
                instance_id=instance_id,
                phase=phase,
            )


def _check_equal(expected: Any, actual: Any, what: str) -> None:
    if actual != expected:
        raise CorruptStateError(f"the target's copy of the {what} differs from the source")


def _verify_order(src: IWorkflowStateStore, dst: IWorkflowStateStore, feature_id: str) -> None:
    """The target's index holds the source's instances in the source's order."""
    source_ids = src.list_instances_by_feature(feature_id)
    wanted = set(source_ids)
    in_target = [iid for iid in dst.list_instances_by_feature(feature_id) if iid in wanted]
    if in_target != source_ids:
        raise CorruptStateError(
            f"after migration, feature {feature_id!r} lists {len(in_target)} of the source's "
            f"{counted(len(source_ids), 'instance')}, or in another order"
        )
