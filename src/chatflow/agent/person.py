"""Approvals come from a person: what refuses them when a coding agent runs the command.

An agent with a shell can run ``chatflow approve`` (or ``jump --force``, which enters a
phase without the approval it requires) as easily as a person, so these refuse to run
under one. Agents mark the commands they run in their environment: Claude Code sets
``CLAUDECODE``, Codex ``CODEX_SANDBOX``/``CODEX_SANDBOX_NETWORK_DISABLED``, the Cursor
agent ``CURSOR_AGENT``, Gemini CLI ``GEMINI_CLI``; any other can set ``CHATFLOW_AGENT``.
A guard, not a wall: an agent that clears its environment is not stopped (the event
log still names who approved, and when).

The MCP server is not refused: it never approves on the agent's word, only on the
answer a person gives in the client's form (``chatflow.agent.mcp_server``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from chatflow.errors import AgentApprovalError

AGENT_MARKERS = (
    "CHATFLOW_AGENT",
    "CLAUDECODE",
    "CODEX_SANDBOX",
    "CODEX_SANDBOX_NETWORK_DISABLED",
    "CURSOR_AGENT",
    "GEMINI_CLI",
)
"""Environment variables a coding agent sets in the commands it runs."""


def agent_marker(environ: Mapping[str, str] | None = None) -> str | None:
    """The first agent marker set (non-empty, not ``0``) in ``environ``, else ``None``."""
    found = os.environ if environ is None else environ
    for name in AGENT_MARKERS:
        if found.get(name, "") not in ("", "0"):
            return name
    return None


PERSON_RUNS_IT = (
    "a person runs it in their own terminal, or uses the web page (chatflow ui --allow-actions)"
)


def require_person(
    action: str, remedy: str = PERSON_RUNS_IT, environ: Mapping[str, str] | None = None
) -> None:
    """``AgentApprovalError`` if a coding agent runs ``action`` (an approval, or an
    override of one); ``remedy`` says what a person does instead."""
    marker = agent_marker(environ)
    if marker is not None:
        raise AgentApprovalError(
            f"approvals come from a person: {action} is refused under a coding agent "
            f"(${marker} is set); {remedy}"
        )
