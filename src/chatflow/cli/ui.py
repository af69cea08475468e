"""``chatflow ui``: serve the local web page (``chatflow.ui``) until Ctrl-C."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatflow.cli.context import EXIT_FAILED, EXIT_OK, Context, UsageError

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers
    from chatflow.storage.base import IWorkflowStateStore
    from chatflow.webhooks.sender import HookReport, SenderThread


def _add_ui(commands: Subparsers) -> None:
    ui = commands.add_parser("ui", help="a local web page to see every feature and act on it")
    where = ui.add_mutually_exclusive_group()
    where.add_argument("--dir", dest="ui_store", metavar="DIR", help="store folder to show")
    where.add_argument("--store", dest="ui_store", metavar="URL", help="store URL to show")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    ui.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ui.add_argument(
        "--allow-actions",
        action="store_true",
        help="allow approve, reject, pause, resume, retry and cancel (default read-only)",
    )
    ui.add_argument("--open", action="store_true", help="open the page in the browser")
    ui.add_argument(
        "--no-webhooks",
        action="store_true",
        help="do not deliver webhooks meanwhile (chatflow webhook run does it alone)",
    )
    ui.set_defaults(command=cmd_ui)


def cmd_ui(ctx: Context) -> int:
    """Serve the page for the store (which must exist: the page only reads it)."""
    from chatflow.ui import serve  # noqa: PLC0415 - the HTTP server loads only for this command

    args = ctx.args
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, not {args.port}")
    if args.ui_store is not None:
        args.dir = args.ui_store
    engine = ctx.reader()
    sender = None if args.no_webhooks else _start_webhooks(engine.state_store)
    try:
        serve(
            engine,
            host=args.host,
            port=args.port,
            allow_actions=args.allow_actions,
            open_browser=args.open,
        )
    except OSError as error:
        where = f"{args.host}:{args.port}"
        print(
            f"chatflow: error: cannot listen on {where}: {error.strerror or error}", file=sys.stderr
        )
        return EXIT_FAILED
    finally:
        if sender is not None:
            sender.stop()
    return EXIT_OK


def _start_webhooks(store: IWorkflowStateStore) -> SenderThread:
    """The webhook sender, in a thread of its own while the page is served."""
    from chatflow.webhooks.sender import SenderThread  # noqa: PLC0415

    return SenderThread(store, on_report=_warn).start()


def _warn(report: HookReport) -> None:
    state = "delivers again" if report.failing is None else f"failing: {report.failing['error']}"
    print(f"chatflow: warning: webhook {report.hook_id} {state}", file=sys.stderr, flush=True)


PARSERS: dict[str, Callable[[Subparsers], None]] = {"ui": _add_ui}
