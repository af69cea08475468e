"""The command line's time and money: ``record --usage``, ``start --budget``,
``approve --extend`` and ``chatflow due`` (four of them racing with ``--apply``)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from ._cli import EXECUTABLE, Runner, base_env, refused

FLOW: dict[str, Any] = {
    "name": "spend_flow",
    "budget": {"cost_usd": 1},
    "phases": [
        {"name": "code"},
        {
            "name": "review",
            "requires_approval": True,
            "deadline": "1h",
            "on_timeout": "escalate",
            "escalate_to": ["lead"],
        },
        {"name": "ship"},
    ],
}


def start(run: Runner, *args: str) -> str:
    workflow = run.cwd / "spend_flow.json"
    workflow.write_text(json.dumps(FLOW), encoding="utf-8")
    view = run.json("start", str(workflow), "--feature", "feat_s", *args)
    instance_id: str = view["instance_id"]
    return instance_id


def test_record_usage_and_show_the_spend(run: Runner) -> None:
    iid = start(run)
    view = run.json("record", iid, "--usage", "input_tokens=1200", "--usage", "cost_usd=0.25")
    assert view["usage"]["total"]["gen_ai.usage.input_tokens"] == 1200
    assert view["usage"]["phases"]["code"]["chatflow.cost_usd"] == 0.25
    run.ok("record", iid, "--prompt", "p", "--response", "r", "--usage", "model=m1")
    shown = run.ok("show", iid).stdout
    assert "spent" in shown and "$0.25" in shown and "workflow cost_usd" in shown
    feature = run.json("status", "--feature", "feat_s")
    assert feature["usage"]["total"]["chatflow.records"] == 2
    history = run.json("history", iid)
    usage = [event for event in history if event["kind"] == "usage"]
    assert usage[0]["data"] == {"gen_ai.usage.input_tokens": 1200, "chatflow.cost_usd": 0.25}


def test_bad_usage_is_one_line_and_writes_nothing(run: Runner) -> None:
    iid = start(run)
    before = run.json("show", iid)["version"]
    # A malformed value is a usage error (exit 2, docs/cli.md), as a malformed K=V is.
    refused(run("record", iid, "--usage", "input_tokns=5"), 2, "did you mean 'input_tokens'")
    refused(run("record", iid, "--usage", "cost_usd=-1"), 2, "non-negative")
    refused(run("record", iid, "--usage", "cost_usd=NaN"), 2, "non-negative")
    refused(run("record", iid, "--usage", "cost_usd=lots"), 2, "non-negative")
    refused(run("record", iid), 2, "--usage")
    refused(run("start", "x.json", "--feature", "f", "--budget", "cost_usd=1"), 3)
    workflow = str(run.cwd / "spend_flow.json")
    refused(run("start", workflow, "--feature", "f", "--budget", "cost=1"), 2, "'cost_usd'")
    refused(run("start", workflow, "--feature", "f", "--budget", "wall=soon"), 2, "duration")
    refused(run("approve", iid, "--by", "ana", "--extend", "cost_usd=lots"), 2, "non-negative")
    assert run.json("show", iid)["version"] == before
    assert [row["feature_id"] for row in run.json("list")] == ["feat_s"]


def test_over_budget_then_approve_extend(run: Runner) -> None:
    iid = start(run, "--budget", "tokens=100")
    view = run.json("next", iid, "--data", "input_tokens=150")
    assert view["status"] == "paused" and view["pause"]["kind"] == "budget"
    assert {row["scope"] for row in view["pause"]["crossed"]} == {"feature"}
    assert "approve" in view["actions"] and "resume" not in view["actions"]
    refused(run("resume", iid), 1, "--extend")
    refused(run("approve", iid, "--by", "ana"), 1, "--extend")
    refused(run("approve", iid, "--by", "ana", "--extend", "tokens=10"), 1, "still be over")
    view = run.json("approve", iid, "--by", "ana", "--extend", "tokens=100", "--note", "ok")
    # back to the approval the budget pause interrupted (review requires one)
    assert view["pause"]["kind"] == "approval"
    assert run.ok("verify", iid).returncode == 0


def _due_apply(cwd: Path, now: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [EXECUTABLE, "due", "--apply", "--now", str(now), "--json"],
        cwd=cwd,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_due_apply_processes_act_on_each_timeout_once(run: Runner) -> None:
    ids = [start(run) for _ in range(6)]
    for iid in ids:
        run.ok("next", iid)  # into review: waits for approval, under the deadline
    now = time.time() + 2 * 3600
    assert run.json("due", "--now", str(time.time())) == []
    listed = run.json("due", "--now", str(now))
    assert sorted(row["instance_id"] for row in listed) == sorted(ids)
    waiting = run.json("due", "--waiting", "--now", str(now))
    assert all(row["overdue"] for row in waiting) and len(waiting) == len(ids)
    processes = [_due_apply(run.cwd, now) for _ in range(4)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    acted = [
        row["instance_id"]
        for stdout, _ in outputs
        for row in json.loads(stdout)
        if row["outcome"] == "escalate"
    ]
    assert sorted(acted) == sorted(ids)
    for iid in ids:
        kinds = [event["kind"] for event in run.json("history", iid)]
        assert kinds.count("deadline_passed") == 1
    assert run.json("due", "--apply", "--now", str(now)) == []
    rows = run.json("list")
    assert all(row["wait"]["acted"] == "escalate" for row in rows)
    assert "nothing is due" in run.ok("due").stdout


def test_due_now_takes_an_iso_time_and_refuses_garbage(run: Runner) -> None:
    iid = start(run)
    run.ok("next", iid)  # waits for approval, under a one-hour deadline
    later = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(time.time() + 3 * 3600))
    (row,) = run.json("due", "--now", later)
    assert row["instance_id"] == iid
    assert run.json("due", "--now", later.replace("Z", "+05:00")) == []  # 5 h earlier: not due
    for garbage in ("tomorrow", "nan", "2026-13-45"):
        refused(run("due", "--now", garbage), 2, "not a time")
