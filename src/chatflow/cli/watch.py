"""``chatflow watch``: follow the store's change feed (``engine.events_since``) until
interrupted; Ctrl-C ends it quietly with exit 0."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

from chatflow import views
from chatflow.cli.context import EXIT_OK, Context, UsageError, finish, phrased
from chatflow.errors import FeedCursorError

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers
    from chatflow.storage.feed import FeedEvent

POLL_S = 0.5  # how often an idle watch asks the feed again
PAGE = 500


def _add_watch(commands: Subparsers) -> None:
    watch = commands.add_parser(
        "watch", help="follow every change to the store as it is committed (Ctrl-C ends)"
    )
    watch.add_argument("--feature", metavar="F", help="only this feature's instances")
    watch.add_argument("--instance", metavar="ID", help="only this instance")
    watch.add_argument(
        "--since",
        metavar="CURSOR",
        help="start after this cursor (from an earlier --json line), or 'start' for the "
        "whole feed; default: from now on",
    )
    finish(watch, cmd_watch)


def cmd_watch(ctx: Context) -> int:
    """Print each committed event (one NDJSON line with --json, with its cursor)."""
    try:
        _follow(ctx)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK  # (never reached: only Ctrl-C or an error ends the watch)


def _follow(ctx: Context) -> None:
    args = ctx.args
    engine = ctx.reader()
    if args.instance is not None:
        ctx.instance(args.instance)  # exit 3 for an unknown id, not a silent wait
    since = args.since
    cursor = engine.feed_end() if since is None else None if since == "start" else since
    try:
        engine.events_since(cursor, limit=1)  # a bad --since fails now, as a usage error
    except FeedCursorError as error:
        raise UsageError(f"--since: {phrased(error)}") from None
    while True:
        page = engine.events_since(cursor, feature=args.feature, instance=args.instance, limit=PAGE)
        for event in page.events:
            _show(ctx, event)
        sys.stdout.flush()
        cursor = page.cursor
        if len(page.events) < PAGE:
            time.sleep(POLL_S)


def _show(ctx: Context, event: FeedEvent) -> None:
    view = views.feed_event_view(event.instance_id, event.feature_id, event.event)
    if ctx.out.json:
        print(json.dumps({**view, "cursor": event.cursor}, ensure_ascii=False))
        return
    changes = [f"{key}={view[key]}" for key in ("status", "phase", "task") if view[key]]
    when = (view["at"] or "")[11:19]
    line = f"{when:8}  {view['feature_id']}  {view['instance_id']}  #{view['seq']} {view['kind']}"
    ctx.out.line("  ".join([line, *changes]))


PARSERS = {"watch": _add_watch}
