"""Workflow definitions: validated once, up front, then stored with each instance.

A schema is plain JSON data: ``{"name": ..., "phases": [{"name": ...}, ...]}``.
Validation collects every problem with its location before raising, so a user fixes a
schema in one pass instead of one error at a time.
"""

from __future__ import annotations

import copy
from typing import Any

from chatflow._validation import _id_problem, check_json_value
from chatflow.errors import SchemaError, ValidationError


def validate_schema(schema: object) -> dict[str, Any]:
    """Return a private, validated copy of ``schema`` or raise ``SchemaError``.

    The copy is detached from the caller's object, so later edits to their dict cannot
    change a stored instance.
    """
    if not isinstance(schema, dict):
        raise SchemaError(
            f"workflow schema must be a dict, not {type(schema).__name__}",
            problems=[f"schema: expected a dict, got {type(schema).__name__}"],
        )
    try:
        check_json_value(schema, "workflow_schema")
    except ValidationError as error:
        raise SchemaError(str(error), problems=[str(error)]) from None
    problems = _name_problems(schema) + _phase_problems(schema.get("phases"))
    if problems:
        summary = "; ".join(problems)
        raise SchemaError(f"invalid workflow schema: {summary}", problems=problems)
    return copy.deepcopy(schema)


def _name_problems(schema: dict[str, Any]) -> list[str]:
    name = schema.get("name")
    if not isinstance(name, str) or not name.strip():
        return [f"name: must be a non-empty string, got {name!r}"]
    return []


def _phase_problems(phases: object) -> list[str]:
    if not isinstance(phases, list) or not phases:
        return [f"phases: must be a non-empty list of phase objects, got {phases!r}"]
    problems: list[str] = []
    seen: set[str] = set()
    for index, phase in enumerate(phases):
        where = f"phases[{index}]"
        if not isinstance(phase, dict):
            problems.append(f"{where}: must be an object, got {type(phase).__name__}")
            continue
        name = phase.get("name")
        reason = _id_problem(name)
        if reason is not None:
            problems.append(f"{where}.name: {name!r} {reason}")
        elif name in seen:
            problems.append(f"{where}.name: duplicate phase name {name!r}")
        else:
            seen.add(name)  # type: ignore[arg-type]
    return problems


def phase_names(schema: dict[str, Any]) -> list[str]:
    """The phase names of a validated schema, in order."""
    return [phase["name"] for phase in schema["phases"]]


def first_phase(schema: dict[str, Any]) -> str:
    """The phase a new instance starts in."""
    name: str = schema["phases"][0]["name"]
    return name


def next_phase(schema: dict[str, Any], current: str) -> str | None:
    """The phase after ``current``, or ``None`` when ``current`` is the last one."""
    names = phase_names(schema)
    index = names.index(current)
    return names[index + 1] if index + 1 < len(names) else None
