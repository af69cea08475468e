"""``show`` prints spend and budgets as a person reads them: dollars with separators,
whole token counts, a wall time in hours and minutes; never ``1.235e+04`` dollars or a
wall time of ``0.00565767`` seconds."""

from __future__ import annotations

import json

from ._cli import Runner

FLOW = {
    "name": "big_flow",
    "budget": {"tokens": 2000000, "cost_usd": 20000, "wall": "2h"},
    "phases": [{"name": "code"}, {"name": "ship"}],
}


def test_big_spend_and_budgets_read_as_numbers(run: Runner) -> None:
    workflow = run.cwd / "big_flow.json"
    workflow.write_text(json.dumps(FLOW), encoding="utf-8")
    iid = run.json("start", str(workflow), "--feature", "f")["instance_id"]
    run.ok("record", iid, "--usage", "cost_usd=12345.67", "--usage", "input_tokens=1500000")
    shown = run.ok("show", iid).stdout
    assert "spent      $12,345.67, 1,500,000 tokens" in shown
    assert "workflow tokens: 1,500,000 of 2,000,000 (75%)" in shown
    assert "workflow cost_usd: $12,345.67 of $20,000.00 (62%)" in shown
    assert " of 2h00m (0%)" in shown
    assert "e+" not in shown
