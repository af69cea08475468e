"""Transition conditions: plain data, checked when a schema is validated, never ``eval``-ed.

A condition is one of::

    {"path": "trigger.verdict", "op": "==", "value": "approved"}   # a comparison
    {"path": "variables.review", "op": "exists"}                    # presence test
    {"all": [cond, ...]}   {"any": [cond, ...]}   {"not": cond}     # nested to any depth

Paths are dotted and start at one of the roots the engine provides: ``variables`` (the
instance variables, after this step's trigger data was merged), ``trigger`` (this step's
trigger data) and ``visits`` (visits per phase). A segment of digits indexes a list.

Rules, chosen so a condition can never raise half-way through a step:

- a comparison on a path that does not resolve is false, for every operator (``!=`` and
  ``not in`` included); test presence with ``exists`` (a JSON ``null`` exists);
- equality is JSON equality: ``true`` never equals ``1``, ``1`` equals ``1.0``;
- ``<``, ``<=``, ``>``, ``>=`` compare two numbers or two strings, and are false otherwise;
- ``in`` takes a list (membership) or a string (substring of a string value).

>>> evaluate({"path": "trigger.score", "op": ">=", "value": 8}, {"trigger": {"score": 9}})
True
>>> evaluate({"not": {"path": "trigger.missing", "op": "exists"}}, {"trigger": {}})
True
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

ROOTS = ("variables", "trigger", "visits")
COMBINATORS = ("all", "any", "not")
ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
OPERATORS = ("==", "!=", *ORDERINGS, "in", "not in", "exists")

_MISSING = object()


# -- checking --------------------------------------------------------------------------


def condition_problems(condition: object, where: str) -> list[str]:
    """Every problem of ``condition``, each prefixed with its location (``where...``)."""
    if not isinstance(condition, dict):
        return [f"{where}: a condition must be an object, got {type(condition).__name__}"]
    combinators = [key for key in COMBINATORS if key in condition]
    if combinators:
        return _combinator_problems(condition, combinators, where)
    return _comparison_problems(condition, where)


def _combinator_problems(condition: dict[str, Any], keys: list[str], where: str) -> list[str]:
    if len(condition) != 1:
        extra = sorted(set(condition) - {keys[0]})
        return [f"{where}: {keys[0]!r} cannot be combined with other keys {extra}"]
    key = keys[0]
    operand = condition[key]
    if key == "not":
        return condition_problems(operand, f"{where}.not")
    if not isinstance(operand, list) or not operand:
        return [f"{where}.{key}: must be a non-empty list of conditions, got {operand!r}"]
    problems: list[str] = []
    for index, child in enumerate(operand):
        problems += condition_problems(child, f"{where}.{key}[{index}]")
    return problems


def _comparison_problems(condition: dict[str, Any], where: str) -> list[str]:
    problems = _path_problems(condition.get("path"), f"{where}.path")
    op = condition.get("op")
    if op not in OPERATORS:
        known = ", ".join(OPERATORS)
        problems.append(f"{where}.op: unknown operator {op!r} (use one of {known})")
        return problems
    allowed = {"path", "op"} if op == "exists" else {"path", "op", "value"}
    extra = sorted(set(condition) - allowed)
    if extra:
        problems.append(f"{where}: unexpected keys {extra} for operator {op!r}")
    if op != "exists" and "value" not in condition:
        problems.append(f"{where}.value: operator {op!r} needs a value")
    value = condition.get("value")
    if op in ("in", "not in") and not isinstance(value, (list, str)):
        problems.append(f"{where}.value: {op!r} needs a list or a string, got {value!r}")
    if op in ORDERINGS and not (_is_number(value) or isinstance(value, str)):
        problems.append(f"{where}.value: {op!r} needs a number or a string, got {value!r}")
    return problems


def _path_problems(path: object, where: str) -> list[str]:
    if not isinstance(path, str) or not path:
        return [f"{where}: must be a dotted path such as 'trigger.verdict', got {path!r}"]
    segments = path.split(".")
    if segments[0] not in ROOTS:
        roots = ", ".join(ROOTS)
        return [f"{where}: {path!r} must start with one of {roots}"]
    if any(not segment for segment in segments):
        return [f"{where}: {path!r} has an empty segment"]
    return []


# -- evaluating ------------------------------------------------------------------------


def evaluate(condition: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """Whether a validated ``condition`` holds for ``context`` (root name -> data)."""
    if "all" in condition:
        return all(evaluate(child, context) for child in condition["all"])
    if "any" in condition:
        return any(evaluate(child, context) for child in condition["any"])
    if "not" in condition:
        return not evaluate(condition["not"], context)
    actual = resolve(context, condition["path"])
    op = condition["op"]
    if op == "exists":
        return actual is not _MISSING
    if actual is _MISSING:
        return False
    return _compare(op, actual, condition["value"])


def resolve(context: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path``, or the private ``_MISSING`` marker."""
    value: Any = context
    for segment in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(segment, _MISSING)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "==":
        return json_equal(actual, expected)
    if op == "!=":
        return not json_equal(actual, expected)
    if op in ("in", "not in"):
        return _contains(expected, actual) == (op == "in")
    if _is_number(actual) and _is_number(expected):
        return ORDERINGS[op](actual, expected)
    if isinstance(actual, str) and isinstance(expected, str):
        return ORDERINGS[op](actual, expected)
    return False


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    return any(json_equal(item, member) for member in container)


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON sees it: booleans are not numbers, ``1 == 1.0``, deep for containers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- describing ------------------------------------------------------------------------


def describe(condition: Mapping[str, Any]) -> str:
    """A short human reading of a validated condition, for diagrams and messages.

    >>> describe({"any": [{"path": "trigger.ok", "op": "==", "value": True},
    ...                   {"not": {"path": "variables.x", "op": "exists"}}]})
    '(trigger.ok == true or not (variables.x exists))'
    """
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in condition:
            return "(" + joiner.join(describe(child) for child in condition[key]) + ")"
    if "not" in condition:
        return f"not ({describe(condition['not'])})"
    if condition["op"] == "exists":
        return f"{condition['path']} exists"
    return f"{condition['path']} {condition['op']} {_literal(condition['value'])}"


def _literal(value: Any) -> str:
    import json  # noqa: PLC0415 - only diagrams and messages need it; keeps it out of import

    return json.dumps(value, ensure_ascii=False)
