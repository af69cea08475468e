"""The JSON the page and ``/api/`` serve, built from the engine's public API.

Shapes follow the CLI's ``--json`` output: a feature roll-up is
``engine.get_feature_status`` (plus ``updated_at``, the feature's newest activity), one
instance is ``WorkflowInstanceState.to_dict()``, its history is
``[WorkflowEvent.to_dict()]``. Artifacts are re-checked here rather than through
``get_task_artifacts`` so that a mismatching checksum is shown as "not verified" next
to the texts instead of hiding them behind an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from chatflow.core.engine import WorkflowEngine
from chatflow.core.models import WorkflowInstanceState, sha256_text
from chatflow.core.schema import schema_version
from chatflow.core.status import feature_rollup, progress
from chatflow.errors import InstanceNotFoundError, ValidationError
from chatflow.storage.base import InstanceSummary, not_found, status_counts

MAX_TEXT = 200  # actor names, notes and reasons typed into the page

Json = dict[str, Any]


def feature_rollups(engine: WorkflowEngine) -> list[Json]:
    """Every feature's roll-up (without ``phases``), the newest activity first.

    One ``list_instances`` call answers it, so the overview of 10,000 instances costs
    one listing rather than a roll-up query and an instance load per feature.
    """
    by_feature: dict[str, list[InstanceSummary]] = {}
    for summary in engine.list_instances():
        by_feature.setdefault(summary.feature_id, []).append(summary)
    rollups = []
    for feature_id, summaries in by_feature.items():
        rollup = feature_rollup(feature_id, status_counts(summaries))
        del rollup["phases"]  # the active instance's phases: one load each, on its page
        rollup["updated_at"] = max(summary.updated_at for summary in summaries)
        rollups.append(rollup)
    rollups.sort(key=lambda rollup: rollup["updated_at"], reverse=True)
    return rollups


def feature(engine: WorkflowEngine, feature_id: str) -> Json:
    """``get_feature_status`` plus ``updated_at``; an unknown feature is not found."""
    summaries = engine.list_instances(feature_id=feature_id)
    if not summaries:
        raise InstanceNotFoundError(f"no feature {feature_id!r}", feature_id=feature_id)
    rollup = engine.get_feature_status(feature_id)
    rollup["updated_at"] = max(summary.updated_at for summary in summaries)
    return rollup


def instance_rows(
    engine: WorkflowEngine,
    feature_id: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[Json]:
    """One row per instance, newest first (at most ``limit``): what a feature page lists.

    Only the rows returned are loaded (for workflow, version and progress), so a page
    of a feature with 10,000 instances costs one listing and ``limit`` loads.
    """
    summaries = engine.list_instances(feature_id=feature_id, status=status)[::-1]
    return [
        _row(summary, engine.get_workflow_instance_status(summary.instance_id))
        for summary in summaries[:limit]
    ]


def _row(summary: InstanceSummary, state: WorkflowInstanceState | None) -> Json:
    row: Json = summary._asdict()
    if state is not None:
        row["workflow_name"] = state.workflow_name
        row["schema_version"] = schema_version(state.workflow_schema)
        row["progress"] = progress(state)
        row["history_length"] = len(state.history)
    return row


def instance(engine: WorkflowEngine, instance_id: str) -> WorkflowInstanceState:
    """The instance, or ``InstanceNotFoundError`` (the page answers 404)."""
    state = engine.get_workflow_instance_status(instance_id)
    if state is None:
        raise not_found(instance_id)
    return state


def stamp(engine: WorkflowEngine, instance_id: str) -> Json:
    """What changes with every write: the page polls this to know when to reload."""
    state = instance(engine, instance_id)
    return {"version": state.version, "updated_at": state.updated_at, "status": state.status.value}


def history(engine: WorkflowEngine, instance_id: str) -> list[Json]:
    return [event.to_dict() for event in engine.get_workflow_history(instance_id)]


def artifacts(engine: WorkflowEngine, instance_id: str) -> list[Json]:
    """Prompt and response of every visit that recorded them, checksums re-computed."""
    state = instance(engine, instance_id)
    found = []
    visits: dict[str, int] = {}
    for index, entry in enumerate(state.history):
        visits[entry.phase] = visits.get(entry.phase, 0) + 1
        if not entry.task:
            continue
        stored = engine.state_store.load_task_artifacts(instance_id, entry.task)
        if stored is None:
            continue
        record = stored.get("record") or {}
        item: Json = {
            "task": entry.task,
            "phase": entry.phase,
            "visit": visits[entry.phase],
            "history_index": index,
            "record": record,
        }
        for what in ("prompt", "response"):
            text = stored.get(what)
            digest = sha256_text(text) if isinstance(text, str) else None
            item[what] = text
            item[f"{what}_sha256"] = digest
            item[f"{what}_verified"] = digest is not None and digest == record.get(
                f"{what}_checksum"
            )
        found.append(item)
    return found


def verification(engine: WorkflowEngine, instance_id: str) -> Json:
    """``engine.verify``'s verdict on the instance's hash-chained log, where it exists.

    ``verify`` returns ``None`` for a clean instance, else the first problem found:
    ``{"available", "ok", "problem"}`` with the problem as text and as fields.
    """
    instance(engine, instance_id)
    verify: Callable[[str], Any] | None = getattr(engine, "verify", None)
    if verify is None:
        return {"available": False, "ok": None, "problem": None}
    found = verify(instance_id)
    if found is None or found is True:
        return {"available": True, "ok": True, "problem": None}
    return {"available": True, "ok": False, "problem": str(found), "details": _plain(found)}


def _plain(value: Any) -> Any:
    """JSON-ready fields of whatever ``verify`` reports (a dataclass, a dict, a bool)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# -- actions ---------------------------------------------------------------------------

ACTIONS = ("approve", "reject", "pause", "resume", "retry", "cancel")


def act(engine: WorkflowEngine, instance_id: str, action: str, body: Json) -> Json:
    """Run one of ``ACTIONS`` as ``actor``, recorded in the event log as the CLI does."""
    actor = _text(body.get("actor"), "actor", required=True)
    note = _text(body.get("note"), "note")
    assert actor is not None
    if action == "approve":
        state = _approve(engine, instance_id, actor, note)
    elif action == "reject":
        state = engine.reject(instance_id, rejected_by=actor, note=note)
    elif action == "pause":
        state = engine.pause(instance_id, note or "", actor=actor)
    elif action == "resume":
        state = engine.resume(instance_id, note=note, actor=actor)
    elif action == "retry":
        state = engine.retry_phase(instance_id, note=note, actor=actor)
    elif action == "cancel":
        state = engine.cancel(instance_id, note or "", actor=actor)
    else:
        raise ValidationError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    result: Json = state.to_dict()
    return result


def _approve(
    engine: WorkflowEngine, instance_id: str, actor: str, note: str | None
) -> WorkflowInstanceState:
    """Let a paused instance enter the phase it waits for (``resume(approved_by=)``);
    otherwise record an approval the current phase's exit gate counts, where the engine
    has gates (``engine.approve``)."""
    current = instance(engine, instance_id)
    waiting = current.pause is not None and current.pause.get("kind") == "approval"
    approve: Callable[..., WorkflowInstanceState] | None = getattr(engine, "approve", None)
    if waiting or approve is None:
        return engine.resume(instance_id, approved_by=actor, note=note)
    return approve(instance_id, by=actor, note=note)


def _text(value: object, what: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ValidationError(f"{what} is required: say who acts", field=what)
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.strip():
        raise ValidationError(f"{what} must be a text of 1 to {MAX_TEXT} characters", field=what)
    return value.strip()
