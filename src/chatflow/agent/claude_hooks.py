"""``chatflow hook claude EVENT``: Claude Code's hooks, answered from the bound instance.

Claude Code runs a hook command on each event with the event's JSON on standard input
and reads the answer from standard output (exit 0; docs.claude.com, "Hooks
reference"). What each event gets (docs/agents.md):

- ``SessionStart``: ``hookSpecificOutput.additionalContext``: the bound instance's
  feature, phase, open gate items, the phase's filled ``template`` and its last events.
- ``UserPromptSubmit``: nothing, unless the instance moved (phase, status) since the
  session last looked: then a one-line note as ``additionalContext``.
- ``Stop``/``SubagentStop``: ``{"decision": "block", "reason": ...}`` while the current
  phase's exit gate misses items the agent can meet, never twice in a row for the same
  reason (``stop_hook_active``); a gate waiting on a person's approval never blocks: a
  ``systemMessage`` says it waits for one.
- ``PostToolUse`` of a file-writing tool: ``engine.record_files`` records the file.

Every rule read here comes from ``chatflow.views`` through ``agent.operations`` (open
gate items, what to do next, the filled template): nothing is derived twice. Standard
library only, and nothing of the MCP SDK.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow.agent import binding

if TYPE_CHECKING:
    from chatflow.core.engine import WorkflowEngine

JSON = dict[str, Any]

EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStop", "PostToolUse")
FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
"""Claude Code's tools that write a file (``tool_input.file_path`` or ``notebook_path``)."""
MAX_CONTEXT = 2000  # characters of SessionStart context: it is read on every session
LAST_EVENTS = 5
ACTOR = "claude-code"
STATE_PREFIX = "hook-state:"  # store value per work tree: the session's last look, last block


class Skip(Exception):
    """Nothing to answer, for a reason worth a log line (no binding, bad input)."""


def answer(event: str, payload: Any, engine: WorkflowEngine) -> JSON | None:
    """The JSON to print for ``event`` (``None``: print nothing); ``Skip`` says why not."""
    if event not in EVENTS:
        raise Skip(f"unknown Claude Code hook event {event!r}; handled: {', '.join(EVENTS)}")
    if not isinstance(payload, dict):
        raise Skip(f"{event}: the hook input is not a JSON object")
    root = binding.work_tree_root(_cwd(payload))
    found = binding.read(engine.state_store, root)
    instance_id = None if found is None else binding.resolve(engine, found)
    state = None if instance_id is None else engine.get_workflow_instance_status(instance_id)
    if state is None:
        raise Skip(f"{event}: {root} is bound to no instance (chatflow use ID)")
    if event == "SessionStart":
        return session_start(engine, instance_id or "", root, payload)
    if event == "UserPromptSubmit":
        return prompt_submit(engine, instance_id or "", root, payload)
    if event == "PostToolUse":
        post_tool_use(engine, instance_id or "", root, payload)
        return None
    return stop(engine, instance_id or "", root, payload, event)


def _cwd(payload: JSON) -> str:
    cwd = payload.get("cwd")
    return cwd if isinstance(cwd, str) and cwd else os.getcwd()


def _context(event: str, text: str) -> JSON:
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


# -- SessionStart ---------------------------------------------------------------------


def session_start(engine: WorkflowEngine, instance_id: str, root: Path, payload: JSON) -> JSON:
    """Where the bound instance stands, what its phase needs, its prompt, its last events."""
    from chatflow.agent import operations  # noqa: PLC0415

    status = operations.instance_status(operations.require(engine, instance_id))
    _remember(engine, root, payload, look=_look(status))
    return _context("SessionStart", context_text(engine, status))


def context_text(engine: WorkflowEngine, status: JSON) -> str:
    """The SessionStart context, at most ``MAX_CONTEXT`` characters (the template is
    shortened first, then the whole)."""
    from chatflow.agent import operations  # noqa: PLC0415
    from chatflow.errors import ChatFlowError  # noqa: PLC0415

    iid = status["instance_id"]
    title = f" ({status['phase_title']})" if status["phase_title"] else ""
    head = [
        f"ChatFlow: this work tree is bound to instance {iid} of feature "
        f"{status['feature_id']} (workflow {status['workflow']}).",
        f"Phase: {status['current_phase']}{title}, {status['status']}; next phase: "
        f"{status['next_phase'] or '-'}; progress {status['progress']:.0%}.",
    ]
    if status["open_gates"]:
        head.append("Still needed before `next`:")
        head += [f"- {item['text']}: {item['to_do']}" for item in status["open_gates"]]
    head.append(f"What to do: {status['what_to_do']}.")
    events = engine.get_workflow_history(iid)[-LAST_EVENTS:]
    tail = ["Last events:", *(_event_line(event) for event in _views().history_view(events))]
    try:
        prompt = operations.phase_prompt(engine, iid)["text"]
    except ChatFlowError:  # the phase has no template
        prompt = ""
    body = "\n".join(head)
    end = "\n".join(tail)
    if prompt:
        room = MAX_CONTEXT - len(body) - len(end) - 40
        if room > 80:
            cut = prompt if len(prompt) <= room else prompt[: room - 1] + "…"
            body += "\nThe phase's prompt:\n" + cut
    return _clip(body + "\n" + end, MAX_CONTEXT)


def _views() -> Any:
    from chatflow import views  # noqa: PLC0415

    return views


def _event_line(event: JSON) -> str:
    who = f" by {event['actor']}" if event["actor"] else ""
    phase = f" {event['phase']}" if event["phase"] else ""
    return f"- {str(event['at'])[:19]} {event['kind']}{phase}{who}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- UserPromptSubmit -----------------------------------------------------------------


def _look(status: JSON) -> JSON:
    """What a session saw of the instance: a note is due when this changes (not on every
    event: the files this hook records must not raise one)."""
    return {key: status[key] for key in ("instance_id", "current_phase", "status")}


def prompt_submit(
    engine: WorkflowEngine, instance_id: str, root: Path, payload: JSON
) -> JSON | None:
    """A one-line note if the instance moved since the session's last look."""
    from chatflow.agent import operations  # noqa: PLC0415

    status = operations.instance_status(operations.require(engine, instance_id))
    look = _look(status)
    kept = _state(engine, root)
    session = payload.get("session_id")
    seen = kept.get("look") if kept.get("session") == session else None
    if seen == look:
        return None
    _remember(engine, root, payload, look=look)
    if seen is None:
        return None  # no earlier look in this session to compare with
    note = (
        f"ChatFlow: since you last looked, {instance_id} moved from phase "
        f"{seen.get('current_phase')} ({seen.get('status')}) to {look['current_phase']} "
        f"({look['status']}): {status['what_to_do']}."
    )
    if seen.get("instance_id") != instance_id:
        note = (
            f"ChatFlow: this work tree is now bound to {instance_id} (phase "
            f"{look['current_phase']}, {look['status']}): {status['what_to_do']}."
        )
    return _context("UserPromptSubmit", _clip(note, 500))


# -- Stop and SubagentStop -------------------------------------------------------------


def stop(
    engine: WorkflowEngine, instance_id: str, root: Path, payload: JSON, event: str
) -> JSON | None:
    """Block the stop while the phase's exit gate misses items the agent can meet."""
    from chatflow.agent import operations  # noqa: PLC0415

    status = operations.instance_status(operations.require(engine, instance_id))
    action = status["next_action"]
    if action == "approve_entry":
        return {"systemMessage": _waits(status, "to enter its phase")}
    if action != "meet_gate":
        return None
    agent_items = [item for item in status["open_gates"] if item["kind"] != "approvals"]
    if not agent_items:
        return {"systemMessage": _waits(status, "for its exit gate")}
    reason = (
        f"ChatFlow: phase {status['current_phase']} of {instance_id} (feature "
        f"{status['feature_id']}) is not done; its exit gate still needs: "
        + "; ".join(f"{item['text']} ({item['to_do']})" for item in agent_items)
        + ". Meet them, then call `next`, before you stop."
    )
    kept = _state(engine, root)
    again = kept.get("blocked") == reason and kept.get("session") == payload.get("session_id")
    if payload.get("stop_hook_active") is True and again:
        return None  # blocked for this very reason just before: let the agent stop
    _remember(engine, root, payload, blocked=reason)
    return {"decision": "block", "reason": reason}


def _waits(status: JSON, what: str) -> str:
    iid = status["instance_id"]
    return (
        f"ChatFlow: {iid} (phase {status['current_phase']}) waits for a person's approval "
        f"{what}: chatflow approve {iid} --by NAME, or the web page."
    )


# -- PostToolUse -----------------------------------------------------------------------


def post_tool_use(engine: WorkflowEngine, instance_id: str, root: Path, payload: JSON) -> None:
    """Record the file a writing tool wrote, with its SHA-256, on the current visit."""
    tool = payload.get("tool_name")
    if tool not in FILE_TOOLS:
        return
    tool_input = payload.get("tool_input")
    path = None
    if isinstance(tool_input, dict):
        path = tool_input.get("file_path") or tool_input.get("notebook_path")
    if not isinstance(path, str) or not path:
        raise Skip(f"PostToolUse: {tool} named no file_path")
    engine.record_files(instance_id, [Path(_cwd(payload), path)], root=root, actor=ACTOR)


# -- what the hooks remember per work tree ---------------------------------------------


def _state(engine: WorkflowEngine, root: Path) -> JSON:
    found = engine.state_store.get_value(STATE_PREFIX + str(root))
    return found if isinstance(found, dict) else {}


def _remember(engine: WorkflowEngine, root: Path, payload: JSON, **changes: Any) -> None:
    """Keep the session's last look and last block (one value per tree: a new session
    replaces the last one's)."""
    session = payload.get("session_id")
    kept = _state(engine, root)
    if kept.get("session") != session:
        kept = {"session": session if isinstance(session, str) else None}
    kept.update(changes)
    engine.state_store.put_value(STATE_PREFIX + str(root), kept)
