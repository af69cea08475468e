"""Drive ``chatflow mcp`` as a subprocess with the ``mcp`` package's own client.

Tests skip (with the reason) where the SDK is not installed, unless ``CI`` is set: CI
installs the ``test`` extra, which holds it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

try:
    import mcp  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip(
        "the mcp package is not installed (pip install 'chatflow-engine[mcp]')",
        allow_module_level=True,
    )

from mcp.client.session import ElicitationFnT
from mcp.types import CallToolResult

from mcp import ClientSession, StdioServerParameters, stdio_client

# plan: its artifacts are its exit gate, and it carries a template; build: needs a
# person's approval to enter; review: needs one person's approval to leave.
GATED = {
    "name": "gated",
    "phases": [
        {
            "name": "plan",
            "template": "Plan {{ user_request }} for {{ who.name }}; {{ unknown }}",
            "exit_requires": {"artifacts": ["prompt", "response"]},
        },
        {"name": "build", "requires_approval": True},
        {"name": "review", "exit_requires": {"approvals": 1}},
    ],
}


def write_workflow(folder: Path, schema: dict[str, Any] = GATED) -> Path:
    path = folder / f"{schema['name']}.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


def child_env() -> dict[str, str]:
    """What the server process needs: our sources first (the SDK's default child
    environment keeps only PATH, HOME and a few others)."""
    return {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PATH": os.environ.get("PATH", "")}


@asynccontextmanager
async def session(
    store: Path, *options: str, elicit: ElicitationFnT | None = None
) -> AsyncIterator[ClientSession]:
    """A client session with ``chatflow --dir STORE mcp OPTIONS`` over stdio."""
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "chatflow", "--dir", str(store), "mcp", *options],
        env=child_env(),
    )
    async with (
        stdio_client(server) as (read, write),
        ClientSession(read, write, elicitation_callback=elicit) as client,
    ):
        await client.initialize()
        yield client


async def call(client: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's answer that must not be an error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def error(client: ClientSession, tool: str, **arguments: Any) -> str:
    """A tool's answer that must be an error: its one line."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, text_of(result)
    message = text_of(result)
    assert "\n" not in message and message, message
    return message


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)
