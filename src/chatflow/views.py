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

from chatflow.domain.definition import workflow_of
from chatflow.domain.models import (
    EventKind,
    InstanceStatus,
    TaskArtifacts,
    WorkflowEvent,
    WorkflowInstanceState,
    mismatched_texts,
    record_checksums,
)
from chatflow.errors import ChatFlowError

if TYPE_CHECKING:
    from chatflow.core.engine import WorkflowEngine
    from chatflow.domain.values import Pause
    from chatflow.storage.base import InstanceSummary

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
    ``shown_instance_id`` is the instance ``phases`` describes: the active one, else the
    latest.
    """
    return {
        "feature_id": rollup["feature_id"],
        "status": rollup["status"],
        "total_instances": rollup["total_instances"],
        "counts": {status: rollup.get(f"{status}_count", 0) for status in STATUSES},
        "latest_instance_id": rollup["latest_instance_id"],
        "active_instance_id": rollup["active_instance_id"],
        "shown_instance_id": rollup["active_instance_id"] or rollup["latest_instance_id"],
        "phases": dict(rollup["phases"]),
        "unreadable_instances": list(
            dict.fromkeys([*rollup.get("unreadable_instances", ()), *unreadable])
        ),
    }


def overview_totals(rollups: Iterable[Mapping[str, Any]]) -> JSON:
    """The totals over feature roll-ups (``feature_view`` shapes): how many features and
    instances, the instances by status, how many are ``active`` (created or running: the
    page's first card, so an instance not yet stepped is not missing from every card),
    and how many could not be read. What
    the page's overview heads its table with, ``chatflow features --totals`` and MCP's
    ``status`` report: summed here once, never in a front end."""
    counts = dict.fromkeys(STATUSES, 0)
    features = instances = unreadable = 0
    for rollup in rollups:
        features += 1
        instances += rollup["total_instances"]
        for status in STATUSES:
            counts[status] += rollup["counts"].get(status, 0)
        unreadable += len(rollup.get("unreadable_instances") or ())
    return {
        "features": features,
        "instances": instances,
        "counts": counts,
        "active": counts["created"] + counts["running"],  # under way, not waiting on anyone
        "unreadable_instances": unreadable,
    }


def overview(rollups: list[JSON]) -> JSON:
    """Every feature's roll-up with their ``overview_totals``, from the same roll-ups so
    the totals always add up to the rows (``/api/overview``, ``features --totals``)."""
    return {"totals": overview_totals(rollups), "features": rollups}


def instance_row(state: WorkflowInstanceState) -> JSON:
    """One line of ``chatflow list``: where an instance is, without its history."""
    from chatflow.domain.status import progress  # noqa: PLC0415 - routing costs start-up

    return {
        "instance_id": state.instance_id,
        "feature_id": state.feature_id,
        "workflow": state.workflow_name,
        "workflow_version": workflow_of(state.workflow_schema).version,
        "status": state.status.value,
        "current_phase": state.current_phase,
        "created_at": iso_time(state.created_at),
        "updated_at": iso_time(state.updated_at),
        "progress": progress(state),
        "finished": state.status.is_finished,
        "problem": None,
        "wait": wait_view(state),
    }


UNREADABLE = "unreadable"
"""The ``status`` of a listed instance whose stored state cannot be read."""


def unreadable_row(instance_id: str, feature_id: str | None, problem: str) -> JSON:
    """The list row of an instance that cannot be read: the same keys as
    ``instance_row``, ``status`` ``unreadable`` and ``problem`` saying why, so one
    damaged instance is shown (and named) instead of hiding or breaking a listing."""
    return {
        "instance_id": instance_id,
        "feature_id": feature_id,
        "workflow": None,
        "workflow_version": None,
        "status": UNREADABLE,
        "current_phase": None,
        "created_at": None,
        "updated_at": None,
        "progress": None,
        "finished": None,
        "problem": problem,
        "wait": None,
    }


def listed_rows(engine: WorkflowEngine, summaries: Iterable[InstanceSummary]) -> list[JSON]:
    """``instance_row`` of each listed instance, loaded one by one; one that cannot be
    read is its ``unreadable_row`` (what every listing shows: CLI, page, MCP)."""
    rows = []
    for summary in summaries:
        try:
            state = engine.get_workflow_instance_status(summary.instance_id)
        except ChatFlowError as error:
            rows.append(unreadable_row(summary.instance_id, summary.feature_id, str(error)))
            continue
        if state is not None:  # deleted since it was listed
            rows.append(instance_row(state))
    return waits_first(rows)


def rollup_of(
    feature_id: str, states: list[WorkflowInstanceState], unreadable: Iterable[str] = ()
) -> JSON:
    """The roll-up view of a feature from its readable instances (oldest first), for
    when the store's counts cannot be read: the engine's own rule
    (``status.feature_rollup``) over these instances, naming the ``unreadable`` ones."""
    from chatflow.domain.status import feature_rollup, phase_statuses  # noqa: PLC0415
    from chatflow.storage.base import status_counts, summarize  # noqa: PLC0415

    rollup = feature_rollup(feature_id, status_counts([summarize(s.to_dict()) for s in states]))
    shown_id = rollup["active_instance_id"] or rollup["latest_instance_id"]
    shown = next((s for s in states if s.instance_id == shown_id), None)
    rollup["phases"] = phase_statuses(shown) if shown is not None else {}
    return feature_view(rollup, unreadable)


def artifact_checks(engine: WorkflowEngine, state: WorkflowInstanceState) -> dict[str, JSON]:
    """Task key -> its checksums and whether the stored texts still match them.

    A record that cannot be read or verified is reported (``verified: false`` and the
    ``problem``), never raised: one bad artifact must not hide the rest of ``show``.
    """
    return {task: check for task, (check, _) in _read_tasks(engine, state).items()}


def _read_tasks(
    engine: WorkflowEngine, state: WorkflowInstanceState
) -> dict[str, tuple[JSON, TaskArtifacts | None]]:
    """Task key -> its check and its texts (``None`` if unreadable), each read once."""
    found: dict[str, tuple[JSON, TaskArtifacts | None]] = {}
    for entry in state.history:
        if entry.task and entry.task not in found:
            found[entry.task] = _read_task(engine, state.instance_id, entry.task)
    return found


def _read_task(
    engine: WorkflowEngine, instance_id: str, task: str
) -> tuple[JSON, TaskArtifacts | None]:
    """The task's check and texts. The store (and the engine) verify: a text that does
    not match is read again unchecked, so the page can show what changed."""
    try:
        artifacts = engine.get_task_artifacts(instance_id, task)
    except ChatFlowError as error:
        unchecked = _unchecked(engine, instance_id, task)
        return _check(task, unchecked, str(error)), unchecked
    problem = None if artifacts is not None else "task record is missing"
    return _check(task, artifacts, problem), artifacts


def _unchecked(engine: WorkflowEngine, instance_id: str, task: str) -> TaskArtifacts | None:
    """The task's stored texts without checking them; ``None`` if they cannot be read."""
    from chatflow.domain.models import TaskExecutionRecord  # noqa: PLC0415

    try:
        stored = engine.state_store.load_task_artifacts(instance_id, task, checked=False)
    except ChatFlowError:
        return None
    if stored is None:
        return None
    try:
        record = TaskExecutionRecord.from_dict(stored.get("record"))
    except ChatFlowError:  # the texts are still shown, under a record saying so
        record = TaskExecutionRecord(phase_name=task, status=UNREADABLE, started_at=0.0)
    return TaskArtifacts(record, str(stored.get("prompt", "")), str(stored.get("response", "")))


def _check(key: str, artifacts: TaskArtifacts | None, problem: str | None) -> JSON:
    """The one verdict on a task's texts. ``prompt_sha256``/``response_sha256`` are the
    checksums recorded with them (the one checksum field of every view);
    ``prompt_verified``/``response_verified`` say which text still matches its own."""
    record = artifacts.record if artifacts is not None else None
    prompt_ok = response_ok = problem is None
    if artifacts is not None and problem is not None:
        checksums = record_checksums(artifacts.record.to_dict())
        bad = mismatched_texts(artifacts.prompt, artifacts.response, checksums)
        prompt_ok, response_ok = "prompt" not in bad, "response" not in bad
    return {
        "task": key,
        "prompt_sha256": record.prompt_checksum if record else None,
        "response_sha256": record.response_checksum if record else None,
        "verified": problem is None,
        "problem": problem,
        "prompt_verified": prompt_ok,
        "response_verified": response_ok,
    }


def artifact_list(engine: WorkflowEngine, state: WorkflowInstanceState) -> list[JSON]:
    """``artifacts_view`` of every visit that recorded its texts, oldest first, with the
    visit's ``visit`` and ``history_index`` and its check (``_check``'s verdicts). A text
    that no longer matches is still shown: the page shows what changed."""
    tasks = _read_tasks(engine, state)
    found = []
    for row in _timeline(state, {}, []):
        task = state.history[row["index"]].task
        check, artifacts = tasks.get(task, ({}, None)) if task else ({}, None)
        if artifacts is None:
            continue
        item = artifacts_view(state.instance_id, task, artifacts)
        item.update(visit=row["visit"], history_index=row["index"])
        item.update({key: check[key] for key in _VERDICT})
        found.append(item)
    return found


_VERDICT = ("verified", "problem", "prompt_verified", "response_verified")


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
    from chatflow.domain.history import timeline  # noqa: PLC0415
    from chatflow.domain.status import status_info  # noqa: PLC0415 - show only

    info = status_info(state)
    gates = (info.get("open_requirements") or []) if open_gates is None else open_gates
    log = timeline(state)
    rows = _timeline(state, checks or {}, log)
    return {
        **instance_row(state),
        "version": state.version,
        "variables": state.variables,
        "meta": state.meta,
        "phase_title": _phase_title(state),
        "pause": _pause_view(state.pause_info, state.pause),
        "open_gates": list(gates),
        "actions": available_actions(state, gates),
        "parent": state.parent,
        "next_phase": info["next_phase"],
        "progress": info["progress"],
        "visits": dict(state.visits),
        "retries": dict(state.retries),
        "failure": _failure(state, log),
        "summary": _summary(state, rows, log),
        "timeline": rows,
        "usage": usage_view(state),
        "budgets": budget_view(state),
    }


def _phase_title(state: WorkflowInstanceState) -> str | None:
    workflow = workflow_of(state.workflow_schema)
    current = state.current_phase
    return workflow.phase(current).title if workflow.has_phase(current) else None


def _pause_view(pause: Pause | None, stored: Mapping[str, Any] | None = None) -> JSON | None:
    if pause is None:
        return None
    view: JSON = {"kind": pause.kind, "reason": pause.because, "risk": pause.risk}
    if pause.kind == "budget" and stored is not None:  # the numbers: which limit, how much
        view["crossed"] = list(stored.get("crossed") or [])
    return view


def _timeline(
    state: WorkflowInstanceState, checks: Mapping[str, JSON], log: list[WorkflowEvent]
) -> list[JSON]:
    """One row per visit (history entry). ``visit`` numbers the phase's visits;
    ``end_at`` is when the visit stopped (its end, or the instance's if it finished
    mid-visit; ``null`` while it goes on); ``events`` are the positions in ``log`` (the
    event log, ``history_view``) of what happened during it, entering and completing
    aside; ``waited_s`` is the time it spent paused or waiting for approval, not
    counting a wait still open since ``waiting_since``."""
    decisions: dict[int, list[JSON]] = {}
    for event in state.events:
        decision = _decision(event)
        if decision is not None:
            decisions.setdefault(event.history_index, []).append(decision)
    during: dict[int, list[int]] = {}
    for position, event in enumerate(log):
        if event.kind not in (
            EventKind.PHASE_ENTERED,
            EventKind.PHASE_COMPLETED,
            EventKind.FILES_TOUCHED,
        ):
            during.setdefault(_row_of(event), []).append(position)
    from chatflow.domain.history import visit_numbers  # noqa: PLC0415

    finished_at = state.updated_at if state.status.is_finished else None
    files = files_by_visit(state)
    visits = visit_numbers(state.history)
    rows = []
    for index, entry in enumerate(state.history):
        ended = entry.ended_at
        end = ended if ended is not None else finished_at
        events = during.get(index, [])
        waited, since = _waits([log[position] for position in events], end)
        rows.append(
            {
                "index": index,
                "phase": entry.phase,
                "visit": visits[index],
                "status": entry.status,
                "started_at": iso_time(entry.started_at),
                "ended_at": iso_time(ended),
                "duration_s": None if ended is None else round(ended - entry.started_at, 3),
                "actor": entry.actor,
                "approvals": decisions.get(index, []),
                "artifacts": checks.get(entry.task) if entry.task else None,
                "end_at": iso_time(end),
                "events": events,
                "waited_s": waited,
                "waiting_since": iso_time(since),
                "files": files.get(index, []),
                **commits_view(entry.git),
            }
        )
    return rows


def commits_view(git: Mapping[str, Any] | None) -> JSON:
    """A visit's git links (``chatflow.core.gitlinks``): ``commits``, the work tree at the
    visit's ``start`` and ``end`` (``commit``, its 7-character ``short`` form, ``branch``,
    ``dirty``), and ``commits_text``, the line ``show`` and the page print (``None``: no
    link recorded)."""
    commits = []
    for when in ("start", "end"):
        where = (git or {}).get(when)
        if isinstance(where, dict):
            commit = where.get("commit")
            short = commit[:7] if isinstance(commit, str) else None
            commits.append({"when": when, **where, "short": short})
    return {"commits": commits, "commits_text": _commits_text(commits) if commits else None}


def _commits_text(commits: list[JSON]) -> str:
    """``a1b2c3d main → d4e5f6a main (dirty)``: where the visit started and ended."""
    parts = []
    for where in commits:
        text = where["short"] or "(no commit yet)"
        text += f" {where['branch']}" if where.get("branch") else " (detached)"
        parts.append(text + (" (dirty)" if where.get("dirty") else ""))
    if len(commits) == 1 and commits[0]["when"] == "end":
        return "… → " + parts[0]
    return " → ".join(parts)


def _row_of(event: WorkflowEvent) -> int:
    """The visit an event belongs to: a fork's ``started`` event is logged after the
    visits it inherited, and begins the fresh visit it names."""
    forked = event.kind is EventKind.STARTED and event.data.get("forked_from")
    index = event.data.get("history_index") if forked else None
    return index if isinstance(index, int) else event.history_index


_WAIT_STARTS = (EventKind.APPROVAL_REQUESTED, EventKind.PAUSED, EventKind.BUDGET_EXCEEDED)
"""What pauses an instance: by hand, for an approval, or on crossing a budget."""
_WAIT_ENDS = (EventKind.RESUMED, EventKind.REJECTED)


def _waits(events: Iterable[WorkflowEvent], end: float | None) -> tuple[float, float | None]:
    """Seconds paused or waiting for approval among ``events``, and when a wait still
    open began (``None`` if none is, or the visit ``end``ed, which closes it)."""
    total, since = 0.0, None
    for event in events:
        if event.kind in _WAIT_STARTS and since is None:
            since = event.at
        elif event.kind in _WAIT_ENDS and since is not None:
            total, since = total + event.at - since, None
    if since is not None and end is not None:
        total, since = total + max(end - since, 0.0), None
    return round(total, 3), since


def _summary(state: WorkflowInstanceState, rows: list[JSON], log: list[WorkflowEvent]) -> JSON:
    """The timeline's counts: visits, retries, failures, approvals and pauses, the time
    spent waiting (``waited_s`` closed, plus since ``waiting_since`` if still open), and
    ``started_at``, the earliest start (a fork inherits visits older than itself)."""
    kinds = [event.kind for event in log]
    starts = [state.created_at, *(entry.started_at for entry in state.history)]
    return {
        "started_at": iso_time(min(starts)),
        "visits": len(rows),
        "retries": kinds.count(EventKind.RETRIED),
        "failures": kinds.count(EventKind.FAILED),
        "approvals": sum(1 for event in log if _approval(event)),
        "pauses": sum(kinds.count(kind) for kind in _WAIT_STARTS),
        "waited_s": round(sum(row["waited_s"] for row in rows), 3),
        "waiting_since": next((r["waiting_since"] for r in rows if r["waiting_since"]), None),
    }


def _failure(state: WorkflowInstanceState, log: list[WorkflowEvent]) -> str | None:
    """Why a failed instance failed: the error of its latest ``failed`` event."""
    if state.status is not InstanceStatus.FAILED:
        return None
    failed = [event for event in log if event.kind is EventKind.FAILED]
    error = failed[-1].data.get("error") if failed else None
    return str(error) if error else None


def _approval(event: WorkflowEvent) -> bool:
    """An exit gate's approval, or the approval that ended an approval pause."""
    decision = _decision(event)
    return event.kind is EventKind.APPROVED or (
        decision is not None and decision["decision"] == "approved"
    )


def files_by_visit(state: WorkflowInstanceState) -> dict[int, list[JSON]]:
    """History index -> the files touched during that visit (``record_files``): one
    entry per path, ``{"path", "sha256", "bytes", "at"}`` as last recorded, in the order
    they were last written."""
    found: dict[int, dict[str, JSON]] = {}
    for event in state.events:
        if event.kind is not EventKind.FILES_TOUCHED:
            continue
        visit = found.setdefault(event.history_index, {})
        for entry in event.data.get("files", []):
            path = str(entry.get("path"))
            visit.pop(path, None)
            visit[path] = {**entry, "at": iso_time(event.at)}
    return {index: list(paths.values()) for index, paths in found.items()}


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
    """The event log (``engine.get_workflow_history``), oldest first. ``approval`` says
    whether the event approved something (a resume is one only when it ended an
    approval pause)."""
    return [
        {
            "kind": event.kind.value,
            "at": iso_time(event.at),
            "actor": event.actor,
            "phase": event.phase,
            "history_index": event.history_index,
            "data": event.data,
            "approval": _approval(event),
        }
        for event in events
    ]


def artifacts_view(instance_id: str, task: str, artifacts: TaskArtifacts) -> JSON:
    """A phase's recorded prompt and response with their (verified) checksums, under
    their one name in every view (``prompt_sha256``; ``models.RECORD_CHECKSUMS``)."""
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
    return state.pause_info is not None and state.pause_info.is_approval


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
    from chatflow.domain.lifecycle import ALLOWED  # noqa: PLC0415

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


# -- time and money (chatflow.domain.usage, budgets, deadlines) ---------------------------


def usage_view(state: WorkflowInstanceState) -> JSON:
    """What the instance spent: in total, per phase and per visit (OpenTelemetry GenAI
    names: ``gen_ai.usage.input_tokens``, ..., ``chatflow.cost_usd``). Per visit reads
    the ``usage`` events; the totals are the running sums every record updates."""
    from chatflow.domain import usage  # noqa: PLC0415

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
    from chatflow.domain import usage  # noqa: PLC0415

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


def readable_states(engine: WorkflowEngine, ids: Iterable[str]) -> list[WorkflowInstanceState]:
    """The instances of ``ids`` that can be read (a feature's spend sums theirs; an
    unreadable one is named by its listing row, never the end of the page)."""
    found = []
    for instance_id in ids:
        try:
            state = engine.get_workflow_instance_status(instance_id)
        except ChatFlowError:
            continue
        if state is not None:
            found.append(state)
    return found


def _add_totals(into: JSON, totals: Mapping[str, Any]) -> None:
    from chatflow.domain import usage  # noqa: PLC0415

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
    from chatflow.domain import budgets  # noqa: PLC0415

    workflow = workflow_of(state.workflow_schema)
    if not budgets.has_budget(state, workflow):
        return []
    rows = budgets.standing(state, workflow, budgets.now_or(now))
    for row in rows:
        used, limit = (budgets.amount_text(row["key"], row[k]) for k in ("used", "limit"))
        row["shown"] = f"{used} of {limit}"
    return rows


def wait_view(state: WorkflowInstanceState, now: float | None = None) -> JSON | None:
    """What the instance waits for under a deadline, since when, and how overdue."""
    if state.wait is None:  # most instances: nothing to import or compute
        return None
    from chatflow.domain import budgets, deadlines  # noqa: PLC0415

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


def feed_event_view(instance_id: str, feature_id: str, event: Mapping[str, Any]) -> JSON:
    """One change-feed event (``engine.events_since``) as ``chatflow watch``, the page and
    MCP show it: what kind of change, and the status, phase and task it set, if any."""
    kind = event.get("kind")
    changed = event.get("state") if kind in ("created", "checkpoint") else event.get("set")
    changed = changed if isinstance(changed, dict) else {}
    return {
        "instance_id": instance_id,
        "feature_id": feature_id,
        "seq": event.get("seq"),
        "kind": kind,
        "at": iso_time(changed.get("updated_at")),
        "status": changed.get("status"),
        "phase": changed.get("current_phase"),
        "task": event.get("task"),
    }


CHANGE_KINDS = ("created", "update", "artifact", "checkpoint")
"""The kinds of change the store's log records (``chatflow.storage._log``)."""
EVENT_TYPES = tuple(kind.value for kind in EventKind) + CHANGE_KINDS
"""Every name ``feed_event_types`` gives: what a webhook's ``--events`` filter matches."""


def feed_event_types(event: Mapping[str, Any]) -> list[str]:
    """What one change-feed event did, by name (each in ``EVENT_TYPES``), in order.

    A plain step stores its "phase completed" and "phase entered" only as the history
    entries it closes and opens (``chatflow.domain.history``), so they are read from
    those; then come the lifecycle events it logged (``approved``, ``completed`` ...);
    an approval that ended an approval pause is logged as ``resumed`` with
    ``approved_by``, and named ``approved`` too (not the end of a budget pause: more
    money is no approval, as ``history_view`` says too).
    A ``created`` change is ``created``, how (``started``, ``forked``) and
    ``phase_entered``; a change that logged none of these is named by its kind
    (``update``, ``artifact``, ``checkpoint``), so every event has at least one name.
    """
    kind = str(event.get("kind"))
    if kind == "created":
        state = event.get("state")
        logged = _dicts(state.get("events") if isinstance(state, dict) else None)
        how = [str(logged[-1].get("kind"))] if logged else []
        return _unique(["created", *how, EventKind.PHASE_ENTERED.value])
    if kind != "update":
        return [kind]
    lists = _dict(event.get("lists"))
    history = _dict(lists.get("history"))
    names = [
        EventKind.PHASE_COMPLETED.value
        for entry in _dict(history.get("put")).values()
        if isinstance(entry, dict) and entry.get("status") == "completed"
    ]
    names += [EventKind.PHASE_ENTERED.value for _ in _dicts(history.get("items"))]
    for item in _dicts(_dict(lists.get("events")).get("items")):
        names.append(str(item.get("kind")))
        data = _dict(item.get("data"))
        if item.get("kind") == EventKind.RESUMED.value and data.get("kind") == "approval":
            names.append(EventKind.APPROVED.value)  # an approval that ended a pause
    return _unique(names) or [kind]


def feed_lifecycle_events(event: Mapping[str, Any]) -> list[JSON]:
    """The lifecycle events an ``update`` change logged (who approved, what failed ...),
    as the timeline shows them (``kind``, ``at``, ``actor``, ``phase``, ``data``)."""
    if event.get("kind") != "update":
        return []
    lists = event.get("lists")
    events = lists.get("events") if isinstance(lists, dict) else None
    items = _dicts(events.get("items")) if isinstance(events, dict) else []
    return [
        {
            "kind": item.get("kind"),
            "at": iso_time(item.get("at")),
            "actor": item.get("actor"),
            "phase": item.get("phase"),
            "data": item.get("data"),
        }
        for item in items
    ]


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
