"""Forks made before forks carried their artifacts (ChatFlow < 2.0): their history
names task records they do not hold, so ``verify`` fails and ``show`` has nothing to
show. The records are their parent's: ``repair`` copies every version of each missing
task from the parent, each checked against its SHA-256 first, as ``fork`` does today.

``chatflow doctor`` lists such forks (``fork_missing_artifacts``, on every store) and
``--fix`` repairs them; each repair is a WARNING on the ``chatflow`` logger (and, in a
file store, a line in ``repairs.jsonl``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatflow.core import _artifacts
from chatflow.errors import ChatFlowError, CorruptStateError

if TYPE_CHECKING:
    from chatflow.core.engine import WorkflowEngine
    from chatflow.domain.models import WorkflowInstanceState
    from chatflow.storage.file_doctor import Finding


def missing_tasks(engine: WorkflowEngine, instance_id: str) -> list[str]:
    """The task records a fork's history names that it does not hold (``[]`` for an
    instance that is not a fork, or holds them all)."""
    state = engine.get_workflow_instance_status(instance_id)
    if state is None or not state.parent:
        return []
    stored = set(engine.state_store.list_task_phases(instance_id))
    return [
        task
        for task in dict.fromkeys(e.task for e in state.history if e.task)
        if task not in stored
    ]


def parent_of(state: WorkflowInstanceState) -> str | None:
    parent = (state.parent or {}).get("instance_id")
    return parent if isinstance(parent, str) else None


def repair(engine: WorkflowEngine, instance_id: str) -> list[str]:
    """Copy the missing task records of a fork from its parent, every version, each
    verified; return the tasks copied. ``CorruptStateError`` if the parent cannot give
    one whole (gone, or it does not verify): nothing is copied then."""
    tasks = missing_tasks(engine, instance_id)
    if not tasks:
        return []
    state = engine.get_workflow_instance_status(instance_id)
    assert state is not None
    parent = parent_of(state)
    store = engine.state_store
    copies = []
    for task in tasks:
        versions = _parent_versions(engine, parent, task) if parent else []
        if not versions:
            raise CorruptStateError(
                f"fork {instance_id!r} names task record {task!r}, which its parent "
                f"{parent!r} does not hold either: nothing to copy",
                instance_id=instance_id,
            )
        copies += [(task, found) for found in versions]
    for task, found in copies:  # all read and verified before any is written
        store.save_task_artifacts(
            state.feature_id, instance_id, task, found["record"], found["prompt"], found["response"]
        )
    _tell(engine, instance_id, f"copied task records {', '.join(tasks)} from its parent {parent}")
    return tasks


def _parent_versions(engine: WorkflowEngine, parent: str, task: str) -> list[dict[str, Any]]:
    """Every stored version of the parent's task, oldest first, each verified."""
    store, found, version = engine.state_store, [], 1
    try:
        while (stored := store.load_task_artifacts(parent, task, version)) is not None:
            _artifacts.checked(stored, parent, task)
            found.append(stored)
            version += 1
    except ChatFlowError:
        return []  # a parent that does not verify gives nothing
    return found


def _tell(engine: WorkflowEngine, instance_id: str, what: str) -> None:
    """Log the repair; a file store also records it in ``repairs.jsonl``."""
    engine.state_store.note_repair(instance_id, what)


KIND = "fork_missing_artifacts"


def findings(engine: WorkflowEngine, skip: set[str]) -> list[Finding]:
    """A ``doctor`` finding for each fork missing task records (instances in ``skip``,
    already reported as damaged, are left out)."""
    from chatflow.storage.file_doctor import Finding  # noqa: PLC0415

    found = []
    for instance_id in engine.state_store.list_instance_ids():
        if instance_id in skip:
            continue
        try:
            tasks = missing_tasks(engine, instance_id)
        except ChatFlowError:
            continue  # unreadable: reported by the store's own checks
        if tasks:
            message = (
                f"fork {instance_id!r} lacks the task records {', '.join(tasks)} its history "
                "names (made before forks carried artifacts): `--fix` copies them from its parent"
            )
            where = repr(engine.state_store)
            found.append(Finding(KIND, where, message, True, instance_id))
    return found


def fix(engine: WorkflowEngine, found: list[Finding]) -> list[Finding]:
    """Repair the forks ``found`` lists; return those repaired (one whose parent cannot
    give its records stays a problem)."""
    fixed = []
    for finding in found:
        if finding.kind != KIND or finding.instance_id is None:
            continue
        try:
            if repair(engine, finding.instance_id):
                fixed.append(finding)
        except CorruptStateError:
            continue
    return fixed
