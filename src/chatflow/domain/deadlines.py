"""Deadlines on waits: what a phase's ``deadline`` does once it has passed.

After every change, ``refresh`` keeps ``state.wait`` saying what the instance waits for
and until when: a phase's approval (``deadline_of: approval``: from when it was asked
for) or the whole visit (``phase``: from its start). There is no daemon: ``due`` (in
``engine.due`` / ``chatflow due``) lists the waits whose time is up, and ``act`` times
one out inside the store's update transaction, after checking again that it is still
due and not acted on, so several processes running ``due --apply`` at once act on each
timeout exactly once. The outcome is a ``deadline_passed`` event, then: ``escalate``
(logs who to tell; the wait goes on), ``reject`` (refuses the approval), ``fail``, or
``default`` (enters the ``default`` target).
"""

from __future__ import annotations

from typing import Any

from chatflow.domain import lifecycle
from chatflow.domain.definition import END, FAIL, Deadline, workflow_of
from chatflow.domain.models import EventKind, InstanceStatus, WorkflowInstanceState
from chatflow.domain.values import EntryStatus

DEADLINE_ACTOR = "chatflow:deadline"
"""Who the log names for what a passed deadline did (no person acted)."""


def refresh(state: WorkflowInstanceState, now: float) -> None:
    """Set ``state.wait`` to the current wait and its due time (kept if unchanged)."""
    deadline = _deadline(state)
    waiting = deadline is not None and _waiting(state, deadline)
    if deadline is None or not waiting:
        state.wait = None
        return
    visit = len(state.history) - 1
    old = state.wait
    if old is not None and old.get("visit") == visit and old.get("of") == deadline.of:
        return
    entry = state.open_entry
    since = entry.started_at if deadline.of == "phase" and entry is not None else now
    state.wait = {
        "visit": visit,
        "phase": state.current_phase,
        "of": deadline.of,
        "since": since,
        "due_at": since + deadline.seconds,
    }


def _deadline(state: WorkflowInstanceState) -> Deadline | None:
    if not state.status.is_active:
        return None
    workflow = workflow_of(state.workflow_schema)
    if not workflow.has_phase(state.current_phase):
        return None
    return workflow.phase(state.current_phase).deadline


def _waiting(state: WorkflowInstanceState, deadline: Deadline) -> bool:
    """Whether the instance waits for what ``deadline`` times: any open visit, or an
    approval (to enter or to complete; also under a budget pause that interrupted it)."""
    if deadline.of == "phase":
        return state.open_entry is not None
    pause = state.pause or {}
    if pause.get("kind") == "budget":
        pause = pause.get("after") or {}
    if pause.get("kind") == "approval":
        return True
    phase = workflow_of(state.workflow_schema).phase(state.current_phase)
    return bool(phase.exit_requires.approvals) and state.status is not InstanceStatus.PAUSED


def overdue(wait: dict[str, Any] | None, now: float) -> bool:
    """Whether ``wait`` is due at ``now`` and not acted on yet."""
    return wait is not None and not wait.get("acted") and float(wait["due_at"]) <= now


def waiting_view(state: WorkflowInstanceState, now: float) -> dict[str, Any] | None:
    """What the instance waits for and for how long (``list``, ``features``, the page)."""
    wait = state.wait
    if wait is None:
        return None
    return {
        "instance_id": state.instance_id,
        "feature_id": state.feature_id,
        "phase": wait["phase"],
        "of": wait["of"],
        "since": wait["since"],
        "due_at": wait["due_at"],
        "waited_s": round(max(now - wait["since"], 0.0), 3),
        "overdue_s": round(max(now - wait["due_at"], 0.0), 3),
        "overdue": overdue(wait, now),
        "acted": wait.get("acted"),
        "on_timeout": _deadline_or_none(state),
    }


def _deadline_or_none(state: WorkflowInstanceState) -> str | None:
    deadline = _deadline(state)
    return None if deadline is None else deadline.on_timeout


def act(state: WorkflowInstanceState, now: float, stamp: float | None = None) -> str | None:
    """Time out the instance's wait if it is (still) overdue at ``now``; return the
    outcome, or ``None`` if another process acted first or the wait ended.

    ``now`` judges what is due (tests and previews inject it); the events are stamped
    ``stamp`` (the real clock), never before the instance's last change: a clock passed
    in for judging must not date the log in the future or before its own past."""
    wait, deadline = state.wait, _deadline(state)
    if deadline is None or not overdue(wait, now) or wait is None:
        return None
    if wait["visit"] != len(state.history) - 1:
        return None
    waited = round(now - wait["since"], 3)
    now = max(now if stamp is None else stamp, state.updated_at)
    outcome = deadline.on_timeout
    data = {
        "outcome": outcome,
        "of": wait["of"],
        "deadline_s": deadline.seconds,
        "waited_s": waited,
        "escalate_to": list(deadline.escalate_to),
    }
    if outcome == "default":
        data["to"] = deadline.default
    phase = state.current_phase
    lifecycle.log_event(state, EventKind.DEADLINE_PASSED, now, DEADLINE_ACTOR, phase, data)
    _OUTCOMES[outcome](state, deadline, now)
    return outcome


def _escalate(state: WorkflowInstanceState, deadline: Deadline, now: float) -> None:
    """The wait goes on; it is acted on once (``refresh`` keeps the mark for the visit)."""
    state.wait = {**(state.wait or {}), "acted": "escalate"}


def _reject(state: WorkflowInstanceState, deadline: Deadline, now: float) -> None:
    pause = state.pause or {}
    if pause.get("kind") == "budget":  # the approval a budget pause interrupted
        state.pause = pause.get("after")
    lifecycle.reject(state, DEADLINE_ACTOR, "deadline passed", None, now)


def _fail(state: WorkflowInstanceState, deadline: Deadline, now: float) -> None:
    lifecycle.fail(state, f"deadline of {deadline.seconds:g}s passed", DEADLINE_ACTOR, now)


def _default(state: WorkflowInstanceState, deadline: Deadline, now: float) -> None:
    target = deadline.default or FAIL
    if target == FAIL:
        _fail(state, deadline, now)
        return
    lifecycle._close(state, EntryStatus.TIMED_OUT, now, DEADLINE_ACTOR)  # the lifecycle's own steps
    state.pause = None
    phase = state.current_phase
    if target == END:
        state.status = InstanceStatus.COMPLETED
        lifecycle.log_event(state, EventKind.COMPLETED, now, DEADLINE_ACTOR, phase, {})
        return
    entered = workflow_of(state.workflow_schema).phase(target)
    lifecycle._enter(state, entered, now, DEADLINE_ACTOR)


_OUTCOMES = {"escalate": _escalate, "reject": _reject, "fail": _fail, "default": _default}
