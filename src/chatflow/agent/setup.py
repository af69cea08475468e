"""``chatflow init --agent``: the coding agent's project settings, merged, never replaced.

Each agent's files are planned first (read, parsed, merged in memory) and written only
if every one of them could be read: a malformed file refuses the whole set-up, with one
line naming it, and nothing is touched. What is there already stays as it was: other
hooks, permissions, MCP servers, and a ``chatflow`` MCP server the user set up
themselves. Running it twice changes nothing the second time.

- Claude Code: ``.claude/settings.json`` (``hooks``: one ``chatflow hook claude EVENT``
  per event) and ``.mcp.json`` (``mcpServers.chatflow``).
- Cursor: ``.cursor/mcp.json`` (``mcpServers.chatflow``).
- Codex: ``.codex/config.toml`` (``[mcp_servers.chatflow]``, appended as text: the
  user's TOML is never re-encoded). Standard library only (``tomllib`` checks it where
  Python has it).
- Kiro: ``.kiro/settings/mcp.json`` (``mcpServers.chatflow``, auto-approving only the
  reading tools) and a steering file, ``.kiro/steering/chatflow.md``. No hooks: Kiro's
  hooks do not speak Claude Code's protocol that ``chatflow hook claude`` answers
  (docs/agents.md, "Kiro").
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatflow.errors import ValidationError

JSON = dict[str, Any]

AGENTS = ("claude", "cursor", "codex", "kiro")
"""The agents ``chatflow init --agent`` sets up."""

KIRO_AUTO_APPROVE = ("status", "history", "verify")
"""The MCP tools Kiro may call without asking its user: the reading ones only. Never
``next`` (where a person's approval is asked) nor any tool that changes an instance."""

KIRO_STEERING = """\
---
inclusion: always
---

# ChatFlow

This project's feature work is tracked by ChatFlow, through the `chatflow` MCP server.

- Call `status` first: it says which phase a feature is in, what the phase still needs
  (`open_gates`) and what to do next.
- Work one phase at a time: do the phase's work, `record` your prompt and response,
  then call `next`. If `next` refuses, meet each missing item it lists and call it again.
- Approvals come from a person, never from you. When `next` says the step awaits
  approval, tell the user and stop; do not run `chatflow approve` or any `--force`.
"""
"""What Kiro always includes in its context (front matter ``inclusion: always``)."""

HOOKS: tuple[tuple[str, str | None], ...] = (
    ("SessionStart", None),
    ("UserPromptSubmit", None),
    ("PostToolUse", "Write|Edit|MultiEdit|NotebookEdit"),
    ("Stop", None),
    ("SubagentStop", None),
)
"""The Claude Code events ``chatflow hook claude`` answers, with their tool matcher."""
HOOK_TIMEOUT = 30  # seconds Claude Code waits for one hook call


@dataclass
class Change:
    """One settings file: its new text (``None``: unchanged) and what changed in it."""

    path: Path
    text: str | None
    what: str


def plan(agent: str, project: Path, store: str | Path) -> list[Change]:
    """The settings ``agent`` needs in ``project`` for the store ``store``;
    ``ValidationError`` (one line) if a file there cannot be read or is not the shape its
    agent reads."""
    hook_args, mcp_args = store_arguments(project, store)
    mcp = {"command": "chatflow", "args": ["mcp", *mcp_args]}
    if agent == "claude":
        return [
            _claude_hooks(project / ".claude" / "settings.json", hook_args),
            _mcp_json(project / ".mcp.json", mcp),
        ]
    if agent == "cursor":
        return [_mcp_json(project / ".cursor" / "mcp.json", mcp)]
    if agent == "codex":
        return [_codex(project / ".codex" / "config.toml", mcp)]
    if agent == "kiro":
        kiro = {**mcp, "autoApprove": list(KIRO_AUTO_APPROVE)}
        return [
            _mcp_json(project / ".kiro" / "settings" / "mcp.json", kiro),
            _steering(project / ".kiro" / "steering" / "chatflow.md"),
        ]
    raise ValidationError(f"unknown agent {agent!r}{agent_hint(agent)}")


def agent_hint(word: str) -> str:
    """`` (did you mean 'kiro'?)`` for a mistyped agent, else the agents there are."""
    from chatflow.domain.usage import did_you_mean  # noqa: PLC0415 - only on a mistake

    return did_you_mean(word, AGENTS)


def apply(changes: list[Change]) -> None:
    """Write the changed files (each atomically: a temporary file, then a rename)."""
    for change in changes:
        if change.text is None:
            continue
        change.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = change.path.with_name(f".{change.path.name}.{os.getpid()}.tmp")
        temporary.write_text(change.text, encoding="utf-8")
        os.replace(temporary, change.path)


def store_arguments(project: Path, store: str | Path) -> tuple[list[str], list[str]]:
    """``--dir`` for the hook commands and for the MCP server. A store inside the
    project is named relative to it, so the settings can be committed: the hooks by
    ``$CLAUDE_PROJECT_DIR`` (a shell expands it), the server (started in the project,
    without a shell) relative to it, or by nothing for ``./.chatflow``. A URL as given."""
    import shlex  # noqa: PLC0415

    from chatflow.storage._open import is_store_url  # noqa: PLC0415

    if is_store_url(store):
        return ["--dir", shlex.quote(str(store))], ["--dir", str(store)]
    folder = Path(store).resolve()
    try:
        inside = folder.relative_to(project.resolve()).as_posix()
    except ValueError:
        return ["--dir", shlex.quote(str(folder))], ["--dir", str(folder)]
    hooks = ["--dir", f'"$CLAUDE_PROJECT_DIR"/{shlex.quote(inside)}']
    return hooks, ([] if inside == ".chatflow" else ["--dir", inside])


def hook_command(event: str, store_args: list[str]) -> str:
    """The command line Claude Code runs for ``event``."""
    words = ["chatflow", *store_args, "hook", "claude", event]
    return " ".join(words)


# -- JSON settings ---------------------------------------------------------------------


def _read_text(path: Path) -> str | None:
    """The text of ``path`` (``None`` if there is no file); a one-line refusal if it
    cannot be read (not UTF-8, a folder, no permission)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"cannot read {path}: {error}; nothing changed") from None


def _read_json(path: Path) -> JSON | None:
    """The object in ``path`` (``None`` if there is no file); one-line refusal if it is
    not a JSON object."""
    text = _read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as error:
        raise ValidationError(f"{path} is not valid JSON ({error}); nothing changed") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path} is not a JSON object; nothing changed")
    return data


def _object(data: JSON, key: str, path: Path) -> JSON:
    """``data[key]``, created empty if absent; a refusal if it is not an object."""
    value = data.setdefault(key, {})
    if not isinstance(value, dict):
        raise ValidationError(f"{path}: {key!r} is not a JSON object; nothing changed")
    return value


def _dump(data: JSON) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _claude_hooks(path: Path, store_args: list[str]) -> Change:
    data = _read_json(path)
    settings = {} if data is None else data
    hooks = _object(settings, "hooks", path)
    added = []
    for event, matcher in HOOKS:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            what = f"hooks.{event} is not a list of objects"
            raise ValidationError(f"{path}: {what}; nothing changed")
        if any(_runs_chatflow(group, event) for group in groups):
            continue
        command: JSON = {"type": "command", "command": hook_command(event, store_args)}
        command["timeout"] = HOOK_TIMEOUT
        group: JSON = {"hooks": [command]}
        if matcher is not None:
            group = {"matcher": matcher, **group}
        groups.append(group)
        added.append(event)
    if not added:
        return Change(path, None, "hooks already there")
    return Change(path, _dump(settings), "added hooks " + ", ".join(added))


def _runs_chatflow(group: JSON, event: str) -> bool:
    """Whether a hook group already runs ``chatflow ... hook claude EVENT``."""
    for hook in group.get("hooks") or []:
        command = hook.get("command") if isinstance(hook, dict) else None
        if isinstance(command, str) and command.split()[:1] == ["chatflow"]:
            words = command.split()
            if words[-3:] == ["hook", "claude", event]:
                return True
    return False


def _mcp_json(path: Path, server: JSON) -> Change:
    data = _read_json(path)
    settings = {} if data is None else data
    servers = _object(settings, "mcpServers", path)
    if "chatflow" in servers:
        said = "MCP server chatflow already there"
        if servers["chatflow"] != server:
            said += " (your own settings, kept)"
        return Change(path, None, said)
    servers["chatflow"] = server
    return Change(path, _dump(settings), "added MCP server chatflow")


# -- Kiro steering ---------------------------------------------------------------------


def _steering(path: Path) -> Change:
    """The steering file, written only where there is none: one already there, even
    edited, is the user's."""
    text = _read_text(path)
    if text is None:
        return Change(path, KIRO_STEERING, "added steering file")
    said = "steering file already there"
    return Change(path, None, said if text == KIRO_STEERING else said + " (yours, kept)")


# -- Codex TOML ------------------------------------------------------------------------

_TABLE = "[mcp_servers.chatflow]"


def _codex(path: Path, server: JSON) -> Change:
    text = _read_text(path) or ""
    if _has_chatflow(text, path):
        return Change(path, None, "MCP server chatflow already there")
    table = "\n".join(
        [
            _TABLE,
            f"command = {_toml_string(server['command'])}",
            "args = [" + ", ".join(_toml_string(arg) for arg in server["args"]) + "]",
        ]
    )
    separator = "" if not text else "\n" if text.endswith("\n") else "\n\n"
    return Change(path, text + separator + table + "\n", "added MCP server chatflow")


def _has_chatflow(text: str, path: Path) -> bool:
    """Whether the TOML already has an ``mcp_servers.chatflow`` table; a refusal if it
    does not parse (where Python has ``tomllib``; else a textual check)."""
    try:  # Python 3.11+; by name, as mypy checks for 3.10
        tomllib: Any = importlib.import_module("tomllib")
    except ModuleNotFoundError:
        return any(line.strip().replace(" ", "") == _TABLE for line in text.splitlines())
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValidationError(f"{path} is not valid TOML ({error}); nothing changed") from None
    servers = data.get("mcp_servers")
    if servers is not None and not isinstance(servers, dict):
        raise ValidationError(f"{path}: mcp_servers is not a table; nothing changed")
    return isinstance(servers, dict) and "chatflow" in servers


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (``\\"``, ``\\\\``, ``\\uXXXX``)."""
    return json.dumps(value, ensure_ascii=True)
