"""The state changes behind every engine operation, as functions on a loaded state.

The engine runs each of these inside one ``store.update_state`` call (or on a private
copy for ``dry_run``); they never touch a store. Each one checks the instance may take
the step, changes the state, and appends the matching events to its audit log, so that
these always hold (the property tests in ``tests/domain/test_workflow_properties.py`` check them):

- an instance that is not finished has exactly one open history entry, a finished one
  has none;
- every history entry is a visit: ``visits`` counts entries per phase;
- ``retries`` counts ``retried`` events per phase (a fork starts with none);
- a visit of a phase that ``requires_approval`` either waited for that approval
  (``approval_requested``) or was forced in by someone (``approval_overridden``):
  every path into a phase goes through ``_enter``, and the upgrade that makes the
  current phase a gated one through ``gate_entry``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from chatflow._text import counted
from chatflow._validation import copy_json
from chatflow.domain.definition import END, FAIL, Phase, Workflow, workflow_of
from chatflow.domain.history import visit_counts
from chatflow.domain.models import (
    EventKind,
    HistoryEntry,
    InstanceStatus,
    WorkflowEvent,
    WorkflowInstanceState,
)
from chatflow.domain.transitions import (
    approval_reasons,
    check_risk,
    merged_variables,
    open_requirements,
    route,
)
from chatflow.domain.values import EntryStatus, ParentLink, Pause
from chatflow.errors import GateNotSatisfiedError, InvalidTransitionError, ValidationError

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
    workflow: Workflow,
    variables: dict[str, Any],
    meta: dict[str, Any],
    automation_level: int | None,
    now: float,
    actor: str | None = None,
) -> WorkflowInstanceState:
    """A new instance in the workflow's first phase (paused if that phase needs approval);
    ``actor`` (default: the one ``meta`` names) started it."""
    state = WorkflowInstanceState(
        instance_id=instance_id,
        feature_id=feature_id,
        workflow_name=workflow.name,
        current_phase=workflow.first.name,
        variables=copy_json(variables),
        status=Status.CREATED,
        created_at=now,
        updated_at=now,
        meta=copy_json(meta),
        workflow_schema=workflow.to_dict(),
        version=1,
        automation_level=automation_level,
    )
    actor = actor or actor_of(meta)
    started = {**schema_ref(workflow), "variables": copy_json(variables)}
    log_event(state, EventKind.STARTED, now, actor, None, started)
    _enter(state, workflow.first, now, actor)
    return state


# -- stepping --------------------------------------------------------------------------


def advance(
    state: WorkflowInstanceState,
    trigger: dict[str, Any],
    meta: dict[str, Any],
    now: float,
    actor: str | None = None,
) -> None:
    """Complete the current phase with ``trigger`` data and route to the next step.

    Who acts: ``actor``, else the one ``meta`` names, else the instance's meta's.
    """
    _require(state, "trigger a step")
    risk = check_risk(trigger)
    actor = actor or actor_of(meta) or actor_of(state.meta)
    _leave(state, trigger, copy_json(meta), actor, now, risk=risk)


def require_step(state: WorkflowInstanceState) -> None:
    """Refuse, before anything changes, an instance that cannot take a step now."""
    _require(state, "trigger a step")


def _leave(
    state: WorkflowInstanceState,
    trigger: dict[str, Any],
    meta: dict[str, Any],
    actor: str | None,
    now: float,
    *,
    risk: float | None,
    approved: bool = False,
) -> None:
    """Leave the current phase with ``trigger`` data, if its exit gate holds, and route.

    Everything is checked before anything changes, so a refused step leaves the state as
    it was. A risky step that would complete the instance waits for approval instead
    (``approved``: it already has it).
    """
    workflow = workflow_of(state.workflow_schema)
    phase = state.current_phase
    variables = merged_variables(workflow, state.variables, phase, trigger)
    _check_exit(state, workflow, trigger, variables)
    step = route(workflow, phase, variables=variables, trigger=trigger, visits=state.visits)
    state.meta.update(meta)
    state.updated_at = now
    if step.target == END and not approved:
        reasons = approval_reasons(None, risk, state.automation_level)
        if reasons:
            _await_completion(state, trigger, reasons, risk, actor, now)
            return
    _close(state, EntryStatus.COMPLETED, now, actor, snapshot=copy_json(trigger))
    state.variables = variables
    if step.target == END:
        state.status = Status.COMPLETED
        log_event(state, EventKind.COMPLETED, now, actor, phase, {})
    elif step.target == FAIL:
        state.status = Status.FAILED
        log_event(state, EventKind.FAILED, now, actor, phase, {"error": step.reason})
    else:
        assert step.phase is not None  # a target other than $end/$fail is a phase
        _enter(state, step.phase, now, actor, risk=None if approved else risk)


def _await_completion(
    state: WorkflowInstanceState,
    trigger: dict[str, Any],
    reasons: list[str],
    risk: float | None,
    actor: str | None,
    now: float,
) -> None:
    """Hold a risky last step open: ``resume`` completes it, ``reject`` redoes the phase."""
    pause = Pause.approval(reasons, risk, state.status, pending_trigger=copy_json(trigger))
    state.pause = pause.to_dict()
    state.status = Status.PAUSED
    _set_open_status(state, EntryStatus.AWAITING_APPROVAL)
    data = {"reasons": reasons, "to": END}
    log_event(state, EventKind.APPROVAL_REQUESTED, now, actor, state.current_phase, data)


def _check_exit(
    state: WorkflowInstanceState,
    workflow: Workflow,
    trigger: dict[str, Any],
    variables: dict[str, Any],
) -> None:
    missing = exit_requirements(state, workflow, trigger=trigger, variables=variables)
    if missing:
        phase = state.current_phase
        remedies = dict.fromkeys(f"{{{item['remedy']}}}" for item in missing if "remedy" in item)
        raise GateNotSatisfiedError(
            f"instance {state.instance_id!r} cannot leave phase {phase!r} yet; missing: "
            + "; ".join(item["text"] for item in missing),
            hint=f" (use {' and '.join(remedies)})" if remedies else None,
            instance_id=state.instance_id,
            phase=phase,
            missing=missing,
        )


def exit_requirements(
    state: WorkflowInstanceState,
    workflow: Workflow | None = None,
    *,
    trigger: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """What the current phase's ``exit_requires`` still miss (empty: it may be left).

    ``variables`` default to the instance's and ``trigger`` to none, which is what a
    jump or a plain trigger would see.
    """
    entry = state.open_entry
    if entry is None:
        return []
    gate = (workflow or workflow_of(state.workflow_schema)).phase(state.current_phase).exit_requires
    if not gate.requires_anything:
        return []
    return open_requirements(
        gate,
        recorded=bool(entry.task),
        approvers=approvers(state) if gate.approvals else [],  # only then read the event log
        variables=state.variables if variables is None else variables,
        trigger={} if trigger is None else trigger,
        visits=state.visits,
    )


def approvers(state: WorkflowInstanceState) -> list[str]:
    """The distinct people who approved the current visit, in the order they first did."""
    approvals = (e for e in visit_events(state) if e.kind is EventKind.APPROVED)
    return list(dict.fromkeys(event.data["by"] for event in approvals))


def visit_events(state: WorkflowInstanceState) -> list[WorkflowEvent]:
    """The events of the latest visit, oldest first.

    Reads the log backwards only as far as that visit's events, so the cost does not
    grow with the history.
    """
    index = len(state.history) - 1
    found: list[WorkflowEvent] = []
    for event in reversed(state.events):
        if event.history_index < index:
            break
        found.append(event)
    found.reverse()
    return found


def note_blocked(state: WorkflowInstanceState, error: GateNotSatisfiedError, now: float) -> None:
    """Log a refused step on a dry run's private copy (never stored: nothing changed)."""
    data = {"missing": error.context["missing"]}
    log_event(state, EventKind.GATE_BLOCKED, now, actor_of(state.meta), state.current_phase, data)


def _over_budget(state: WorkflowInstanceState, pause_info: Pause) -> InvalidTransitionError:
    """Only a person allowing more ends a budget pause: not a resume, not an approval."""
    return InvalidTransitionError(
        f"instance {state.instance_id!r} is paused over budget ({pause_info.because})",
        hint="; allow more with {extend_budget}",
        instance_id=state.instance_id,
    )


def approve(state: WorkflowInstanceState, by: str, note: str | None, now: float) -> None:
    """Record ``by``'s approval of the current visit (counted by an ``approvals`` gate).

    Refused where the current phase asks for no approvals: an approval nothing reads
    would look like a decision that mattered; and while paused over budget, where it
    would look like letting the instance go on.
    """
    _require(state, "approve")
    pause_info = state.pause_info
    if pause_info is not None and pause_info.kind == "budget":
        raise _over_budget(state, pause_info)  # an approval would look like a go-ahead
    phase = state.current_phase
    if not workflow_of(state.workflow_schema).phase(phase).exit_requires.approvals:
        raise InvalidTransitionError(
            f"instance {state.instance_id!r} is {state.status.value}, not waiting for approval: "
            f"phase {phase!r} asks for no approvals (exit_requires.approvals)",
            instance_id=state.instance_id,
            phase=phase,
        )
    log_event(state, EventKind.APPROVED, now, by, state.current_phase, {"by": by, "note": note})


# -- human in the loop -----------------------------------------------------------------


def pause(state: WorkflowInstanceState, reason: str, actor: str | None, now: float) -> None:
    """Suspend work on the current phase until ``resume``."""
    _require(state, "pause")
    state.pause = Pause.manual(reason, state.status).to_dict()
    state.status = Status.PAUSED
    _set_open_status(state, EntryStatus.PAUSED)
    log_event(state, EventKind.PAUSED, now, actor, state.current_phase, {"reason": reason})


def resume(
    state: WorkflowInstanceState,
    approved_by: str | None,
    note: str | None,
    actor: str | None,
    now: float,
) -> None:
    """Continue a paused instance; an approval pause needs ``approved_by``.

    A pause by hand waits for no approval, so ending it records none: a name given
    as ``approved_by`` there is only who resumed (views show it as a resume, never as
    an approval decision).
    """
    _require(state, "resume")
    pause_info = state.pause_info or Pause.manual("", Status.RUNNING)
    if pause_info.kind == "budget":
        raise _over_budget(state, pause_info)
    if not pause_info.is_approval:
        approved_by, actor = None, approved_by or actor
    elif not approved_by:
        waits = "to enter" if pause_info.waits_to_enter else "to complete"
        raise ValidationError(
            f"instance {state.instance_id!r} waits for approval {waits} {state.current_phase!r}",
            field="approved_by",
            hint="; approve it with {approve_entry}",
            instance_id=state.instance_id,
        )
    state.status = pause_info.resume_status
    state.pause = None
    _set_open_status(state, EntryStatus.RUNNING)
    data = {"kind": pause_info.kind, "approved_by": approved_by, "note": note}
    log_event(state, EventKind.RESUMED, now, approved_by or actor, state.current_phase, data)
    pending = pause_info.pending_trigger
    if pending is not None:  # an approved risky last step: take it now, gate permitting
        _leave(state, pending, {}, approved_by or actor, now, risk=None, approved=True)


def reject(
    state: WorkflowInstanceState,
    rejected_by: str | None,
    note: str | None,
    to: str | None,
    now: float,
    *,
    force: bool = False,
) -> None:
    """Refuse an approval: send the work back to ``to`` (default: the phase before, or
    the current phase when the refused step would have completed the instance).

    With no earlier phase to go back to (the first phase needed approval), the
    instance is cancelled. A target that requires approval waits for it again,
    unless ``force`` (recorded).
    """
    _require(state, "reject")
    pause = state.pause_info
    if pause is None or not pause.is_approval:
        raise InvalidTransitionError(
            f"instance {state.instance_id!r} is paused by hand, not waiting for approval",
            hint="; use {resume} or {cancel}",
            instance_id=state.instance_id,
            status=state.status.value,
        )
    gated = state.current_phase
    if to is not None:
        target: str | None = to
    elif not pause.waits_to_enter:
        target = gated
    else:
        target = _previous_phase(state)
    workflow = workflow_of(state.workflow_schema)
    entered = None if target is None else workflow.phase(target)
    _close(state, EntryStatus.REJECTED, now, rejected_by)
    state.pause = None
    data = {"rejected_by": rejected_by, "note": note, "to": target}
    log_event(state, EventKind.REJECTED, now, rejected_by, gated, data)
    if entered is None:
        state.status = Status.CANCELLED
        log_event(state, EventKind.CANCELLED, now, rejected_by, gated, {"reason": "rejected"})
    else:
        _enter(state, entered, now, rejected_by, force=force)


def _previous_phase(state: WorkflowInstanceState) -> str | None:
    return state.history[-2].phase if len(state.history) >= 2 else None


# -- failure and recovery --------------------------------------------------------------


def fail(state: WorkflowInstanceState, error: str, actor: str | None, now: float) -> None:
    """Mark the current phase failed; the instance fails until ``retry`` or ``jump``."""
    _require(state, "fail")
    _close(state, EntryStatus.FAILED, now, actor)
    state.status = Status.FAILED
    state.pause = None
    log_event(state, EventKind.FAILED, now, actor, state.current_phase, {"error": error})


def retry(
    state: WorkflowInstanceState,
    note: str | None,
    actor: str | None,
    now: float,
    *,
    force: bool = False,
) -> None:
    """Start the current phase again (a new visit), counting the retry for that phase.

    A phase that requires approval waits for it again, unless ``force`` (recorded).
    """
    _require(state, "retry")
    phase = state.current_phase
    count = state.retries.get(phase, 0)
    definition = workflow_of(state.workflow_schema).phase(phase)
    limit = definition.max_retries
    if limit is not None and count >= limit:
        raise InvalidTransitionError(
            f"phase {phase!r} of instance {state.instance_id!r} was retried "
            f"{counted(count, 'time')}; "
            f"its max_retries is {limit}",
            instance_id=state.instance_id,
            phase=phase,
        )
    _close(state, EntryStatus.RETRIED, now, actor)
    state.retries[phase] = count + 1
    log_event(state, EventKind.RETRIED, now, actor, phase, {"retry": count + 1, "note": note})
    _enter(state, definition, now, actor, force=force)


def cancel(state: WorkflowInstanceState, reason: str, actor: str | None, now: float) -> None:
    """Abandon the instance for good."""
    _require(state, "cancel")
    _close(state, EntryStatus.CANCELLED, now, actor)
    state.status = Status.CANCELLED
    state.pause = None
    log_event(state, EventKind.CANCELLED, now, actor, state.current_phase, {"reason": reason})


def jump(
    state: WorkflowInstanceState,
    phase: str,
    reason: str,
    actor: str | None,
    now: float,
    *,
    force: bool = False,
) -> None:
    """Human override: leave the current phase and enter ``phase``, whatever the routes.

    Visit limits do not apply. The current phase's exit gate does, once its work has
    begun (not while it waits for approval to be entered), and so does ``phase``'s
    approval to enter: both unless ``force`` (recorded in the ``jumped`` event, and
    a skipped approval as ``approval_overridden``).
    """
    _require(state, "jump")
    workflow = workflow_of(state.workflow_schema)
    target = workflow.phase(phase)
    pause = state.pause_info
    waiting_to_enter = pause is not None and pause.waits_to_enter
    if not force and not waiting_to_enter:
        _check_exit(state, workflow, {}, state.variables)
    source = state.current_phase
    _close(state, EntryStatus.JUMPED, now, actor)
    state.pause = None
    data: dict[str, Any] = {"to": phase, "reason": reason}
    if force:
        data["forced"] = True
    log_event(state, EventKind.JUMPED, now, actor, source, data)
    _enter(state, target, now, actor, force=force)


# -- time travel -----------------------------------------------------------------------


def fork_state(
    parent: WorkflowInstanceState,
    at: int,
    *,
    instance_id: str,
    meta: dict[str, Any],
    now: float,
    actor: str | None = None,
    force: bool = False,
) -> WorkflowInstanceState:
    """A new instance of the parent's feature and pinned schema, as the parent was on
    entering ``parent.history[at]``, started by ``actor`` (default: the one ``meta`` or
    the parent's meta names).

    The child gets copies of the closed entries before ``at`` (their task records stay
    stored under the parent) and a fresh visit of ``history[at]``'s phase; its
    variables are replayed from the merges of those entries, so they are what the
    parent had at that point. Retry counts start over.
    """
    if not -len(parent.history) <= at < len(parent.history):
        raise ValidationError(
            f"history index {at} is out of range: instance {parent.instance_id!r} "
            f"has {counted(len(parent.history), 'history entry', 'history entries')}",
            field="at",
        )
    at %= len(parent.history)
    schema = parent.workflow_schema
    workflow = workflow_of(schema)
    earlier = copy.deepcopy(parent.history[:at])
    variables = _initial_variables(parent)
    for entry in earlier:
        if entry.status == "completed" and entry.trigger_data_snapshot is not None:
            snapshot = entry.trigger_data_snapshot
            variables = merged_variables(workflow, variables, entry.phase, snapshot)
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
        meta={**copy_json(parent.meta), **copy_json(meta)},
        workflow_schema=copy_json(schema),
        version=1,
        automation_level=parent.automation_level,
        parent=ParentLink(parent.instance_id, at).to_dict(),
    )
    child.visits.update(visit_counts(earlier))
    data = {
        **schema_ref(workflow),
        "variables": _initial_variables(parent),
        "forked_from": parent.instance_id,
        "history_index": at,
    }
    actor = actor or actor_of(meta) or actor_of(parent.meta)
    log_event(child, EventKind.STARTED, now, actor, None, data)
    # A fork starts a fresh visit: the phase's approval to enter and its exit gate
    # apply again (approvals given to the parent's visit do not carry over).
    _enter(child, workflow.phase(child.current_phase), now, actor, force=force)
    return child


def schema_ref(workflow: Workflow) -> dict[str, Any]:
    """How events name a workflow version: name, version and content hash."""
    return {
        "schema_name": workflow.name,
        "schema_version": workflow.version,
        "schema_hash": workflow.content_hash,
    }


def _initial_variables(state: WorkflowInstanceState) -> dict[str, Any]:
    """The variables the instance started with, from its ``started`` event.

    A format-1 instance has no event log; its current variables are the best record.
    """
    for event in state.events:
        if event.kind is EventKind.STARTED:
            return copy_json(event.data.get("variables", {}))
    return copy_json(state.variables)


def note_fork(
    state: WorkflowInstanceState, child_id: str, at: int, actor: str | None, now: float
) -> None:
    """Record on the parent that ``actor`` forked ``child_id`` from it."""
    data = {"child": child_id, "history_index": at}
    log_event(state, EventKind.FORKED, now, actor or actor_of(state.meta), None, data)


def note_recorded(
    state: WorkflowInstanceState, index: int, key: str, actor: str | None, now: float
) -> None:
    """Link ``history[index]`` to its task record ``key`` and log who recorded it."""
    state.history[index].task = key
    data = {"task": key, "history_index": index}
    phase = state.history[index].phase
    log_event(state, EventKind.TASK_RECORDED, now, actor or actor_of(state.meta), phase, data)


# -- shared steps ----------------------------------------------------------------------


def _enter(
    state: WorkflowInstanceState,
    phase: Phase,
    now: float,
    actor: str | None,
    *,
    risk: float | None = None,
    force: bool = False,
) -> None:
    """Open a visit of ``phase``: the one way every path (start, trigger, jump, reject,
    retry, fork) enters a phase, so that none skips its approval to enter (``gate_entry``).

    ``risk`` is the trigger's, weighed against the instance's automation level.
    """
    name = phase.name
    state.current_phase = name
    state.visits[name] = state.visits.get(name, 0) + 1
    state.history.append(HistoryEntry(phase=name, task="", started_at=now, status="running"))
    if len(state.history) > 1:
        state.status = Status.RUNNING
    reasons = approval_reasons(phase, risk, state.automation_level)
    if reasons:
        gate_entry(state, reasons, now, actor, risk=risk, force=force)


def gate_entry(
    state: WorkflowInstanceState,
    reasons: list[str],
    now: float,
    actor: str | None,
    *,
    risk: float | None = None,
    force: bool = False,
) -> None:
    """Hold the open visit until a person approves entering it (``resume(approved_by=)``)
    for ``reasons``; or, ``force``d, let it run and log who skipped the approval."""
    phase = state.current_phase
    if force:
        data = {"reasons": reasons}
        log_event(state, EventKind.APPROVAL_OVERRIDDEN, now, actor, phase, data)
        return
    state.pause = Pause.approval(reasons, risk, state.status).to_dict()
    state.status = Status.PAUSED
    _set_open_status(state, EntryStatus.AWAITING_APPROVAL)
    log_event(state, EventKind.APPROVAL_REQUESTED, now, actor, phase, {"reasons": reasons})


def _close(
    state: WorkflowInstanceState,
    status: EntryStatus,
    now: float,
    actor: str | None,
    *,
    snapshot: dict[str, Any] | None = None,
) -> None:
    entry = state.open_entry
    if entry is not None:
        entry.ended_at = now
        entry.status = status.value
        entry.trigger_data_snapshot = snapshot
        entry.actor = actor


def _set_open_status(state: WorkflowInstanceState, status: EntryStatus) -> None:
    entry = state.open_entry
    if entry is not None:
        entry.status = status.value


def log_event(
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


ALLOWED: Mapping[str, tuple[InstanceStatus, ...]] = {
    "trigger a step": (Status.CREATED, Status.RUNNING),
    "approve": (Status.CREATED, Status.RUNNING, Status.PAUSED),
    "pause": (Status.CREATED, Status.RUNNING),
    "resume": (Status.PAUSED,),
    "reject": (Status.PAUSED,),
    "fail": (Status.CREATED, Status.RUNNING, Status.PAUSED),
    "retry": (Status.CREATED, Status.RUNNING, Status.FAILED),
    "cancel": (Status.CREATED, Status.RUNNING, Status.PAUSED, Status.FAILED),
    "jump": (Status.CREATED, Status.RUNNING, Status.PAUSED, Status.FAILED),
    "extend budget": (Status.CREATED, Status.RUNNING, Status.PAUSED),
}
"""The one table of which statuses each action accepts: the lifecycle's checks and
``chatflow.views.available_actions`` (the CLI, the page, MCP) all read it. An approval
pause further narrows ``resume`` (it needs an approver) and ``reject`` (only it); a
budget pause ends only by ``extend budget`` (``approve --extend``)."""


_PAUSED_HINTS = {"approval": "first {approve_entry} or {reject}", "budget": "first {extend_budget}"}


def _require(state: WorkflowInstanceState, action: str) -> None:
    allowed = ALLOWED[action]
    if state.status in allowed:
        return
    if state.status is Status.PAUSED:
        kind = state.pause_info.kind if state.pause_info is not None else ""
        hint = _PAUSED_HINTS.get(kind, "first {resume}")
    elif state.status is Status.FAILED:
        hint = "first {retry} or {jump}"
    elif state.status.is_active:  # no remedy, but it holds no {term}: phrased as it is
        hint = f"only a {' or '.join(status.value for status in allowed)} instance can"
    else:
        hint = "it takes no further steps"
    raise InvalidTransitionError(
        f"instance {state.instance_id!r} is {state.status.value}; cannot {action}",
        hint=f": {hint}",
        instance_id=state.instance_id,
        status=state.status.value,
    )
