"""``chatflow due`` with one instance damaged: the others are listed and acted on, the
damaged one is a warning naming it and exit 1 (never silently left out), every time,
so it is still found once repaired."""

from __future__ import annotations

import json
import time

from ._cli import Runner

FLOW = {
    "name": "due_flow",
    "phases": [{"name": "draft", "deadline": "1h", "on_timeout": "escalate"}, {"name": "ship"}],
}


def _damage(run: Runner, instance_id: str) -> None:
    """Edit the first event of the instance's log: its hash no longer matches."""
    log = run.cwd / ".chatflow" / "instances" / instance_id / "events.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = lines[0].replace('"due_flow"', '"due_flox"')
    log.write_text("".join(lines), encoding="utf-8")


def test_an_unreadable_waiting_instance_is_warned_about_not_left_out(run: Runner) -> None:
    workflow = run.cwd / "due_flow.json"
    workflow.write_text(json.dumps(FLOW), encoding="utf-8")
    good, bad = (
        run.json("start", str(workflow), "--feature", feature)["instance_id"]
        for feature in ("feat_good", "feat_bad")
    )
    _damage(run, bad)
    later = str(time.time() + 2 * 3600)
    for args in (("--waiting",), ("--now", later), ("--apply", "--now", later), ("--waiting",)):
        result = run("due", *args, "--json")
        assert result.returncode == 1, (args, result.stderr)
        assert [row["instance_id"] for row in json.loads(result.stdout)] == [good]
        assert len(result.stderr.splitlines()) == 1 and bad in result.stderr
        assert result.stderr.startswith("chatflow: warning: ")
