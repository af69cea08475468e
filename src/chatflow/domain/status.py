"""Read-only reports on an instance: per-phase status, predicted path, progress.

Nothing here changes state. The predicted path follows the routes a step with no trigger
data would take from the current phase, so it is a forecast: a later trigger's data may
choose another branch.
"""

from __future__ import annotations

from typing import Any

from chatflow.domain.counts import StatusCount, newest_active
from chatflow.domain.definition import END, FAIL, workflow_of
from chatflow.domain.lifecycle import exit_requirements
from chatflow.domain.models import (
    HistoryEvent,
    InstanceStatus,
    WorkflowInstanceState,
    WorkflowState,
    WorkflowStatusInfo,
)
from chatflow.domain.transitions import route

NOT_STARTED = "not_started"
_FORECAST_STEPS_PER_PHASE = 4


def phase_statuses(state: WorkflowInstanceState) -> dict[str, str]:
    """Every phase of the schema -> the status of its latest visit (or ``not_started``).

    Statuses of visits: ``running``, ``paused``, ``awaiting_approval`` (open), and
    ``completed``, ``failed``, ``retried``, ``rejected``, ``jumped``, ``cancelled``.
    """
    statuses = dict.fromkeys(workflow_of(state.workflow_schema).phase_names, NOT_STARTED)
    for entry in state.history:
        statuses[entry.phase] = entry.status
    return statuses


def predicted_next(state: WorkflowInstanceState) -> str | None:
    """The phase a plain trigger would enter next; ``None`` if it would end the instance."""
    if state.status.is_finished:
        return None
    step = route(
        workflow_of(state.workflow_schema),
        state.current_phase,
        variables=state.variables,
        trigger={},
        visits=state.visits,
    )
    return None if step.target in (END, FAIL) else step.target


def predicted_path(state: WorkflowInstanceState) -> list[str]:
    """Phases visited so far (first-visit order), then those plain triggers would add.

    The forecast walks on through loops (visit counts rising, so ``max_visits``
    fallbacks apply) until it ends or has taken ``_FORECAST_STEPS_PER_PHASE`` steps per
    phase, which bounds it for loops that only a trigger's data can leave.
    """
    path = list(dict.fromkeys(entry.phase for entry in state.history))
    if state.status.is_finished:
        return path
    workflow = workflow_of(state.workflow_schema)
    visits = dict(state.visits)
    current = state.current_phase
    for _ in range(_FORECAST_STEPS_PER_PHASE * len(workflow.phases)):
        step = route(workflow, current, variables=state.variables, trigger={}, visits=visits)
        if step.target in (END, FAIL):
            break
        if step.target not in path:
            path.append(step.target)
        visits[step.target] = visits.get(step.target, 0) + 1
        current = step.target
    return path


def progress(state: WorkflowInstanceState) -> float:
    """The share of the path's phases that are done; 1.0 only once completed.

    A phase is done when a visit of it completed and it is not the current phase: an
    instance that looped back to a phase, or failed in one, has that phase still to do,
    so a loop or a failure never reads as 100 %.
    """
    if state.status is InstanceStatus.COMPLETED:
        return 1.0
    path = predicted_path(state)
    done = {entry.phase for entry in state.history if entry.status == "completed"}
    done.discard(state.current_phase)
    return round(len(done & set(path)) / len(path), 4) if path else 0.0


def status_info(state: WorkflowInstanceState) -> dict[str, Any]:
    """A JSON-ready summary of where the instance is and what comes next.

    ``open_requirements`` lists what the current phase's ``exit_requires`` still miss
    (as ``GateNotSatisfiedError.missing`` would), judged without trigger data.
    """
    workflow = workflow_of(state.workflow_schema)
    return {
        "instance_id": state.instance_id,
        "feature_id": state.feature_id,
        "workflow_name": state.workflow_name,
        "schema_version": workflow.version,
        "schema_hash": workflow.content_hash,
        "status": state.status.value,
        "current_phase": state.current_phase,
        "next_phase": predicted_next(state),
        "progress": progress(state),
        "path": predicted_path(state),
        "phases": phase_statuses(state),
        "visits": dict(state.visits),
        "retries": dict(state.retries),
        "pause": state.pause,
        "open_requirements": exit_requirements(state, workflow),
        "parent": state.parent,
        "history_length": len(state.history),
        "updated_at": state.updated_at,
    }


# -- ChatCoder's (v1.1) views --------------------------------------------------------


def workflow_state(state: WorkflowInstanceState) -> WorkflowState:
    """The v1.1 view of ``state``: one ``HistoryEvent`` per visit (see ``HistoryEvent``)."""
    tasks = {phase.name: phase.task for phase in workflow_of(state.workflow_schema).phases}
    history = [
        HistoryEvent(
            event_type="phase_started" if index else "workflow_started",
            phase=entry.phase,
            task=tasks.get(entry.phase, "") if index else "system",
            timestamp=entry.started_at,
            data={
                "status": entry.status,
                "ended_at": entry.ended_at,
                "trigger_data_snapshot": entry.trigger_data_snapshot,
            },
        )
        for index, entry in enumerate(state.history)
    ]
    return WorkflowState(
        instance_id=state.instance_id,
        feature_id=state.feature_id,
        workflow_name=state.workflow_name,
        current_phase=state.current_phase,
        variables=state.variables,
        status=state.status,
        history=history,
        created_at=state.created_at,
        updated_at=state.updated_at,
        meta=state.meta,
        automation_level=state.automation_level,
    )


def status_summary(state: WorkflowInstanceState) -> WorkflowStatusInfo:
    """The v1.1 short status of ``state``."""
    return WorkflowStatusInfo(
        instance_id=state.instance_id,
        status=state.status.value,
        progress=progress(state),
        current_phase=state.current_phase,
        feature_id=state.feature_id,
        created_at=state.created_at,
        updated_at=state.updated_at,
    )


def feature_rollup(feature_id: str, groups: list[StatusCount]) -> dict[str, Any]:
    """A feature's roll-up from its status counts (``phases`` is left for the caller).

    ``groups`` are ordered by each status's newest instance (``feature_status_counts``),
    so the last one holds the feature's newest instance. ``status`` is ``not_started``
    with no instances, ``in_progress`` while any is active, else ``completed`` if any
    completed, else ``failed`` if any failed, else ``cancelled``.
    """
    counts = dict.fromkeys(_STATUSES, 0)
    for group in groups:
        counts[InstanceStatus(group.status)] += group.instances
    return {
        "feature_id": feature_id,
        "total_instances": sum(counts.values()),
        **{key: counts[status] for status, key in _COUNT_KEYS},
        "latest_instance_id": groups[-1].newest_instance_id if groups else None,
        "active_instance_id": newest_active(groups),
        "phases": {},
        "status": feature_rollup_status(counts),
    }


# Enum iteration is slow; the overview builds one roll-up per feature (bench/bench_ui.py).
_STATUSES = tuple(InstanceStatus)
_ACTIVE = frozenset(status for status in _STATUSES if status.is_active)
_COUNT_KEYS = tuple((status, f"{status.value}_count") for status in _STATUSES)


def feature_rollup_status(counts: dict[InstanceStatus, int]) -> str:
    """A feature's overall status from its instances' counts (see ``feature_rollup``)."""
    if not any(counts.values()):
        return "not_started"
    if any(counts[status] for status in _ACTIVE):
        return "in_progress"
    if counts[InstanceStatus.COMPLETED]:
        return "completed"
    return "failed" if counts[InstanceStatus.FAILED] else "cancelled"
