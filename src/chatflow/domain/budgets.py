"""Budgets: limits on tokens, cost, wall time and visits, checked after every change.

Scopes: the workflow's ``budget`` and the one given at start (``budget=``, kept in
``state.budget["start"]``) measure the whole instance; a phase's ``budget`` measures
that phase (tokens and cost over all its visits, ``visits`` its visit count, ``wall``
its current visit's time). The workflow's and the start budget's ``visits`` count every
phase visit, their ``wall`` the time since the instance started.

The change that crosses a limit (a ``record_usage``, a step whose trigger reports
usage, a step into one visit too many) pauses the instance in the same event, with
kind ``budget`` and the numbers (an approval pause it interrupts is kept and comes
back afterwards). Reaching 80 % logs a ``budget_warning`` once per limit. A person's
``extend_budget`` raises every limit on the keys it names and resumes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from chatflow.domain import usage as _usage
from chatflow.domain.definition import Workflow, workflow_of
from chatflow.domain.lifecycle import log_event
from chatflow.domain.limits import BUDGET_KEYS, budget
from chatflow.domain.models import EventKind, InstanceStatus, WorkflowInstanceState
from chatflow.domain.values import EntryStatus
from chatflow.errors import InvalidTransitionError, ValidationError

WARN_AT = 0.8
"""The share of a limit at which a ``budget_warning`` is logged."""
Status = InstanceStatus


def has_budget(state: WorkflowInstanceState, workflow: Workflow) -> bool:
    """Whether any limit applies to the instance (else checks cost nothing)."""
    return bool(
        workflow.budget
        or (state.budget and state.budget.get("start"))
        or any(phase.budget for phase in workflow.phases)
    )


def start_budget(limits: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``state.budget`` for a budget given at start (checked, ``wall`` in seconds)."""
    return None if not limits else {"start": budget(limits, "budget")}


def measures(state: WorkflowInstanceState, scope: str, now: float) -> dict[str, float]:
    """What ``scope`` (``workflow``, ``feature`` or ``phase:<name>``) has used so far."""
    spent = state.usage or {}
    if scope.startswith("phase:"):
        name = scope[len("phase:") :]
        totals = spent.get("phases", {}).get(name, {})
        entry = state.open_entry
        wall = now - entry.started_at if entry is not None and entry.phase == name else 0.0
        visits = state.visits.get(name, 0)
    else:
        totals = spent.get("total", {})
        wall, visits = now - state.created_at, len(state.history)
    return {
        "tokens": float(_usage.tokens(totals)),
        "cost_usd": float(totals.get("cost_usd", 0.0)),
        "wall": max(wall, 0.0),
        "visits": float(visits),
    }


def limits(state: WorkflowInstanceState, workflow: Workflow) -> Iterator[tuple[str, str, float]]:
    """Every ``(scope, key, limit)`` in force, extensions included."""
    extra = (state.budget or {}).get("extra", {})
    declared: list[tuple[str, Mapping[str, float] | None]] = [
        ("workflow", workflow.budget),
        ("feature", (state.budget or {}).get("start")),
    ]
    declared += [(f"phase:{phase.name}", phase.budget) for phase in workflow.phases]
    for scope, limits_of in declared:
        for key, limit in (limits_of or {}).items():
            yield scope, key, round(limit + extra.get(key, 0.0), 10)


def standing(state: WorkflowInstanceState, workflow: Workflow, now: float) -> list[dict[str, Any]]:
    """Each limit in force with what it has used: the numbers views and pauses show."""
    used: dict[str, dict[str, float]] = {}
    rows = []
    for scope, key, limit in limits(state, workflow):
        if scope not in used:
            used[scope] = measures(state, scope, now)
        value = used[scope][key]
        share = value / limit if limit else (1.0 if value == 0 else float("inf"))
        rows.append(
            {
                "scope": scope,
                "key": key,
                "used": round(value, 10),
                "limit": limit,
                "share": round(min(share, 1e9), 4),
            }
        )
    return rows


def amount_text(key: str, value: float) -> str:
    """A budget amount as a person reads it (``$6.04``, ``1,200``, ``1h05m``): every
    front end shows the view's ``shown`` text instead of formatting the raw number."""
    if key == "cost_usd":
        return f"${value:,.2f}" if value == 0 or value >= 0.01 else f"${value:.4g}"
    if key == "wall":
        seconds = int(value)
        hours, rest = divmod(seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        if hours:
            return f"{hours}h{minutes:02d}m"
        return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
    return f"{value:,.0f}"


def check(state: WorkflowInstanceState, now: float, actor: str | None) -> None:
    """After a change: warn at 80 %, and pause (kind ``budget``) on crossing a limit."""
    workflow = workflow_of(state.workflow_schema)
    if not has_budget(state, workflow):
        return
    rows = standing(state, workflow, now)
    record = state.budget if state.budget is not None else {}
    warned = record.setdefault("warned", [])
    crossed = [row for row in rows if row["used"] > row["limit"]]
    for row in rows:
        tag = f"{row['scope']}:{row['key']}:{row['limit']}"
        if row["share"] >= WARN_AT and row not in crossed and tag not in warned:
            warned.append(tag)
            log_event(state, EventKind.BUDGET_WARNING, now, actor, state.current_phase, row)
    if warned:
        state.budget = record
    if crossed:
        _cross(state, crossed, now, actor)


def _cross(
    state: WorkflowInstanceState, crossed: list[dict[str, Any]], now: float, actor: str | None
) -> None:
    pause = state.pause or {}
    if not state.status.is_active or pause.get("kind") in ("budget", "manual"):
        return  # finished, already held for its budget, or held by hand (checked on resume)
    state.pause = {
        "kind": "budget",
        "reason": "; ".join(_said(row) for row in crossed),
        "crossed": crossed,
        "resume_status": state.status.value if not pause else pause["resume_status"],
        "after": state.pause,
    }
    state.status = Status.PAUSED
    entry = state.open_entry
    if entry is not None:
        entry.status = EntryStatus.PAUSED.value
    data = {"crossed": crossed}
    log_event(state, EventKind.BUDGET_EXCEEDED, now, actor, state.current_phase, data)


def _said(row: Mapping[str, Any]) -> str:
    where = row["scope"].replace(":", " ")
    return f"{row['key']} {row['used']:g} of {row['limit']:g} ({where} budget)"


def more(amounts: Mapping[str, Any]) -> dict[str, float]:
    """An extension's amounts, checked: budget keys with positive values."""
    if not amounts:
        raise ValidationError(f"say how much more: one or more of {', '.join(BUDGET_KEYS)}")
    found = budget(amounts, "extend")
    zero = [key for key, value in found.items() if value <= 0]
    if zero:
        raise ValidationError(f"extend: {zero[0]} must be more than 0")
    return found


def extend(
    state: WorkflowInstanceState,
    by: str,
    amounts: Mapping[str, float],
    note: str | None,
    now: float,
) -> None:
    """Raise every limit on ``amounts``' keys by that much, logged as ``by``'s; end a
    budget pause if nothing is over any more (else refuse, changing nothing)."""
    if not state.status.is_active:
        raise InvalidTransitionError(
            f"instance {state.instance_id!r} is {state.status.value}; cannot extend its budget",
            instance_id=state.instance_id,
            status=state.status.value,
        )
    record = state.budget if state.budget is not None else {}
    extra = record.setdefault("extra", {})
    for key, value in amounts.items():
        extra[key] = round(extra.get(key, 0.0) + value, 10)
    state.budget = record
    workflow = workflow_of(state.workflow_schema)
    still = [row for row in standing(state, workflow, now) if row["used"] > row["limit"]]
    if still:
        raise ValidationError(
            f"instance {state.instance_id!r} would still be over budget: "
            + "; ".join(_said(row) for row in still),
            field="extend",
            instance_id=state.instance_id,
        )
    data = {"by": by, "more": dict(amounts), "note": note}
    log_event(state, EventKind.BUDGET_EXTENDED, now, by, state.current_phase, data)
    pause = state.pause
    if pause is not None and pause.get("kind") == "budget":
        after = pause.get("after")
        state.pause = after
        state.status = Status.PAUSED if after else Status(pause["resume_status"])
        entry = state.open_entry
        if entry is not None:
            waiting = EntryStatus.AWAITING_APPROVAL if after else EntryStatus.RUNNING
            entry.status = waiting.value
        log_event(
            state,
            EventKind.RESUMED,
            now,
            by,
            state.current_phase,
            {"kind": "budget", "approved_by": by, "note": note},
        )


def now_or(clock: float | None) -> float:
    """``clock`` if given (tests inject one), else the time now."""
    return time.time() if clock is None else clock
