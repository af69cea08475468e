"""``chatflow``: parse the command line, run one command, map errors to exit codes.

Exit codes (also in ``--help`` and docs/cli.md): 0 ok; 1 the operation failed or was
refused; 2 usage error; 3 not found (instance, feature, workflow, file or store).
User mistakes end with one line on stderr, never a traceback; a closed pipe
(``chatflow list | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chatflow import _logger
from chatflow.cli.context import EXIT_FAILED, Context, exit_code, phrased
from chatflow.errors import ChatFlowError

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers

EPILOG = """\
exit codes:
  0  ok
  1  the operation failed or was refused (wrong state, corrupt data, conflicts)
  2  usage error (unknown command or option, malformed value or id)
  3  not found (instance, feature, workflow, file or store)

The store is --dir, else $CHATFLOW_DIR, else ./.chatflow: a folder or a store URL
(file:///path, sqlite:///state.db, postgresql://..., memory://). Commands that only
read never create a store. Every command takes --json (shapes: docs/cli.md, "JSON output").
Completion: eval "$(chatflow completion bash)" (or zsh).
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chatflow`` console script; returns the exit status."""
    try:
        status = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
    except BrokenPipeError:
        # Python would report the pipe again when it flushes at exit; point stdout at
        # /dev/null so it cannot (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for a command ended by SIGPIPE
    except KeyboardInterrupt:
        return 130
    return status


def _run(argv: Sequence[str] | None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["__complete"]:  # what the completion scripts run (cli.completion)
        from chatflow.cli.completion import complete  # noqa: PLC0415

        return complete(arguments[1:])
    parser = build_parser(_command_in(arguments))
    args = parser.parse_args(arguments)
    _configure_logging(args.verbose)
    context = Context(args)
    try:
        return int(args.command(context))
    except ChatFlowError as error:
        print(f"chatflow: error: {phrased(error)}", file=sys.stderr)
        return exit_code(error)
    except OSError as error:  # the environment, not a bug: a full disk, a permission
        if isinstance(error, BrokenPipeError):
            raise
        print(f"chatflow: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        context.close()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command-line parser; with ``only``, holding just that command's parser
    (building all ~30 argparse parsers costs more than many commands' work)."""
    from chatflow import __version__  # noqa: PLC0415 - the package is imported already

    parser = argparse.ArgumentParser(
        prog="chatflow",
        description="See and steer durable AI-development workflows from the terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # an abbreviated --dir would hide which word is the command
    )
    parser.add_argument("--version", action="version", version=f"chatflow {__version__}")
    parser.add_argument(
        "--dir",
        default=None,
        metavar="DIR_OR_URL",
        help="store: a folder or URL (default: $CHATFLOW_DIR, else ./.chatflow)",
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip fsync on writes (faster; atomic but not power-failure safe)",
    )
    parser.add_argument(
        "--schema-dir",
        action="append",
        default=[],
        metavar="DIR",
        type=Path,
        help="folder of workflow schemas (*.json, *.yaml); repeatable; "
        "searched before <store>/schemas",
    )
    parser.add_argument("--no-color", action="store_true", help="never colour the output")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)"
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for add in _adders(only).values():
        add(commands)
    return parser


# The modules holding the commands, in the order ``--help`` lists them.
_COMMAND_MODULES = (
    "read",
    "act",
    "admin",
    "deadlines",
    "ui",
    "agent",
    "watch",
    "webhook",
    "harness",
    "completion",
)


def _adders(only: str | None) -> dict[str, Callable[[Subparsers], None]]:
    """Command name -> the function adding its parser: just ``only``'s if it names a
    command, else every command's. Modules are imported in turn until one holds
    ``only``, so a command does not pay for importing the others (``list``: one)."""
    adders: dict[str, Callable[[Subparsers], None]] = {}
    for name in _COMMAND_MODULES:
        module = f"chatflow.cli.{name}"
        __import__(module)  # importlib itself would cost more than the search
        adders.update(sys.modules[module].PARSERS)
        if only in adders:
            return {only: adders[only]}
    return adders


# Global options followed by a value: that value is not the command's name.
_VALUED_OPTIONS = frozenset({"--dir", "--schema-dir"})


def _command_in(arguments: list[str]) -> str | None:
    """The command named on the command line (before parsing), if any."""
    skip = False
    for word in arguments:
        if skip:
            skip = False
        elif word in _VALUED_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def _configure_logging(verbosity: int) -> None:
    """Show the library's log records as ``chatflow: ...`` lines (``cli.logs``).

    Without ``-v`` the set-up waits for the library's first log call: most commands
    never log, and importing ``logging`` would cost every one of them milliseconds.
    """
    if verbosity or _logger.loaded():
        _install_logs(verbosity)
    else:
        _logger.on_first_use = _install_logs


def _install_logs(verbosity: int = 0) -> None:
    from chatflow.cli.logs import install  # noqa: PLC0415 - imports logging

    install(verbosity)
