"""Task artifacts: the record of one phase visit's prompt and response, and the
checks on one read back.

Pure functions on a loaded state or stored data: the engine makes the store calls
around them, so the rules for keys and checksums live here once.
"""

from __future__ import annotations

from typing import Any

from chatflow._validation import validate_id
from chatflow.domain.history import visit_numbers
from chatflow.domain.models import (
    TaskArtifacts,
    TaskExecutionRecord,
    WorkflowInstanceState,
    generate_timestamp,
    mismatched_texts,
    record_checksums,
    sha256_text,
)
from chatflow.domain.schema import task_key
from chatflow.errors import CorruptStateError, InvalidTransitionError, ValidationError
from chatflow.storage.base import Problem


def new_record(
    state: WorkflowInstanceState,
    phase_name: str | None,
    prompt: str,
    response: str,
    *,
    status: str,
    started_at: float | None,
    ended_at: float | None,
) -> tuple[int, str, TaskExecutionRecord]:
    """The history index and task key of the phase's latest visit, and its record.

    The first visit of a phase is keyed by the phase name, later ones by
    ``<phase>--<visit>`` (``task_key``), so every visit keeps its own texts. The
    texts themselves were checked by the caller.
    """
    phase = validate_id(phase_name or state.current_phase, "phase_name")
    if not any(entry.phase == phase for entry in state.history):
        raise InvalidTransitionError(
            f"instance {state.instance_id!r} has not entered phase {phase!r}; "
            f"it can only record tasks for phases in its history",
            instance_id=state.instance_id,
            phase=phase,
        )
    index = max(i for i, entry in enumerate(state.history) if entry.phase == phase)
    visit = visit_numbers(state.history)[index]
    now = generate_timestamp()
    record = TaskExecutionRecord(
        phase_name=phase,
        status=status,
        started_at=now if started_at is None else started_at,
        ended_at=now if ended_at is None else ended_at,
        prompt_checksum=sha256_text(prompt),
        response_checksum=sha256_text(response),
    )
    return index, task_key(phase, visit), record


def check_version(version: object) -> None:
    """A task version asked for: ``None`` (the latest) or an int."""
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValidationError(f"version must be an int, not {version!r}", field="version")


def checked(stored: dict[str, Any], instance_id: str, phase_name: str) -> TaskArtifacts:
    """Stored artifacts as ``TaskArtifacts``, each text verified against its checksum."""
    try:
        record = TaskExecutionRecord.from_dict(stored["record"])
    except ValidationError as error:
        raise CorruptStateError(
            f"task record of phase {phase_name!r} of instance {instance_id!r} is corrupt: {error}",
            instance_id=instance_id,
            phase=phase_name,
        ) from None
    bad = mismatched_texts(stored["prompt"], stored["response"], record_checksums(stored["record"]))
    if bad:  # (a store verifies too; a record without its checksums does not pass here)
        raise CorruptStateError(
            f"{bad[0]} of phase {phase_name!r} of instance {instance_id!r} "
            "does not match its recorded SHA-256 checksum",
            instance_id=instance_id,
            phase=phase_name,
        )
    return TaskArtifacts(record=record, prompt=stored["prompt"], response=stored["response"])


def missing_record(state: WorkflowInstanceState, stored: set[str]) -> Problem | None:
    """The first history entry naming a task record the store does not hold (``stored``
    task keys): its artifacts were lost, or never copied (a fork before 2.0)."""
    for index, entry in enumerate(state.history):
        if entry.task and entry.task not in stored:
            return Problem(
                state.instance_id,
                None,
                f"history entry {index} ({entry.phase})",
                f"it names task record {entry.task!r}, which is not stored",
            )
    return None
