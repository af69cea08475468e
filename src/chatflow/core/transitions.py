"""Where a step goes: transition routing, visit limits, trigger-data merging, approval gates.

Pure functions of a validated schema and plain data, so ``dry_run``, the engine and the
status report all route identically.

Routing rule (``route``): a phase with ``transitions`` takes the first one whose ``when``
holds (a transition without ``when`` always holds; validation makes the last one such);
a phase without goes to the next phase in the list, or completes after the last one.
If the chosen phase has ``max_visits`` and has already been visited that often, its
``fallback`` (a phase, ``$end`` or ``$fail``; default ``$fail``) is taken instead.

Merge rule (``merge_trigger_data``), chosen by the schema's ``merge_trigger_data`` key:
``"none"`` (the default, the seed's behaviour) leaves the variables alone; ``"phase"``
stores the trigger data as ``variables[<phase name>]``, replacing the previous visit's;
``"flat"`` updates the variables' top level with it.

Approval rule (``approval_reasons``): entering a phase pauses the instance first when the
phase has ``requires_approval: true``, or when the instance has an
``automation_level`` and the trigger data's ``risk`` (0-100) exceeds it.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from chatflow.core.conditions import evaluate
from chatflow.core.schema import END, FAIL
from chatflow.errors import ValidationError

RISK_KEY = "risk"


class Route(NamedTuple):
    """The outcome of routing one step: a phase name, ``END`` or ``FAIL``, and why.

    ``phase`` is the target's definition (``None`` for a terminal).
    """

    target: str
    reason: str
    phase: dict[str, Any] | None = None


def route(
    schema: dict[str, Any],
    current: str,
    *,
    variables: dict[str, Any],
    trigger: dict[str, Any],
    visits: dict[str, int],
) -> Route:
    """Where completing ``current`` leads, given the data and the visit counts so far.

    Runs on every step, so it scans the phase list instead of indexing it: a linear
    step touches only the phases up to the next one.
    """
    phases: list[dict[str, Any]] = schema["phases"]
    index = _index_of(phases, current)
    transitions = phases[index].get("transitions")
    if transitions:
        target, reason = _first_match(transitions, variables, trigger, visits, current)
        limited = None if target in (END, FAIL) else phases[_index_of(phases, target)]
    elif index + 1 < len(phases):
        limited = phases[index + 1]
        target, reason = limited["name"], "next in list"
    else:
        return Route(END, "last phase")
    if limited is None or visits.get(target, 0) < limited.get(
        "max_visits", visits.get(target, 0) + 1
    ):
        return Route(target, reason, limited)
    fallback = limited.get("fallback", FAIL)
    reason = f"{target!r} reached max_visits {limited['max_visits']}"
    fallback_phase = None if fallback in (END, FAIL) else phases[_index_of(phases, fallback)]
    return Route(fallback, reason, fallback_phase)


def _index_of(phases: list[dict[str, Any]], name: str) -> int:
    for index, phase in enumerate(phases):
        if phase["name"] == name:
            return index
    raise ValidationError(f"workflow has no phase {name!r}", phase=name)


def _first_match(
    transitions: list[dict[str, Any]],
    variables: dict[str, Any],
    trigger: dict[str, Any],
    visits: dict[str, int],
    current: str,
) -> tuple[str, str]:
    context = {"variables": variables, "trigger": trigger, "visits": visits}
    for index, transition in enumerate(transitions):
        if "when" not in transition:
            return transition["to"], f"transitions[{index}] (unconditional)"
        if evaluate(transition["when"], context):
            return transition["to"], f"transitions[{index}]"
    # Unreachable for validated schemas (the last transition has no 'when').
    raise ValidationError(f"no transition of phase {current!r} applies")


def merge_trigger_data(
    schema: dict[str, Any], variables: dict[str, Any], phase: str, trigger: dict[str, Any]
) -> None:
    """Merge a completed phase's trigger data into ``variables`` per the schema's rule."""
    mode = schema.get("merge_trigger_data", "none")
    if mode == "phase":
        variables[phase] = copy.deepcopy(trigger)
    elif mode == "flat":
        variables.update(copy.deepcopy(trigger))


def check_risk(trigger: dict[str, Any]) -> float | None:
    """The trigger data's risk score, if it has one; raises if it is not a number 0-100."""
    risk = trigger.get(RISK_KEY)
    if risk is None:
        return None
    if isinstance(risk, bool) or not isinstance(risk, (int, float)) or not 0 <= risk <= 100:
        raise ValidationError(
            f"trigger_data[{RISK_KEY!r}] must be a number from 0 to 100, got {risk!r}",
            field=RISK_KEY,
        )
    return float(risk)


def approval_reasons(
    phase: dict[str, Any] | None, risk: float | None, automation_level: int | None
) -> list[str]:
    """Why entering ``phase`` needs a human's approval first (empty: it does not)."""
    reasons = []
    if phase is not None and phase.get("requires_approval", False):
        reasons.append(f"phase {phase['name']!r} requires approval")
    if risk is not None and automation_level is not None and risk > automation_level:
        reasons.append(f"risk {risk:g} exceeds automation level {automation_level}")
    return reasons
