"""Transition conditions: every operator, the missing-value rule, nesting, and checking."""

from __future__ import annotations

from typing import Any

import pytest

from chatflow.core.conditions import condition_problems, describe, evaluate

CONTEXT: dict[str, Any] = {
    "variables": {
        "review": {"verdict": "approved", "score": 8, "issues": [], "tags": ["ui", "api"]},
        "name": "auth",
        "flag": True,
        "none": None,
        "ratio": 0.5,
        "files": [{"path": "a.py"}, {"path": "b.py"}],
    },
    "trigger": {"risk": 40, "ok": False, "lang": "python"},
    "visits": {"code": 2},
}


def cmp(path: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"path": path, "op": op} if op == "exists" else {"path": path, "op": op, "value": value}


TRUE, FALSE = cmp("trigger.risk", "==", 40), cmp("trigger.risk", "==", 41)

OPERATOR_CASES = [
    # (path, op, value, expected)
    ("variables.review.verdict", "==", "approved", True),
    ("variables.review.verdict", "==", "rejected", False),
    ("variables.review.score", "==", 8.0, True),  # 8 == 8.0 as JSON
    ("variables.flag", "==", 1, False),  # true is not 1
    ("variables.flag", "==", True, True),
    ("variables.review.issues", "==", [], True),
    ("variables.none", "==", None, True),
    ("variables.review.verdict", "!=", "rejected", True),
    ("variables.review.verdict", "!=", "approved", False),
    ("trigger.ok", "!=", 0, True),  # false is not 0
    ("variables.review.score", "<", 9, True),
    ("variables.review.score", "<", 8, False),
    ("variables.review.score", "<=", 8, True),
    ("variables.review.score", "<=", 7.5, False),
    ("variables.review.score", ">", 7.9, True),
    ("variables.review.score", ">", 8, False),
    ("variables.review.score", ">=", 8, True),
    ("variables.ratio", ">=", 0.6, False),
    ("variables.name", "<", "b", True),  # strings compare with strings
    ("variables.name", ">", 1, False),  # never across types
    ("variables.flag", ">", 0, False),  # booleans are not numbers
    ("trigger.lang", "in", ["python", "go"], True),
    ("trigger.lang", "in", ["rust"], False),
    ("trigger.risk", "in", [40.0], True),
    ("trigger.ok", "in", [0], False),
    ("trigger.lang", "in", "python3", True),  # substring
    ("trigger.risk", "in", "40", False),  # a number is never in a string
    ("trigger.lang", "not in", ["rust"], True),
    ("trigger.lang", "not in", ["python"], False),
    ("variables.review.verdict", "exists", None, True),
    ("variables.none", "exists", None, True),  # null exists
    ("variables.review.missing", "exists", None, False),
    ("variables.files.1.path", "==", "b.py", True),  # digits index lists
    ("variables.files.2.path", "exists", None, False),
    ("variables.review.tags.0", "==", "ui", True),
    ("visits.code", ">=", 2, True),
    ("visits.design", "exists", None, False),
]


@pytest.mark.parametrize(("path", "op", "value", "expected"), OPERATOR_CASES)
def test_operator(path: str, op: str, value: Any, expected: bool) -> None:
    condition = cmp(path, op, value)
    assert condition_problems(condition, "when") == []
    assert evaluate(condition, CONTEXT) is expected


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">=", "in", "not in"])
def test_missing_value_makes_every_comparison_false(op: str) -> None:
    value: Any = ["x"] if "in" in op else 1
    assert evaluate(cmp("trigger.nothing.here", op, value), CONTEXT) is False
    assert evaluate(cmp("variables.name.deeper", op, value), CONTEXT) is False


NESTING_CASES = [
    ({"all": [TRUE, TRUE]}, True),
    ({"all": [TRUE, FALSE]}, False),
    ({"any": [FALSE, TRUE]}, True),
    ({"any": [FALSE, FALSE]}, False),
    ({"not": TRUE}, False),
    ({"not": {"not": TRUE}}, True),
    ({"all": [{"any": [FALSE, {"not": FALSE}]}, {"not": {"all": [TRUE, FALSE]}}]}, True),
    ({"any": [{"all": [TRUE, FALSE]}, {"not": {"any": [TRUE]}}]}, False),
]


@pytest.mark.parametrize(("condition", "expected"), NESTING_CASES)
def test_nesting(condition: dict[str, Any], expected: bool) -> None:
    assert condition_problems(condition, "when") == []
    assert evaluate(condition, CONTEXT) is expected


def test_deep_nesting() -> None:
    condition: dict[str, Any] = TRUE
    for depth in range(60):
        condition = {"not": condition} if depth % 2 else {"all": [condition, TRUE]}
    assert condition_problems(condition, "when") == []
    assert evaluate(condition, CONTEXT) is True


BAD_CASES = [
    ("not a dict", "when: a condition must be an object"),
    ({"path": "trigger.x", "op": "=~", "value": 1}, "when.op: unknown operator '=~'"),
    ({"path": "trigger.x", "op": "=="}, "when.value: operator '==' needs a value"),
    ({"path": "env.HOME", "op": "exists"}, "when.path: 'env.HOME' must start with one of"),
    ({"path": "trigger..x", "op": "exists"}, "has an empty segment"),
    ({"path": "", "op": "exists"}, "when.path: must be a dotted path"),
    ({"op": "exists"}, "when.path: must be a dotted path"),
    ({"path": "trigger.x", "op": "in", "value": 3}, "'in' needs a list or a string"),
    ({"path": "trigger.x", "op": "<", "value": [1]}, "'<' needs a number or a string"),
    ({"path": "trigger.x", "op": "exists", "value": 1}, "unexpected keys ['value']"),
    ({"all": []}, "when.all: must be a non-empty list"),
    ({"any": "x"}, "when.any: must be a non-empty list"),
    ({"all": [TRUE], "any": [TRUE]}, "cannot be combined"),
    ({"not": {"all": [TRUE, {"path": "x.y", "op": "exists"}]}}, "when.not.all[1].path"),
]


@pytest.mark.parametrize(("condition", "fragment"), BAD_CASES)
def test_bad_conditions_are_reported_with_location(condition: Any, fragment: str) -> None:
    problems = condition_problems(condition, "when")
    assert problems
    assert any(fragment in problem for problem in problems), problems


def test_every_problem_is_reported() -> None:
    condition = {"any": [{"path": "x", "op": "=="}, {"not": {"path": "trigger.a", "op": "~"}}]}
    problems = condition_problems(condition, "when")
    assert len(problems) == 3, problems  # bad root, missing value, unknown operator


def test_describe_reads_like_the_condition() -> None:
    condition = {"all": [cmp("trigger.verdict", "==", "ok"), {"not": cmp("trigger.x", "exists")}]}
    assert describe(condition) == '(trigger.verdict == "ok" and not (trigger.x exists))'
