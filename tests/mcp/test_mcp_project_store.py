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
