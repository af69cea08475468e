"""Workflow schema validation: every problem at once, each with its location."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chatflow import SchemaError
from chatflow.core.schema import schema_hash, validate_schema, version_key

LOOP: dict[str, Any] = {
    "name": "loop",
    "version": 2,
    "phases": [
        {"name": "code", "title": "Implementation", "template": "code.md", "max_visits": 3},
        {
            "name": "review",
            "requires_approval": True,
            "transitions": [
                {"to": "done", "when": {"path": "trigger.ok", "op": "==", "value": True}},
                {"to": "code"},
            ],
        },
        {"name": "done"},
    ],
}


def problems_of(schema: Any) -> list[str]:
    with pytest.raises(SchemaError) as caught:
        validate_schema(schema)
    problems: list[str] = caught.value.problems  # type: ignore[attr-defined]
    return problems


def test_valid_schema_keeps_descriptive_keys_and_is_a_private_copy() -> None:
    schema = copy.deepcopy(LOOP)
    validated = validate_schema(schema)
    assert validated.to_dict() == LOOP
    schema["phases"][0]["title"] = "changed"
    assert validated.to_dict()["phases"][0]["title"] == "Implementation"
    assert validated.phase("code").title == "Implementation"


def test_seed_schema_is_valid() -> None:
    seed = {"name": "code_generation", "phases": [{"name": "a"}, {"name": "b"}]}
    assert validate_schema(seed).to_dict() == seed


BAD = [
    (
        {"name": "x", "phases": [{"name": "a", "transitions": [{"to": "nowhere"}]}]},
        "phases[0] 'a'.transitions[0].to: unknown transition target 'nowhere'",
    ),
    (
        {"name": "x", "phases": [{"name": "a"}, {"name": "a"}]},
        "phases[1].name: duplicate phase name 'a'",
    ),
    (
        {"name": "x", "phases": [{"name": "a", "transitions": [{"to": "$end"}]}, {"name": "b"}]},
        "phases[1] 'b': unreachable from the first phase 'a'",
    ),
    (
        {"name": "x", "phases": [{"name": "a"}, {"name": "b", "transitions": [{"to": "a"}]}]},
        "phases[0] 'a': in a loop with no exit",
    ),
    (
        {
            "name": "x",
            "phases": [
                {
                    "name": "a",
                    "transitions": [
                        {"to": "$end", "when": {"path": "trigger.x", "op": "=~", "value": 1}},
                        {"to": "$end"},
                    ],
                }
            ],
        },
        "phases[0] 'a'.transitions[0].when.op: unknown operator '=~'",
    ),
    (
        {
            "name": "x",
            "phases": [
                {
                    "name": "a",
                    "transitions": [{"to": "$end", "when": {"path": "trigger.x", "op": "exists"}}],
                }
            ],
        },
        "the last transition must have no 'when'",
    ),
    ({"name": "x", "phases": [{"name": "a", "max_visits": 0}]}, "max_visits: must be an integer"),
    ({"name": "x", "phases": [{"name": "a", "fallback": "$end"}]}, "only applies with max_visits"),
    ({"name": "x", "phases": [{"name": "a", "requires_approval": "yes"}]}, "true or false"),
    ({"name": "x", "phases": [{"name": "a", "max_retries": -1}]}, "max_retries: must be"),
    ({"name": "x", "phases": [{"name": "a", "task": 3}]}, "task: must be a string"),
    ({"name": "x", "phases": [{"name": "a--2"}]}, "reserved for the task records"),
    ({"name": "x", "phases": [{"name": "a.b"}]}, "phases[0].name: 'a.b'"),
    ({"name": "x", "version": "v1", "phases": [{"name": "a"}]}, "version: must be"),
    ({"name": "x", "automation_level": 101, "phases": [{"name": "a"}]}, "automation_level"),
    ({"name": "x", "merge_trigger_data": "deep", "phases": [{"name": "a"}]}, "merge_trigger_data"),
    ({"name": "", "phases": [{"name": "a"}]}, "name: must be a non-empty string"),
    ({"name": "x", "phases": []}, "phases: must be a non-empty list"),
]


@pytest.mark.parametrize(("schema", "fragment"), BAD)
def test_problem_is_reported_with_location(schema: dict[str, Any], fragment: str) -> None:
    problems = problems_of(schema)
    assert any(fragment in problem for problem in problems), problems


def test_every_structural_problem_is_reported_at_once() -> None:
    schema = {
        "name": "x",
        "version": 0,
        "phases": [
            {"name": "a", "transitions": [{"to": "ghost"}]},
            {"name": "a"},
            {"name": "c", "max_visits": "3", "transitions": [{"to": "a", "bogus": 1}]},
        ],
    }
    problems = problems_of(schema)
    for fragment in ("version", "'ghost'", "duplicate phase name 'a'", "max_visits", "bogus"):
        assert any(fragment in problem for problem in problems), (fragment, problems)


def test_every_graph_problem_is_reported_at_once() -> None:
    schema = {
        "name": "x",
        "phases": [
            {"name": "a", "transitions": [{"to": "b"}]},
            {"name": "b", "transitions": [{"to": "a"}]},  # a <-> b: no exit
            {"name": "island"},  # unreachable
        ],
    }
    problems = problems_of(schema)
    assert len(problems) == 3, problems
    assert sum("loop with no exit" in problem for problem in problems) == 2
    assert any("'island': unreachable" in problem for problem in problems)


def test_max_visits_fallback_is_an_exit() -> None:
    schema = {
        "name": "x",
        "phases": [
            {"name": "a", "max_visits": 2, "fallback": "$end"},
            {"name": "b", "transitions": [{"to": "a"}]},
        ],
    }
    validate_schema(schema)  # b -> a is redirected to $end after two visits of a


def test_versions_sort_numerically_and_hash_ignores_key_order() -> None:
    assert version_key(2) < version_key("2.1") < version_key("2.10") < version_key(10)  # type: ignore[operator]
    assert version_key(0) is None and version_key(True) is None and version_key("1.x") is None
    assert schema_hash({"a": 1, "b": [1, 2]}) == schema_hash({"b": [1, 2], "a": 1})
    assert schema_hash({"a": 1}) != schema_hash({"a": 2})
