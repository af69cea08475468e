"""ChatCoder's v1.1 workflow dialect, translated into ChatFlow transitions.

ChatCoder's schemas route with two phase keys of their own:

- ``condition``: enter this phase only if the condition holds. A condition is
  ``{"operator": "and" | "or" | "not", "operands": [...]}`` over terms
  ``{"field": "analysis.risk_score", "operator": ">", "value": 50}``, nested to any
  depth; a lone term is accepted too. Term operators are v1.1's ``=``, ``!=``, ``<``,
  ``<=``, ``>``, ``>=``, plus ChatFlow's ``==``, ``in``, ``not in`` and ``exists``.
- ``fallback_phase``: where to go instead when the condition is false.

v1.1 checks a phase's condition when the phase before it in the list completes. If it is
false the instance goes to ``fallback_phase``; without one, or if it names no phase
(logged as a warning), it skips to the phase after the conditional one (or completes).
``translate`` writes exactly that as transitions on the phase before::

    [{"to": <phase>, "when": <condition>}, {"to": <fallback or the phase after>}]

and drops the two keys, so the stored schema, the router and the diagram see only
ChatFlow's own form. A term's ``field`` is read as ``variables.<field>``: v1.1 merged
each step's trigger data into the variables before checking, which ChatCoder's engine
class does too (``chatflow.core.workflow_engine``). As everywhere in ChatFlow, a
comparison on a missing field is false (v1.1 compared ``None``).
"""

from __future__ import annotations

from typing import Any

from chatflow._logger import logger
from chatflow.domain.conditions import OPERATORS, condition_problems
from chatflow.domain.definition import END

DIALECT_KEYS = frozenset({"condition", "fallback_phase"})
_COMBINATORS = {"and": "all", "or": "any", "not": "not"}
_TERM_KEYS = frozenset({"field", "operator", "value"})


def translate(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``schema`` with v1.1 routing keys turned into transitions, and the problems found.

    A schema without those keys is returned as it is; otherwise a new dict (the caller's
    is not changed). Structure the translation cannot use (names, phases that are not
    objects) is left for ``validate_schema`` to report.
    """
    phases = schema.get("phases")
    if not isinstance(phases, list) or not any(
        isinstance(phase, dict) and not DIALECT_KEYS.isdisjoint(phase) for phase in phases
    ):
        return schema, []
    phases = [dict(phase) if isinstance(phase, dict) else phase for phase in phases]
    names = {
        phase["name"]
        for phase in phases
        if isinstance(phase, dict) and isinstance(phase.get("name"), str)
    }
    problems: list[str] = []
    for index, phase in enumerate(phases):
        if isinstance(phase, dict) and not DIALECT_KEYS.isdisjoint(phase):
            problems += _translate_phase(phases, index, names)
    return {**schema, "phases": phases}, problems


def _translate_phase(phases: list[Any], index: int, names: set[str]) -> list[str]:
    """Move ``phases[index]``'s condition onto the phase before it; return the problems."""
    phase: dict[str, Any] = phases[index]
    name = phase.get("name")
    where = f"phases[{index}] {name!r}"
    has_condition = "condition" in phase
    condition = phase.pop("condition", None)
    fallback = phase.pop("fallback_phase", None)
    if fallback is not None and not isinstance(fallback, str):
        return [f"{where}.fallback_phase: must be a phase name, got {fallback!r}"]
    if not has_condition:
        logger("chatflow").warning(
            "%s: fallback_phase applies only with a condition; ignored", where
        )
        return []
    if index == 0:
        return [f"{where}.condition: the first phase is always entered, so it cannot have one"]
    when, problems = _condition(condition, f"{where}.condition")
    previous = phases[index - 1]
    if isinstance(previous, dict) and "transitions" in previous:
        problems.append(
            f"{where}.condition: the phase before it, {previous.get('name')!r}, has "
            "transitions; route with transitions or with a condition, not both"
        )
    if problems or not isinstance(previous, dict) or not isinstance(name, str):
        return problems
    previous["transitions"] = [
        {"to": name, "when": when},
        {"to": _otherwise(phases, index, fallback, names, where)},
    ]
    return []


def _otherwise(
    phases: list[Any], index: int, fallback: str | None, names: set[str], where: str
) -> Any:
    """Where a false condition leads: the fallback phase, else the phase after (or the end)."""
    if fallback in names:
        return fallback
    following = phases[index + 1] if index + 1 < len(phases) else {"name": END}
    after = following.get("name") if isinstance(following, dict) else None
    if fallback is not None:
        logger("chatflow").warning(
            "%s: fallback_phase %r names no phase; when the condition is false the phase "
            "is skipped (next: %r)",
            where,
            fallback,
            after,
        )
    return after


def _condition(node: object, where: str) -> tuple[dict[str, Any], list[str]]:
    """The ChatFlow condition for a v1.1 expression or term, and its problems."""
    if isinstance(node, dict) and "field" in node:
        return _term(node, where)
    if not isinstance(node, dict):
        return {}, [
            f"{where}: must be an object with 'operator' and 'operands', or a term with "
            f"'field', 'operator' and 'value'; got {type(node).__name__}"
        ]
    operator = node.get("operator")
    combinator = _COMBINATORS.get(operator) if isinstance(operator, str) else None
    if combinator is None:
        return {}, [
            f"{where}.operator: {operator!r} is not 'and', 'or' or 'not' "
            "(a comparison needs a 'field')"
        ]
    extra = sorted(set(node) - {"operator", "operands"})
    problems = [f"{where}: unexpected key {key!r}" for key in extra]
    operands = node.get("operands")
    if not isinstance(operands, list) or not operands:
        return {}, [*problems, f"{where}.operands: must be a non-empty list, got {operands!r}"]
    if combinator == "not" and len(operands) != 1:
        problems.append(f"{where}.operands: 'not' takes exactly one operand, got {len(operands)}")
    children = []
    for position, operand in enumerate(operands):
        child, child_problems = _condition(operand, f"{where}.operands[{position}]")
        children.append(child)
        problems += child_problems
    return ({"not": children[0]} if combinator == "not" else {combinator: children}), problems


def _term(node: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    problems = [f"{where}: unexpected key {key!r}" for key in sorted(set(node) - _TERM_KEYS)]
    field = node["field"]
    if not isinstance(field, str) or not all(field.split(".")):
        problems.append(f"{where}.field: must be a dotted path such as 'a.b', got {field!r}")
    operator = node.get("operator")
    op = "==" if operator == "=" else operator
    if op not in OPERATORS:
        known = ", ".join(["=", *OPERATORS])
        problems.append(f"{where}.operator: unknown comparison {operator!r} (use one of {known})")
    if problems:
        return {}, problems
    term = {"path": f"variables.{field}", "op": op}
    if "value" in node:
        term["value"] = node["value"]
    return term, condition_problems(term, where)  # value checks, shared with ChatFlow's form
