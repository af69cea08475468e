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
from dataclasses import dataclass
from typing import Any

from chatflow.core.conditions import evaluate
from chatflow.core.schema import END, FAIL, next_phase, phase_map
from chatflow.errors import ValidationError

RISK_KEY = "risk"


@dataclass(frozen=True)
class Route:
    """The outcome of routing one step: a phase name, ``END`` or ``FAIL``, and why."""

    target: str
    reason: str

    @property
    def is_terminal(self) -> bool:
        return self.target in (END, FAIL)


def route(
    schema: dict[str, Any],
    current: str,
    *,
    variables: dict[str, Any],
    trigger: dict[str, Any],
    visits: dict[str, int],
) -> Route:
    """Where completing ``current`` leads, given the data and the visit counts so far."""
    phases = phase_map(schema)
    chosen = _declared_route(phases[current], schema, current, variables, trigger, visits)
    limited = phases.get(chosen.target)
    if limited is None or "max_visits" not in limited:
        return chosen
    if visits.get(chosen.target, 0) < limited["max_visits"]:
        return chosen
    fallback = limited.get("fallback", FAIL)
    reason = f"{chosen.target!r} reached max_visits {limited['max_visits']}"
    return Route(fallback, reason)


def _declared_route(
    phase: dict[str, Any],
    schema: dict[str, Any],
    current: str,
    variables: dict[str, Any],
    trigger: dict[str, Any],
    visits: dict[str, int],
) -> Route:
    transitions = phase.get("transitions")
    if not transitions:
        following = next_phase(schema, current)
        return Route(END if following is None else following, "next in list")
    context = {"variables": variables, "trigger": trigger, "visits": visits}
    for index, transition in enumerate(transitions):
        if "when" not in transition:
            return Route(transition["to"], f"transitions[{index}] (unconditional)")
        if evaluate(transition["when"], context):
            return Route(transition["to"], f"transitions[{index}]")
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
    schema: dict[str, Any], target: str, risk: float | None, automation_level: int | None
) -> list[str]:
    """Why entering ``target`` needs a human's approval first (empty: it does not)."""
    reasons = []
    if phase_map(schema)[target].get("requires_approval", False):
        reasons.append(f"phase {target!r} requires approval")
    if risk is not None and automation_level is not None and risk > automation_level:
        reasons.append(f"risk {risk:g} exceeds automation level {automation_level}")
    return reasons
