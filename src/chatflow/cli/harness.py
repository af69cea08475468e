"""``chatflow use``, ``chatflow hook`` and ``chatflow init``: tying a coding agent's
working tree to the workflow (docs/agents.md).

``hook`` runs on every tool call of the agent, so this module imports nothing beyond
what parsing needs; each command imports its work when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatflow.cli.context import EXIT_OK, Context, UsageError, finish

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers

HOOK_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PostToolUse",
    "Stop",
    "SubagentStop",
)


def _add_use(commands: Subparsers) -> None:
    use = commands.add_parser(
        "use", help="bind this working tree to an instance or a feature (hooks, MCP, show)"
    )
    which = use.add_mutually_exclusive_group()
    which.add_argument("instance_id", nargs="?", metavar="ID", help="the instance to work on")
    which.add_argument(
        "--feature", metavar="F", help="the feature to work on (follows its active instance)"
    )
    which.add_argument("--clear", action="store_true", help="forget this tree's binding")
    finish(use, cmd_use)


def cmd_use(ctx: Context) -> int:
    """Bind, clear or show the binding of the working tree the command runs in."""
    from chatflow.agent import binding  # noqa: PLC0415

    args = ctx.args
    engine = ctx.reader()
    store = engine.state_store
    root = binding.work_tree_root()
    if args.clear:
        had = binding.clear(store, root)
        said = f"{root}: binding cleared" if had else f"{root} was bound to nothing"
        return _said(ctx, said, {"root": str(root), "binding": None, "cleared": had})
    found: dict[str, Any] | None
    if args.instance_id is not None:
        ctx.instance(args.instance_id)  # exit 3 for a typo, before anything is kept
        found = binding.bind(store, root, instance_id=args.instance_id)
    elif args.feature is not None:
        ctx.require_feature(engine, args.feature)
        found = binding.bind(store, root, feature_id=args.feature)
    else:
        found = binding.read(store, root)
    return _show_binding(ctx, root, found)


def _show_binding(ctx: Context, root: Any, found: dict[str, Any] | None) -> int:
    from chatflow.agent import binding  # noqa: PLC0415

    if found is None:
        said = f"{root} is bound to no instance (bind it: chatflow use ID | --feature F)"
        return _said(ctx, said, {"root": str(root), "binding": None, "instance_id": None})
    instance_id = binding.resolve(ctx.reader(), found)
    state = ctx.reader().get_workflow_instance_status(instance_id) if instance_id else None
    where = f"; now {instance_id or 'none (the feature has no active instance)'}"
    where = where if "feature_id" in found else ""
    if state is not None:
        where += f" ({state.feature_id}, phase {state.current_phase}, {state.status.value})"
    elif instance_id is not None:
        where += " (not in the store: deleted? bind another with chatflow use ID)"
    said = f"{root} is bound to {binding.describe(found)}{where}"
    return _said(ctx, said, {"root": str(root), "binding": found, "instance_id": instance_id})


def _said(ctx: Context, text: str, data: dict[str, Any]) -> int:
    if ctx.out.json:
        ctx.out.emit_json(data)
    else:
        ctx.out.line(text)
    return EXIT_OK


def bound_instance_id(ctx: Context) -> str:
    """The instance the working tree is bound to (``chatflow show`` without an id);
    a usage error saying how to bind one if there is none."""
    from chatflow.agent import binding  # noqa: PLC0415

    root = binding.work_tree_root()
    found = binding.read(ctx.reader().state_store, root)
    instance_id = None if found is None else binding.resolve(ctx.reader(), found)
    if instance_id is None:
        what = "no instance" if found is None else f"{binding.describe(found)}, which has none"
        raise UsageError(
            f"no instance id given, and {root} is bound to {what}: "
            "give an id, or bind the tree with `chatflow use ID` (or `--feature F`)"
        )
    return instance_id


def _add_hook(commands: Subparsers) -> None:
    hook = commands.add_parser(
        "hook", help="answer a coding agent's hook (Claude Code: JSON on stdin); always exit 0"
    )
    # Free text, checked by the handler: a usage error's exit 2 would block the agent.
    hook.add_argument("agent", nargs="?", metavar="AGENT", help="the agent: claude")
    hook.add_argument(
        "event", nargs="?", metavar="EVENT", help="the hook event: " + ", ".join(HOOK_EVENTS)
    )
    hook.set_defaults(command=cmd_hook)


def cmd_hook(ctx: Context) -> int:
    """Answer one hook call. A hook must never break the agent: whatever goes wrong (bad
    input, no binding, an unreadable store) prints nothing, logs one line and exits 0."""
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from chatflow.agent import claude_hooks  # noqa: PLC0415

    args = ctx.args
    try:
        if args.agent != "claude":
            raise claude_hooks.Skip(f"unknown agent {args.agent!r}: chatflow hook claude EVENT")
        raw = sys.stdin.buffer.read()
        try:
            payload = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise claude_hooks.Skip(f"{args.event}: the hook input is not JSON ({error})") from None
        result = claude_hooks.answer(str(args.event), payload, ctx.reader())
    except claude_hooks.Skip as skipped:
        _log(f"hook ignored: {skipped}")
        return EXIT_OK
    except Exception as error:  # noqa: BLE001 - the agent must go on, whatever failed
        _log(f"hook {args.event} failed, ignored: {type(error).__name__}: {error}")
        return EXIT_OK
    if result is not None:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    return EXIT_OK


def _log(message: str) -> None:
    from chatflow._logger import logger  # noqa: PLC0415

    logger("chatflow.hooks").warning("%s", " ".join(message.split()))


def _add_init(commands: Subparsers) -> None:
    from chatflow.agent.setup import AGENTS  # noqa: PLC0415 - only where init is parsed

    init = commands.add_parser(
        "init", help="set a project up: the store, a workflow, an agent's settings (merged)"
    )
    init.add_argument(
        "--agent",
        type=_agent,
        action="append",
        metavar="{" + ",".join(AGENTS) + "}",
        help="write this agent's project settings (repeatable): claude (.claude/settings.json "
        "hooks + .mcp.json), cursor (.cursor/mcp.json), codex (.codex/config.toml), kiro "
        "(.kiro/settings/mcp.json + .kiro/steering/chatflow.md)",
    )
    init.add_argument("--workflow", metavar="FILE", help="register this JSON/YAML workflow file")
    finish(init, cmd_init)


def _agent(word: str) -> str:
    """An ``--agent`` name; a usage error (exit 2) naming the one meant for a typo."""
    import argparse  # noqa: PLC0415 - argparse is loaded already; the name is for mypy

    from chatflow.agent.setup import AGENTS, agent_hint  # noqa: PLC0415

    if word in AGENTS:
        return word
    raise argparse.ArgumentTypeError(f"unknown agent {word!r}{agent_hint(word)}")


def cmd_init(ctx: Context) -> int:
    """Create the store, register the workflow, merge the agents' settings; print what
    changed. Every settings file is read first: a malformed one changes nothing."""
    from chatflow.agent import binding, setup  # noqa: PLC0415
    from chatflow.errors import StoreNotFoundError  # noqa: PLC0415
    from chatflow.storage._open import require_store  # noqa: PLC0415

    args = ctx.args
    project = binding.work_tree_root()
    schema = None
    if args.workflow is not None:
        from chatflow.cli.read import load_schema_file  # noqa: PLC0415

        schema = load_schema_file(args.workflow)
    changes = [
        change
        for agent in dict.fromkeys(args.agent or [])
        for change in setup.plan(agent, project, ctx.target)
    ]
    done: list[str] = []
    try:
        require_store(ctx.target)
    except StoreNotFoundError:
        done.append(f"created store {ctx.target}")
    engine = ctx.writer()
    store = engine.state_store
    if schema is not None:
        before = {(row.name, str(row.version), row.content_hash) for row in store.list_schemas()}
        info = engine.register_schema(schema, replace=False)
        if (info.name, str(info.version), info.hash) not in before:
            done.append(f"registered workflow {info.name}@{info.version}")
    setup.apply(changes)
    done += [f"{change.path}: {change.what}" for change in changes if change.text is not None]
    kept = [f"{change.path}: {change.what}" for change in changes if change.text is None]
    if ctx.out.json:
        ctx.out.emit_json({"project": str(project), "changed": done, "unchanged": kept})
        return EXIT_OK
    for line in done:
        ctx.out.line(line)
    if not done:
        ctx.out.line(f"nothing to change: {project} is set up already")
    return EXIT_OK


PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "use": _add_use,
    "hook": _add_hook,
    "init": _add_init,
}
