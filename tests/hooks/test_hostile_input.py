"""What a new user's agent can throw at the hooks and the CLI: files that are no files
(a FIFO, a device), files too big to hash while the agent waits, and an agent running
``chatflow approve`` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.core import _files

from ._support import chatflow_process, env, ok, payload, start


def _hook_in_time(repo: Path, event: str, body: dict[str, object]) -> str:
    """Run the hook; a hook that blocks fails here instead of hanging the test."""
    result = chatflow_process(repo, "hook", "claude", event, stdin=json.dumps(body))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_or_a_device_written_by_a_tool_is_recorded_without_reading_it(
    repo: Path, bound: str
) -> None:
    os.mkfifo(repo / "pipe")  # opening it to read would wait for a writer forever
    for path in (str(repo / "pipe"), os.devnull, "/dev/zero"):
        if not os.path.exists(path):
            continue
        body = payload("PostToolUse", repo, tool_name="Write", tool_input={"file_path": path})
        assert _hook_in_time(repo, "PostToolUse", body) == ""
    events = json.loads(ok(repo, "history", bound, "--json"))
    files = [f for e in events if e["kind"] == "files_touched" for f in e["data"]["files"]]
    assert files and all(f["sha256"] is None and f["bytes"] is None for f in files)
    assert files[0]["path"] == "pipe"


def test_a_file_too_big_to_hash_keeps_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_files, "MAX_HASHED", 10)
    engine = WorkflowEngine(tmp_path / "store")
    state = engine.start_workflow_instance({"name": "w", "phases": [{"name": "a"}]}, {}, "feat_a")
    (tmp_path / "big.bin").write_bytes(b"x" * 11)
    (tmp_path / "small.bin").write_bytes(b"x" * 10)
    entries = engine.record_files(state.instance_id, ["big.bin", "small.bin"], root=tmp_path)
    assert [(e["path"], e["sha256"] is None, e["bytes"]) for e in entries] == [
        ("big.bin", True, 11),
        ("small.bin", False, 10),
    ]


GATED = {
    "name": "gated",
    "version": 1,
    "phases": [
        {"name": "plan"},
        {"name": "review", "exit_requires": {"approvals": 1}},
        {"name": "build", "requires_approval": True},
    ],
    "budget": {"cost_usd": 1},
}


def _cli(repo: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatflow", *args],
        cwd=repo,
        env=env(**extra),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def waiting(repo: Path) -> str:
    """An instance in ``review``, whose exit gate waits for a person's approval."""
    (repo / "gated.json").write_text(json.dumps(GATED), encoding="utf-8")
    out = ok(repo, "start", "gated.json", "--feature", "feat_gate", "--json")
    instance_id: str = json.loads(out)["instance_id"]
    ok(repo, "next", instance_id)
    return instance_id


@pytest.mark.parametrize(
    "marker", ["CLAUDECODE", "CODEX_SANDBOX", "CURSOR_AGENT", "CHATFLOW_AGENT"]
)
def test_an_agent_running_the_cli_cannot_approve_or_override_a_gate(
    repo: Path, waiting: str, marker: str
) -> None:
    for args in (
        ["approve", waiting, "--by", "Ann"],
        ["approve", waiting, "--by", "Ann", "--extend", "cost_usd=5"],
        ["jump", waiting, "build", "--force"],
        ["reject", waiting, "--by", "Ann", "--force"],
        ["fork", waiting, "--at", "0", "--force"],
        ["retry", waiting, "--force"],
        ["upgrade", waiting, "--to", "1", "--force"],
    ):
        result = _cli(repo, *args, **{marker: "1"})
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith("chatflow: error: approvals come from a person")
        assert f"${marker}" in result.stderr and result.stderr.count("\n") == 1
    view = json.loads(ok(repo, "show", waiting, "--json"))
    assert view["current_phase"] == "review"  # nothing moved
    assert "approved" not in json.dumps(json.loads(ok(repo, "history", waiting, "--json")))
    result = _cli(repo, "approve", waiting, "--by", "Ann", CLAUDECODE="0")  # a person
    assert result.returncode == 0, result.stderr


def test_a_page_served_under_an_agent_refuses_approvals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatflow.errors import AgentApprovalError
    from chatflow.ui import api

    engine = WorkflowEngine(tmp_path / "store")
    state = engine.start_workflow_instance(GATED, {}, "feat_gate")
    engine.trigger_next_step(state.instance_id)
    monkeypatch.setenv("CLAUDECODE", "1")
    for body in ({"actor": "Ann"}, {"actor": "Ann", "extend": {"cost_usd": 5}}):
        with pytest.raises(AgentApprovalError, match="a person starts chatflow ui"):
            api.act(engine, state.instance_id, "approve", body)
    monkeypatch.delenv("CLAUDECODE")
    api.act(engine, state.instance_id, "approve", {"actor": "Ann"})
    assert engine.get_workflow_instance_status(state.instance_id).current_phase == "review"


def test_use_says_when_the_bound_instance_is_gone(repo: Path, bound: str) -> None:
    ok(repo, "delete", bound, "--by", "Ann", "--yes")
    said = ok(repo, "use")
    assert bound in said and "not in the store" in said


def test_use_says_when_the_bound_feature_has_no_active_instance(repo: Path) -> None:
    instance_id = start(repo)
    ok(repo, "use", "--feature", "feat_login")
    ok(repo, "delete", instance_id, "--by", "Ann", "--yes")
    said = ok(repo, "use")
    assert "None" not in said and "no active instance" in said


def test_files_written_after_the_instance_finished_do_not_change_it(repo: Path) -> None:
    (repo / "short.json").write_text(
        json.dumps({"name": "short", "phases": [{"name": "only"}]}), encoding="utf-8"
    )
    out = ok(repo, "start", "short.json", "--feature", "feat_short", "--json")
    instance_id = json.loads(out)["instance_id"]
    ok(repo, "use", instance_id)
    ok(repo, "next", instance_id)  # completed
    before = json.loads(ok(repo, "history", instance_id, "--json"))
    (repo / "late.py").write_text("x = 1\n", encoding="utf-8")
    body = payload("PostToolUse", repo, tool_name="Write", tool_input={"file_path": "late.py"})
    result = chatflow_process(repo, "hook", "claude", "PostToolUse", stdin=json.dumps(body))
    assert (result.returncode, result.stdout) == (0, "")
    assert "completed" in result.stderr and result.stderr.count("\n") == 1
    assert json.loads(ok(repo, "history", instance_id, "--json")) == before
