"""MCP benchmark: one tool call round trip over stdio against what it is made of.

Run:  python bench/bench_mcp.py [--repeat 200]   (needs the mcp extra)

In one run it measures, each ``--repeat`` times (min / median):

* ``chatflow mcp``: ``status(instance_id=...)`` called over stdio with the SDK's client;
* direct: the same operation in this process (``operations.status`` on an engine);
* echo: the SDK's own round trip, a one-line ``echo`` tool of a bare ``MCPServer`` over
  stdio, the cost any MCP tool pays.

Target (issue 17): chatflow's round trip <= 3x (direct + echo).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _harness import timed

ECHO_SERVER = """\
from mcp.server.mcpserver import MCPServer
server = MCPServer("echo", log_level="WARNING")
@server.tool()
def echo(text: str) -> str:
    return text
server.run("stdio")
"""


async def _atimes(repeat: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    found = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        found.append(time.perf_counter() - start)
    return found


async def _over_stdio(
    args: list[str], tool: str, arguments: dict[str, str], repeat: int
) -> list[float]:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PATH": os.environ.get("PATH", "")}
    server = StdioServerParameters(command=sys.executable, args=args, env=env)
    async with stdio_client(server) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        await client.call_tool(tool, arguments)  # warm up
        return await _atimes(repeat, lambda: client.call_tool(tool, arguments))


def main() -> int:
    import anyio

    from chatflow.agent import operations
    from chatflow.core.engine import WorkflowEngine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--quick", action="store_true", help="3 calls each: proves it runs; a miss never fails"
    )
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        engine = WorkflowEngine(storage_dir=store)
        schema = {"name": "bench", "phases": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
        iid = engine.start_workflow_instance(schema, {"x": 1}, "feat_bench")
        direct = timed(lambda: operations.status(engine, instance_id=iid), repeat)
        engine.close()
        tool = anyio.run(
            _over_stdio,
            ["-m", "chatflow", "--dir", str(store), "mcp"],
            "status",
            {"instance_id": iid},
            repeat,
        )
        echo = anyio.run(_over_stdio, ["-c", ECHO_SERVER], "echo", {"text": "hi"}, repeat)
    rows = {"chatflow mcp status": tool, "direct operations.status": direct, "SDK echo tool": echo}
    print(f"{'measure':<28}{'min ms':>10}{'median ms':>12}   ({repeat} calls)")
    for name, found in rows.items():
        print(f"{name:<28}{min(found) * 1000:>10.3f}{statistics.median(found) * 1000:>12.3f}")
    budget = statistics.median(direct) + statistics.median(echo)
    ratio = statistics.median(tool) / budget
    verdict = "ok" if ratio <= 3 else "OVER"
    print(f"chatflow / (direct + echo), medians: {ratio:.2f}x (target <= 3x: {verdict})")
    return 0 if args.quick or ratio <= 3 else 3  # 3: a target missed, as the other benches


if __name__ == "__main__":
    sys.exit(main())
