"""``chatflow mcp --http``: streamable HTTP on loopback behind a bearer token, driven
by the SDK's own HTTP client."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from _mcp_support import call, child_env, write_workflow

from mcp import ClientSession  # isort: skip
from mcp.client.streamable_http import streamable_http_client  # isort: skip
from mcp.shared._httpx_utils import create_mcp_http_client  # isort: skip


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A running ``chatflow mcp --http``: its URL and token."""
    server = subprocess.Popen(
        [sys.executable, "-m", "chatflow", "--dir", str(tmp_path / "store"), "mcp", "--http"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **child_env()},
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(3)]  # printed once it listens
        url = lines[1].split("url: ", 1)[1].strip()
        token = lines[2].split("token: ", 1)[1].strip()
        yield url, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_http_needs_the_token(served: tuple[str, str]) -> None:
    url, _ = served
    request = urllib.request.Request(url, data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
    request.add_header("Authorization", "Bearer wrong")
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(request, timeout=30)
    assert wrong.value.code == 401


def test_http_session_steps_an_instance(served: tuple[str, str], tmp_path: Path) -> None:
    url, token = served
    workflow = write_workflow(tmp_path)

    async def scenario() -> None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with (
            http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            tools = await client.list_tools()
            assert len(tools.tools) == 8
            started = await call(client, "start", workflow=str(workflow), feature_id="feat_h")
            iid = started["instance"]["instance_id"]
            refused = await call(client, "next", instance_id=iid)
            assert refused["outcome"] == "refused" and len(refused["missing"]) == 2
            await call(client, "record", instance_id=iid, prompt="p", response="r")
            waiting = await call(client, "next", instance_id=iid)
            assert waiting["outcome"] == "awaits_approval"
            assert waiting["approval"]["asked"] is False
            assert (await call(client, "verify", instance_id=iid))["ok"] is True

    anyio.run(scenario)
