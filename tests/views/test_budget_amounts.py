"""Budget amounts as a person reads them: one formatting, read by the CLI and the page."""

from __future__ import annotations

import itertools
import time

import pytest

from chatflow import views
from chatflow.core import _spend
from chatflow.core.engine import WorkflowEngine
from chatflow.domain.budgets import amount_text


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("cost_usd", 6.04, "$6.04"),
        ("cost_usd", 0, "$0.00"),
        ("cost_usd", 0.00042, "$0.00042"),
        ("cost_usd", 12345.5, "$12,345.50"),
        ("tokens", 200000, "200,000"),
        ("visits", 3, "3"),
        ("wall", 7.9, "7s"),
        ("wall", 501, "8m21s"),
        ("wall", 7200, "2h00m"),
        ("wall", 90061, "25h01m"),
    ],
)
def test_amount_text(key: str, value: float, text: str) -> None:
    assert amount_text(key, value) == text


def test_the_budget_view_says_each_limit_in_words(tmp_path: object) -> None:
    engine = WorkflowEngine(storage_dir=f"{tmp_path}/store")
    schema = {
        "name": "spend",
        "budget": {"cost_usd": 5, "tokens": 1000},
        "phases": [{"name": "code", "budget": {"visits": 3}}, {"name": "done"}],
    }
    iid = engine.start_workflow_instance(schema, {}, "feat")
    engine.record_usage(iid, input_tokens=600, cost_usd=1.5)
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    shown = {(row["scope"], row["key"]): row["shown"] for row in views.budget_view(state)}
    assert shown == {
        ("workflow", "tokens"): "600 of 1,000",
        ("workflow", "cost_usd"): "$1.50 of $5.00",
        ("phase:code", "visits"): "1 of 3",
    }


def test_a_budget_pause_counts_as_a_pause_and_a_wait(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clock that moves a minute per reading: the pause and its end never share a
    # timestamp, however fast the machine.
    ticks = itertools.count(time.time() + 1, 60)
    monkeypatch.setattr(_spend, "generate_timestamp", lambda: float(next(ticks)))
    engine = WorkflowEngine(storage_dir=f"{tmp_path}/store")
    schema = {"name": "spend", "budget": {"cost_usd": 1}, "phases": [{"name": "code"}]}
    iid = engine.start_workflow_instance(schema, {}, "feat")
    engine.record_usage(iid, cost_usd=2)  # crosses: paused, kind budget
    engine.extend_budget(iid, by="ana", cost_usd=5)
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    summary = views.instance_view(state)["summary"]
    assert summary["pauses"] == 1 and summary["waited_s"] >= 60
