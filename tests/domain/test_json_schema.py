"""The published JSON Schema of the workflow file format agrees with the validator."""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from test_schema_validation import BAD
from test_workflow_properties import random_schema

from chatflow import SchemaError
from chatflow.core.schema import validate_schema
from repo_paths import EXAMPLES

# Problems only the validator can see: they need the phase graph or the list as a whole.
GRAPH_ONLY = ("unknown transition target", "duplicate", "unreachable", "loop", "last transition")
GATE = {
    "artifacts": ["prompt", "response"],
    "approvals": 2,
    "variables": ["design_doc", "review.verdict"],
    "condition": {"all": [{"path": "trigger.score", "op": ">=", "value": 8}]},
}


@pytest.fixture(scope="module")
def checker() -> jsonschema.Draft202012Validator:
    text = resources.files("chatflow").joinpath("workflow.schema.json").read_text("utf-8")
    published = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(published)
    return jsonschema.Draft202012Validator(published)


def load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)


@pytest.mark.parametrize("path", sorted(EXAMPLES.iterdir()), ids=lambda p: p.name)
def test_examples_pass_both(checker: jsonschema.Draft202012Validator, path: Path) -> None:
    data = load(path)
    validate_schema(data)
    assert list(checker.iter_errors(data)) == []


def test_random_valid_schemas_pass(checker: jsonschema.Draft202012Validator) -> None:
    rng = random.Random(9)
    for _ in range(300):
        data = random_schema(rng).to_dict()
        assert list(checker.iter_errors(data)) == [], data


def test_gates_pass(checker: jsonschema.Draft202012Validator) -> None:
    data = {"name": "g", "phases": [{"name": "a", "exit_requires": GATE}]}
    validate_schema(data)
    assert list(checker.iter_errors(data)) == []


BAD_GATES: list[dict[str, Any]] = [
    {"artifacts": ["diff"]},
    {"approvals": -1},
    {"approvals": "two"},
    {"variables": ["a..b"]},
    {"variables": "design_doc"},
    {"condition": {"path": "nowhere.x", "op": "exists"}},
    {"reviewers": 2},
    {"condition": {"path": "trigger.x", "op": "<", "value": [1]}},
]
STRUCTURAL = [schema for schema, fragment in BAD if not any(g in fragment for g in GRAPH_ONLY)]
STRUCTURAL += [{"name": "g", "phases": [{"name": "a", "exit_requires": g}]} for g in BAD_GATES]
STRUCTURAL.append({"name": "g", "phases": [{"name": "a", "exit_require": {}}]})  # a typo


@pytest.mark.parametrize("data", STRUCTURAL)
def test_structural_problems_fail_both(
    checker: jsonschema.Draft202012Validator, data: dict[str, Any]
) -> None:
    with pytest.raises(SchemaError):
        validate_schema(data)
    assert list(checker.iter_errors(data)) != []


def test_chatcoder_v11_keys_pass(checker: jsonschema.Draft202012Validator) -> None:
    condition = {"operator": "and", "operands": [{"field": "a.risk", "operator": ">", "value": 5}]}
    gated = {"name": "gated", "task": "review", "condition": condition, "fallback_phase": "last"}
    data = {
        "name": "gate",
        "version": "1.1",
        "phases": [{"name": "start"}, gated, {"name": "last"}],
    }
    validate_schema(data)
    assert list(checker.iter_errors(data)) == []
