"""``chatflow mcp`` under bad input and contention: every mistake is a one-line
``isError`` result and the server keeps answering; two clients stepping one instance
at once lose and double nothing."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from _mcp_support import call, child_env, error, session, write_workflow

from chatflow.core.engine import WorkflowEngine
from chatflow.core.models import EventKind

LONG = {"name": "long", "phases": [{"name": f"p{n:02d}"} for n in range(40)]}


def test_bad_input_of_every_kind_is_a_one_line_tool_error(tmp_path: Path) -> None:
    store, workflow = tmp_path / "store", write_workflow(tmp_path)

    async def scenario() -> None:
        async with session(store) as client:
            started = await call(client, "start", workflow=str(workflow), feature_id="feat_x")
            iid = started["instance"]["instance_id"]
            assert "not found" in await error(client, "next", instance_id="wfi_nothere")
            assert "call `status`" in await error(client, "status", instance_id="wfi_nothere")
            assert "no feature 'feat_none'" in await error(client, "status", feature_id="feat_none")
            assert "invalid instance_id" in await error(client, "verify", instance_id="../../etc")
            assert "`next`: instance_id" in await error(client, "next", instance_id=5)
            assert "data: Input should be a valid dictionary" in await error(
                client, "next", instance_id=iid, data=[1, 2]
            )
            missing = await error(client, "record", instance_id=iid)
            assert "prompt: Field required" in missing and "response: Field required" in missing
            assert "not found" in await error(client, "start", workflow="nope", feature_id="f")
            assert "cursor" in await error(client, "history", instance_id=iid, cursor=-1)
            assert "cursor" in await error(client, "history", instance_id=iid, cursor=10**30)
            deep: Any = 1
            for _ in range(190):  # as deep as the SDK's transport parses: an answer, not a crash
                deep = {"a": deep}
            assert (await call(client, "next", instance_id=iid, data=deep))["outcome"] == "refused"
            huge = "x" * 3_000_000  # a huge value is stored, not refused
            assert (await call(client, "record", instance_id=iid, prompt=huge, response="r"))[
                "recorded"
            ]
            assert "Unknown tool" in await error(client, "approve", instance_id=iid, by="me")
            assert (await call(client, "status", instance_id=iid))["instance"][
                "status"
            ] == "created"

    anyio.run(scenario)


def test_messages_the_sdk_cannot_read_leave_the_server_answering(tmp_path: Path) -> None:
    """A lone surrogate escape or 100,000 levels of nesting cannot be parsed by the
    SDK's transport, which would drop that message and leave the agent waiting:
    ChatFlow answers each with a one-line tool error, and goes on answering."""
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    hostile = [
        '{"name":"status","arguments":{"instance_id":"\\ud800"}}',
        '{"name":"next","arguments":{"instance_id":"wfi_x","data":{"\\udc00":1}}}',
        '{"name":"next","arguments":{"instance_id":"wfi_x","data":' + deep + "}}",
    ]
    lines = [
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
        ),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        *(
            f'{{"jsonrpc":"2.0","id":{10 + n},"method":"tools/call","params":{params}}}'
            for n, params in enumerate(hostile)
        ),
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 99,
                "method": "tools/call",
                "params": {"name": "status", "arguments": {}},
            }
        ),
    ]
    server = subprocess.Popen(
        [sys.executable, "-m", "chatflow", "--dir", str(tmp_path / "store"), "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **child_env()},
    )
    assert server.stdin is not None and server.stdout is not None
    answers = []
    for line in lines:
        server.stdin.write(line + "\n")
        server.stdin.flush()
        if '"id":' in line.replace(" ", ""):
            ready, _, _ = select.select([server.stdout], [], [], 60)
            assert ready, f"no answer to {line[:80]}"  # (a dropped line would wait forever)
            answers.append(json.loads(server.stdout.readline()))
    server.stdin.close()
    stderr = server.stderr.read() if server.stderr else ""
    assert server.wait(timeout=60) == 0
    assert [answer["id"] for answer in answers] == [1, 10, 11, 12, 99]  # each answered
    assert [answer["result"]["isError"] for answer in answers[1:]] == [True, True, True, False]
    problems = [answers[n]["result"]["content"][0]["text"] for n in (1, 2, 3)]
    assert ["surrogate" in problems[0], "surrogate" in problems[1]] == [True, True]
    assert "nested deeper than" in problems[2] and all("\n" not in p for p in problems)
    assert "Traceback" not in stderr, stderr


def test_two_clients_stepping_one_instance_lose_and_double_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    workflow = write_workflow(tmp_path, LONG)
    outcomes: list[str] = []

    async def stepper(iid: str) -> None:
        async with session(store) as client:
            while True:
                result = await client.call_tool("next", {"instance_id": iid})
                if result.is_error:  # the other client completed it
                    return
                answer = result.structured_content or {}
                outcomes.append(answer["outcome"])
                if answer["outcome"] == "completed":
                    return

    async def scenario() -> str:
        async with session(store) as client:
            started = await call(client, "start", workflow=str(workflow), feature_id="feat_c")
        iid = str(started["instance"]["instance_id"])
        async with anyio.create_task_group() as group:
            group.start_soon(stepper, iid)
            group.start_soon(stepper, iid)
        return iid

    iid = anyio.run(scenario)
    engine = WorkflowEngine(storage_dir=store)
    try:
        state = engine.get_workflow_instance_status(iid)
        history = engine.get_workflow_history(iid)
    finally:
        engine.close()
    assert state is not None and state.status.value == "completed"
    completed = [e.phase for e in history if e.kind is EventKind.PHASE_COMPLETED]
    assert completed == [f"p{n:02d}" for n in range(40)]  # each phase once, in order
    assert len(outcomes) == 40 and outcomes.count("completed") == 1  # one answer per step
