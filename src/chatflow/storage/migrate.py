"""Copy every instance, history and artifact from one store to another, verified.

``migrate(".chatflow", "sqlite:///state.db")`` (or ``chatflow migrate --from ... --to ...``)
walks the source feature by feature in creation order, so the target's feature indexes
keep the same order and ``latest_instance_id`` stays the same instance.

Each instance is copied event for event (``read_log``/``install_log``): the same hashes,
any compaction checkpoint, every version of every task's texts, so ``verify --all``
prints the same feature digests on both sides. The source's log is verified before it
is copied and the target's copy is verified (and its digest compared) afterwards.

Safe to re-run, also after being killed: an instance already identical in the target
is left alone, one whose target copy is a prefix of the source's gets the missing
events, and one that went its own way there (someone kept working in the target) is
reported as a conflict and never overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from chatflow._text import counted
from chatflow.errors import CorruptStateError, HistoryConflictError, InstanceNotFoundError
from chatflow.storage._open import is_store_url, open_store, require_store
from chatflow.storage.base import InstanceLog, IWorkflowStateStore, log_problem

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
                _copy_instance(src, dst, instance_id, report)
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
) -> None:
    """Bring the target's copy of one instance up to date, event for event, and check
    it there; an instance the target changed is a conflict, left untouched."""
    log = src.read_log(instance_id)
    problem = log_problem(log)
    if problem is not None:
        raise CorruptStateError(f"source: {problem}; nothing of it copied", instance_id=instance_id)
    had = _texts_in(dst, instance_id)
    _index_wait(dst, log)
    try:
        outcome = dst.install_log(log)
    except HistoryConflictError:
        report.conflicts.append(instance_id)
        return
    if outcome == "copied":
        report.instances_copied += 1
    elif outcome == "updated":
        report.instances_updated += 1
    else:
        report.instances_unchanged += 1
    report.artifacts_copied += len(log.texts) - had
    report.artifacts_unchanged += had
    found = dst.verify(instance_id)
    if found is not None or dst.instance_digest(instance_id) != src.instance_digest(instance_id):
        raise CorruptStateError(
            f"the target's copy of instance {instance_id!r} does not verify as the source's: "
            f"{found or 'its digest differs'}",
            instance_id=instance_id,
        )


def _index_wait(dst: IWorkflowStateStore, log: InstanceLog) -> None:
    """List the copy's wait under a deadline in the target's waits index, before it
    is installed (the index stays a superset: ``chatflow.storage.waits``)."""
    from chatflow.storage import _log  # noqa: PLC0415
    from chatflow.storage.waits import WaitKey, index_of  # noqa: PLC0415

    index = index_of(dst)
    if index is None:
        return
    wait = _log.project(log.events)[0].get("wait")
    if isinstance(wait, dict) and "visit" in wait and "due_at" in wait:
        index.add(log.instance_id, WaitKey(int(wait["visit"]), float(wait["due_at"])))


def _texts_in(store: IWorkflowStateStore, instance_id: str) -> int:
    """How many task text versions ``store`` holds for the instance (0 if absent)."""
    try:
        return len(store.read_log(instance_id).texts)
    except InstanceNotFoundError:
        return 0


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
