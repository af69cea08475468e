"""``IWorkflowStateStore``: the written-down contract every ChatFlow store fulfils.

The engine talks to storage only through this interface. States travel as the plain
dicts produced by ``WorkflowInstanceState.to_dict``; a store may index a few fields
(``feature_id``, ``status``, ``version``) but keeps the dict whole.

Read-modify-write is a store primitive (``update_state``), not something callers stitch
together from ``load_state`` and ``save_state``: only the store knows how to make it
atomic against other threads, processes or machines.

The conformance suite in ``tests/`` runs unchanged against every store; a new store is
done when it passes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, NamedTuple

from chatflow._validation import validate_id
from chatflow.core.models import InstanceStatus
from chatflow.errors import InstanceNotFoundError, StorageError, ValidationError

StateDict = dict[str, Any]
Mutation = Callable[[StateDict], StateDict]
_ACTIVE_STATUSES = frozenset(status.value for status in InstanceStatus if status.is_active)


class InstanceSummary(NamedTuple):
    """The few fields of an instance that listings and feature roll-ups need."""

    instance_id: str
    feature_id: str
    status: str
    current_phase: str
    created_at: float
    updated_at: float


class StatusCount(NamedTuple):
    """How many of a feature's instances are in ``status``, and the newest of them."""

    status: str
    instances: int
    newest_instance_id: str


def summarize(state: StateDict) -> InstanceSummary:
    """The ``InstanceSummary`` of a state dict."""
    return InstanceSummary(
        state["instance_id"],
        state["feature_id"],
        state["status"],
        state["current_phase"],
        state.get("created_at", 0.0),
        state.get("updated_at", 0.0),
    )


class IWorkflowStateStore(ABC):
    """Durable home of instance states, feature indexes and task artifacts.

    Every method is safe to call from many threads, and (for stores shared between
    processes) from many processes at once. Ids reaching a store have already been
    validated by the engine; stores validate them again where they build paths.
    """

    @abstractmethod
    def save_state(self, instance_id: str, state_data: StateDict) -> None:
        """Write ``state_data`` as the instance's state, adding it to its feature's index
        if it is new. A blind write: prefer ``create_state`` and ``update_state``."""

    @abstractmethod
    def load_state(self, instance_id: str) -> StateDict | None:
        """The instance's current state, or ``None`` if it does not exist.

        Raises ``CorruptStateError`` if stored data exists but cannot be read: corrupt
        data is never reported as absent.
        """

    @abstractmethod
    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        """Ids of the feature's instances, oldest first (creation order)."""

    @abstractmethod
    def save_task_artifacts(
        self,
        feature_id: str,
        instance_id: str,
        phase_name: str,
        task_record_data: dict[str, Any],
        prompt_content: str,
        ai_response_content: str,
    ) -> None:
        """Store a phase's task record with its prompt and AI response texts."""

    @abstractmethod
    def load_task_artifacts(self, instance_id: str, phase_name: str) -> dict[str, Any] | None:
        """``{"record": ..., "prompt": ..., "response": ...}`` for a phase, or ``None``."""

    @abstractmethod
    def create_state(self, state_data: StateDict) -> None:
        """Store a new instance and append it to its feature's index, atomically.

        Raises ``ValidationError`` if an instance with that id already exists.
        """

    @abstractmethod
    def update_state(self, instance_id: str, mutate: Mutation) -> StateDict:
        """Atomically replace the instance's state with ``mutate(current)``; return it.

        ``mutate`` receives the latest committed state (never a cached one another
        writer has since replaced) and runs while the store holds the instance
        exclusively; it may change that dict in place, including the keys of items of
        its lists (history entries, events), but values nested inside those items must
        be replaced rather than edited in place. If it raises, nothing is written,
        the store discards whatever ``mutate`` changed, and the exception propagates.
        The store sets ``version`` to the old version plus one.

        The returned dict may be the store's own (the file store keeps it to make the
        next update cheap): read it, copy it, but do not modify it.
        Raises ``InstanceNotFoundError`` if the instance does not exist.
        """

    @abstractmethod
    def list_features(self) -> list[str]:
        """Every feature id that has at least one instance, sorted."""

    def list_feature_summaries(self, feature_id: str) -> list[InstanceSummary]:
        """Summaries of the feature's instances, oldest first.

        This default loads every state; stores override it with an index or a query.
        """
        summaries = []
        for instance_id in self.list_instances_by_feature(feature_id):
            state = self.load_state(instance_id)
            if state is not None:
                summaries.append(summarize(state))
        return summaries

    def feature_status_counts(self, feature_id: str) -> list[StatusCount]:
        """The feature's instances counted by status, for roll-ups without a row each.

        Ordered by each status's newest instance, oldest first: the last entry's
        ``newest_instance_id`` is the feature's newest instance. This default walks
        ``list_feature_summaries``; SQL stores answer it with one aggregate query.
        """
        return status_counts(self.list_feature_summaries(feature_id))

    def get_current_task_id_for_feature(self, feature_id: str) -> str | None:
        """The feature's newest instance that is still active (created, running or
        paused), or ``None``: ChatCoder's "instance to continue".

        Built on ``feature_status_counts``, so SQL stores answer it with one query.
        """
        return newest_active(self.feature_status_counts(validate_id(feature_id, "feature_id")))

    def list_instances(
        self, feature_id: str | None = None, status: str | None = None
    ) -> list[InstanceSummary]:
        """Summaries of instances, optionally only one feature's and/or one status's.

        Order: features sorted by id, each feature's instances oldest first. This
        default goes feature by feature through ``list_feature_summaries``; stores with
        a query language answer it with one query.
        """
        check_status_filter(status)
        features = self.list_features() if feature_id is None else [feature_id]
        return [
            summary
            for feature in features
            for summary in self.list_feature_summaries(feature)
            if status is None or summary.status == status
        ]

    def list_task_phases(self, instance_id: str) -> list[str]:
        """Names of the phases of the instance that have stored task artifacts, sorted.

        Used to copy every artifact when moving between stores. This default probes the
        phases named in the instance's history; stores override it with a listing.
        """
        state = self.load_state(instance_id)
        if state is None:
            return []
        phases = {entry.get("phase") for entry in state.get("history", [])}
        phases.update(entry.get("task") for entry in state.get("history", []))
        return sorted(
            phase
            for phase in phases
            if isinstance(phase, str)
            and phase
            and self.load_task_artifacts(instance_id, phase) is not None
        )

    def list_instance_ids(self) -> list[str]:
        """Every instance id in the store, feature by feature in creation order."""
        return [
            iid
            for feature in self.list_features()
            for iid in self.list_instances_by_feature(feature)
        ]

    def delete_instance(self, instance_id: str) -> bool:
        """Remove the instance, its task artifacts and its feature-index entry.

        Returns False if there was no such instance. Not abstract, so stores written
        before deletion existed keep working; they refuse it with ``StorageError``.
        """
        raise StorageError(f"{type(self).__name__} cannot delete instances")

    def close(self) -> None:  # noqa: B027 - optional hook; most stores hold nothing to release
        """Release connections or handles; the store is unusable afterwards."""


def newest_active(groups: list[StatusCount]) -> str | None:
    """The newest created, running or paused instance among a feature's status groups."""
    # Groups are ordered by their newest instance, so the last active one holds it.
    active = [group.newest_instance_id for group in groups if group.status in _ACTIVE_STATUSES]
    return active[-1] if active else None


def status_counts(summaries: list[InstanceSummary]) -> list[StatusCount]:
    """Instances (oldest first) counted by status, ordered by each status's newest one."""
    groups: dict[str, tuple[int, str]] = {}
    for summary in summaries:
        count, _ = groups.pop(summary.status, (0, ""))  # re-inserted last: newest
        groups[summary.status] = (count + 1, summary.instance_id)
    return [StatusCount(status, count, newest) for status, (count, newest) in groups.items()]


def check_status_filter(status: object) -> None:
    """Reject a ``list_instances`` status filter that could never match a stored status."""
    if status is not None and not isinstance(status, str):
        raise ValidationError(f"status must be a str or None, not {type(status).__name__}")


def not_found(instance_id: str) -> InstanceNotFoundError:
    """The error every store raises for an instance that does not exist."""
    return InstanceNotFoundError(
        f"workflow instance {instance_id!r} not found", instance_id=instance_id
    )
