"""``chatflow webhook add|list|remove|run``: POST the store's changes to URLs, signed
(``chatflow.webhooks``; docs/webhooks.md)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatflow.cli.context import EXIT_FAILED, EXIT_OK, Context, UsageError, finish
from chatflow.cli.output import warn

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers
    from chatflow.storage.feed import FeedEvent
    from chatflow.webhooks.sender import HookReport


def _add_webhook(commands: Subparsers) -> None:
    webhook = commands.add_parser(
        "webhook", help="POST each matching change to a URL, signed (add, list, remove, reset, run)"
    )
    actions = webhook.add_subparsers(title="actions", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="keep a webhook in the store; prints its secret once")
    add.add_argument("url", metavar="URL", help="http:// or https:// address to POST to")
    add.add_argument(
        "--events",
        nargs="+",
        action="extend",
        metavar="PATTERN",
        help="event types to send (approved, phase_*, ...; default every event)",
    )
    add.add_argument("--feature", metavar="F", help="only this feature's instances")
    add.add_argument("--secret", metavar="S", help="signing secret (default: one is generated)")
    add.add_argument(
        "--from-start",
        action="store_true",
        help="also send every event already in the store (default: from now on)",
    )
    finish(add, cmd_add)
    listing = actions.add_parser("list", help="the webhooks kept in the store (no secrets)")
    finish(listing, cmd_list)
    remove = actions.add_parser("remove", help="forget a webhook")
    remove.add_argument("hook_id", metavar="ID")
    finish(remove, cmd_remove)
    reset = actions.add_parser(
        "reset", help="go on from now (or --from-start), past what is pending or failing"
    )
    reset.add_argument("hook_id", metavar="ID")
    reset.add_argument(
        "--from-start", action="store_true", help="send every event in the store again"
    )
    finish(reset, cmd_reset)
    run = actions.add_parser("run", help="deliver until Ctrl-C (--once: what is there now)")
    run.add_argument("--once", action="store_true", help="deliver what is pending, then exit")
    run.add_argument(
        "--retries", type=_count, default=5, metavar="N", help="tries of one event in a row (5)"
    )
    run.add_argument(
        "--backoff", type=_seconds, default=1.0, metavar="S", help="first wait after a failure (1)"
    )
    run.add_argument(
        "--max-backoff", type=_seconds, default=60.0, metavar="S", help="longest wait (60)"
    )
    run.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="S", help="HTTP timeout per POST (10)"
    )
    finish(run, cmd_run)


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"expected a whole number 1-1000, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds (0-86400), got {text!r}")
    return value


def cmd_add(ctx: Context) -> int:
    """Check everything, then keep the hook; its secret is printed this once."""
    from chatflow.webhooks import hooks  # noqa: PLC0415

    args = ctx.args
    events = (
        None
        if args.events is None
        else [p.strip() for item in args.events for p in item.split(",")]
    )
    hooks.check_url(args.url)
    hooks.check_events(events)  # both before the store is opened: nothing is written
    engine = ctx.reader()
    store = engine.state_store
    cursor = None if args.from_start else store.feed_end()
    hook = hooks.add(
        store, args.url, events=events, feature=args.feature, secret=args.secret, cursor=cursor
    )
    if hooks.in_the_clear(hook["url"]):
        warn(
            f"{hooks.shown_url(hook['url'])} is http://: changes go to it unencrypted "
            "(signed, so not forged, but readable on the way); prefer https://"
        )
    shown = hooks.public(store, hook)
    if args.secret is None:
        shown["secret"] = hook["secret"]
    if ctx.out.json:
        ctx.out.emit_json(shown)
        return EXIT_OK
    only = f" of feature {hook['feature']}" if hook["feature"] else ""
    ctx.out.line(f"webhook {hook['id']}: POST {hooks.shown_url(hook['url'])}")
    ctx.out.line(f"events     {', '.join(hook['events'])}{only}")
    if args.secret is None:
        ctx.out.line(f"secret     {hook['secret']}")
        ctx.out.line("(shown only now: keep it to check X-ChatFlow-Signature)")
    return EXIT_OK


def cmd_list(ctx: Context) -> int:
    from chatflow.webhooks import hooks  # noqa: PLC0415

    store = ctx.reader().state_store
    rows = [hooks.public(store, hook) for hook in hooks.every(store)]
    for row in rows:
        row["url"] = hooks.shown_url(row["url"])
    if ctx.out.json:
        ctx.out.emit_json(rows)
        return EXIT_OK
    if not rows:
        ctx.out.line("no webhooks (chatflow webhook add URL)")
        return EXIT_OK
    ctx.out.table(
        ("ID", "URL", "EVENTS", "FEATURE", "SENT", "FAILING"),
        (
            (
                row["id"],
                row["url"],
                ",".join(row["events"]),
                row["feature"] or "-",
                str(row["delivered"]),
                _failing(row["failing"]),
            )
            for row in rows
        ),
    )
    return EXIT_OK


def cmd_remove(ctx: Context) -> int:
    from chatflow.webhooks import hooks  # noqa: PLC0415

    hook = hooks.remove(ctx.reader().state_store, ctx.args.hook_id)
    if ctx.out.json:
        ctx.out.emit_json({"removed": hook["id"], "url": hooks.shown_url(hook["url"])})
    else:
        ctx.out.line(f"removed webhook {hook['id']} ({hooks.shown_url(hook['url'])})")
    return EXIT_OK


def cmd_reset(ctx: Context) -> int:
    """Move the hook's cursor: a person's decision, printed with what it skips."""
    from chatflow.webhooks import hooks  # noqa: PLC0415

    store = ctx.reader().state_store
    hook = hooks.get(store, ctx.args.hook_id)
    failing = hooks.status_of(store, hook["id"]).get("failing")
    cursor = None if ctx.args.from_start else store.feed_end()
    hooks.reset(store, hook["id"], cursor)
    where = "the start of the feed" if cursor is None else "now"
    if ctx.out.json:
        ctx.out.emit_json({"reset": hook["id"], "from": where, "was_failing": failing})
        return EXIT_OK
    ctx.out.line(f"webhook {hook['id']} goes on from {where}")
    if failing:
        ctx.out.line(f"it was stuck on {_failing(failing)}")
    return EXIT_OK


def cmd_run(ctx: Context) -> int:
    """Deliver; ``--once`` exits 1 if a hook is left failing, naming the event."""
    from chatflow.webhooks.sender import Retry, Sender  # noqa: PLC0415

    args = ctx.args
    if args.max_backoff < args.backoff:
        raise UsageError("--max-backoff must be at least --backoff")
    store = ctx.reader().state_store
    sender = Sender(
        store,
        retry=Retry(attempts=args.retries, base_s=args.backoff, cap_s=args.max_backoff),
        timeout=args.timeout,
        on_report=lambda report: _report(ctx, report),
        on_delivered=lambda hook, change, name: _delivered(ctx, hook, change, name),
    )
    if args.once:
        try:
            reports = sender.deliver_all()
        finally:
            sender.release()
        stuck = [report for report in reports if report.failing]
        if stuck:
            failing = stuck[0].failing or {}
            print(
                f"chatflow: error: webhook {stuck[0].hook_id} is stuck: {_failing(failing)}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return EXIT_OK
    return _run_until_stopped(sender)


def _run_until_stopped(sender: Any) -> int:
    """``run`` until Ctrl-C or SIGTERM, then give up the leases (exit 0)."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sender.run(stop)
    except KeyboardInterrupt:
        sender.release()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _delivered(ctx: Context, hook: dict[str, Any], change: FeedEvent, name: str) -> None:
    if ctx.out.json:
        line = {
            "hook": hook["id"],
            "event": name,
            "instance_id": change.instance_id,
            "feature_id": change.feature_id,
            "seq": change.seq,
            "cursor": change.cursor,
            "ok": True,
        }
        print(json.dumps(line, ensure_ascii=False), flush=True)
    else:
        where = f"{change.feature_id}  {change.instance_id}  #{change.seq}"
        print(f"sent  {hook['id']}  {name:18}  {where}", flush=True)


def _report(ctx: Context, report: HookReport) -> None:
    if report.failing is None:
        message = f"webhook {report.hook_id} delivers again"
    else:
        message = f"webhook {report.hook_id}: {_failing(report.failing)}"
    if ctx.out.json:
        print(json.dumps({"hook": report.hook_id, "failing": report.failing}), flush=True)
    print(f"chatflow: warning: {message}", file=sys.stderr, flush=True)


def _failing(failing: dict[str, Any] | None) -> str:
    if not failing:
        return "-"
    where = f"event #{failing['seq']} of {failing['instance_id']}" if "seq" in failing else "feed"
    return f"{where} failed {failing.get('attempts', 1)} time(s): {failing.get('error')}"


PARSERS: dict[str, Callable[[Subparsers], None]] = {"webhook": _add_webhook}
