"""``chatflow.views``: the JSON shapes every front end shares (docs/cli.md, "JSON output")."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from typing import Any

import pytest

from chatflow import WorkflowEngine, views
from chatflow.cli import output


def test_times_are_local_iso_8601_with_offset() -> None:
    text = views.iso_time(0.0)
    assert text is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000[+-]\d\d:\d\d", text)
    assert views.iso_time(None) is None
    for stamp in (0.0, 1_700_000_000.9996, 1_234_567_890.5, -1.25):
        expected = datetime.fromtimestamp(stamp).astimezone()
        assert datetime.fromisoformat(views.iso_time(stamp) or "") == expected.replace(
            microsecond=expected.microsecond // 1000 * 1000
        )
    assert output.short_time(text) == text[:19] + text[23:]


def test_views_are_json_and_carry_every_documented_key(
    engine: WorkflowEngine, schema: dict[str, Any]
) -> None:
    iid = engine.start_workflow_instance(schema, {"n": 1}, "feat_v", {"actor": "ann"})
    engine.record_task_artifacts(iid, "prompt", "response")
    engine.trigger_next_step(iid, {"ok": True})
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    rollup = views.feature_view(engine.get_feature_status("feat_v"))
    row = views.instance_row(state)
    shown = views.instance_view(state, views.artifact_checks(engine, state))
    history = views.history_view(engine.get_workflow_history(iid))
    artifacts = engine.get_task_artifacts(iid, schema["phases"][0]["name"])
    assert artifacts is not None
    texts = views.artifacts_view(iid, "requirement_analysis", artifacts)
    for view in (rollup, row, shown, history, texts):
        assert json.loads(json.dumps(view)) == view
    assert set(rollup["counts"]) == set(views.STATUSES)
    assert set(row) <= set(shown)
    assert shown["timeline"][0]["artifacts"]["verified"] is True
    assert shown["timeline"][1]["artifacts"] is None  # nothing recorded for design yet
    assert [event["kind"] for event in history][:2] == ["started", "phase_entered"]
    assert texts["prompt"] == "prompt" and texts["response"] == "response"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "PROGRESS_AFTER_S", 0.0)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = output.Progress("export")
    assert list(bar.over([1, 2, 3])) == [1, 2, 3]
    bar.close()
    assert terminal.getvalue().endswith("] 3/3\n") and "export [" in terminal.getvalue()
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    quiet = output.Progress("export")
    assert list(quiet.over([1, 2])) == [1, 2]
    quiet.close()
    assert pipe.getvalue() == ""


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns"])
def test_offsets_of_other_time_zones(zone: str) -> None:
    code = (
        "from chatflow.views import iso_time; from datetime import datetime\n"
        "for t in (0.0, 1_700_000_000.25, 1_720_000_000.5):\n"
        "    expected = datetime.fromtimestamp(t).astimezone().isoformat(timespec='milliseconds')\n"
        "    assert iso_time(t) == expected, (iso_time(t), expected)\n"
    )
    env = {**os.environ, "TZ": zone}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
