"""``chatflow hook claude EVENT`` as Claude Code runs it: the event's JSON on stdin, the
answer on stdout, in a real git repository made by the test. The cases run the command
in this process (``cli_runner``); one runs it as Claude Code does, as its own process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ._support import answer, chatflow, chatflow_process, hook, ok, payload, start


def test_session_start_adds_where_the_feature_stands(repo: Path, bound: str) -> None:
    body = payload("SessionStart", repo / "src", source="startup", model="claude-sonnet-4-5")
    found = answer(hook(repo, "SessionStart", body))
    output = found["hookSpecificOutput"]
    assert output["hookEventName"] == "SessionStart"
    context = output["additionalContext"]
    assert len(context) <= 2000
    for fragment in (
        bound,
        "feat_login",
        "Phase: plan (Plan the change)",
        "artifact 'prompt' of this visit",
        "the `record` tool",
        "Plan login for {{ team }}.",  # the filled template; what no variable fills stays
        "Last events:",
        "phase_entered plan",
    ):
        assert fragment in context, (fragment, context)


def test_session_start_context_stays_short(repo: Path, bound: str) -> None:
    instance_id = bound
    long_goal = "x" * 5000
    # A long variable in the template: the context is cut, not the agent's budget.
    from chatflow.core.engine import WorkflowEngine

    engine = WorkflowEngine(storage_dir=repo / ".chatflow")
    try:
        engine.state_store.update_state(
            instance_id, lambda s: {**s, "variables": {**s["variables"], "goal": long_goal}}
        )
    finally:
        engine.close()
    context = answer(hook(repo, "SessionStart", payload("SessionStart", repo)))
    text = context["hookSpecificOutput"]["additionalContext"]
    assert len(text) <= 2000
    assert "Last events:" in text and instance_id in text


def test_stop_blocks_until_the_gate_is_met_and_never_twice_for_one_reason(
    repo: Path, bound: str
) -> None:
    first = answer(hook(repo, "Stop", payload("Stop", repo, stop_hook_active=False)))
    assert first["decision"] == "block"
    assert "artifact 'prompt' of this visit" in first["reason"]
    assert "artifact 'response' of this visit" in first["reason"]
    assert "`next`" in first["reason"]
    # Claude Code goes on, then tries to stop again with stop_hook_active: no second block.
    again = hook(repo, "Stop", payload("Stop", repo, stop_hook_active=True))
    assert answer(again) is None
    # A new turn (not continuing from a block) is blocked again: the gate is still open.
    assert answer(hook(repo, "Stop", payload("Stop", repo, stop_hook_active=False)))["decision"]
    # A subagent is held to the same gate.
    sub = answer(hook(repo, "SubagentStop", payload("SubagentStop", repo, stop_hook_active=False)))
    assert sub["decision"] == "block"
    ok(repo, "record", bound, "--prompt", "plan it", "--response", "the plan")
    assert answer(hook(repo, "Stop", payload("Stop", repo, stop_hook_active=False))) is None


def test_stop_never_blocks_on_a_persons_approval(repo: Path, bound: str) -> None:
    ok(repo, "record", bound, "--prompt", "plan it", "--response", "the plan")
    ok(repo, "next", bound)  # review: its exit gate needs one person's approval
    found = answer(hook(repo, "Stop", payload("Stop", repo, stop_hook_active=False)))
    assert "decision" not in found
    assert "waits for a person's approval" in found["systemMessage"]
    ok(repo, "approve", bound, "--by", "ann")
    ok(repo, "next", bound)  # build requires approval to enter: the instance pauses
    found = answer(hook(repo, "Stop", payload("Stop", repo, stop_hook_active=False)))
    assert "decision" not in found
    assert f"chatflow approve {bound} --by NAME" in found["systemMessage"]


def test_post_tool_use_records_files_touched_with_their_sha256(repo: Path, bound: str) -> None:
    written = repo / "src" / "login.py"
    written.write_text("def login():\n    return True\n", encoding="utf-8")
    notebook = repo / "analysis.ipynb"
    notebook.write_text('{"cells": []}', encoding="utf-8")
    for tool, tool_input in (
        ("Write", {"file_path": str(written), "content": written.read_text("utf-8")}),
        ("Edit", {"file_path": "src/login.py", "old_string": "True", "new_string": "True"}),
        ("NotebookEdit", {"notebook_path": str(notebook), "new_source": "print(1)"}),
        ("Read", {"file_path": str(written)}),  # not a writing tool: nothing recorded
    ):
        body = payload(
            "PostToolUse",
            repo,
            tool_name=tool,
            tool_input=tool_input,
            tool_response={"filePath": tool_input.get("file_path"), "success": True},
            tool_use_id="toolu_01ABC123",
        )
        assert answer(hook(repo, "PostToolUse", body)) is None
    view = json.loads(ok(repo, "show", "--json"))  # no id: the bound instance
    files = view["timeline"][0]["files"]
    expected = hashlib.sha256(written.read_bytes()).hexdigest()
    assert [(f["path"], f["sha256"]) for f in files] == [
        ("src/login.py", expected),
        ("analysis.ipynb", hashlib.sha256(notebook.read_bytes()).hexdigest()),
    ]
    events = json.loads(ok(repo, "history", bound, "--json"))
    touched = [event for event in events if event["kind"] == "files_touched"]
    assert len(touched) == 3 and all(event["actor"] == "claude-code" for event in touched)
    assert "src/login.py" in ok(repo, "show")
    assert "1 instance verified" in ok(repo, "verify", bound)


def test_user_prompt_submit_notes_only_a_change_since_the_last_look(repo: Path, bound: str) -> None:
    hook(repo, "SessionStart", payload("SessionStart", repo, source="startup"))
    prompt = payload("UserPromptSubmit", repo, prompt="carry on")
    assert answer(hook(repo, "UserPromptSubmit", prompt)) is None
    ok(repo, "record", bound, "--prompt", "p", "--response", "r")
    assert answer(hook(repo, "UserPromptSubmit", prompt)) is None  # same phase and status
    ok(repo, "next", bound)
    note = answer(hook(repo, "UserPromptSubmit", prompt))["hookSpecificOutput"]
    assert note["hookEventName"] == "UserPromptSubmit"
    assert "from phase plan" in note["additionalContext"]
    assert "to review" in note["additionalContext"]
    assert "\n" not in note["additionalContext"]
    assert answer(hook(repo, "UserPromptSubmit", prompt)) is None  # looked at now


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("Stop", "{not json"),
        ("Stop", "[1, 2]"),
        ("Stop", ""),
        ("PreCompact", json.dumps({"hook_event_name": "PreCompact", "trigger": "manual"})),
        ("PostToolUse", json.dumps({"tool_name": "Write", "tool_input": {}})),
    ],
)
def test_bad_input_and_unknown_events_add_nothing(
    repo: Path, bound: str, event: str, body: str
) -> None:
    result = chatflow(repo, "hook", "claude", event, stdin=body)
    assert result.returncode == 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("chatflow: warning: hook ignored: ")


def test_no_binding_or_no_store_adds_nothing(repo: Path, tmp_path: Path) -> None:
    body = json.dumps(payload("Stop", repo, stop_hook_active=False))
    no_store = chatflow(repo, "hook", "claude", "Stop", stdin=body)
    assert (no_store.returncode, no_store.stdout) == (0, "")
    assert "does not exist" in no_store.stderr
    start(repo)  # a store and an instance, but the tree is bound to none
    unbound = chatflow(repo, "hook", "claude", "Stop", stdin=body)
    assert (unbound.returncode, unbound.stdout) == (0, "")
    assert "bound to no instance" in unbound.stderr
    for words in (["hook"], ["hook", "cursor", "Stop"]):
        result = chatflow(repo, *words, stdin=body)
        assert (result.returncode, result.stdout) == (0, "")


def test_an_unreadable_store_adds_nothing(repo: Path) -> None:
    damaged = repo / "state.db"
    damaged.write_text("not a database, damaged\n" * 50, encoding="utf-8")
    body = json.dumps(payload("Stop", repo))
    result = chatflow(
        repo,
        "hook",
        "claude",
        "Stop",
        stdin=body,
        extra_env={"CHATFLOW_DIR": f"sqlite:///{damaged}"},
    )
    assert (result.returncode, result.stdout) == (0, "")
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("chatflow: warning: hook")


def test_a_hook_run_as_its_own_process_answers_on_stdout(repo: Path, bound: str) -> None:
    """The real executable, bytes on a real pipe: what the in-process cases stand for."""
    body = json.dumps(payload("SessionStart", repo / "src", source="startup"))
    result = chatflow_process(repo, "hook", "claude", "SessionStart", stdin=body)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    context = answer(result)["hookSpecificOutput"]["additionalContext"]
    assert bound in context and "feat_login" in context
    broken = chatflow_process(repo, "hook", "claude", "Stop", stdin="{not json")
    assert (broken.returncode, broken.stdout) == (0, "")
    assert broken.stderr.startswith("chatflow: warning: hook ignored: ")
