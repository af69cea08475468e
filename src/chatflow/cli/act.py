"""Commands that steer instances: start, next, approve, reject, pause, resume, fail,
retry, cancel, jump, fork, and the demo.

Each prints the instance's new state (``--json``: the ``show`` view) and exits 1 with the
engine's one-line reason when the step is refused (a paused instance, a finished one,
a phase that needs approval). Steering an instance that does not exist never creates a
store. Each records who acted: ``--by NAME``, else the OS user (``approve`` and
``reject`` always name their person).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow import views
from chatflow._text import counted
from chatflow.cli.context import (
    EXIT_FAILED,
    EXIT_OK,
    TERMS,
    Context,
    UsageError,
    add_by,
    add_id,
    finish,
    json_file,
    key_values,
    phrased,
    requirement,
    text_file,
)
from chatflow.cli.read import print_instance
from chatflow.domain.models import EventKind
from chatflow.errors import InvalidTransitionError, ValidationError, phrase

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers
    from chatflow.domain.models import WorkflowInstanceState


DEMO_SCHEMA: dict[str, Any] = {
    "name": "code_generation",
    "phases": [{"name": "requirement_analysis"}, {"name": "design"}, {"name": "implementation"}],
}


def _add_start(commands: Subparsers) -> None:
    start = commands.add_parser("start", help="start an instance of a workflow")
    start.add_argument("workflow", metavar="WORKFLOW", help="registered name or JSON/YAML file")
    start.add_argument("--feature", required=True, help="feature the instance works on")
    start.add_argument("--version", dest="schema_version", help="schema version (default latest)")
    start.add_argument(
        "--var", action="append", metavar="K=V", help="initial variable (JSON value or text)"
    )
    start.add_argument(
        "--meta", action="append", metavar="K=V", help="meta entry (who, session, ...)"
    )
    start.add_argument(
        "--branch",
        action="store_true",
        help="first create and check out a git branch named after the feature",
    )
    start.add_argument(
        "--budget",
        action="append",
        metavar="K=V",
        help="limit this run: tokens, cost_usd, wall (e.g. 2h), visits; repeatable",
    )
    add_by(start)
    finish(start, cmd_start)


def _add_next(commands: Subparsers) -> None:
    step = commands.add_parser("next", help="complete the current phase and go to the next")
    add_id(step)
    data = step.add_mutually_exclusive_group()
    data.add_argument(
        "--data", action="append", metavar="K=V", help="trigger data (JSON value or text)"
    )
    data.add_argument("--data-file", metavar="FILE", help="trigger data: a JSON object file")
    step.add_argument("--meta", action="append", metavar="K=V", help="meta entry to merge")
    step.add_argument("--dry-run", action="store_true", help="show the result, write nothing")
    add_by(step)
    finish(step, cmd_next)


def _add_record(commands: Subparsers) -> None:
    record = commands.add_parser(
        "record", help="record the prompt sent to the AI and its response for a phase"
    )
    add_id(record)
    record.add_argument("--phase", help="phase to record for (default: the current one)")
    record.add_argument(
        "--usage",
        action="append",
        metavar="K=V",
        help="usage spent: input_tokens, output_tokens, cost_usd, model, duration_s; "
        "repeatable (alone: records only usage)",
    )
    for what in ("prompt", "response"):
        text = record.add_mutually_exclusive_group()
        text.add_argument(f"--{what}", metavar="TEXT", help=f"the {what} itself")
        text.add_argument(
            f"--{what}-file", metavar="FILE", help=f"read the {what} from FILE ('-': stdin)"
        )
    add_by(record)
    finish(record, cmd_record)


def _add_approve(commands: Subparsers) -> None:
    approve = commands.add_parser("approve", help="approve the phase an instance waits on")
    add_id(approve)
    approve.add_argument("--by", required=True, metavar="NAME", help="who approves")
    approve.add_argument("--note", help="why")
    approve.add_argument(
        "--extend",
        action="append",
        metavar="K=V",
        help="allow more budget (cost_usd, tokens, wall, visits) and resume; repeatable",
    )
    finish(approve, cmd_approve)


def _add_reject(commands: Subparsers) -> None:
    reject = commands.add_parser("reject", help="refuse an approval and send the work back")
    add_id(reject)
    reject.add_argument("--by", required=True, metavar="NAME", help="who rejects")
    reject.add_argument("--to", metavar="PHASE", help="phase to redo (default: the one before)")
    reject.add_argument("--note", help="why")
    reject.add_argument("--force", action="store_true", help=_FORCE_ENTRY)
    finish(reject, cmd_reject)


def _add_fail(commands: Subparsers) -> None:
    fail = commands.add_parser("fail", help="mark the current phase failed")
    add_id(fail)
    fail.add_argument("--error", required=True, help="what went wrong")
    add_by(fail)
    finish(fail, cmd_fail)


def _add_jump(commands: Subparsers) -> None:
    jump = commands.add_parser("jump", help="enter a phase now, ignoring routes (override)")
    add_id(jump)
    jump.add_argument("phase", metavar="PHASE")
    jump.add_argument("--reason", default="", help="recorded in the event log")
    jump.add_argument(
        "--force",
        action="store_true",
        help="leave even if the phase's exit gate is not met, and enter PHASE without "
        "the approval it requires (recorded)",
    )
    add_by(jump)
    finish(jump, cmd_jump)


def _add_fork(commands: Subparsers) -> None:
    fork = commands.add_parser("fork", help="new instance as this one was at history entry N")
    add_id(fork)
    fork.add_argument("--at", required=True, type=int, metavar="N", help="history index")
    fork.add_argument("--force", action="store_true", help=_FORCE_ENTRY)
    add_by(fork)
    finish(fork, cmd_fork)


def _add_upgrade(commands: Subparsers) -> None:
    upgrade = commands.add_parser("upgrade", help="move active instances to another version")
    upgrade.add_argument("instance_id", nargs="?", metavar="ID", help="the instance to upgrade")
    upgrade.add_argument("--feature", help="every active instance of this feature")
    upgrade.add_argument("--all", action="store_true", help="every active instance")
    upgrade.add_argument("--workflow", help="with --feature/--all: only this workflow's")
    upgrade.add_argument("--to", dest="to_version", required=True, metavar="VERSION")
    upgrade.add_argument("--map", action="append", metavar="OLD=NEW", help="rename a phase")
    upgrade.add_argument("--dry-run", action="store_true", help="report, change nothing")
    upgrade.add_argument(
        "--force",
        action="store_true",
        help="keep going where the current phase now requires approval (recorded)",
    )
    add_by(upgrade)
    finish(upgrade, cmd_upgrade)


_FORCE_ENTRY = "enter a phase that requires approval without it (recorded)"


def _add_demo(commands: Subparsers) -> None:
    demo = commands.add_parser("demo", help="run the code-generation workflow end to end")
    demo.add_argument("--feature", default="feat_user_auth", help="feature id to use")
    finish(demo, cmd_demo)


def report(ctx: Context, state: WorkflowInstanceState) -> int:
    """Print the changed instance: the ``show`` view (``--json``) or its human form."""
    view = views.instance_view(state)
    if ctx.out.json:
        ctx.out.emit_json(view)
    else:
        print_instance(ctx.out, view)
    return EXIT_OK


def cmd_start(ctx: Context) -> int:
    args = ctx.args
    engine = ctx.writer()
    variables = key_values(args.var, "--var")
    meta = key_values(args.meta, "--meta")
    budget = key_values(args.budget, "--budget") or None
    _well_formed(budget, "--budget")
    if args.schema_version is not None and views.looks_like_file(args.workflow):
        raise UsageError("--version applies to a workflow name, not a file")
    actor = ctx.actor(meta)
    branch = _new_branch(ctx.target, args.feature) if args.branch else None
    try:
        instance_id = views.start(
            engine,
            args.workflow,
            args.feature,
            variables,
            meta,
            args.schema_version,
            actor=actor,
            budget=budget,
        )
    except BaseException:
        if branch is not None:
            branch[1]()  # back to the branch it was on: no instance, no new branch
        raise
    if branch is not None:
        print(f"chatflow: switched to a new branch {branch[0]!r}", file=sys.stderr)
    return report(ctx, ctx.instance(instance_id))


def _new_branch(target: str | Path, feature_id: str) -> tuple[str, Callable[[], None]]:
    """``start --branch``: the feature's branch, checked out (``chatflow.cli.branch``), in
    the repository of the current folder, else of the store's folder (opening nothing)."""
    from chatflow.cli import branch  # noqa: PLC0415 - only --branch runs git here
    from chatflow.storage._open import is_store_url  # noqa: PLC0415

    folders = [Path.cwd()]
    if not is_store_url(target) and Path(target).is_dir():
        folders.append(Path(target).resolve())
    return branch.create(feature_id, folders)


def cmd_next(ctx: Context) -> int:
    """Advance; with ``--dry-run``, show the preview and exit 1 if the step would be
    refused by the phase's exit gate, so a script can ask "may this phase end?"."""
    args = ctx.args
    data = json_file(args.data_file) if args.data_file else key_values(args.data, "--data")
    ctx.instance(args.instance_id)  # not found: exit 3 before anything is written
    meta = key_values(args.meta, "--meta")
    state = ctx.reader().trigger_next_step(
        args.instance_id, data, meta, dry_run=args.dry_run, actor=ctx.actor(meta)
    )
    code = report(ctx, state)
    blocked = state.events[-1] if args.dry_run and state.events else None
    if blocked is not None and blocked.kind is EventKind.GATE_BLOCKED:
        missing = "; ".join(
            requirement(item, state.instance_id) for item in blocked.data["missing"]
        )
        print(
            f"chatflow: error: dry run: the step would be refused; missing: {missing}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return code


def cmd_record(ctx: Context) -> int:
    args = ctx.args
    ctx.instance(args.instance_id)
    usage = key_values(args.usage, "--usage") or None
    _well_formed(usage, "--usage")
    prompt, response = _record_texts(args)
    engine = ctx.reader()
    if prompt is None and response is None and usage is not None:
        engine.record_usage(args.instance_id, args.phase, actor=ctx.actor(), **_usage(usage))
        return report(ctx, ctx.instance(args.instance_id))
    if prompt is None or response is None:
        raise UsageError("record takes the prompt and the response (or only --usage)")
    engine.record_task_artifacts(
        args.instance_id, prompt, response, phase_name=args.phase, actor=ctx.actor(), usage=usage
    )
    return report(ctx, ctx.instance(args.instance_id))


def _well_formed(values: dict[str, Any] | None, option: str) -> None:
    """A ``K=V`` option whose value is malformed is a usage error (exit 2), as a
    malformed ``K=V`` is: checked by the same rule the engine applies."""
    from chatflow.domain import limits, usage  # noqa: PLC0415

    if not values:
        return
    check = usage.check if option == "--usage" else limits.budget
    where = {"--budget": "budget", "--extend": "extend"}.get(option, option)
    try:
        check(values, where)  # the library's name, worded as the command's by TERMS
    except ValidationError as error:
        raise UsageError(phrased(error)) from None


def _usage(values: dict[str, Any]) -> dict[str, Any]:
    """``--usage`` values as ``record_usage`` keywords; an unknown name is refused with
    the closest known one (before the engine sees it: a keyword it lacks)."""
    from chatflow.domain import usage  # noqa: PLC0415

    return usage.check(values, "--usage")


def _record_texts(args: Any) -> tuple[str | None, str | None]:
    """The prompt and response ``record`` was given; ``-`` (as the text or the file)
    reads standard input, which can feed only one of them."""
    files = {what: getattr(args, f"{what}_file") for what in ("prompt", "response")}
    for what in files:
        if getattr(args, what) == "-":
            files[what] = "-"
    if list(files.values()).count("-") > 1:
        raise UsageError("only one of the prompt and the response can be read from stdin ('-')")
    prompt, response = (
        getattr(args, what) if file is None else text_file(file) for what, file in files.items()
    )
    return prompt, response


def _no_agent_force(ctx: Context, command: str) -> None:
    """``--force`` overrides a gate or an approval: a person's call, never an agent's."""
    if getattr(ctx.args, "force", False):
        from chatflow.agent import person  # noqa: PLC0415 - only overrides ask

        person.require_person(f"chatflow {command} --force")


def cmd_approve(ctx: Context) -> int:
    """Approve what the instance waits on: a paused approval (``resume(approved_by=)``),
    else the current phase's exit gate (``engine.approve``)."""
    from chatflow.agent import person  # noqa: PLC0415 - only approvals ask

    args = ctx.args
    person.require_person("chatflow approve")
    engine = ctx.reader()
    state = ctx.instance(args.instance_id)
    by = ctx.actor()  # --by is required: a person, never the OS user by default
    if args.extend:
        more = key_values(args.extend, "--extend")
        _well_formed(more, "--extend")
        return report(ctx, engine.extend_budget(args.instance_id, by=by, note=args.note, **more))
    if views.awaits_approval(state):
        return report(ctx, engine.resume(args.instance_id, approved_by=by, note=args.note))
    if not state.status.is_finished:
        return report(ctx, engine.approve(args.instance_id, by=by, note=args.note))
    raise InvalidTransitionError(
        f"instance {state.instance_id!r} is {state.status.value}, not waiting for approval"
        + ("; use resume" if state.pause else ""),
        instance_id=state.instance_id,
    )


def cmd_reject(ctx: Context) -> int:
    _no_agent_force(ctx, "reject")
    args = ctx.args
    ctx.instance(args.instance_id)
    state = ctx.reader().reject(
        args.instance_id, rejected_by=ctx.actor(), note=args.note, to=args.to, force=args.force
    )
    return report(ctx, state)


def cmd_pause(ctx: Context) -> int:
    ctx.instance(ctx.args.instance_id)
    return report(
        ctx, ctx.reader().pause(ctx.args.instance_id, ctx.args.reason or "", actor=ctx.actor())
    )


def cmd_resume(ctx: Context) -> int:
    state = ctx.instance(ctx.args.instance_id)
    if views.awaits_approval(state):
        raise InvalidTransitionError(
            f"instance {state.instance_id!r} waits for approval to enter "
            f"{state.current_phase!r}: use chatflow approve {state.instance_id} --by NAME",
            instance_id=state.instance_id,
        )
    return report(ctx, ctx.reader().resume(ctx.args.instance_id, actor=ctx.actor()))


def cmd_fail(ctx: Context) -> int:
    ctx.instance(ctx.args.instance_id)
    engine = ctx.reader()
    return report(ctx, engine.fail_phase(ctx.args.instance_id, ctx.args.error, actor=ctx.actor()))


def cmd_retry(ctx: Context) -> int:
    _no_agent_force(ctx, "retry")
    args = ctx.args
    ctx.instance(args.instance_id)
    engine = ctx.reader()
    state = engine.retry_phase(
        args.instance_id, note=args.note, actor=ctx.actor(), force=args.force
    )
    return report(ctx, state)


def cmd_cancel(ctx: Context) -> int:
    ctx.instance(ctx.args.instance_id)
    return report(
        ctx, ctx.reader().cancel(ctx.args.instance_id, ctx.args.reason or "", actor=ctx.actor())
    )


def cmd_jump(ctx: Context) -> int:
    _no_agent_force(ctx, "jump")
    ctx.instance(ctx.args.instance_id)
    args = ctx.args
    state = ctx.reader().jump_to(
        args.instance_id, args.phase, args.reason, actor=ctx.actor(), force=args.force
    )
    return report(ctx, state)


def cmd_fork(ctx: Context) -> int:
    _no_agent_force(ctx, "fork")
    parent = ctx.instance(ctx.args.instance_id)
    args = ctx.args
    if args.at < 0:  # the library counts from the end on purpose; typed, it is a slip
        entries = len(parent.history)
        indexes = f"0..{entries - 1}" if entries else "it has no history yet"
        raise UsageError(
            f"--at takes a history index from `chatflow show {args.instance_id}` "
            f"({indexes}), not {args.at}"
        )
    child = ctx.reader().fork(args.instance_id, args.at, actor=ctx.actor(), force=args.force)
    return report(ctx, ctx.instance(child))


def cmd_upgrade(ctx: Context) -> int:
    """Upgrade one instance, a feature's or all active ones; exit 1 if any was refused."""
    _no_agent_force(ctx, "upgrade")
    args = ctx.args
    if sum(map(bool, (args.instance_id, args.feature, args.all))) != 1:
        raise UsageError("give exactly one of ID, --feature F or --all")
    phase_map = {}
    for pair in args.map or []:
        old, sep, new = pair.partition("=")
        if not sep:
            raise UsageError(f"--map takes OLD=NEW, not {pair!r}")
        phase_map[old] = new
    engine = ctx.reader()
    version = int(args.to_version) if args.to_version.isdigit() else args.to_version
    verb = "would upgrade" if args.dry_run else "upgraded"
    if args.instance_id:
        ctx.instance(args.instance_id)
        state = engine.upgrade_instance(
            args.instance_id,
            to_version=version,
            phase_map=phase_map,
            dry_run=args.dry_run,
            actor=ctx.actor(),
            force=args.force,
        )
        if ctx.out.json:
            return report(ctx, state)  # in a dry run: what the upgrade would produce
        ctx.out.line(f"{verb} {args.instance_id} to version {version}")
        return EXIT_OK
    outcomes = engine.upgrade_instances(
        to_version=version,
        feature_id=args.feature,
        workflow_name=args.workflow,
        phase_map=phase_map,
        dry_run=args.dry_run,
        actor=ctx.actor(),
        force=args.force,
    )
    unchanged = sum(outcome.unchanged for outcome in outcomes)
    refused = sum(not (outcome.upgraded or outcome.unchanged) for outcome in outcomes)
    if ctx.out.json:
        ctx.out.emit_json([outcome.to_dict() for outcome in outcomes])
    else:
        for outcome in outcomes:
            done = f"{verb} from version {outcome.from_version}"
            if not outcome.upgraded:
                done = "unchanged (runs it already)" if outcome.unchanged else "refused"
            ctx.out.line(f"{outcome.instance_id}  {done}")
            reasons = list(outcome.reasons)
            if reasons and outcome.hint:  # the remedy follows the reasons, as in the error
                reasons[-1] += phrase(outcome.hint, TERMS, outcome.to_dict())
            for reason in reasons:
                ctx.out.line(f"    {reason}")
        upgraded = len(outcomes) - refused - unchanged
        ctx.out.line(
            f"{upgraded} {verb}, {unchanged} unchanged, {refused} refused "
            f"(of {len(outcomes)} active)"
        )
    return EXIT_FAILED if refused else EXIT_OK


def cmd_demo(ctx: Context) -> int:
    """Run the SPEC's workflow, recording a prompt and a response for each phase."""
    args = ctx.args
    engine = ctx.writer()
    engine.register_schema(DEMO_SCHEMA, replace=False)  # `chatflow workflows` lists it
    instance_id = engine.start_workflow_instance(
        workflow_schema=DEMO_SCHEMA,
        initial_context={"user_request": "create user registration"},
        feature_id=args.feature,
        meta={"user_id": "dev_alice", "session_id": "sess_demo"},
    )
    out = ctx.out
    if not out.json:
        out.line(f"started {instance_id} (workflow code_generation, feature {args.feature})")
    state = ctx.instance(instance_id)
    while not state.status.is_finished:
        phase = state.current_phase
        prompt = f"# {phase}\n\nUser request: {state.variables['user_request']}\n"
        response = f"# {phase} result\n\n(demo AI response for {phase})\n"
        engine.record_task_artifacts(instance_id, prompt, response)
        state = engine.trigger_next_step(
            instance_id, trigger_data={"result": f"{phase} done"}, meta={"last_phase": phase}
        )
        if not out.json:
            status = out.paint(state.status.value, state.status.value)
            out.line(f"  {phase:<22} prompt + response recorded -> {status}")
    if out.json:
        out.emit_json(views.instance_view(state, views.artifact_checks(engine, state)))
        return EXIT_OK
    phases = counted(len(state.history), "phase")
    out.line(f"finished: {instance_id} is {state.status} after {phases}")
    base = getattr(engine.state_store, "base_dir", None)
    if isinstance(base, Path):
        out.line(f"state:     {base}/instances/{instance_id}.json")
        out.line(f"artifacts: {base}/instances/{instance_id}/tasks/")
    out.line(f"next:      chatflow show {instance_id}")
    return EXIT_OK


# The steering commands that take only an id, an optional text and who acts.
_SIMPLE: dict[str, tuple[str, Callable[[Context], int], str | None]] = {
    "pause": ("pause an instance until resume", cmd_pause, "--reason"),
    "resume": ("resume an instance paused by hand", cmd_resume, None),
    "retry": ("start the current (failed) phase over", cmd_retry, "--note"),
    "cancel": ("abandon an instance", cmd_cancel, "--reason"),
}


def _add_simple(commands: Subparsers, name: str) -> None:
    helptext, handler, reason = _SIMPLE[name]
    parser = commands.add_parser(name, help=helptext)
    add_id(parser)
    if reason:
        parser.add_argument(reason, default=None, help="recorded in the event log")
    if name == "retry":
        parser.add_argument("--force", action="store_true", help=_FORCE_ENTRY)
    add_by(parser)
    finish(parser, handler)


# Command name -> the function adding its parser (main builds only the one it runs).
PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "start": _add_start,
    "next": _add_next,
    "record": _add_record,
    "approve": _add_approve,
    "reject": _add_reject,
    **{name: partial(_add_simple, name=name) for name in _SIMPLE},
    "fail": _add_fail,
    "jump": _add_jump,
    "fork": _add_fork,
    "upgrade": _add_upgrade,
    "demo": _add_demo,
}
