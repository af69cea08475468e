"""``chatflow mcp``: serve the store to coding agents over the Model Context Protocol.

The SDK is the optional ``mcp`` extra, imported only when this command runs, so
``import chatflow`` and every other command stay standard-library only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatflow.cli.context import EXIT_FAILED, EXIT_OK, Context, UsageError

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers

INSTALL = "chatflow mcp needs the MCP SDK: pip install 'chatflow-engine[mcp]'"


def _add_mcp(commands: Subparsers) -> None:
    mcp = commands.add_parser(
        "mcp", help="serve the store to coding agents (Model Context Protocol; stdio)"
    )
    where = mcp.add_mutually_exclusive_group()
    where.add_argument("--dir", dest="mcp_store", metavar="DIR", help="store folder to serve")
    where.add_argument("--store", dest="mcp_store", metavar="URL", help="store URL to serve")
    mcp.add_argument(
        "--http",
        action="store_true",
        help="serve streamable HTTP on 127.0.0.1 (prints the URL and a bearer token) "
        "instead of stdio",
    )
    mcp.add_argument("--port", type=int, default=0, help="with --http: port (default: a free one)")
    mcp.add_argument(
        "--read-only",
        action="store_true",
        help="offer only the reading tools (status, history, verify)",
    )
    mcp.set_defaults(command=cmd_mcp)


def cmd_mcp(ctx: Context) -> int:
    """Serve until the client disconnects (stdio) or Ctrl-C (HTTP)."""
    args = ctx.args
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, not {args.port}")
    if args.port and not args.http:
        raise UsageError("--port applies to --http")
    try:
        from chatflow.agent import mcp_server  # noqa: PLC0415 - the SDK loads only here
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] not in _SDK_MODULES:
            raise
        print(f"chatflow: error: {INSTALL}", file=sys.stderr)
        return EXIT_FAILED
    if args.mcp_store is not None:
        args.dir = args.mcp_store
    elif args.dir is None:
        args.dir = project_store()
    engine = ctx.reader() if args.read_only else ctx.writer()
    if not args.http:
        mcp_server.serve_stdio(engine, read_only=args.read_only)
        return EXIT_OK
    try:
        mcp_server.serve_http(
            engine,
            port=args.port,
            read_only=args.read_only,
            token=os.environ.get("CHATFLOW_MCP_TOKEN") or None,
        )
    except OSError as error:
        where = f"127.0.0.1:{args.port}"
        print(
            f"chatflow: error: cannot listen on {where}: {error.strerror or error}", file=sys.stderr
        )
        return EXIT_FAILED
    return EXIT_OK


def project_store() -> str | None:
    """With no store named (``--dir``, ``$CHATFLOW_DIR``): ``./.chatflow`` if there is
    one, else the work tree's root ``.chatflow`` if there is one. An agent may start the
    server in a subfolder of the project; serving a new, empty store there would hide
    every feature the project has. ``None``: the default (``./.chatflow``)."""
    from chatflow.agent.binding import work_tree_root  # noqa: PLC0415
    from chatflow.core.engine import DEFAULT_DIR, DEFAULT_DIR_ENV  # noqa: PLC0415

    if os.environ.get(DEFAULT_DIR_ENV) or os.path.isdir(DEFAULT_DIR):
        return None
    root = work_tree_root() / DEFAULT_DIR
    return str(root) if (root / "instances").is_dir() else None


# The SDK and what it brings: missing, the command says how to install the extra.
_SDK_MODULES = frozenset(
    {"mcp", "mcp_types", "pydantic", "pydantic_core", "anyio", "uvicorn", "starlette"}
)

PARSERS: dict[str, Callable[[Subparsers], None]] = {"mcp": _add_mcp}
