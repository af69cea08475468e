"""Commands that look after a whole store: delete, export, import, doctor, migrate.

Export writes JSON lines, one instance per line with its verified hash chain and every
version of its task texts (``{"chatflow_export": 2, "instance_id": ..., "instance":
{...}, "events": [...], "texts": [...]}``). Import checks each line's chain and texts
against their hashes (refusing the whole file at the first that does not verify), then
copies them through ``migrate`` from an in-memory store, so it is event for event,
verified and idempotent in exactly the way ``migrate`` is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow._text import counted
from chatflow._validation import parse_json
from chatflow.cli.context import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    NotFoundError,
    UsageError,
    add_by,
    add_id,
    finish,
)
from chatflow.cli.output import Progress
from chatflow.errors import (
    ChatFlowError,
    CorruptStateError,
    InstanceNotFoundError,
    ValidationError,
)

if TYPE_CHECKING:
    from chatflow.cli.context import Subparsers
    from chatflow.core.engine import WorkflowEngine
    from chatflow.storage.base import IWorkflowStateStore
    from chatflow.storage.file_doctor import Finding
    from chatflow.storage.migrate import MigrationReport

EXPORT_FORMAT = 2
"""2: each line carries the instance's chain (events with their hashes) and every
version of its task texts; 1 (still read, unverified) carried a state and the latest
artifacts only."""


def _add_delete(commands: Subparsers) -> None:
    delete = commands.add_parser(
        "delete", help="delete instances, their artifacts and index entries"
    )
    _selection(delete, allow_all=False)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_by(delete)
    finish(delete, cmd_delete)


def _add_deleted(commands: Subparsers) -> None:
    deleted = commands.add_parser("deleted", help="who deleted which instances, and when")
    deleted.add_argument("--feature", help="only this feature's deleted instances")
    finish(deleted, cmd_deleted)


def _add_export(commands: Subparsers) -> None:
    export = commands.add_parser("export", help="write instances and artifacts as JSON lines")
    _selection(export, allow_all=True)
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    finish(export, cmd_export)


def _add_import(commands: Subparsers) -> None:
    imp = commands.add_parser("import", help="read an export back (verified, idempotent)")
    imp.add_argument("file", metavar="FILE", help="JSON lines written by export ('-': stdin)")
    finish(imp, cmd_import)


def _add_verify(commands: Subparsers) -> None:
    verify = commands.add_parser("verify", help="check instances and artifact checksums")
    _selection(verify, allow_all=True)
    verify.add_argument(
        "--git", action="store_true", help="also check that every recorded commit still exists"
    )
    finish(verify, cmd_verify)


def _add_compact(commands: Subparsers) -> None:
    compact = commands.add_parser("compact", help="fold an instance's older events into one")
    add_id(compact)
    compact.add_argument("--keep-last", type=int, default=100, metavar="N", help="default 100")
    compact.add_argument("--archive", metavar="FILE", help="append the folded events here")
    finish(compact, cmd_compact)


def _add_doctor(commands: Subparsers) -> None:
    doctor = commands.add_parser("doctor", help="find (and --fix) damage in the store")
    doctor.add_argument("--fix", action="store_true", help="repair what is safe to repair")
    finish(doctor, cmd_doctor)


def _add_migrate(commands: Subparsers) -> None:
    migrate = commands.add_parser("migrate", help="copy every instance to another store, verified")
    migrate.add_argument("--from", dest="source", required=True, metavar="DIR_OR_URL")
    migrate.add_argument("--to", dest="target", required=True, metavar="DIR_OR_URL")
    finish(migrate, cmd_migrate)


def _selection(parser: argparse.ArgumentParser, *, allow_all: bool) -> None:
    parser.add_argument("instance_id", nargs="?", metavar="ID")
    parser.add_argument("--feature", help="every instance of this feature")
    if allow_all:
        parser.add_argument("--all", action="store_true", help="every instance in the store")


def _selected(ctx: Context, engine: WorkflowEngine) -> list[str]:
    """The instance ids the command line names: one id, a feature's, or (--all) every one."""
    args = ctx.args
    every = getattr(args, "all", False)
    if sum(map(bool, (args.instance_id, args.feature, every))) != 1:
        options = "ID, --feature F or --all" if hasattr(args, "all") else "ID or --feature F"
        raise UsageError(f"give exactly one of {options}")
    if args.instance_id:
        try:
            return [ctx.instance(args.instance_id).instance_id]
        except CorruptStateError:
            return [args.instance_id]  # there, but damaged: verify says where, delete removes
        except InstanceNotFoundError:
            if args.instance_id in engine.state_store.list_instance_ids():
                return [args.instance_id]  # listed, its files moved aside (chatflow doctor)
            raise
    if args.feature:
        ctx.require_feature(engine, args.feature)
        return engine.list_feature_instances(args.feature)
    return engine.state_store.list_instance_ids()


# -- delete -------------------------------------------------------------------------------


def cmd_delete(ctx: Context) -> int:
    """Delete the selected instances. Their logs go with them; who deleted what and
    when is kept in the store's deletion record (``chatflow deleted``)."""
    from chatflow import _logger  # noqa: PLC0415

    engine = ctx.reader()
    ids = _selected(ctx, engine)
    by = ctx.actor()
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    if not ctx.args.yes and not _confirm(f"delete {counted(len(ids), 'instance')}: {shown}"):
        print("chatflow: nothing deleted", file=sys.stderr)
        return EXIT_FAILED
    log = _logger.logger(__name__)
    deleted = []
    for iid in ids:
        if engine.state_store.delete_instance_by(iid, by):
            deleted.append(iid)
            log.info("deleted instance %s (by %s)", iid, by)
    if ctx.out.json:
        ctx.out.emit_json({"deleted": deleted, "by": by})
    else:
        ctx.out.line(f"deleted {counted(len(deleted), 'instance')} (by {by})")
    return EXIT_OK


def cmd_deleted(ctx: Context) -> int:
    """The store's deletion record, oldest first (it outlives the deleted logs)."""
    import datetime  # noqa: PLC0415

    records = ctx.reader().state_store.deletions()
    if ctx.args.feature:
        records = [r for r in records if r.get("feature_id") == ctx.args.feature]
    if ctx.out.json:
        ctx.out.emit_json(records)
        return EXIT_OK
    if not records:
        ctx.out.line("no deleted instances")
        return EXIT_OK
    rows = [
        (
            datetime.datetime.fromtimestamp(r["at"]).astimezone().isoformat(timespec="seconds"),
            r.get("instance_id"),
            r.get("feature_id") or "-",
            r.get("status") or "-",
            r.get("seq") if r.get("seq") is not None else "-",
            r.get("by"),
        )
        for r in records
    ]
    ctx.out.table(("DELETED", "ID", "FEATURE", "STATUS", "EVENTS", "BY"), rows, status=3)
    return EXIT_OK


def _confirm(question: str) -> bool:
    """Ask on a terminal; anywhere else (scripts, pipes) refuse: they must say --yes."""
    if not sys.stdin.isatty():
        raise ValidationError("refusing to delete without confirmation: add --yes")
    answer = input(f"{question}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


# -- export / import ----------------------------------------------------------------------


def cmd_export(ctx: Context) -> int:
    engine = ctx.reader()
    ids = _selected(ctx, engine)
    progress = Progress("export")
    lines = [_export_line(engine, iid) for iid in progress.over(ids)]
    progress.close()
    data = "".join(line + "\n" for line in lines)
    output = ctx.args.output
    if output is None:
        sys.stdout.write(data)
        return EXIT_OK
    from chatflow.storage._atomic import write_atomic  # noqa: PLC0415

    write_atomic(Path(output), data.encode("utf-8"), durable=not ctx.args.no_fsync)
    summary = {"exported": len(lines), "file": output}
    if ctx.out.json:
        ctx.out.emit_json(summary)
    else:
        ctx.out.line(f"exported {counted(len(lines), 'instance')} to {output}")
    return EXIT_OK


def _export_line(engine: WorkflowEngine, instance_id: str) -> str:
    """One instance as its verified chain: every event with its hash, every stored
    version of its task texts, and (for people and tools) the state they project to."""
    from chatflow.storage.base import log_problem  # noqa: PLC0415

    store = engine.state_store
    log = store.read_log(instance_id)
    problem = log_problem(log)
    if problem is not None:
        raise CorruptStateError(f"not exported: {problem}", instance_id=instance_id)
    texts = [
        {
            "task": task,
            "version": version,
            "record": t.record,
            "prompt": t.prompt,
            "response": t.response,
        }
        for (task, version), t in log.texts.items()
    ]
    line = {
        "chatflow_export": EXPORT_FORMAT,
        "instance_id": instance_id,
        "instance": store.load_state(instance_id),
        "events": log.events,
        "texts": texts,
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def cmd_import(ctx: Context) -> int:
    from chatflow.storage.migrate import migrate  # noqa: PLC0415

    source = _read_export(ctx.args.file)
    engine = ctx.writer()
    progress = Progress("import")
    try:
        report = migrate(source, engine.state_store, progress=progress)
    finally:
        progress.close()
    return _report(ctx, report)


def _read_export(path: str) -> IWorkflowStateStore:
    """The lines of an export, each verified, in a memory store (``migrate``'s source)."""
    from chatflow.storage.memory import MemoryStore  # noqa: PLC0415

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"file {path!r} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"cannot read {path!r}: {error}") from None
    store = MemoryStore()
    old_lines = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            old_lines += _load_line(store, line, f"{path}:{number}")
    if old_lines:
        print(
            f"chatflow: warning: {path}: {counted(old_lines, 'line')} in export format 1, "
            "which carries no hash chain: imported as new, unverified histories (an instance "
            "already stored with another history is left untouched as a conflict)",
            file=sys.stderr,
        )
    return store


def _load_line(store: IWorkflowStateStore, line: str, where: str) -> int:
    """Add one export line to ``store``; 1 if it was in the old format 1, else 0."""
    try:
        item = parse_json(line, where)
    except ValidationError:
        raise  # JSON, but nested too deeply
    except ValueError as error:
        raise ValidationError(f"{where}: not valid JSON: {error}") from None
    version = item.get("chatflow_export") if isinstance(item, dict) else None
    if version == EXPORT_FORMAT:
        _load_chain(store, item, where)
        return 0
    if version == 1:
        _load_format_1(store, item, where)
        return 1
    raise ValidationError(
        f"{where}: not a line of a chatflow export (format {EXPORT_FORMAT}, or 1)"
    )


def _load_chain(store: IWorkflowStateStore, item: dict[str, Any], where: str) -> None:
    """A format-2 line: its chain and texts, verified against their hashes by
    ``install_log``; the state shown beside them must be the one they project to."""
    from chatflow.storage.base import InstanceLog, TaskTexts  # noqa: PLC0415

    instance_id, events, texts = item.get("instance_id"), item.get("events"), item.get("texts")
    if (
        not isinstance(instance_id, str)
        or not isinstance(events, list)
        or not isinstance(texts, list)
    ):
        raise ValidationError(f"{where}: needs 'instance_id', an 'events' list and a 'texts' list")
    try:
        log = InstanceLog(
            instance_id,
            events,
            {
                (t["task"], t["version"]): TaskTexts(t["record"], t["prompt"], t["response"])
                for t in texts
            },
        )
        store.install_log(log)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        if isinstance(error, ChatFlowError):
            raise ValidationError(f"{where}: {error}", instance_id=instance_id) from None
        raise ValidationError(f"{where}: malformed instance or texts: {error!r}") from None
    except CorruptStateError as error:
        raise ValidationError(f"{where}: {error}", instance_id=instance_id) from None
    if "instance" in item and item["instance"] != store.load_state(instance_id):
        raise ValidationError(
            f"{where}: instance {instance_id}: its 'instance' differs from the state its "
            "events lead to (edited)",
            instance_id=instance_id,
        )


def _load_format_1(store: IWorkflowStateStore, item: dict[str, Any], where: str) -> None:
    """A line of the old format: a state and the latest artifacts, with no chain."""
    state, artifacts = item.get("instance"), item.get("artifacts")
    if not isinstance(state, dict) or not isinstance(artifacts, list):
        raise ValidationError(f"{where}: needs an 'instance' object and an 'artifacts' list")
    try:
        store.create_state(state)
        for artifact in artifacts:
            store.save_task_artifacts(
                state["feature_id"],
                state["instance_id"],
                artifact["task"],
                artifact["record"],
                artifact["prompt"],
                artifact["response"],
            )
    except (KeyError, TypeError) as error:
        raise ValidationError(f"{where}: malformed instance or artifact: {error!r}") from None


# -- migrate --------------------------------------------------------------------------------


def cmd_migrate(ctx: Context) -> int:
    """Copy a store into another (safe to re-run); fail if an instance is in conflict."""
    from chatflow.storage.migrate import migrate  # noqa: PLC0415

    progress = Progress("migrate")
    try:
        report = migrate(
            ctx.args.source, ctx.args.target, durable=not ctx.args.no_fsync, progress=progress
        )
    finally:
        progress.close()
    return _report(ctx, report)


def _report(ctx: Context, report: MigrationReport) -> int:
    if ctx.out.json:
        ctx.out.emit_json(
            {
                "features": report.features,
                "instances_copied": report.instances_copied,
                "instances_updated": report.instances_updated,
                "instances_unchanged": report.instances_unchanged,
                "artifacts_copied": report.artifacts_copied,
                "artifacts_unchanged": report.artifacts_unchanged,
                "conflicts": report.conflicts,
            }
        )
    else:
        ctx.out.line(report.summary())
    return EXIT_FAILED if report.conflicts else EXIT_OK


# -- verify / compact -----------------------------------------------------------------------


def _missing_commits(engine: WorkflowEngine, ids: list[str]) -> list[dict[str, Any]]:
    """``verify --git``: every recorded commit the work tree's repository lacks, by instance
    (an instance too damaged to read is already a problem of the plain verify)."""
    missing = []
    for iid in ids:
        try:
            rows = engine.verify_git(iid)
        except ChatFlowError:
            continue
        missing += [{"instance_id": iid, **row} for row in rows]
    return missing


def _commit_problems(missing: list[dict[str, Any]]) -> list[str]:
    """One line per instance and missing commit, naming the visits that recorded it."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for row in missing:
        key = (row["instance_id"], row["commit"], row["problem"])
        where = f"{row['when']} of #{row['history_index']} {row['phase']}"
        grouped.setdefault(key, []).append(where)
    return [
        f"instance {iid}: commit {commit} ({', '.join(where)}): {problem}"
        for (iid, commit, problem), where in grouped.items()
    ]


def cmd_verify(ctx: Context) -> int:
    """Check each selected instance's hash chain, artifacts and head (``engine.verify``);
    print every problem (exit 1) or the feature digests."""
    engine = ctx.reader()
    ids = _selected(ctx, engine)
    progress = Progress("verify")
    try:
        found = {iid: str(p) for iid in progress.over(ids) if (p := engine.verify(iid)) is not None}
        missing = _missing_commits(engine, ids) if ctx.args.git else []
    finally:
        progress.close()
    problems = [*found.values(), *_commit_problems(missing)]
    bad = len(found.keys() | {row["instance_id"] for row in missing})
    features = (
        engine.list_features() if ctx.args.all else [ctx.args.feature] * bool(ctx.args.feature)
    )
    digests = {} if problems else {f: engine.feature_digest(f) for f in features}
    if ctx.out.json:
        result = {"verified": len(ids) - bad, "problems": problems, "digests": digests}
        ctx.out.emit_json({**result, "missing_commits": missing} if ctx.args.git else result)
    else:
        for problem in problems:
            print(f"chatflow: verify: {problem}", file=sys.stderr)
        if not problems:
            ctx.out.line(f"ok: {counted(len(ids), 'instance')} verified")
        for feature, value in digests.items():
            ctx.out.line(f"digest {feature} {value}")
    return EXIT_FAILED if problems else EXIT_OK


def cmd_compact(ctx: Context) -> int:
    """Fold an instance's older events into a checkpoint."""
    engine = ctx.reader()
    ctx.instance(ctx.args.instance_id)
    folded = engine.compact(
        ctx.args.instance_id, keep_last=ctx.args.keep_last, archive=ctx.args.archive
    )
    if ctx.out.json:
        ctx.out.emit_json({"instance_id": ctx.args.instance_id, "folded": folded})
    else:
        ctx.out.line(f"{ctx.args.instance_id}: {counted(folded, 'event')} folded into a checkpoint")
    return EXIT_OK


# -- doctor ---------------------------------------------------------------------------------


def cmd_doctor(ctx: Context) -> int:
    """Report damage (exit 1 while any remains); ``--fix`` repairs what is safe."""
    from chatflow.core import fork_repair  # noqa: PLC0415
    from chatflow.storage import file_doctor  # noqa: PLC0415
    from chatflow.storage.file_state_store import FileStateStore  # noqa: PLC0415

    engine = ctx.reader()
    store = engine.state_store
    progress = Progress("doctor")
    try:
        findings = _doctor_findings(engine, progress)
    finally:
        progress.close()
    fixed: list[Finding] = []
    remaining = findings
    if ctx.args.fix:
        own = [f for f in findings if f.kind != fork_repair.KIND]  # the store's findings
        fixed = (
            file_doctor.fix(store, own)
            if isinstance(store, FileStateStore)
            else _rebuild_lost_heads(store, own)
        )
        fixed += fork_repair.fix(engine, findings)
        upgrade = getattr(store, "upgrade", None)  # (SQLite: a 1.x database)
        fixed += [f for f in findings if f.kind == "old_database" and upgrade and upgrade()]
        # Looked at again: a repair can leave something for a person (an instance
        # moved aside is still listed in its feature).
        remaining = _doctor_findings(engine, None) if fixed else findings
    # The waits index is derived data: --fix rebuilds it from the heads (storage.waits).
    waits = engine.rebuild_waits() if ctx.args.fix else None
    # What the store repaired by itself, and the damaged bytes it kept (file store only).
    repairs = store.repairs() if isinstance(store, FileStateStore) else []
    kept = store.moved_aside() if isinstance(store, FileStateStore) else []
    if ctx.out.json:
        ctx.out.emit_json(
            {
                "problems": [f.to_dict() for f in remaining],
                "fixed": [f.to_dict() for f in fixed],
                "repairs": repairs,
                "moved_aside": kept,
                "waits_indexed": waits,
            }
        )
    else:
        for repair in repairs:
            ctx.out.line(f"repaired {repair.get('instance_id')}: {repair.get('repair')}")
        for path in kept:
            ctx.out.line(f"kept     {path} (moved aside, never deleted)")
        for finding in fixed:
            ctx.out.line(f"fixed    {finding.kind:<22} {finding.message} ({finding.path})")
        if waits is not None:
            ctx.out.line(f"rebuilt  the waits index ({waits} under a deadline)")
        for finding in remaining:
            hint = " (--fix repairs it)" if finding.fixable and not ctx.args.fix else ""
            ctx.out.line(f"problem  {finding.kind:<22} {finding.message}{hint} ({finding.path})")
        if not remaining:
            ctx.out.line(f"no problems found in {store!r}" if not fixed else "store repaired")
    return EXIT_FAILED if remaining else EXIT_OK


def _doctor_findings(engine: WorkflowEngine, progress: Progress | None) -> list[Finding]:
    """What ``doctor`` reports: the store's own checks, then forks missing records."""
    from chatflow.core import fork_repair  # noqa: PLC0415
    from chatflow.storage import file_doctor  # noqa: PLC0415
    from chatflow.storage.file_doctor import Finding  # noqa: PLC0415
    from chatflow.storage.file_state_store import FileStateStore  # noqa: PLC0415

    store = engine.state_store
    if isinstance(store, FileStateStore):
        findings = file_doctor.check(store, progress)
    else:
        findings = _check_instances(store, progress or Progress("doctor"))
    if getattr(store, "needs_upgrade", False):  # read as it is until a write upgrades it
        message = f"{store!r} is a ChatFlow 1.x database (reads use it as it is)"
        findings.append(Finding("old_database", repr(store), message, True))
    damaged = {f.instance_id for f in findings if f.instance_id is not None}
    return findings + fork_repair.findings(engine, damaged)


def _check_instances(store: IWorkflowStateStore, progress: Progress) -> list[Finding]:
    """Checks every store supports: each listed instance, and each whose head is lost
    (``lost_heads``: a scan of the whole store), verifies (its log, head and artifacts:
    damage a load would not notice), loads and parses. A lost head over a log that
    verifies is ``lost_head``, which ``--fix`` rebuilds from the log."""
    from chatflow.domain.models import WorkflowInstanceState  # noqa: PLC0415
    from chatflow.errors import ChatFlowError  # noqa: PLC0415
    from chatflow.storage._log import LOST_HEAD  # noqa: PLC0415
    from chatflow.storage.file_doctor import Finding  # noqa: PLC0415

    findings = []
    ids = store.list_instance_ids()
    listed = set(ids)
    ids += [iid for iid in store.lost_heads(thorough=True) if iid not in listed]
    for instance_id in progress.over(ids):
        try:
            problem = store.verify(instance_id)
            if problem is not None:
                lost = problem.what == LOST_HEAD
                kind = "lost_head" if lost else "damaged_instance"
                findings.append(Finding(kind, repr(store), str(problem), lost, instance_id))
                continue
            data = store.load_state(instance_id)
            if data is None:
                raise ValidationError(f"instance {instance_id!r} is listed but has no state")
            WorkflowInstanceState.from_dict(data)
        except ChatFlowError as error:
            findings.append(
                Finding("unreadable_instance", repr(store), str(error), False, instance_id)
            )
    return findings


def _rebuild_lost_heads(store: IWorkflowStateStore, findings: list[Finding]) -> list[Finding]:
    """``--fix`` for a store other than the file store: each ``lost_head`` rebuilt from
    its log (the store checks the log again, under its write lock; nothing is deleted)."""
    from chatflow.errors import ChatFlowError  # noqa: PLC0415

    fixed = []
    for finding in findings:
        if finding.kind != "lost_head" or finding.instance_id is None:
            continue
        try:
            if store.rebuild_head(finding.instance_id):
                fixed.append(finding)
        except ChatFlowError:
            continue  # damaged since it was checked: still reported by the check after
    return fixed


# Command name -> the function adding its parser (main builds only the one it runs).
PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "delete": _add_delete,
    "deleted": _add_deleted,
    "export": _add_export,
    "import": _add_import,
    "verify": _add_verify,
    "compact": _add_compact,
    "doctor": _add_doctor,
    "migrate": _add_migrate,
}
