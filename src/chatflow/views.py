"""JSON views of engine results: the shapes ``chatflow ... --json`` prints.

One module so that every consumer (the ``chatflow`` command, a web UI's ``/api/``)
returns the same documented shapes (docs/cli.md, "JSON output"). Each function turns what
the engine returned into plain JSON-ready dicts; only ``artifact_checks`` reads the
store, because verifying checksums needs the texts.

Times are ISO 8601 strings in local time with their UTC offset
(``2026-11-25T16:44:18.120+01:00``), so they sort and parse without a time-zone guess.
Shapes only grow: keys are added, never renamed or removed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from chatflow.core.definition import workflow_of
from chatflow.core.models import (
    EventKind,
    InstanceStatus,
    TaskArtifacts,
    WorkflowEvent,
    WorkflowInstanceState,
)
from chatflow.errors import ChatFlowError

if TYPE_CHECKING:
    from chatflow.core.engine import WorkflowEngine

JSON = dict[str, Any]
STATUSES = tuple(status.value for status in InstanceStatus)


def iso_time(timestamp: float | None) -> str | None:
    """Seconds since the epoch as local ISO 8601 with offset (milliseconds); None stays None."""
    if timestamp is None:
        return None
    # time, not datetime: same result, and datetime costs milliseconds at start-up.
    seconds = int(timestamp // 1)
    local = time.localtime(seconds)
    offset = local.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    millis = int((timestamp - seconds) * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    return f"{stamp}.{millis:03d}{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


def feature_view(rollup: Mapping[str, Any], unreadable: Iterable[str] = ()) -> JSON:
    """A feature's roll-up (``engine.get_feature_status``) with every status count.

    ``unreadable`` names instances whose stored state could not be read; they are not
    in ``counts`` (see ``chatflow features``: one corrupt file must not hide the rest).
    """
    return {
        "feature_id": rollup["feature_id"],
        "status": rollup["status"],
        "total_instances": rollup["total_instances"],
        "counts": {status: rollup.get(f"{status}_count", 0) for status in STATUSES},
        "latest_instance_id": rollup["latest_instance_id"],
        "active_instance_id": rollup["active_instance_id"],
        "phases": dict(rollup["phases"]),
        "unreadable_instances": list(unreadable),
    }


def instance_row(state: WorkflowInstanceState) -> JSON:
    """One line of ``chatflow list``: where an instance is, without its history."""
    return {
        "instance_id": state.instance_id,
        "feature_id": state.feature_id,
        "workflow": state.workflow_name,
        "workflow_version": workflow_of(state.workflow_schema).version,
        "status": state.status.value,
        "current_phase": state.current_phase,
        "created_at": iso_time(state.created_at),
        "updated_at": iso_time(state.updated_at),
        "wait": wait_view(state),
    }


def artifact_checks(engine: WorkflowEngine, state: WorkflowInstanceState) -> dict[str, JSON]:
    """Task key -> its checksums and whether the stored texts still match them.

    A record that cannot be read or verified is reported (``verified: false`` and the
    ``problem``), never raised: one bad artifact must not hide the rest of ``show``.
    """
    checks: dict[str, JSON] = {}
    for entry in state.history:
        if not entry.task or entry.task in checks:
            continue
        try:
            artifacts = engine.get_task_artifacts(state.instance_id, entry.task)
        except ChatFlowError as error:
            checks[entry.task] = _check(entry.task, None, str(error))
            continue
        problem = None if artifacts is not None else "task record is missing"
        checks[entry.task] = _check(entry.task, artifacts, problem)
    return checks


def _check(key: str, artifacts: TaskArtifacts | None, problem: str | None) -> JSON:
    record = artifacts.record if artifacts is not None else None
    return {
        "task": key,
        "prompt_sha256": record.prompt_checksum if record else None,
        "response_sha256": record.response_checksum if record else None,
        "verified": problem is None,
        "problem": problem,
    }


def instance_view(
    state: WorkflowInstanceState,
    checks: Mapping[str, JSON] | None = None,
    open_gates: Iterable[JSON] | None = None,
) -> JSON:
    """Everything ``chatflow show`` tells about an instance.

    ``checks`` comes from ``artifact_checks`` (without it, artifacts show as
    unchecked: ``null``). ``open_gates`` lists what the current phase's exit gate still
    misses; by default it is read from the state (``status_info``'s
    ``open_requirements``).
    """
    from chatflow.core.status import status_info  # noqa: PLC0415 - show only

    info = status_info(state)
    gates = (info.get("open_requirements") or []) if open_gates is None else open_gates
    return {
        **instance_row(state),
        "version": state.version,
        "variables": state.variables,
        "meta": state.meta,
        "phase_title": _phase_title(state),
        "pause": _pause_view(state.pause),
        "open_gates": list(gates),
        "actions": available_actions(state, gates),
        "parent": state.parent,
        "next_phase": info["next_phase"],
        "progress": info["progress"],
        "visits": dict(state.visits),
        "retries": dict(state.retries),
        "timeline": _timeline(state, checks or {}),
        "usage": usage_view(state),
        "budgets": budget_view(state),
    }


def _phase_title(state: WorkflowInstanceState) -> str | None:
    workflow = workflow_of(state.workflow_schema)
    current = state.current_phase
    return workflow.phase(current).title if workflow.has_phase(current) else None


def _pause_view(pause: Mapping[str, Any] | None) -> JSON | None:
    if pause is None:
        return None
    view = {
        "kind": pause.get("kind"),
        "reason": pause.get("reason") or "; ".join(pause.get("reasons") or []) or None,
        "risk": pause.get("risk"),
    }
    if pause.get("kind") == "budget":  # the numbers: which limit, how much used
        view["crossed"] = list(pause.get("crossed") or [])
    return view


def _timeline(state: WorkflowInstanceState, checks: Mapping[str, JSON]) -> list[JSON]:
    decisions: dict[int, list[JSON]] = {}
    for event in state.events:
        decision = _decision(event)
        if decision is not None:
            decisions.setdefault(event.history_index, []).append(decision)
    visits: dict[str, int] = {}
    rows = []
    for index, entry in enumerate(state.history):
        visits[entry.phase] = visits.get(entry.phase, 0) + 1
        ended = entry.ended_at
        rows.append(
            {
                "index": index,
                "phase": entry.phase,
                "visit": visits[entry.phase],
                "status": entry.status,
                "started_at": iso_time(entry.started_at),
                "ended_at": iso_time(ended),
                "duration_s": None if ended is None else round(ended - entry.started_at, 3),
                "actor": entry.actor,
                "approvals": decisions.get(index, []),
                "artifacts": checks.get(entry.task) if entry.task else None,
            }
        )
    return rows


def _decision(event: WorkflowEvent) -> JSON | None:
    """An approval, rejection or forced entry recorded by ``event``, if it is one.

    Only the end of an approval pause is an approval: resuming a pause by hand is a
    resume, whatever names it carries.
    """
    if event.kind is EventKind.RESUMED and event.data.get("kind") == "approval":
        by, decision = event.data.get("approved_by"), "approved"
    elif event.kind is EventKind.REJECTED:
        by, decision = event.data.get("rejected_by"), "rejected"
    elif event.kind is EventKind.APPROVAL_OVERRIDDEN:
        by, decision = event.actor, "overridden"
    else:
        return None
    note = event.data.get("note")
    return {"decision": decision, "by": by, "at": iso_time(event.at), "note": note}


def history_view(events: Iterable[WorkflowEvent]) -> list[JSON]:
    """The event log (``engine.get_workflow_history``), oldest first."""
    return [
        {
            "kind": event.kind.value,
            "at": iso_time(event.at),
            "actor": event.actor,
            "phase": event.phase,
            "history_index": event.history_index,
            "data": event.data,
        }
        for event in events
    ]


def artifacts_view(instance_id: str, task: str, artifacts: TaskArtifacts) -> JSON:
    """A phase's recorded prompt and response with their (verified) checksums."""
    record = artifacts.record
    return {
        "instance_id": instance_id,
        "task": task,
        "phase": record.phase_name,
        "status": record.status,
        "started_at": iso_time(record.started_at),
        "ended_at": iso_time(record.ended_at),
        "prompt_sha256": record.prompt_checksum,
        "response_sha256": record.response_checksum,
        "prompt": artifacts.prompt,
        "response": artifacts.response,
    }


def awaits_approval(state: WorkflowInstanceState) -> bool:
    """Whether the instance is paused until a person approves (entering a phase that
    ``requires_approval``, or a risky step): ``resume(approved_by=)`` lets it go on,
    where an exit gate's approvals are counted by ``approve(by=)`` instead."""
    return state.pause is not None and state.pause.get("kind") == "approval"


PAGE_ACTIONS = ("approve", "reject", "pause", "resume", "retry", "cancel")
"""The actions a person takes from the page (and its API), in the order it offers them."""


def available_actions(
    state: WorkflowInstanceState, open_gates: Iterable[JSON] | None = None
) -> list[str]:
    """Which of ``PAGE_ACTIONS`` the instance accepts now, from the lifecycle's one
    table (``lifecycle.ALLOWED``) and the approve-vs-resume rule: an approval pause is
    ended by ``approve`` (``resume(approved_by=)``) or ``reject``, never by a plain
    resume; a running phase offers ``approve`` only while its exit gate still counts
    approvals (``open_gates``: ``status_info``'s ``open_requirements``)."""
    from chatflow.core.lifecycle import ALLOWED  # noqa: PLC0415

    approval = awaits_approval(state)
    budget = state.pause is not None and state.pause.get("kind") == "budget"
    gates = list(open_gates or [])
    wanted = {
        "approve": approval
        or budget  # approve --extend: a person allows more
        or (
            state.status is not InstanceStatus.PAUSED
            and any(item.get("kind") == "approvals" for item in gates)
        ),
        "reject": approval,
        "resume": not approval and not budget,
    }
    return [
        action
        for action in PAGE_ACTIONS
        if state.status in ALLOWED[action] and wanted.get(action, True)
    ]


# -- time and money (chatflow.core.usage, budgets, deadlines) ---------------------------


def usage_view(state: WorkflowInstanceState) -> JSON:
    """What the instance spent: in total, per phase and per visit (OpenTelemetry GenAI
    names: ``gen_ai.usage.input_tokens``, ..., ``chatflow.cost_usd``). Per visit reads
    the ``usage`` events; the totals are the running sums every record updates."""
    from chatflow.core import usage  # noqa: PLC0415

    spent = state.usage or {}
    visits: dict[int, JSON] = {}
    if spent:  # only then is there any usage event to read
        for event in state.events:
            if event.kind is EventKind.USAGE:
                totals = visits.setdefault(event.history_index, {"phase": event.phase})
                usage.add_to(totals, usage.from_event(event.data))
    return {
        "total": usage.view(spent.get("total")),
        "phases": {name: usage.view(totals) for name, totals in spent.get("phases", {}).items()},
        "visits": [
            {"index": index, "phase": totals.pop("phase"), **usage.view(totals)}
            for index, totals in sorted(visits.items())
        ],
    }


def feature_usage(states: Iterable[WorkflowInstanceState]) -> JSON:
    """A feature's spend: its instances' totals summed, in total and per phase."""
    from chatflow.core import usage  # noqa: PLC0415

    total: JSON = {}
    phases: dict[str, JSON] = {}
    for state in states:
        spent = state.usage or {}
        if spent.get("total"):
            _add_totals(total, spent["total"])
        for name, totals in spent.get("phases", {}).items():
            _add_totals(phases.setdefault(name, {}), totals)
    return {
        "total": usage.view(total),
        "phases": {name: usage.view(totals) for name, totals in phases.items()},
    }


def _add_totals(into: JSON, totals: Mapping[str, Any]) -> None:
    from chatflow.core import usage  # noqa: PLC0415

    usage.merge(into, totals)


def waits_first(rows: list[JSON]) -> list[JSON]:
    """List rows with the overdue waits first (longest overdue first); the rest keep
    their order."""
    overdue = [row for row in rows if (row.get("wait") or {}).get("overdue")]
    overdue.sort(key=lambda row: -row["wait"]["overdue_s"])
    return overdue + [row for row in rows if row not in overdue]


def budget_view(state: WorkflowInstanceState, now: float | None = None) -> list[JSON]:
    """Each limit in force on the instance with what it used (``share``: 1.0 is all of
    it), so a front end shows how close each one is without computing anything."""
    from chatflow.core import budgets  # noqa: PLC0415

    workflow = workflow_of(state.workflow_schema)
    if not budgets.has_budget(state, workflow):
        return []
    return budgets.standing(state, workflow, budgets.now_or(now))


def wait_view(state: WorkflowInstanceState, now: float | None = None) -> JSON | None:
    """What the instance waits for under a deadline, since when, and how overdue."""
    if state.wait is None:  # most instances: nothing to import or compute
        return None
    from chatflow.core import budgets, deadlines  # noqa: PLC0415

    view = deadlines.waiting_view(state, budgets.now_or(now))
    if view is not None:
        view["since"], view["due_at"] = iso_time(view["since"]), iso_time(view["due_at"])
    return view


NEXT_ACTIONS = ("none", "retry", "approve_entry", "resume", "meet_gate", "next", "extend_budget")
"""What ``next_action`` may say an instance needs: nothing (it is finished), a retry of
its failed phase, a person's approval to go on, a resume by hand, its exit gate's open
items met, or its phase done and completed with a step; or a person allowing more
budget."""


def next_action(state: WorkflowInstanceState, open_gates: Iterable[JSON] = ()) -> str:
    """What the instance needs next (one of ``NEXT_ACTIONS``), given what its current
    phase's exit gate still misses (``instance_view``'s ``open_gates``)."""
    if state.status is InstanceStatus.FAILED:
        return "retry"
    if state.status.is_finished:
        return "none"
    if state.pause is not None:
        if state.pause.get("kind") == "budget":
            return "extend_budget"
        return "approve_entry" if awaits_approval(state) else "resume"
    return "meet_gate" if any(True for _ in open_gates) else "next"


def latest_task(state: WorkflowInstanceState, phase: str) -> str:
    """The task key of ``phase``'s latest visit that recorded its texts (a later visit's
    is ``<phase>--<visit>``); the phase's name if none did."""
    tasks = [entry.task for entry in state.history if entry.phase == phase and entry.task]
    return tasks[-1] if tasks else phase


def looks_like_file(target: str) -> bool:
    """A workflow argument is a file when it has a schema suffix or a path separator
    (else it names a registered workflow)."""
    from pathlib import PurePath  # noqa: PLC0415 - pathlib costs start-up for most commands

    from chatflow.core.registry import SCHEMA_SUFFIXES  # noqa: PLC0415

    return PurePath(target).suffix in SCHEMA_SUFFIXES or "/" in target or "\\" in target


def start(
    engine: WorkflowEngine,
    workflow: str,
    feature_id: str,
    variables: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    version: str | None = None,
    *,
    actor: str | None = None,
    budget: dict[str, Any] | None = None,
) -> str:
    """Start an instance of ``workflow``, a registered name (at ``version``, default the
    latest) or a JSON/YAML file, which is registered so that later starts by name and
    upgrades find it; return the new instance's id."""
    if looks_like_file(workflow):
        from pathlib import Path  # noqa: PLC0415

        from chatflow.core.registry import load_schema  # noqa: PLC0415
        from chatflow.errors import SchemaNotFoundError, ValidationError  # noqa: PLC0415

        if version is not None:
            raise ValidationError("a version applies to a workflow name, not a file")
        if not Path(workflow).is_file():
            raise SchemaNotFoundError(f"workflow file {workflow!r} not found")
        schema = load_schema(workflow)
        engine.register_schema(schema, replace=False)
        return engine.start_workflow_instance(
            schema, variables, feature_id, meta, actor=actor, budget=budget
        )
    return engine.start_workflow_instance(
        None,
        variables,
        feature_id,
        meta,
        schema_name=workflow,
        schema_version=int(version) if version and version.isdigit() else version,
        actor=actor,
        budget=budget,
    )
