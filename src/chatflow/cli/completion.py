"""Shell completion: ``eval "$(chatflow completion bash)"`` (or ``zsh``).

The shell scripts stay tiny: they pass the words typed so far to the hidden
``chatflow __complete`` command, and Python decides what fits there (commands,
options, instance ids, phases of the instance named, features, workflow names), so
both shells complete the same things. Ids, phases and features come from the store the
words name (``--dir``, ``ui --store``), else ``$CHATFLOW_DIR``, as the command would use.
Completion never creates a store and never prints an error: a missing store completes
nothing.

``__complete`` is not an argparse command: ``main`` hands it the raw words, so it is
not offered among the commands of a typo's error, and words such as ``--dir X`` that
argparse would read as its own options reach it unchanged.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow.cli.context import EXIT_OK, Context
from chatflow.errors import ChatFlowError

BASH = """\
_chatflow() {
    local IFS=$'\\n'
    COMPREPLY=($(chatflow __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _chatflow chatflow
"""

ZSH = """\
#compdef chatflow
_chatflow() {
    local -a candidates
    candidates=("${(@f)$(chatflow __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    compadd -a candidates
}
compdef _chatflow chatflow
"""

# Commands whose first positional argument is an instance id.
_ID_COMMANDS = frozenset(
    {
        *("show", "history", "artifacts", "status", "diagram", "delete", "export", "fork"),
        *("verify", "compact", "upgrade", "record", "use"),
        *("next", "approve", "reject", "pause", "resume", "fail", "retry", "cancel", "jump"),
    }
)
# Commands whose second positional argument is a phase of that instance.
_PHASE_COMMANDS = frozenset({"jump", "artifacts"})
# Options that take a value (their value is not a positional argument).
_VALUE_OPTIONS = frozenset(
    {
        *("--dir", "--schema-dir", "--feature", "--status", "--limit", "--var", "--meta"),
        *("--data", "--data-file", "--by", "--note", "--to", "--reason", "--error", "--at"),
        *("-o", "--output", "--from", "--version", "--keep-last", "--archive", "--map"),
        *("--phase", "--prompt", "--prompt-file", "--response", "--response-file"),
        *("--agent", "--workflow"),
        *("--store", "--host", "--port"),
        *("--events", "--secret", "--retries", "--backoff", "--max-backoff", "--timeout"),
    }
)
# Options naming the store the command works on (``--store``: ``chatflow ui``'s).
_STORE_OPTIONS = frozenset({"--dir", "--store"})

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers


def _add_completion(commands: Subparsers) -> None:
    completion = commands.add_parser("completion", help="print the bash or zsh completion script")
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(command=cmd_completion)


def cmd_completion(ctx: Context) -> int:
    ctx.out.line((BASH if ctx.args.shell == "bash" else ZSH).rstrip("\n"))
    return EXIT_OK


def complete(words: list[str]) -> int:
    """``chatflow __complete WORD...``: print what may replace the last word, one a line."""
    *before, current = words or [""]
    options = argparse.Namespace(dir=None, schema_dir=[], no_fsync=False, no_color=True)
    ctx = Context(options)
    try:
        for candidate in candidates(ctx, before, current):
            if candidate.startswith(current):
                ctx.out.line(candidate)
    finally:
        ctx.close()
    return EXIT_OK


def candidates(ctx: Context, before: list[str], current: str) -> list[str]:
    """What may come next after ``before`` (the words typed, without ``chatflow``)."""
    from chatflow.cli.main import build_parser  # noqa: PLC0415 - main imports this module

    parser = build_parser()
    subparsers = _subparsers(parser)
    positional: list[str] = []
    previous = None
    for word in before:
        if word == "=":  # bash splits --dir=X into three words
            continue
        option, equals, value = word.partition("=")
        if previous in _STORE_OPTIONS or (equals and option in _STORE_OPTIONS):
            ctx.args.dir = word if previous in _STORE_OPTIONS else value
        elif previous == "--schema-dir":
            ctx.args.schema_dir.append(Path(word))
        elif previous not in _VALUE_OPTIONS and not word.startswith("-"):
            positional.append(word)
        previous = word
    if previous in _VALUE_OPTIONS:
        return _option_values(ctx, previous, positional)
    if not positional:
        return _options(parser) if current.startswith("-") else _commands(subparsers)
    command, args = positional[0], positional[1:]
    if current.startswith("-"):
        found = subparsers.get(command)
        if found is not None and args and args[0] in _subparsers(found):
            found = _subparsers(found)[args[0]]  # an action's own options (webhook add)
        return _options(found) if found is not None else []
    return _arguments(ctx, command, args)


def _arguments(ctx: Context, command: str, args: list[str]) -> list[str]:
    """Candidates for the next positional argument of ``command``."""
    if command in _ID_COMMANDS and not args:
        return _quiet(lambda: ctx.reader().state_store.list_instance_ids())  # noqa: PLW0108
    if command in _PHASE_COMMANDS and len(args) == 1:
        return _quiet(lambda: _phases(ctx, args[0]))
    if command == "start" and not args:
        return _quiet(lambda: [info.name for info in ctx.writer().list_workflows()])
    if command == "workflows" and not args:
        return ["register"]
    if command == "webhook":
        return _webhook_arguments(ctx, args)
    return ["bash", "zsh"] if command == "completion" and not args else []


def _webhook_arguments(ctx: Context, args: list[str]) -> list[str]:
    """``webhook``'s actions, then the hook ids for ``remove`` and ``reset``."""
    if not args:
        return ["add", "list", "remove", "reset", "run"]
    if args[0] in ("remove", "reset") and len(args) == 1:
        from chatflow.webhooks import hooks  # noqa: PLC0415

        return _quiet(lambda: [hook["id"] for hook in hooks.every(ctx.reader().state_store)])
    return []


def _commands(subparsers: dict[str, argparse.ArgumentParser]) -> list[str]:
    return sorted(subparsers)


def _option_values(ctx: Context, option: str, positional: list[str]) -> list[str]:
    from chatflow.views import STATUSES  # noqa: PLC0415

    if option == "--feature":
        return _quiet(lambda: ctx.reader().list_features())
    if option == "--status":
        return list(STATUSES)
    if option == "--events":
        from chatflow.views import EVENT_TYPES  # noqa: PLC0415

        return list(EVENT_TYPES)
    if option == "--agent" and positional[:1] == ["init"]:
        from chatflow.agent.setup import AGENTS  # noqa: PLC0415

        return list(AGENTS)
    if option == "--to" and len(positional) > 1:
        return _quiet(lambda: _phases(ctx, positional[1]))
    return []


def _phases(ctx: Context, instance_id: str) -> list[str]:
    from chatflow.domain.definition import workflow_of  # noqa: PLC0415

    return workflow_of(ctx.instance(instance_id).workflow_schema).phase_names


def _quiet(find: Any) -> list[str]:
    """Candidates from the store, or none if anything goes wrong (no store, bad id)."""
    try:
        found: list[str] = find()
    except (ChatFlowError, OSError):
        return []
    return found


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--")
    )


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# Command name -> the function adding its parser (main builds only the one it runs).
PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "completion": _add_completion,
}
