"""``chatflow mcp`` started by an agent in a subfolder of the project (no ``--dir``, no
``$CHATFLOW_DIR``, no ``./.chatflow``): it serves the store at the work tree's root,
never a new, empty one in the subfolder that would hide every feature."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
from _mcp_support import call, child_env

from mcp import ClientSession, StdioServerParameters, stdio_client  # isort: skip

from chatflow.core.engine import WorkflowEngine


async def _features_seen_from(folder: Path) -> list[str]:
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "chatflow", "mcp"], env=child_env(), cwd=folder
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        answer = await call(client, "status")
    return [feature["feature_id"] for feature in answer["features"]]


def test_a_server_started_in_a_subfolder_serves_the_projects_store(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    engine = WorkflowEngine(project / ".chatflow")
    engine.start_workflow_instance({"name": "w", "phases": [{"name": "a"}]}, {}, "feat_root")
    assert anyio.run(_features_seen_from, project / "src" / "deep") == ["feat_root"]
    assert not (project / "src" / "deep" / ".chatflow").exists()


def test_a_request_too_deep_for_the_sdk_is_answered_not_dropped(tmp_path: Path) -> None:
    """The SDK drops a line its parser cannot nest that deep, leaving the agent waiting;
    ChatFlow answers it with a one-line tool error under its id, and goes on serving."""
    import json
    import os
    import select

    store = tmp_path / ".chatflow"
    WorkflowEngine(store).start_workflow_instance(
        {"name": "w", "phases": [{"name": "a"}]}, {}, "feat_a"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "chatflow", "--dir", str(store), "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **child_env()},
    )
    assert server.stdin is not None and server.stdout is not None

    def send(message: str) -> None:
        assert server.stdin is not None
        server.stdin.write(message.encode() + b"\n")
        server.stdin.flush()

    def answer() -> dict[str, object]:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready, "no answer"
        found: dict[str, object] = json.loads(server.stdout.readline())
        return found

    try:
        init = {"protocolVersion": "2025-06-18", "capabilities": {}}
        init["clientInfo"] = {"name": "t", "version": "1"}
        send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}))
        answer()
        send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        deep = '{"a": ' * 400 + "1" + "}" * 400
        call = '{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "next", '
        send(call + f'"arguments": {{"instance_id": "wfi_x", "data": {deep}}}}}}}')
        reply = answer()
        assert reply["id"] == 7
        result = reply["result"]
        assert isinstance(result, dict) and result["isError"] is True
        assert "nested deeper than" in json.dumps(result)
        status = '{"jsonrpc": "2.0", "id": 8, "method": "tools/call", '
        send(status + '"params": {"name": "status", "arguments": {}}}')
        assert answer()["id"] == 8  # still serving
    finally:
        server.stdin.close()
        server.wait(timeout=60)
