"""``chatflow due``: the waits whose deadline has passed, and (``--apply``) acting on them.

No daemon: run it from cron or CI, in as many processes as you like; each timeout is
acted on exactly once (``engine.apply_due``). Exit 0 whether or not anything was due;
1 after a warning for each instance that could not be read or acted on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from chatflow import views
from chatflow.cli.context import EXIT_FAILED, EXIT_OK, Context, UsageError, finish
from chatflow.cli.output import short_time, warn
from chatflow.errors import ChatFlowError

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers


def _add_due(commands: Subparsers) -> None:
    due = commands.add_parser("due", help="waits past their deadline; --apply acts on them")
    due.add_argument(
        "--apply", action="store_true", help="act on each (on_timeout), once across processes"
    )
    due.add_argument(
        "--now",
        metavar="TIME",
        help="the time to judge by: ISO 8601 (2026-12-31T18:00Z) or seconds since the "
        "epoch (default: now); events are still dated now",
    )
    due.add_argument(
        "--waiting", action="store_true", help="list every wait under a deadline, overdue first"
    )
    finish(due, cmd_due)


def _moment(text: str | None) -> float | None:
    """``--now`` as seconds since the epoch: a number, or an ISO 8601 time (UTC unless it
    names an offset), as people write it and as ``--json`` prints ``due_at``."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return _datable(text, seconds)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--now: not a time: {text!r} (ISO 8601 such as 2026-12-31T18:00Z, or epoch seconds)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _datable(text: str, seconds: float) -> float:
    """``seconds`` if they name a date (years 1-9999), as every row prints ``due_at``."""
    try:
        datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise UsageError(f"--now: {text!r} seconds since the epoch is no date") from None
    return seconds


def cmd_due(ctx: Context) -> int:
    args = ctx.args
    if args.apply and args.waiting:
        raise UsageError("--waiting lists; --apply acts: give one")
    now = _moment(args.now)
    engine = ctx.reader()
    problems: list[ChatFlowError] = []
    if args.waiting:
        rows = engine.waits(now, problems=problems)
        for row in rows:
            row["since"] = views.iso_time(row["since"])
            row["due_at"] = views.iso_time(row["due_at"])
        if ctx.out.json:
            ctx.out.emit_json(rows)
        elif rows:
            _waiting_table(ctx, rows)
        else:
            ctx.out.line("nothing waits under a deadline")
        return _warned(problems)
    found = (
        engine.apply_due(now, problems=problems)
        if args.apply
        else engine.due(now, problems=problems)
    )
    timeouts = [
        {**timeout.to_dict(), "due_at": views.iso_time(timeout.due_at)} for timeout in found
    ]
    if ctx.out.json:
        ctx.out.emit_json(timeouts)
    elif not timeouts:
        ctx.out.line("nothing is due")
    else:
        ctx.out.table(
            ("ID", "FEATURE", "PHASE", "WAITS FOR", "DUE", "WAITED", "ON TIMEOUT", "DONE"),
            (
                (
                    row["instance_id"],
                    row["feature_id"],
                    row["phase"],
                    row["of"],
                    short_time(row["due_at"]),
                    _took(row["waited_s"]),
                    row["on_timeout"] or "-",
                    row["outcome"] or ("-" if args.apply else "(listed)"),
                )
                for row in timeouts
            ),
        )
    return _warned(problems)


def _warned(problems: list[ChatFlowError]) -> int:
    """Each instance that could not be read or acted on, one warning line: exit 1."""
    for problem in problems:
        warn(str(problem))
    return EXIT_FAILED if problems else EXIT_OK


def _waiting_table(ctx: Context, rows: list[dict[str, object]]) -> None:
    ctx.out.table(
        ("ID", "FEATURE", "PHASE", "WAITS FOR", "WAITED", "DUE", "OVERDUE"),
        (
            (
                row["instance_id"],
                row["feature_id"],
                row["phase"],
                row["of"],
                _took(float(str(row["waited_s"]))),
                short_time(str(row["due_at"])),
                _took(float(str(row["overdue_s"]))) if row["overdue"] else "-",
            )
            for row in rows
        ),
    )


def _took(seconds: float) -> str:
    """``3h12m``, ``45m``, ``12s``: how long, as a person reads it."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    if hours >= 48:
        return f"{hours // 24}d{hours % 24}h"
    if hours:
        return f"{hours}h{rest // 60:02d}m"
    return f"{rest // 60}m" if rest >= 60 else f"{rest}s"


PARSERS: dict[str, Callable[[Subparsers], None]] = {"due": _add_due}
