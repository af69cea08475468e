"""The state changes behind every engine operation, as functions on a loaded state.

The engine runs each of these inside one ``store.update_state`` call (or on a private
copy for ``dry_run``); they never touch a store. Each one checks the instance may take
the step, changes the state, and appends the matching events to its audit log, so that
these always hold (the property tests in ``tests/test_workflow_properties.py`` check them):

- an instance that is not finished has exactly one open history entry, a finished one
  has none;
- every history entry is a visit: ``visits`` counts entries per phase;
- ``retries`` counts ``retried`` events per phase (a fork starts with none).
"""

from __future__ import annotations

import copy
from typing import Any

from chatflow.core.models import (
    EventKind,
    HistoryEntry,
    InstanceStatus,
    WorkflowEvent,
    WorkflowInstanceState,
)
from chatflow.core.schema import END, FAIL, first_phase, phase_map, schema_hash, schema_version
from chatflow.core.transitions import approval_reasons, check_risk, merge_trigger_data, route
from chatflow.errors import InvalidTransitionError, ValidationError

Status = InstanceStatus


def actor_of(meta: dict[str, Any]) -> str | None:
    """Who acts, read from meta: ``actor``, else ``user_id`` (the seed's key)."""
    for key in ("actor", "user_id"):
        value = meta.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def new_state(
    *,
    instance_id: str,
    feature_id: str,
    schema: dict[str, Any],
    variables: dict[str, Any],
    meta: dict[str, Any],
    automation_level: int | None,
    now: float,
) -> WorkflowInstanceState:
    """A new instance in the schema's first phase (paused if that phase needs approval)."""
    state = WorkflowInstanceState(
        instance_id=instance_id,
        feature_id=feature_id,
        workflow_name=schema["name"],
        current_phase=first_phase(schema),
        variables=copy.deepcopy(variables),
        status=Status.CREATED,
        created_at=now,
        updated_at=now,
        meta=copy.deepcopy(meta),
        workflow_schema=schema,
        version=1,
        automation_level=automation_level,
    )
    started = {
        "schema_name": schema["name"],
        "schema_version": schema_version(schema),
        "schema_hash": schema_hash(schema),
        "variables": copy.deepcopy(variables),
    }
    _log(state, EventKind.STARTED, now, actor_of(meta), None, started)
    reasons = approval_reasons(schema["phases"][0], None, None)
    _enter(state, state.current_phase, now, actor_of(meta), reasons)
    return state


# -- stepping --------------------------------------------------------------------------


def advance(
    state: WorkflowInstanceState, trigger: dict[str, Any], meta: dict[str, Any], now: float
) -> None:
    """Complete the current phase with ``trigger`` data and route to the next step."""
    _require(state, "trigger a step", Status.CREATED, Status.RUNNING)
    risk = check_risk(trigger)
    actor = actor_of(meta) or actor_of(state.meta)
    phase = state.current_phase
    _close(state, "completed", now, actor, snapshot=copy.deepcopy(trigger))
    merge_trigger_data(state.workflow_schema, state.variables, phase, trigger)
    step = route(
        state.workflow_schema,
        phase,
        variables=state.variables,
        trigger=trigger,
        visits=state.visits,
    )
    state.meta.update(copy.deepcopy(meta))
    state.updated_at = now
    if step.target == END:
        state.status = Status.COMPLETED
        _log(state, EventKind.COMPLETED, now, actor, phase, {})
    elif step.target == FAIL:
        state.status = Status.FAILED
        _log(state, EventKind.FAILED, now, actor, phase, {"error": step.reason})
    else:
        reasons = approval_reasons(step.phase, risk, state.automation_level)
        _enter(state, step.target, now, actor, reasons, risk=risk)


# -- human in the loop -----------------------------------------------------------------


def pause(state: WorkflowInstanceState, reason: str, actor: str | None, now: float) -> None:
    """Suspend work on the current phase until ``resume``."""
    _require(state, "pause", Status.CREATED, Status.RUNNING)
    state.pause = {"kind": "manual", "reason": reason, "resume_status": state.status.value}
    state.status = Status.PAUSED
    _set_open_status(state, "paused")
    _log(state, EventKind.PAUSED, now, actor, state.current_phase, {"reason": reason})


def resume(
    state: WorkflowInstanceState,
    approved_by: str | None,
    note: str | None,
    actor: str | None,
    now: float,
) -> None:
    """Continue a paused instance; an approval pause needs ``approved_by``."""
    _require(state, "resume", Status.PAUSED)
    pause_info = state.pause or {"kind": "manual", "resume_status": Status.RUNNING.value}
    if pause_info["kind"] == "approval" and not approved_by:
        raise ValidationError(
            f"instance {state.instance_id!r} waits for approval to enter "
            f"{state.current_phase!r}; resume it with approved_by=<who approves>",
            field="approved_by",
        )
    state.status = Status(pause_info.get("resume_status", Status.RUNNING.value))
    state.pause = None
    _set_open_status(state, "running")
    data = {"kind": pause_info["kind"], "approved_by": approved_by, "note": note}
    _log(state, EventKind.RESUMED, now, approved_by or actor, state.current_phase, data)


def reject(
    state: WorkflowInstanceState,
    rejected_by: str | None,
    note: str | None,
    to: str | None,
    now: float,
) -> None:
    """Refuse an approval: send the work back to ``to`` (default: the phase before).

    With no earlier phase to go back to (the first phase needed approval), the
    instance is cancelled.
    """
    _require(state, "reject", Status.PAUSED)
    if state.pause is None or state.pause.get("kind") != "approval":
        raise InvalidTransitionError(
            f"instance {state.instance_id!r} is paused by hand, not waiting for approval; "
            "use resume() or cancel()",
            instance_id=state.instance_id,
            status=state.status.value,
        )
    gated = state.current_phase
    target = to if to is not None else _previous_phase(state)
    if target is not None:
        _require_phase(state, target)
    _close(state, "rejected", now, rejected_by)
    state.pause = None
    data = {"rejected_by": rejected_by, "note": note, "to": target}
    _log(state, EventKind.REJECTED, now, rejected_by, gated, data)
    if target is None:
        state.status = Status.CANCELLED
        _log(state, EventKind.CANCELLED, now, rejected_by, gated, {"reason": "rejected"})
    else:
        _enter(state, target, now, rejected_by, [])


def _previous_phase(state: WorkflowInstanceState) -> str | None:
    return state.history[-2].phase if len(state.history) >= 2 else None


# -- failure and recovery --------------------------------------------------------------


def fail(state: WorkflowInstanceState, error: str, actor: str | None, now: float) -> None:
    """Mark the current phase failed; the instance fails until ``retry`` or ``jump``."""
    _require(state, "fail", Status.CREATED, Status.RUNNING, Status.PAUSED)
    _close(state, "failed", now, actor)
    state.status = Status.FAILED
    state.pause = None
    _log(state, EventKind.FAILED, now, actor, state.current_phase, {"error": error})


def retry(state: WorkflowInstanceState, note: str | None, actor: str | None, now: float) -> None:
    """Start the current phase again (a new visit), counting the retry for that phase."""
    _require(state, "retry", Status.CREATED, Status.RUNNING, Status.FAILED)
    phase = state.current_phase
    count = state.retries.get(phase, 0)
    limit = phase_map(state.workflow_schema)[phase].get("max_retries")
    if limit is not None and count >= limit:
        raise InvalidTransitionError(
            f"phase {phase!r} of instance {state.instance_id!r} was retried {count} times; "
            f"its max_retries is {limit}",
            instance_id=state.instance_id,
            phase=phase,
        )
    _close(state, "retried", now, actor)
    state.retries[phase] = count + 1
    _log(state, EventKind.RETRIED, now, actor, phase, {"retry": count + 1, "note": note})
    _enter(state, phase, now, actor, [])


def cancel(state: WorkflowInstanceState, reason: str, actor: str | None, now: float) -> None:
    """Abandon the instance for good."""
    _require(state, "cancel", Status.CREATED, Status.RUNNING, Status.PAUSED, Status.FAILED)
    _close(state, "cancelled", now, actor)
    state.status = Status.CANCELLED
    state.pause = None
    _log(state, EventKind.CANCELLED, now, actor, state.current_phase, {"reason": reason})


def jump(
    state: WorkflowInstanceState, phase: str, reason: str, actor: str | None, now: float
) -> None:
    """Human override: leave the current phase and enter ``phase``, whatever the routes.

    Visit limits and approvals do not apply: the human deciding is the approval.
    """
    _require(state, "jump", Status.CREATED, Status.RUNNING, Status.PAUSED, Status.FAILED)
    _require_phase(state, phase)
    source = state.current_phase
    _close(state, "jumped", now, actor)
    state.pause = None
    _log(state, EventKind.JUMPED, now, actor, source, {"to": phase, "reason": reason})
    _enter(state, phase, now, actor, [])


# -- time travel -----------------------------------------------------------------------


def fork_state(
    parent: WorkflowInstanceState,
    at: int,
    *,
    instance_id: str,
    meta: dict[str, Any],
    now: float,
) -> WorkflowInstanceState:
    """A new instance of the parent's feature and pinned schema, as the parent was on
    entering ``parent.history[at]``.

    The child gets copies of the closed entries before ``at`` (their task records stay
    stored under the parent) and a fresh visit of ``history[at]``'s phase; its
    variables are replayed from the merges of those entries, so they are what the
    parent had at that point. Retry counts start over.
    """
    if not -len(parent.history) <= at < len(parent.history):
        raise ValidationError(
            f"history index {at} is out of range: instance {parent.instance_id!r} "
            f"has {len(parent.history)} history entries",
            field="at",
        )
    at %= len(parent.history)
    schema = parent.workflow_schema
    earlier = copy.deepcopy(parent.history[:at])
    variables = _initial_variables(parent)
    for entry in earlier:
        if entry.status == "completed" and entry.trigger_data_snapshot is not None:
            merge_trigger_data(schema, variables, entry.phase, entry.trigger_data_snapshot)
    child = WorkflowInstanceState(
        instance_id=instance_id,
        feature_id=parent.feature_id,
        workflow_name=parent.workflow_name,
        current_phase=parent.history[at].phase,
        variables=variables,
        status=Status.RUNNING if at else Status.CREATED,
        history=earlier,
        created_at=now,
        updated_at=now,
        meta={**copy.deepcopy(parent.meta), **copy.deepcopy(meta)},
        workflow_schema=copy.deepcopy(schema),
        version=1,
        automation_level=parent.automation_level,
        parent={"instance_id": parent.instance_id, "history_index": at},
    )
    for entry in earlier:
        child.visits[entry.phase] = child.visits.get(entry.phase, 0) + 1
    data = {
        "schema_name": schema["name"],
        "schema_version": schema_version(schema),
        "schema_hash": schema_hash(schema),
        "variables": _initial_variables(parent),
        "forked_from": parent.instance_id,
        "history_index": at,
    }
    actor = actor_of(meta) or actor_of(parent.meta)
    _log(child, EventKind.STARTED, now, actor, None, data)
    _enter(child, child.current_phase, now, actor, [])
    return child


def _initial_variables(state: WorkflowInstanceState) -> dict[str, Any]:
    """The variables the instance started with, from its ``started`` event.

    A format-1 instance has no event log; its current variables are the best record.
    """
    for event in state.events:
        if event.kind is EventKind.STARTED:
            return copy.deepcopy(event.data.get("variables", {}))
    return copy.deepcopy(state.variables)


def note_fork(state: WorkflowInstanceState, child_id: str, at: int, now: float) -> None:
    """Record on the parent that ``child_id`` was forked from it."""
    data = {"child": child_id, "history_index": at}
    _log(state, EventKind.FORKED, now, actor_of(state.meta), None, data)


# -- shared steps ----------------------------------------------------------------------


def _enter(
    state: WorkflowInstanceState,
    phase: str,
    now: float,
    actor: str | None,
    approval: list[str],
    *,
    risk: float | None = None,
) -> None:
    """Open a visit of ``phase``; pause it for approval if ``approval`` gives reasons."""
    state.current_phase = phase
    state.visits[phase] = state.visits.get(phase, 0) + 1
    entry_status = "awaiting_approval" if approval else "running"
    state.history.append(HistoryEntry(phase=phase, task="", started_at=now, status=entry_status))
    if not approval:
        if len(state.history) > 1:
            state.status = Status.RUNNING
        return
    state.pause = {
        "kind": "approval",
        "reasons": approval,
        "risk": risk,
        "resume_status": (Status.RUNNING if len(state.history) > 1 else Status.CREATED).value,
    }
    state.status = Status.PAUSED
    _log(state, EventKind.APPROVAL_REQUESTED, now, actor, phase, {"reasons": approval})


def _close(
    state: WorkflowInstanceState,
    status: str,
    now: float,
    actor: str | None,
    *,
    snapshot: dict[str, Any] | None = None,
) -> None:
    entry = state.open_entry
    if entry is not None:
        entry.ended_at = now
        entry.status = status
        entry.trigger_data_snapshot = snapshot
        entry.actor = actor


def _set_open_status(state: WorkflowInstanceState, status: str) -> None:
    entry = state.open_entry
    if entry is not None:
        entry.status = status


def _log(
    state: WorkflowInstanceState,
    kind: EventKind,
    now: float,
    actor: str | None,
    phase: str | None,
    data: dict[str, Any],
) -> None:
    """Store a lifecycle event, placed by the history entry it happened at."""
    event = WorkflowEvent(
        kind=kind,
        at=now,
        actor=actor,
        phase=phase,
        data=data,
        history_index=len(state.history) - 1,
        while_open=state.open_entry is not None,
    )
    state.events.append(event)
    state.updated_at = now


def _require(state: WorkflowInstanceState, action: str, *allowed: InstanceStatus) -> None:
    if state.status in allowed:
        return
    if state.status is Status.PAUSED:
        hint = "resume() or reject() it first"
    elif state.status is Status.FAILED:
        hint = "retry_phase() or jump_to() it first"
    else:
        hint = "it takes no further steps"
    raise InvalidTransitionError(
        f"instance {state.instance_id!r} is {state.status.value}; cannot {action}: {hint}",
        instance_id=state.instance_id,
        status=state.status.value,
    )


def _require_phase(state: WorkflowInstanceState, phase: str) -> None:
    if phase not in phase_map(state.workflow_schema):
        raise ValidationError(
            f"workflow {state.workflow_name!r} has no phase {phase!r}",
            field="phase",
            phase=phase,
        )
