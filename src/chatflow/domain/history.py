"""The full audit log of an instance, assembled when it is read.

A plain step stores no event: its "phase completed" and "phase entered" are the closing
and opening of history entries, which the state keeps anyway (with the closing actor).
Storing them twice would double what every step rewrites. ``timeline`` merges the
stored lifecycle events with events derived from the entries, in the order they
happened:

    for each history entry i:
        phase_entered(i)                    at its started_at, by whoever caused it
        events logged while i was open      (approval requested, paused, resumed, ...)
        phase_completed(i)                  if a trigger completed it, at its ended_at
        events logged after i closed        (completed, failed, retried, jumped, ...)

Events logged before the first entry (``started``) come first. A fork copies its
parent's earlier entries, so its log begins with their derived events.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatflow.domain.definition import END, FAIL
from chatflow.domain.models import (
    EventKind,
    HistoryEntry,
    InstanceStatus,
    WorkflowEvent,
    WorkflowInstanceState,
)


def visit_numbers(history: Iterable[HistoryEntry]) -> list[int]:
    """Each history entry's visit number: 1 for its phase's first entry, 2 for the next.

    The one rule every figure uses: the timeline's ``phase_entered`` events, the views'
    rows, a visit's task key (``<phase>--<visit>``) and a fork's visit counts."""
    seen: dict[str, int] = {}
    numbers = []
    for entry in history:
        seen[entry.phase] = seen.get(entry.phase, 0) + 1
        numbers.append(seen[entry.phase])
    return numbers


def visit_counts(history: Iterable[HistoryEntry]) -> dict[str, int]:
    """Phase -> how many visits ``history`` holds (``visit_numbers``' last per phase)."""
    entries = list(history)
    return dict(zip((entry.phase for entry in entries), visit_numbers(entries), strict=True))


def timeline(state: WorkflowInstanceState) -> list[WorkflowEvent]:
    """Every event of the instance, oldest first (see the module docstring)."""
    stored: dict[tuple[int, bool], list[WorkflowEvent]] = {}
    for event in state.events:
        stored.setdefault((event.history_index, event.while_open), []).append(event)
    log = stored.get((-1, False), []) + stored.get((-1, True), [])
    visits = visit_numbers(state.history)
    for index, entry in enumerate(state.history):
        log.append(
            WorkflowEvent(
                kind=EventKind.PHASE_ENTERED,
                at=entry.started_at,
                actor=log[-1].actor if log else None,
                phase=entry.phase,
                data={"visit": visits[index]},
                history_index=index,
                while_open=True,
            )
        )
        log += stored.get((index, True), [])
        if entry.status == "completed" and entry.ended_at is not None:
            log.append(
                WorkflowEvent(
                    kind=EventKind.PHASE_COMPLETED,
                    at=entry.ended_at,
                    actor=entry.actor,
                    phase=entry.phase,
                    data={"next": _next_step(state, index)},
                    history_index=index,
                )
            )
        log += stored.get((index, False), [])
    return log


def _next_step(state: WorkflowInstanceState, index: int) -> str | None:
    """Where the step that completed ``history[index]`` went."""
    if index + 1 < len(state.history):
        return state.history[index + 1].phase
    if state.status is InstanceStatus.COMPLETED:
        return END
    return FAIL if state.status is InstanceStatus.FAILED else None
