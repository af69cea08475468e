"""A misspelled top-level key (``budgets``) would silently drop a limit: it is warned of,
while an application's own top-level keys are kept without a word."""

from __future__ import annotations

import logging

import pytest

from chatflow.domain.schema import near_misses, validate_schema


def test_near_misses_name_the_key_meant() -> None:
    schema = {"name": "w", "budgets": {}, "versoin": 2, "owner": "ana", "phases": []}
    assert near_misses(schema) == [("budgets", "budget"), ("versoin", "version")]


def test_a_typo_is_warned_of_once_and_an_own_key_never(caplog: pytest.LogCaptureFixture) -> None:
    typo = {"name": "typo_once", "budgets": {"cost_usd": 1}, "phases": [{"name": "a"}]}
    own = {"name": "own_keys", "owner": "ana", "ticket": 42, "phases": [{"name": "a"}]}
    with caplog.at_level(logging.WARNING, logger="chatflow"):
        workflow = validate_schema(typo)
        validate_schema(typo)
        validate_schema(own)
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and "'budgets'" in said[0] and "did you mean 'budget'" in said[0]
    assert workflow.budget is None  # what the warning is about: no budget was read
