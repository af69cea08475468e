"""Time and money at the edges of the numbers: an infinite or absurdly long limit, a
time no date can hold, an amount JSON cannot keep exactly. Each is one line with the
documented exit code, and nothing is written."""

from __future__ import annotations

import json

from ._cli import Runner, refused

FLOW = {"name": "edge_flow", "phases": [{"name": "code"}, {"name": "ship"}]}


def _workflow(run: Runner, **phase: object) -> str:
    path = run.cwd / "edge_flow.json"
    flow = {**FLOW, "phases": [{"name": "code", **phase}, {"name": "ship"}]}
    path.write_text(json.dumps(flow), encoding="utf-8")
    return str(path)


def test_an_infinite_whole_number_limit_is_refused(run: Runner) -> None:
    workflow = _workflow(run)
    refused(run("start", workflow, "--feature", "f", "--budget", "visits=1e400"), 2, "finite")
    refused(run("start", workflow, "--feature", "f", "--budget", "tokens=1e400"), 2, "finite")
    assert not (run.cwd / ".chatflow").exists()  # nothing written, not even a store


def test_a_duration_longer_than_a_century_is_refused(run: Runner) -> None:
    workflow = _workflow(run, deadline="99999999999999d")
    refused(run("start", workflow, "--feature", "f"), 1, "longer than a century")
    workflow = _workflow(run)
    refused(
        run("start", workflow, "--feature", "f", "--budget", "wall=99999999999999d"),
        2,
        "longer than a century",
    )
    assert not (run.cwd / ".chatflow").exists()  # nothing written, not even a store


def test_due_now_beyond_any_date_is_a_usage_error(run: Runner) -> None:
    for moment in ("1e300", "-1e300", "99999999999999"):
        refused(run("due", f"--now={moment}"), 2, "is no date")


def test_a_usage_amount_json_cannot_keep_exactly_is_refused(run: Runner) -> None:
    iid = run.json("start", _workflow(run), "--feature", "f")["instance_id"]
    before = run.json("show", iid)["version"]
    for usage in ("input_tokens=99999999999999999999999999", "cost_usd=1e308"):
        refused(run("record", iid, "--usage", usage), 2, "must be at most")
    assert run.json("show", iid)["version"] == before
    view = run.json("record", iid, "--usage", "input_tokens=9007199254740991")
    assert view["usage"]["total"]["gen_ai.usage.input_tokens"] == 9007199254740991


def test_a_limit_or_extension_past_what_json_keeps_exactly_is_refused(run: Runner) -> None:
    workflow = _workflow(run)
    refused(run("start", workflow, "--feature", "f", "--budget", "cost_usd=1e308"), 2, "at most")
    iid = run.json("start", workflow, "--feature", "f", "--budget", "cost_usd=1")["instance_id"]
    refused(run("approve", iid, "--by", "ana", "--extend", "cost_usd=1e308"), 2, "at most")
    assert [event["kind"] for event in run.json("history", iid)].count("budget_extended") == 0


def test_usage_for_a_phase_not_entered_yet_is_refused(run: Runner) -> None:
    iid = run.json("start", _workflow(run), "--feature", "f")["instance_id"]
    before = run.json("show", iid)["version"]
    refused(run("record", iid, "--phase", "ship", "--usage", "cost_usd=1"), 1, "not entered")
    assert run.json("show", iid)["version"] == before
