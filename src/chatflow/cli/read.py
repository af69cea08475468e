"""Commands that only read: list, features (status), show, history, artifacts, workflows,
diagram. None of them creates a store: ``Context.reader`` refuses a missing one. (The
exception: ``workflows register``, which adds schemas to the store, lives here beside
``workflows``, whose parser holds it.)

One unreadable instance must not hide the others: listings and roll-ups fall back to
reading instances one by one, warn about each one that fails, and exit 1 at the end.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow import views
from chatflow.cli.context import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    NotFoundError,
    add_id,
    finish,
    requirement,
)
from chatflow.cli.output import Output, short_time, warn
from chatflow.errors import ChatFlowError

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers
    from chatflow.core.engine import WorkflowEngine
    from chatflow.domain.models import WorkflowInstanceState
    from chatflow.storage.base import InstanceSummary

STATUSES = views.STATUSES


def _add_list(commands: Subparsers) -> None:
    listing = commands.add_parser("list", help="instances, newest first")
    listing.add_argument("--feature", help="only this feature's instances")
    listing.add_argument("--status", choices=STATUSES, help="only instances in this status")
    listing.add_argument("--limit", type=_positive, default=None, help="show at most N")
    finish(listing, cmd_list)


def _add_features(commands: Subparsers) -> None:
    features = commands.add_parser("features", help="every feature's roll-up, all status counts")
    _add_totals(features)
    finish(features, cmd_features, feature=None, instance_id=None)


def _add_totals(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--totals",
        action="store_true",
        help="also the totals over the features (JSON: {totals, features}, as the page's)",
    )


def _add_status(commands: Subparsers) -> None:
    status = commands.add_parser("status", help="roll-ups (like features), or one instance")
    status.add_argument("instance_id", nargs="?", help="instance to show (like show)")
    status.add_argument("--feature", help="this feature's roll-up and instances")
    _add_totals(status)
    finish(status, cmd_features)


def _add_show(commands: Subparsers) -> None:
    show = commands.add_parser("show", help="one instance: state, pause reason, timeline")
    show.add_argument(
        "instance_id", nargs="?", metavar="ID", help="default: the one `chatflow use` bound"
    )
    finish(show, cmd_show)


def _add_history(commands: Subparsers) -> None:
    history = commands.add_parser("history", help="an instance's event log")
    add_id(history)
    finish(history, cmd_history)


def _add_artifacts(commands: Subparsers) -> None:
    artifacts = commands.add_parser("artifacts", help="print a phase's prompt and response")
    add_id(artifacts)
    artifacts.add_argument("phase", metavar="PHASE", help="phase (latest visit) or task key")
    which = artifacts.add_mutually_exclusive_group()
    which.add_argument("--prompt", action="store_true", help="only the prompt text")
    which.add_argument("--response", action="store_true", help="only the response text")
    finish(artifacts, cmd_artifacts)


def _add_workflows(commands: Subparsers) -> None:
    workflows = commands.add_parser("workflows", help="the workflow schemas found by name")
    finish(workflows, cmd_workflows)
    actions = workflows.add_subparsers(title="actions", metavar="[ACTION]")
    register = actions.add_parser(
        "register", help="keep workflow files in the store, startable by name (changes it)"
    )
    register.add_argument("files", nargs="+", metavar="FILE", help="JSON or YAML workflow file")
    register.add_argument(  # SUPPRESS: `workflows --json register` keeps its --json
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )
    register.set_defaults(command=cmd_register)


def _add_diagram(commands: Subparsers) -> None:
    diagram = commands.add_parser(
        "diagram", help="a workflow (or an instance's path) as a Mermaid flowchart"
    )
    diagram.add_argument("target", metavar="NAME_OR_ID", help="schema name, file or instance id")
    diagram.add_argument("--version", dest="schema_version", help="schema version (default latest)")
    finish(diagram, cmd_diagram)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


# -- list ------------------------------------------------------------------------------


def cmd_list(ctx: Context) -> int:
    """Instances newest first; one unreadable instance is a warning, not the end."""
    args = ctx.args
    engine = ctx.reader()
    if args.feature is not None:
        ctx.require_feature(engine, args.feature)
    summaries, failed = _summaries(engine, args.feature, args.status)
    summaries.sort(key=lambda summary: summary.created_at, reverse=True)
    rows = _rows(engine, summaries[: args.limit], failed)
    if ctx.out.json:
        ctx.out.emit_json(rows)
    elif rows:
        _list_table(ctx.out, rows)
    else:
        ctx.out.line("no instances")
    return EXIT_FAILED if failed else EXIT_OK


def _rows(
    engine: WorkflowEngine, summaries: list[InstanceSummary], failed: list[str]
) -> list[dict[str, Any]]:
    """The listed instances' rows (``views.listed_rows``); each unreadable one is
    warned about and noted in ``failed`` (exit 1), and still listed as ``unreadable``."""
    rows = views.listed_rows(engine, summaries)
    for row in rows:
        if row["status"] == views.UNREADABLE and row["instance_id"] not in failed:
            warn(str(row["problem"]))
            failed.append(row["instance_id"])
    return rows


def _list_table(out: Output, rows: list[dict[str, Any]]) -> None:
    waits = any(row.get("wait") for row in rows)  # the column only where deadlines are
    out.table(
        ("ID", "FEATURE", "WORKFLOW", "STATUS", "PHASE", "UPDATED", *["WAITING"][: int(waits)]),
        (
            (
                row["instance_id"],
                row["feature_id"],
                f"{row['workflow']}@{row['workflow_version']}" if row["workflow"] else "-",
                row["status"],
                row["current_phase"] or "-",
                short_time(row["updated_at"]),
                *([_waiting(row.get("wait"))] if waits else []),
            )
            for row in rows
        ),
        status=3,
    )


def _waiting(wait: dict[str, Any] | None) -> str:
    """``approval 3h12m (OVERDUE 1h)``: what a row waits for and how long."""
    if wait is None:
        return "-"
    text = f"{wait['of']} {_span(wait['waited_s'])}"
    return text + (f" (OVERDUE {_span(wait['overdue_s'])})" if wait["overdue"] else "")


def _span(seconds: float) -> str:
    """A wait as budgets show a wall time (``8m21s``, ``2h00m``): one formatting."""
    from chatflow.domain.budgets import amount_text  # noqa: PLC0415

    return amount_text("wall", seconds)


def _summaries(
    engine: WorkflowEngine, feature: str | None, status: str | None
) -> tuple[list[InstanceSummary], list[str]]:
    """Summaries from the store's index; feature by feature, then instance by instance,
    when something in the way is unreadable. Returns them and the unreadable ids."""
    try:
        return engine.list_instances(feature_id=feature, status=status), []
    except ChatFlowError:
        pass  # found again, instance by instance, and reported there
    from chatflow.storage.base import InstanceSummary, summarize  # noqa: PLC0415

    summaries: list[InstanceSummary] = []
    failed: list[str] = []
    for feature_id in [feature] if feature else engine.list_features():
        for instance_id in _feature_ids(engine, feature_id, failed):
            try:
                state = engine.get_workflow_instance_status(instance_id)
            except ChatFlowError:  # listed (as unreadable, with a warning) by _rows
                if status is None:
                    summaries.append(InstanceSummary(instance_id, feature_id, "", "", 0.0, 0.0))
                continue
            if state is not None and (status is None or state.status.value == status):
                summaries.append(summarize(state.to_dict()))
    return summaries, failed


def _feature_ids(engine: WorkflowEngine, feature_id: str, failed: list[str]) -> list[str]:
    """The feature's instance ids, or none after a warning if its index is unreadable."""
    try:
        return engine.list_feature_instances(feature_id)
    except ChatFlowError as error:
        warn(str(error))
        failed.append(feature_id)
        return []


def _load(
    engine: WorkflowEngine, instance_id: str, failed: list[str]
) -> WorkflowInstanceState | None:
    """The instance, or None after a warning (and noting it in ``failed``)."""
    if instance_id in failed:
        return None
    try:
        return engine.get_workflow_instance_status(instance_id)
    except ChatFlowError as error:
        warn(str(error))
        failed.append(instance_id)
        return None


# -- features / status -------------------------------------------------------------------


def cmd_features(ctx: Context) -> int:
    """Every feature's roll-up (``status`` also shows one feature, or one instance)."""
    if ctx.args.instance_id:
        return cmd_show(ctx)
    engine = ctx.reader()
    feature = ctx.args.feature
    if feature is not None:
        ctx.require_feature(engine, feature)
    failed: list[str] = []
    rollups = [_rollup(engine, feature, failed)] if feature else _rollups(engine, failed)
    _warn_unreadable(rollups, failed)
    if ctx.args.totals:
        _print_overview(ctx.out, views.overview(rollups))
    elif ctx.out.json and feature is not None:  # one feature: its spend too (loads each)
        states = views.readable_states(engine, _feature_ids(engine, feature, failed))
        ctx.out.emit_json({**rollups[0], "usage": views.feature_usage(states)})
    elif ctx.out.json:
        ctx.out.emit_json(rollups)
    elif not rollups:
        ctx.out.line("no features yet")
    else:
        _features_table(ctx.out, rollups)
        if feature is not None:
            ctx.out.line()
            found, missing = _summaries(engine, feature, None)
            failed += [name for name in missing if name not in failed]
            rows = _rows(engine, found, failed)
            ids = [row["instance_id"] for row in rows if row["status"] != views.UNREADABLE]
            _print_spend(ctx.out, views.feature_usage(views.readable_states(engine, ids)))
            _list_table(ctx.out, rows)
    return EXIT_FAILED if failed else EXIT_OK


def _warn_unreadable(rollups: list[dict[str, Any]], failed: list[str]) -> None:
    """A warning (and exit 1) for each instance a roll-up names as unreadable that was
    not warned about already: counted in its feature, but it cannot be read."""
    for rollup in rollups:
        for instance_id in rollup["unreadable_instances"]:
            if instance_id not in failed:
                warn(
                    f"instance {instance_id!r} of feature {rollup['feature_id']!r} cannot "
                    f"be read (`chatflow show {instance_id}` says why)"
                )
                failed.append(instance_id)


def _print_overview(out: Output, overview: dict[str, Any]) -> None:
    """``views.overview``: its JSON as is, else the roll-ups' table and a totals line."""
    if out.json:
        out.emit_json(overview)
        return
    if overview["features"]:
        _features_table(out, overview["features"])
        out.line()
    totals = overview["totals"]
    counts = ", ".join(f"{totals['counts'][s]} {s}" for s in STATUSES if totals["counts"][s])
    unreadable = totals["unreadable_instances"]
    out.line(
        f"{totals['features']} feature(s), {totals['instances']} instance(s)"
        + (f": {counts}" if counts else "")
        + (f"; {unreadable} unreadable" if unreadable else "")
    )


def _features_table(out: Output, rollups: list[dict[str, Any]]) -> None:
    out.table(
        ("FEATURE", "STATUS", "TOTAL", *(s.upper() for s in STATUSES), "LATEST"),
        (
            (
                r["feature_id"],
                r["status"],
                r["total_instances"],
                *(r["counts"][s] for s in STATUSES),
                r["latest_instance_id"],
            )
            for r in rollups
        ),
        status=1,
    )


def _rollups(engine: WorkflowEngine, failed: list[str]) -> list[dict[str, Any]]:
    """Every feature's roll-up view from one pass over the store's counts; feature by
    feature (naming unreadable instances) if that pass meets something unreadable."""
    try:
        return [views.feature_view(rollup) for rollup in engine.list_feature_rollups()]
    except ChatFlowError:
        return [_rollup(engine, f, failed) for f in engine.list_features()]


def _rollup(engine: WorkflowEngine, feature_id: str, failed: list[str]) -> dict[str, Any]:
    """The feature's roll-up view; if an instance is unreadable, one built from the
    readable instances, naming the unreadable ones (``unreadable_instances``)."""
    try:
        return views.feature_view(engine.get_feature_status(feature_id))
    except ChatFlowError:
        pass  # found again below, instance by instance, and reported there
    unreadable: list[str] = []
    states = [
        state
        for instance_id in _feature_ids(engine, feature_id, failed)
        if (state := _load(engine, instance_id, unreadable)) is not None
    ]
    failed += unreadable
    return views.rollup_of(feature_id, states, unreadable)


# -- one instance ------------------------------------------------------------------------


def cmd_show(ctx: Context) -> int:
    """State, variables, meta, pause reason, open gates and the timeline of one instance."""
    engine = ctx.reader()
    if ctx.args.instance_id is None:
        from chatflow.cli.harness import bound_instance_id  # noqa: PLC0415

        ctx.args.instance_id = bound_instance_id(ctx)
    state = ctx.instance(ctx.args.instance_id)
    view = views.instance_view(state, views.artifact_checks(engine, state))
    bad = [row for row in view["timeline"] if row["artifacts"] and not row["artifacts"]["verified"]]
    for row in bad:
        warn(f"artifacts of {row['phase']} (visit {row['visit']}): {row['artifacts']['problem']}")
    if ctx.out.json:
        ctx.out.emit_json(view)
    else:
        print_instance(ctx.out, view)
    return EXIT_FAILED if bad else EXIT_OK


def print_instance(out: Output, view: dict[str, Any]) -> None:
    """The human form of ``views.instance_view``."""
    pause = view["pause"]
    out.fields(
        [
            ("instance", out.paint(view["instance_id"], "bold")),
            ("feature", view["feature_id"]),
            ("workflow", f"{view['workflow']}@{view['workflow_version']}"),
            ("status", out.paint(view["status"], view["status"])),
            ("phase", view["current_phase"] + (f"  ({t})" if (t := view["phase_title"]) else "")),
            *([("paused", f"{pause['kind']}: {pause['reason'] or '-'}")] if pause else []),
            *[("needs", requirement(gate, view["instance_id"])) for gate in view["open_gates"]],
            ("next", view["next_phase"] or "-"),
            ("progress", f"{view['progress']:.0%}"),
            ("created", short_time(view["created_at"])),
            ("updated", short_time(view["updated_at"])),
            *([("forked from", view["parent"]["instance_id"])] if view["parent"] else []),
            ("variables", _inline(view["variables"])),
            ("meta", _inline(view["meta"])),
            *_spend_fields(view),
        ]
    )
    out.line()
    out.table(
        ("#", "PHASE", "VISIT", "STATUS", "STARTED", "TOOK", "BY", "APPROVALS", "ARTIFACTS"),
        (
            (
                row["index"],
                row["phase"],
                row["visit"],
                row["status"],
                short_time(row["started_at"]),
                "-" if row["duration_s"] is None else f"{row['duration_s']:.1f}s",
                row["actor"] or "-",
                ", ".join(f"{a['decision']} by {a['by']}" for a in row["approvals"]) or "-",
                _artifacts_cell(row["artifacts"]),
            )
            for row in view["timeline"]
        ),
        status=3,
    )
    for row in view["timeline"]:
        for touched in row.get("files", []):
            digest = str(touched["sha256"])[:12] if touched["sha256"] else "(no file now)"
            out.line(f"  {row['phase']} visit {row['visit']} wrote {touched['path']}  {digest}")
    _print_commits(out, view["timeline"])


def _print_commits(out: Output, timeline: list[dict[str, Any]]) -> None:
    """Each visit's git links (``views.commits_view``), if any were recorded."""
    linked = [row for row in timeline if row.get("commits_text")]
    if linked:
        out.line()
        out.table(
            ("#", "PHASE", "VISIT", "COMMITS (START → END)"),
            ((row["index"], row["phase"], row["visit"], row["commits_text"]) for row in linked),
        )


def _spend_fields(view: dict[str, Any]) -> list[tuple[str, str]]:
    """``spent``, ``budget`` and ``waits`` lines of ``show``, where there is any."""
    fields = []
    total = view.get("usage", {}).get("total", {})
    if total.get("chatflow.records"):
        fields.append(("spent", _spent(total)))
        for phase, totals in view["usage"]["phases"].items():
            fields.append((f"  {phase}", _spent(totals)))
    for row in view.get("budgets", []):
        used = f"{row['shown']} ({row['share']:.0%})"
        fields.append(("budget", f"{row['scope']} {row['key']}: {used}"))
    wait = view.get("wait")
    if wait is not None:
        fields.append(("waits", _waiting(wait) + f", due {short_time(wait['due_at'])}"))
    return fields


def _spent(totals: dict[str, Any]) -> str:
    """``$0.42, 1,200 tokens (900 in, 300 out), 3 records``."""
    return (
        f"{_dollars(totals['chatflow.cost_usd'])}, {totals['chatflow.tokens']:,} tokens "
        f"({totals['gen_ai.usage.input_tokens']:,} in, {totals['gen_ai.usage.output_tokens']:,} "
        f"out), {totals['chatflow.records']} record(s)"
    )


def _dollars(amount: float) -> str:
    """Dollars as budgets show them (``$12,345.67``, ``$0.0025``): one formatting."""
    from chatflow.domain.budgets import amount_text  # noqa: PLC0415

    return amount_text("cost_usd", amount)


def _print_spend(out: Output, spend: dict[str, Any]) -> None:
    """A feature's spend above its instances (``status --feature``)."""
    if not spend["total"]["chatflow.records"]:
        return
    out.fields(
        [("spent", _spent(spend["total"]))]
        + [(f"  {phase}", _spent(totals)) for phase, totals in spend["phases"].items()]
    )
    out.line()


def _artifacts_cell(check: dict[str, Any] | None) -> str:
    if check is None:
        return "-"
    if not check["verified"]:
        return "UNVERIFIED"
    return f"ok sha256 {str(check['prompt_sha256'])[:8]}/{str(check['response_sha256'])[:8]}"


def _inline(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False) if data else "-"


def cmd_history(ctx: Context) -> int:
    engine = ctx.reader()
    events = views.history_view(engine.get_workflow_history(ctx.args.instance_id))
    if ctx.out.json:
        ctx.out.emit_json(events)
        return EXIT_OK
    ctx.out.table(
        ("AT", "EVENT", "PHASE", "BY", "DETAILS"),
        (
            (
                short_time(e["at"]),
                e["kind"],
                e["phase"] or "-",
                e["actor"] or "-",
                _details(e["data"]),
            )
            for e in events
        ),
    )
    return EXIT_OK


def _details(data: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for key, value in data.items()
        if value not in (None, "")
    )


def cmd_artifacts(ctx: Context) -> int:
    """Print a phase's prompt and response (its latest recorded visit, or a task key)."""
    engine = ctx.reader()
    state = ctx.instance(ctx.args.instance_id)
    phase: str = ctx.args.phase
    key = views.latest_task(state, phase)
    artifacts = engine.get_task_artifacts(state.instance_id, key)
    if artifacts is None:
        raise NotFoundError(f"instance {state.instance_id!r} has no artifacts for {phase!r}")
    view = views.artifacts_view(state.instance_id, key, artifacts)
    if ctx.out.json:
        ctx.out.emit_json(view)
    elif ctx.args.prompt:
        ctx.out.line(view["prompt"].rstrip("\n"))
    elif ctx.args.response:
        ctx.out.line(view["response"].rstrip("\n"))
    else:
        for title in ("prompt", "response"):
            ctx.out.line(
                ctx.out.paint(f"--- {title} ({key}, sha256 {view[title + '_sha256']})", "dim")
            )
            ctx.out.line(view[title].rstrip("\n"))
    return EXIT_OK


# -- schemas ----------------------------------------------------------------------------


def cmd_workflows(ctx: Context) -> int:
    """Every workflow schema that ``start WORKFLOW`` finds by name."""
    infos = ctx.writer().list_workflows()  # reads schema folders only; opens no store
    if ctx.out.json:
        ctx.out.emit_json([info.to_dict() for info in infos])
    elif infos:
        ctx.out.table(
            ("NAME", "VERSION", "SOURCE", "TITLE"),
            ((i.name, i.version, i.source, i.title or "") for i in infos),
        )
    else:
        ctx.out.line("no workflow schemas found (use --schema-dir or <store>/schemas)")
    return EXIT_OK


def cmd_register(ctx: Context) -> int:
    """``workflows register FILE...``: every file is checked before any is registered,
    so a typo in the last one registers none; each one registered is printed at once."""
    schemas = [load_schema_file(path) for path in ctx.args.files]
    engine = ctx.writer()
    infos = []
    for path, schema in zip(ctx.args.files, schemas, strict=True):
        info = engine.register_schema(schema, replace=False)
        infos.append(info.to_dict())
        if not ctx.out.json:
            ctx.out.line(f"registered {info.name}@{info.version} (sha256 {info.hash[:16]}) {path}")
    if ctx.out.json:
        ctx.out.emit_json(infos)
    return EXIT_OK


def cmd_diagram(ctx: Context) -> int:
    """The Mermaid flowchart of an instance (with its path), a schema file or a name."""
    from chatflow.diagram import to_mermaid  # noqa: PLC0415 - keeps other commands lean

    target: str = ctx.args.target
    schema: dict[str, Any]
    state = None
    if views.looks_like_file(target):
        schema = load_schema_file(target)
    elif target.startswith("wfi_"):
        state = ctx.instance(target)
        schema = state.workflow_schema
    else:
        version = ctx.args.schema_version
        schema = ctx.writer().get_schema(
            target, int(version) if version and version.isdigit() else version
        )
    text = to_mermaid(schema, state)
    if ctx.out.json:
        ctx.out.emit_json({"mermaid": text})
    else:
        ctx.out.line(text.rstrip("\n"))
    return EXIT_OK


def load_schema_file(path: str) -> dict[str, Any]:
    """The validated schema in ``path``; a missing file is "not found" (exit 3)."""
    from chatflow.core.registry import load_schema  # noqa: PLC0415

    if not Path(path).is_file():
        raise NotFoundError(f"workflow file {path!r} not found")
    return load_schema(path)


# Command name -> the function adding its parser (main builds only the one it runs).
PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "list": _add_list,
    "features": _add_features,
    "status": _add_status,
    "show": _add_show,
    "history": _add_history,
    "artifacts": _add_artifacts,
    "workflows": _add_workflows,
    "diagram": _add_diagram,
}
