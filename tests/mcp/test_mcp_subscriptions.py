"""Resource subscriptions: a client subscribed to a ``chatflow://`` resource is sent
``notifications/resources/updated`` when another process changes it (the server follows
the store's change feed). Driven with the ``mcp`` package's own client over stdio."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from _mcp_support import child_env, write_workflow

from mcp import ClientSession, StdioServerParameters, stdio_client  # isort: skip
from mcp.shared.exceptions import MCPError  # isort: skip  (after the skip in _mcp_support)
from mcp.types import ResourceUpdatedNotification  # isort: skip

from chatflow import WorkflowEngine

STEP = (  # one commit, so one round of notifications
    "import sys; from chatflow import WorkflowEngine; "
    "WorkflowEngine(storage_dir=sys.argv[1]).state_store.update_state(sys.argv[2], dict)"
)
GUARD_S = 60  # only against a hang: the speed (about 0.5 s) is the design, not asserted here


def test_a_subscriber_is_told_of_a_step_another_process_takes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    engine = WorkflowEngine(storage_dir=store)
    workflow = str(write_workflow(tmp_path))
    iid = engine.start_workflow_instance(workflow, {"user_request": "x"}, "feat_sub")
    other = engine.start_workflow_instance(workflow, {"user_request": "y"}, "feat_other")
    send, receive = anyio.create_memory_object_stream[str](100)

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            await send.send(str(message.params.uri))

    async def next_uri() -> str:
        with anyio.fail_after(GUARD_S):
            return await receive.receive()

    async def scenario() -> None:
        server = StdioServerParameters(
            command=sys.executable,
            args=["-m", "chatflow", "--dir", str(store), "mcp"],
            env=child_env(),
        )
        async with (
            stdio_client(server) as (read, write),
            ClientSession(read, write, message_handler=on_message) as client,
        ):
            started = await client.initialize()
            assert started.capabilities.resources is not None
            assert started.capabilities.resources.subscribe is True
            mine = f"chatflow://instance/{iid}"
            wanted = [
                mine,
                f"chatflow://instance/{iid}/artifacts/plan",
                "chatflow://feature/feat_sub",
                "chatflow://features",
                f"chatflow://instance/{other}",
            ]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # resources/subscribe is the 2025-era call
                for uri in wanted:
                    await client.subscribe_resource(uri)
                with pytest.raises(MCPError):
                    await client.subscribe_resource("file:///etc/passwd")
            await anyio.to_thread.run_sync(_step, store, iid)
            told = {await next_uri() for _ in range(4)}
            assert told == set(wanted[:4])  # not the other instance
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await client.unsubscribe_resource("chatflow://features")
                await client.unsubscribe_resource("chatflow://feature/feat_sub")
            await anyio.to_thread.run_sync(_step, store, iid)
            # Sent together, in URI order: features and feature/ would have come first.
            assert {await next_uri(), await next_uri()} == set(wanted[:2])
            await anyio.to_thread.run_sync(_step, store, other)
            assert await next_uri() == f"chatflow://instance/{other}"
            read_back = await client.read_resource(mine)
            assert iid in read_back.contents[0].text  # type: ignore[union-attr]

    anyio.run(scenario)


def _step(store: Path, iid: str) -> None:
    subprocess.run([sys.executable, "-c", STEP, str(store), iid], check=True, env=child_env())
