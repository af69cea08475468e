"""``WorkflowEngine``: moves workflow instances through their phases.

The engine validates everything it is given, then talks to its store only through
``IWorkflowStateStore``. Every change to an instance is one ``update_state`` call, so
the store's lock or transaction covers the whole read-modify-write: two processes
triggering one instance can never lose each other's step.
"""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any

from chatflow._validation import check_json_object, new_instance_id, validate_id
from chatflow.core.models import (
    HistoryEntry,
    InstanceStatus,
    TaskArtifacts,
    TaskExecutionRecord,
    WorkflowInstanceState,
    generate_timestamp,
    sha256_text,
)
from chatflow.core.schema import first_phase, next_phase, validate_schema
from chatflow.errors import (
    CorruptStateError,
    InvalidTransitionError,
    ValidationError,
)
from chatflow.storage._open import open_store
from chatflow.storage.base import InstanceSummary, IWorkflowStateStore, StateDict, not_found

DEFAULT_DIR_ENV = "CHATFLOW_DIR"
DEFAULT_DIR = ".chatflow"


def default_storage_dir() -> Path:
    """``$CHATFLOW_DIR`` if set, else ``./.chatflow``, resolved against the current folder."""
    return Path(os.environ.get(DEFAULT_DIR_ENV) or DEFAULT_DIR).resolve()


class WorkflowEngine:
    """Starts, advances and reports on workflow instances kept in one store.

    ``WorkflowEngine(storage_dir=...)`` uses the default file store in that folder, or
    the store a URL names (``sqlite:///state.db``, ``postgresql://...``, ``memory://``);
    ``state_store=`` (or ``store=``) uses any ``IWorkflowStateStore``. With none, the
    folder is ``$CHATFLOW_DIR`` or ``./.chatflow``. Nothing touches the disk or network
    until the first call that needs the store.
    """

    def __init__(
        self,
        storage_dir: str | os.PathLike[str] | None = None,
        state_store: IWorkflowStateStore | None = None,
        *,
        store: IWorkflowStateStore | None = None,
        durable: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._store: IWorkflowStateStore | None = None
        self._configure(storage_dir, state_store or store, durable=durable)

    def _configure(
        self,
        storage_dir: str | os.PathLike[str] | None,
        state_store: IWorkflowStateStore | None,
        *,
        durable: bool,
    ) -> None:
        if storage_dir is not None and state_store is not None:
            raise ValidationError("give a storage folder/URL or a store, not both")
        if state_store is not None and not isinstance(state_store, IWorkflowStateStore):
            raise ValidationError(
                f"store must implement IWorkflowStateStore, not {type(state_store).__name__}"
            )
        if storage_dir is not None and not isinstance(storage_dir, (str, os.PathLike)):
            raise ValidationError(
                f"storage_dir must be a path or URL, not {type(storage_dir).__name__}"
            )
        with self._lock:
            self._target = storage_dir
            self._durable = durable
            self._store = state_store

    @property
    def state_store(self) -> IWorkflowStateStore:
        """The store this engine uses, opened on first access."""
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                target = self._target if self._target is not None else default_storage_dir()
                self._store = open_store(target, durable=self._durable)
            return self._store

    def __repr__(self) -> str:
        store = self._store
        where = repr(store) if store is not None else f"{self._target!r}, not opened yet"
        return f"WorkflowEngine({where})"

    # -- starting and advancing ----------------------------------------------------

    def start_workflow_instance(
        self,
        workflow_schema: dict[str, Any],
        initial_context: dict[str, Any] | None,
        feature_id: str,
        meta: dict[str, Any] | None = None,
    ) -> str:
        """Create an instance in the schema's first phase; return its id.

        The validated schema is stored with the instance, so every later step follows
        the definition the instance started with.
        """
        schema = validate_schema(workflow_schema)
        validate_id(feature_id, "feature_id")
        variables = check_json_object(
            {} if initial_context is None else initial_context, "initial_context"
        )
        meta = check_json_object({} if meta is None else meta, "meta")
        now = generate_timestamp()
        phase = first_phase(schema)
        state = WorkflowInstanceState(
            instance_id=new_instance_id(),
            feature_id=feature_id,
            workflow_name=schema["name"],
            current_phase=phase,
            variables=_json_copy(variables),
            status=InstanceStatus.CREATED,
            history=[HistoryEntry(phase=phase, task="", started_at=now)],
            created_at=now,
            updated_at=now,
            meta=_json_copy(meta),
            workflow_schema=schema,
            version=1,
        )
        self.state_store.create_state(state.to_dict())
        return state.instance_id

    def trigger_next_step(
        self,
        instance_id: str,
        trigger_data: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> WorkflowInstanceState:
        """Complete the current phase and enter the next; return the new state.

        The open history entry is closed with ``trigger_data`` as its snapshot; ``meta``
        is merged into the instance's meta. Triggering the last phase completes the
        instance. A finished instance raises ``InvalidTransitionError`` and is unchanged.
        """
        validate_id(instance_id, "instance_id")
        data = check_json_object({} if trigger_data is None else trigger_data, "trigger_data")
        extra_meta = check_json_object({} if meta is None else meta, "meta")

        def advance(state: WorkflowInstanceState) -> None:
            _require_active(state)
            now = generate_timestamp()
            entry = state.open_entry
            if entry is not None:
                entry.ended_at = now
                entry.status = "completed"
                entry.trigger_data_snapshot = _json_copy(data)
            following = next_phase(state.workflow_schema, state.current_phase)
            if following is None:
                state.status = InstanceStatus.COMPLETED
            else:
                state.status = InstanceStatus.RUNNING
                state.current_phase = following
                state.history.append(HistoryEntry(phase=following, task="", started_at=now))
            state.meta.update(_json_copy(extra_meta))
            state.updated_at = now

        return self._update(instance_id, advance)

    def _update(self, instance_id: str, change: Any) -> WorkflowInstanceState:
        """Apply ``change`` to the instance inside one store transaction."""

        def mutate(data: StateDict) -> StateDict:
            state = _parse(data, instance_id)
            change(state)
            return state.to_dict()

        return _parse(self.state_store.update_state(instance_id, mutate), instance_id)

    # -- task artifacts ----------------------------------------------------------------

    def record_task_artifacts(
        self,
        instance_id: str,
        prompt: str,
        response: str,
        *,
        phase_name: str | None = None,
        status: str = "completed",
        started_at: float | None = None,
        ended_at: float | None = None,
    ) -> TaskExecutionRecord:
        """Store the prompt sent to the AI and its response for a phase (default: current).

        Writes the task record with SHA-256 checksums of both texts and links it to the
        phase's latest history entry (its ``task`` field names the record).
        """
        validate_id(instance_id, "instance_id")
        for name, text in (("prompt", prompt), ("response", response)):
            if not isinstance(text, str):
                raise ValidationError(f"{name} must be a str, not {type(text).__name__}")
        state = self.get_workflow_instance_status(instance_id)
        if state is None:
            raise not_found(instance_id)
        phase = validate_id(phase_name or state.current_phase, "phase_name")
        if not any(entry.phase == phase for entry in state.history):
            raise InvalidTransitionError(
                f"instance {instance_id!r} has not entered phase {phase!r}; "
                f"it can only record tasks for phases in its history",
                instance_id=instance_id,
                phase=phase,
            )
        now = generate_timestamp()
        record = TaskExecutionRecord(
            phase_name=phase,
            status=status,
            started_at=now if started_at is None else started_at,
            ended_at=now if ended_at is None else ended_at,
            prompt_checksum=sha256_text(prompt),
            response_checksum=sha256_text(response),
        )
        self.state_store.save_task_artifacts(
            state.feature_id, instance_id, phase, record.to_dict(), prompt, response
        )

        def link(current: WorkflowInstanceState) -> None:
            for entry in reversed(current.history):
                if entry.phase == phase:
                    entry.task = phase
                    break
            current.updated_at = generate_timestamp()

        self._update(instance_id, link)
        return record

    def get_task_artifacts(self, instance_id: str, phase_name: str) -> TaskArtifacts | None:
        """A phase's record, prompt and response, checksums verified; ``None`` if never recorded."""
        validate_id(instance_id, "instance_id")
        validate_id(phase_name, "phase_name")
        stored = self.state_store.load_task_artifacts(instance_id, phase_name)
        if stored is None:
            return None
        try:
            record = TaskExecutionRecord.from_dict(stored["record"])
        except ValidationError as error:
            raise CorruptStateError(
                f"task record of phase {phase_name!r} of instance {instance_id!r} "
                f"is corrupt: {error}",
                instance_id=instance_id,
                phase=phase_name,
            ) from None
        for what, text, checksum in (
            ("prompt", stored["prompt"], record.prompt_checksum),
            ("response", stored["response"], record.response_checksum),
        ):
            if sha256_text(text) != checksum:
                raise CorruptStateError(
                    f"{what} of phase {phase_name!r} of instance {instance_id!r} "
                    "does not match its recorded SHA-256 checksum",
                    instance_id=instance_id,
                    phase=phase_name,
                )
        return TaskArtifacts(record=record, prompt=stored["prompt"], response=stored["response"])

    # -- queries ---------------------------------------------------------------------

    def get_workflow_instance_status(self, instance_id: str) -> WorkflowInstanceState | None:
        """The instance's current state, or ``None`` if no instance has that id."""
        validate_id(instance_id, "instance_id")
        data = self.state_store.load_state(instance_id)
        return None if data is None else _parse(data, instance_id)

    def list_feature_instances(self, feature_id: str) -> list[str]:
        """Ids of the feature's instances, oldest first."""
        return self.state_store.list_instances_by_feature(validate_id(feature_id, "feature_id"))

    def list_features(self) -> list[str]:
        """Every feature with at least one instance, sorted."""
        return self.state_store.list_features()

    def list_instances(
        self, feature_id: str | None = None, status: str | None = None
    ) -> list[InstanceSummary]:
        """Summaries of instances, optionally of one feature and/or in one status.

        Answered by the store's index or query, without loading each instance. Order:
        features sorted by id, each feature's instances oldest first.
        """
        if feature_id is not None:
            validate_id(feature_id, "feature_id")
        return self.state_store.list_instances(feature_id=feature_id, status=status)

    def get_feature_status(self, feature_id: str, schema_name: str = "default") -> dict[str, Any]:
        """Roll-up of a feature's instances.

        ``latest_instance_id`` is the most recently started instance. ``status`` is
        ``not_started`` with no instances, ``in_progress`` while any instance is
        created or running, else ``completed`` if any completed, else ``failed``.
        ``schema_name`` is accepted for compatibility with the seed and ignored.
        """
        validate_id(feature_id, "feature_id")
        summaries = self.state_store.list_feature_summaries(feature_id)
        counts = dict.fromkeys(InstanceStatus, 0)
        for summary in summaries:
            counts[InstanceStatus(summary.status)] += 1
        return {
            "feature_id": feature_id,
            "total_instances": len(summaries),
            "created_count": counts[InstanceStatus.CREATED],
            "running_count": counts[InstanceStatus.RUNNING],
            "completed_count": counts[InstanceStatus.COMPLETED],
            "failed_count": counts[InstanceStatus.FAILED],
            "latest_instance_id": summaries[-1].instance_id if summaries else None,
            "status": _feature_status(counts, len(summaries)),
        }


def _feature_status(counts: dict[InstanceStatus, int], total: int) -> str:
    if total == 0:
        return "not_started"
    if counts[InstanceStatus.CREATED] or counts[InstanceStatus.RUNNING]:
        return "in_progress"
    return "completed" if counts[InstanceStatus.COMPLETED] else "failed"


def _require_active(state: WorkflowInstanceState) -> None:
    if state.status.is_finished:
        raise InvalidTransitionError(
            f"instance {state.instance_id!r} is {state.status.value}; it takes no further steps",
            instance_id=state.instance_id,
            status=state.status.value,
        )


def _parse(data: StateDict, instance_id: str) -> WorkflowInstanceState:
    try:
        return WorkflowInstanceState.from_dict(data)
    except ValidationError as error:
        raise CorruptStateError(
            f"stored state of instance {instance_id!r} is invalid: {error}", instance_id=instance_id
        ) from None


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON data, so the stored state never aliases the caller's objects."""
    return copy.deepcopy(value)
