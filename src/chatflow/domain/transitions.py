"""Where a step goes: transition routing, visit limits, trigger-data merging, approval gates.

Pure functions of a typed ``Workflow`` (whose defaults ``chatflow.domain.definition``
resolves) and plain data, so ``dry_run``, the engine and the status report all agree.

Routing rule (``route``): a phase takes the first transition whose ``when`` holds (a
transition without ``when`` always holds; validation makes the last one such). If the
chosen phase has ``max_visits`` and has already been visited that often, its
``fallback`` is taken instead.

Merge rule (``merge_trigger_data``), chosen by the schema's ``merge_trigger_data`` key:
``"none"`` (the default, the seed's behaviour) leaves the variables alone; ``"phase"``
stores the trigger data as ``variables[<phase name>]``, replacing the previous visit's;
``"flat"`` updates the variables' top level with it.

Approval rule (``approval_reasons``): entering a phase pauses the instance first when the
phase has ``requires_approval: true``, or when the instance has an
``automation_level`` and the trigger data's ``risk`` (0-100) exceeds it; a risky step
that would complete the instance waits for approval too.

Gate rule (``open_requirements``): a phase's ``exit_requires`` must all hold before any
step leaves it; what is missing is listed item by item.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from chatflow._text import counted
from chatflow._validation import copy_json
from chatflow.domain.conditions import evaluate
from chatflow.domain.definition import END, FAIL, Gate, Phase, Workflow
from chatflow.domain.values import GateItem
from chatflow.errors import ValidationError

RISK_KEY = "risk"


class Route(NamedTuple):
    """The outcome of routing one step: a phase name, ``END`` or ``FAIL``, and why.

    ``phase`` is the target's definition (``None`` for a terminal).
    """

    target: str
    reason: str
    phase: Phase | None = None


def route(
    workflow: Workflow,
    current: str,
    *,
    variables: dict[str, Any],
    trigger: dict[str, Any],
    visits: dict[str, int],
) -> Route:
    """Where completing ``current`` leads, given the data and the visit counts so far."""
    target, reason = _first_match(workflow.phase(current), variables, trigger, visits)
    if target in (END, FAIL):
        return Route(target, reason)
    limited = workflow.phase(target)
    if limited.max_visits is None or visits.get(target, 0) < limited.max_visits:
        return Route(target, reason, limited)
    reason = f"{target!r} reached max_visits {limited.max_visits}"
    fallback = limited.fallback
    return Route(fallback, reason, None if fallback in (END, FAIL) else workflow.phase(fallback))


def _first_match(
    phase: Phase, variables: dict[str, Any], trigger: dict[str, Any], visits: dict[str, int]
) -> tuple[str, str]:
    context = {"variables": variables, "trigger": trigger, "visits": visits}
    for index, transition in enumerate(phase.transitions):
        if transition.implicit:
            return transition.to, "last phase" if transition.to == END else "next in list"
        if transition.when is None:
            return transition.to, f"transitions[{index}] (unconditional)"
        if transition.when.holds(context):
            return transition.to, f"transitions[{index}]"
    # Unreachable for validated schemas (the last transition has no 'when').
    raise ValidationError(f"no transition of phase {phase.name!r} applies")


def merged_variables(
    workflow: Workflow, variables: dict[str, Any], phase: str, trigger: dict[str, Any]
) -> dict[str, Any]:
    """The variables after a completed phase's trigger data is merged per the schema's rule.

    A new top-level dict (``variables`` itself for ``none``): a refused step leaves the
    instance's variables untouched without copying them whole.
    """
    mode = workflow.merge_trigger_data
    if mode == "phase":
        return {**variables, phase: copy_json(trigger)}
    if mode == "flat":
        return {**variables, **copy_json(trigger)}
    return variables


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
    phase: Phase | None, risk: float | None, automation_level: int | None
) -> list[str]:
    """Why a step into ``phase`` (``None``: completing) needs a human's approval first."""
    reasons = []
    if phase is not None and phase.requires_approval:
        reasons.append(f"phase {phase.name!r} requires approval")
    if risk is not None and automation_level is not None and risk > automation_level:
        reasons.append(f"risk {risk:g} exceeds automation level {automation_level}")
    return reasons


def open_requirements(
    gate: Gate,
    *,
    recorded: bool,
    approvers: list[str],
    variables: dict[str, Any],
    trigger: dict[str, Any],
    visits: dict[str, int],
) -> list[dict[str, Any]]:
    """Every item of ``gate`` that does not hold, each ``{"kind", "text", ...}``.

    ``recorded`` says whether the current visit's prompt and response were recorded;
    ``approvers`` are the distinct people who approved the current visit.
    """
    missing: list[GateItem] = []
    if not recorded:
        for name in gate.artifacts:
            text = f"artifact {name!r} of this visit"
            missing.append(GateItem("artifact", text, name=name, remedy="record"))
    if len(approvers) < gate.approvals:
        have = f": {', '.join(approvers)}" if approvers else ""
        text = f"{counted(gate.approvals, 'approval')}, have {len(approvers)}{have}"
        missing.append(
            GateItem(
                "approvals", text, required=gate.approvals, have=tuple(approvers), remedy="approve"
            )
        )
    context = {"variables": variables, "trigger": trigger, "visits": visits}
    for path in gate.variables:
        if not evaluate({"path": f"variables.{path}", "op": "!=", "value": None}, context):
            missing.append(GateItem("variable", f"variable {path!r}", name=path))
    if gate.condition is not None and not gate.condition.holds(context):
        text = f"condition {gate.condition} does not hold"
        missing.append(GateItem("condition", text, condition=str(gate.condition)))
    return [item.to_dict() for item in missing]
