"""The ``chatflow`` command: run the demo workflow and inspect stored state.

User mistakes (unknown ids, bad arguments, corrupt files) end with a one-line message on
stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from chatflow._validation import id_problem
from chatflow.core.engine import WorkflowEngine, default_storage_dir
from chatflow.core.models import WorkflowInstanceState
from chatflow.core.registry import SCHEMA_SUFFIXES
from chatflow.core.schema import phase_map
from chatflow.errors import ChatFlowError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

DEMO_SCHEMA: dict[str, Any] = {
    "name": "code_generation",
    "phases": [{"name": "requirement_analysis"}, {"name": "design"}, {"name": "implementation"}],
}

Command = Callable[[argparse.Namespace, WorkflowEngine], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chatflow`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    engine = WorkflowEngine(
        storage_dir=args.dir, durable=not args.no_fsync, schema_dirs=args.schema_dir
    )
    command: Command = args.command
    try:
        return command(args, engine)
    except ChatFlowError as error:
        print(f"chatflow: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatflow", description="Durable workflow state for AI-assisted development."
    )
    parser.add_argument(
        "--dir",
        default=None,
        help=f"storage folder (default: $CHATFLOW_DIR or ./.chatflow; now {default_storage_dir()})",
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
        help="folder of workflow schemas (*.json, *.yaml); repeatable; "
        "searched before <storage>/schemas",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the code-generation workflow end to end")
    demo.add_argument("--feature", default="feat_user_auth", help="feature id to use")
    demo.set_defaults(command=cmd_demo)

    status = commands.add_parser("status", help="show an instance, a feature, or all features")
    status.add_argument("instance_id", nargs="?", help="instance to show")
    status.add_argument("--feature", help="show this feature's roll-up and instances")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(command=cmd_status)

    workflows = commands.add_parser("workflows", help="list the workflow schemas found by name")
    workflows.add_argument("--json", action="store_true", help="print JSON instead of text")
    workflows.set_defaults(command=cmd_workflows)

    diagram = commands.add_parser(
        "diagram", help="print a workflow (or an instance's path) as a Mermaid flowchart"
    )
    diagram.add_argument("target", metavar="NAME_OR_ID", help="schema name, file or instance id")
    diagram.add_argument("--version", dest="schema_version", help="schema version (default latest)")
    diagram.set_defaults(command=cmd_diagram)

    migrate = commands.add_parser(
        "migrate", help="copy every instance and artifact to another store, verified"
    )
    migrate.add_argument(
        "--from", dest="source", required=True, metavar="DIR_OR_URL", help="store to copy from"
    )
    migrate.add_argument(
        "--to", dest="target", required=True, metavar="DIR_OR_URL", help="store to copy into"
    )
    migrate.set_defaults(command=cmd_migrate)
    return parser


def cmd_demo(args: argparse.Namespace, engine: WorkflowEngine) -> int:
    """Run the SPEC's workflow, recording a prompt and a response for each phase."""
    instance_id = engine.start_workflow_instance(
        workflow_schema=DEMO_SCHEMA,
        initial_context={"user_request": "create user registration"},
        feature_id=args.feature,
        meta={"user_id": "dev_alice", "session_id": "sess_demo"},
    )
    print(f"started {instance_id} (workflow code_generation, feature {args.feature})")
    state = engine.get_workflow_instance_status(instance_id)
    assert state is not None
    while not state.status.is_finished:
        phase = state.current_phase
        prompt = f"# {phase}\n\nUser request: {state.variables['user_request']}\n"
        response = f"# {phase} result\n\n(demo AI response for {phase})\n"
        engine.record_task_artifacts(instance_id, prompt, response)
        state = engine.trigger_next_step(
            instance_id, trigger_data={"result": f"{phase} done"}, meta={"last_phase": phase}
        )
        print(f"  {phase:<22} prompt + response recorded -> status {state.status}")
    store_dir = getattr(engine.state_store, "base_dir", None)
    print(f"finished: {instance_id} is {state.status} after {len(state.history)} phases")
    if store_dir is not None:
        print(f"state:     {store_dir}/instances/{instance_id}.json")
        print(f"artifacts: {store_dir}/instances/{instance_id}/tasks/")
        print(f"feature:   {store_dir}/features/{args.feature}.link")
    _print_json(engine.get_feature_status(args.feature))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, engine: WorkflowEngine) -> int:
    """Show one instance, one feature, or every feature's roll-up."""
    if args.instance_id:
        state = engine.get_workflow_instance_status(args.instance_id)
        if state is None:
            print(f"chatflow: error: no instance {args.instance_id!r}", file=sys.stderr)
            return EXIT_ERROR
        if args.json:
            _print_json(state.to_dict())
        else:
            _print_instance(state)
        return EXIT_OK
    features = [args.feature] if args.feature else engine.list_features()
    rollups = [engine.get_feature_status(feature) for feature in features]
    if args.json:
        _print_json(rollups[0] if args.feature else rollups)
        return EXIT_OK
    if not rollups:
        print(f"no workflow instances in {engine.state_store!r}")
    for rollup in rollups:
        _print_feature(rollup)
        if args.feature:
            for instance_id in engine.list_feature_instances(args.feature):
                state = engine.get_workflow_instance_status(instance_id)
                if state is not None:
                    print(f"  {instance_id}  {state.status!s:<10} {state.current_phase}")
    return EXIT_OK


def cmd_workflows(args: argparse.Namespace, engine: WorkflowEngine) -> int:
    """List every workflow schema that ``start_workflow_instance(schema_name=...)`` finds."""
    infos = engine.list_workflows()
    if args.json:
        _print_json([info.to_dict() for info in infos])
    for info in [] if args.json else infos:
        title = f"  {info.title}" if info.title else ""
        print(f"{info.name:<28} v{info.version!s:<8} {info.source}{title}")
    for problem in engine.schemas.problems():
        print(f"chatflow: warning: {problem}", file=sys.stderr)
    if not infos and not args.json:
        print("no workflow schemas found (use --schema-dir or <storage>/schemas)")
    return EXIT_OK


def cmd_diagram(args: argparse.Namespace, engine: WorkflowEngine) -> int:
    """Print the Mermaid flowchart of an instance (with its path), a schema file or name."""
    from chatflow.core.registry import load_schema  # noqa: PLC0415 - only this command reads files
    from chatflow.diagram import to_mermaid  # noqa: PLC0415 - keeps other commands' start-up lean

    target: str = args.target
    if Path(target).suffix in SCHEMA_SUFFIXES and Path(target).is_file():
        print(to_mermaid(load_schema(target)), end="")
        return EXIT_OK
    state = engine.get_workflow_instance_status(target) if _is_instance_id(target) else None
    if state is not None:
        print(to_mermaid(state.workflow_schema, state), end="")
        return EXIT_OK
    version = args.schema_version
    schema = engine.get_schema(target, int(version) if version and version.isdigit() else version)
    print(to_mermaid(schema), end="")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace, engine: WorkflowEngine) -> int:
    """Copy a store into another (safe to re-run); fail if an instance is in conflict."""
    from chatflow.storage.migrate import display_name, migrate  # noqa: PLC0415 - only here

    report = migrate(args.source, args.target, durable=not args.no_fsync)
    source, target = display_name(args.source), display_name(args.target)
    print(f"migrated {source} -> {target}: {report.summary()}")
    return EXIT_ERROR if report.conflicts else EXIT_OK


def _is_instance_id(text: str) -> bool:
    return text.startswith("wfi_") and id_problem(text) is None


def _print_instance(state: WorkflowInstanceState) -> None:
    print(f"instance {state.instance_id}  ({state.workflow_name}, feature {state.feature_id})")
    print(f"  status:  {state.status}")
    title = phase_map(state.workflow_schema).get(state.current_phase, {}).get("title")
    print(f"  phase:   {state.current_phase}" + (f"  ({title})" if title else ""))
    print(f"  created: {_when(state.created_at)}   updated: {_when(state.updated_at)}")
    print("  history:")
    for entry in state.history:
        ended = _when(entry.ended_at) if entry.ended_at is not None else "open"
        task = f"  task {entry.task}" if entry.task else ""
        print(
            f"    {entry.phase:<24} {entry.status:<10} {_when(entry.started_at)} -> {ended}{task}"
        )


def _print_feature(rollup: dict[str, Any]) -> None:
    print(
        f"feature {rollup['feature_id']}: {rollup['status']}  "
        f"({rollup['total_instances']} instances: {rollup['running_count']} running, "
        f"{rollup['completed_count']} completed, {rollup['created_count']} created, "
        f"{rollup['failed_count']} failed; latest {rollup['latest_instance_id']})"
    )


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))
