"""What ``/api/`` answers: the shapes of ``chatflow.views`` (the CLI's ``--json``).

Every answer is a ``chatflow.views`` shape, sometimes with keys added for the page
(shapes only ever gain keys): ``updated_at`` on roll-ups, ``workflow_title`` on an
instance. The overview's roll-ups come
from one ``list_feature_counts`` call, so their ``phases`` is left empty: filling it
costs an instance load per feature (a feature's own roll-up has it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from chatflow import views
from chatflow.agent import person
from chatflow.core.engine import WorkflowEngine
from chatflow.domain.definition import workflow_of
from chatflow.domain.models import (
    WorkflowInstanceState,
)
from chatflow.domain.status import feature_rollup
from chatflow.errors import InstanceNotFoundError, ValidationError
from chatflow.storage.base import not_found

MAX_TEXT = 200  # actor names, notes and reasons typed into the page

Json = dict[str, Any]


def feature_rollups(engine: WorkflowEngine) -> list[Json]:
    """Every feature's roll-up (``phases`` empty), the newest activity first.

    One ``list_feature_counts`` call answers it (one query, or one scan of the store's
    index files), so the overview of 10,000 instances loads no instance.
    """
    overview = engine.state_store.list_feature_counts()
    overview.sort(key=lambda found: found.updated_at, reverse=True)
    lost = engine.unreadable_by_feature()
    rollups = []
    for found in overview:
        rollup = feature_rollup(found.feature_id, found.counts)
        view = views.feature_view(rollup, lost.get(found.feature_id, ()))
        view["updated_at"] = views.iso_time(found.updated_at)
        rollups.append(view)
    return rollups


def overview(engine: WorkflowEngine) -> Json:
    """The overview page: ``feature_rollups`` and their totals (``views.overview``)."""
    return views.overview(feature_rollups(engine))


def feature(engine: WorkflowEngine, feature_id: str) -> Json:
    """The feature's roll-up (as ``chatflow features --json``) plus ``updated_at``."""
    summaries = engine.list_instances(feature_id=feature_id)
    if not summaries:
        raise InstanceNotFoundError(f"no feature {feature_id!r}", feature_id=feature_id)
    view = views.feature_view(engine.get_feature_status(feature_id))
    view["updated_at"] = views.iso_time(max(summary.updated_at for summary in summaries))
    ids = [summary.instance_id for summary in summaries]
    view["usage"] = views.feature_usage(views.readable_states(engine, ids))
    return view


def instance_rows(
    engine: WorkflowEngine,
    feature_id: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[Json]:
    """``chatflow list --json`` rows, newest first (at most ``limit``); an instance that
    cannot be read is its ``unreadable`` row, so one damaged instance breaks no page.

    Only the rows returned are loaded, so a page of a feature with 10,000 instances
    costs one listing and ``limit`` loads.
    """
    summaries = engine.list_instances(feature_id=feature_id, status=status)
    summaries.sort(key=lambda summary: summary.created_at, reverse=True)
    return views.listed_rows(engine, summaries[:limit])


def instance(engine: WorkflowEngine, instance_id: str) -> WorkflowInstanceState:
    """The instance, or ``InstanceNotFoundError`` (the page answers 404)."""
    state = engine.get_workflow_instance_status(instance_id)
    if state is None:
        raise not_found(instance_id)
    return state


def instance_view(engine: WorkflowEngine, instance_id: str) -> Json:
    """``chatflow show --json`` (artifacts verified) plus the workflow's ``title``."""
    state = instance(engine, instance_id)
    view = views.instance_view(state, views.artifact_checks(engine, state))
    view["workflow_title"] = workflow_of(state.workflow_schema).title
    return view


def stamp(engine: WorkflowEngine, instance_id: str) -> Json:
    """What changes with every write: the page polls this to know when to reload."""
    state = instance(engine, instance_id)
    return {
        "version": state.version,
        "updated_at": views.iso_time(state.updated_at),
        "status": state.status.value,
    }


FEED_PAGE = 500  # changes in one /api/events answer; "more" says to ask again at once


def events(
    engine: WorkflowEngine, cursor: str | None, feature: str | None, instance: str | None
) -> Json:
    """What changed after ``cursor`` (the store's change feed): the page follows this one
    request instead of polling every instance it shows, and reloads only what changed.
    Without a cursor: none, and the cursor now, to follow from."""
    if cursor is None:
        return {"cursor": engine.feed_end(), "changes": [], "more": False}
    page = engine.events_since(cursor, feature=feature, instance=instance, limit=FEED_PAGE)
    changes = [views.feed_event_view(e.instance_id, e.feature_id, e.event) for e in page.events]
    return {"cursor": page.cursor, "changes": changes, "more": len(changes) == FEED_PAGE}


def history(engine: WorkflowEngine, instance_id: str) -> list[Json]:
    """``chatflow history --json``."""
    return views.history_view(engine.get_workflow_history(instance_id))


def artifacts(engine: WorkflowEngine, instance_id: str) -> list[Json]:
    """``chatflow artifacts --json`` for every visit that recorded its texts, with the
    visit and its verdicts (``views.artifact_list``)."""
    return views.artifact_list(engine, instance(engine, instance_id))


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
    if action == "approve":  # a page a coding agent started could be posted to by it
        person.require_person(
            "an approval on this page", "a person starts chatflow ui in their own terminal"
        )
    if action == "approve" and body.get("extend") is not None:
        state = _extend(engine, instance_id, actor, note, body["extend"])
    elif action == "approve":
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
    return views.instance_view(state)  # as a steering command prints it


def _approve(
    engine: WorkflowEngine, instance_id: str, actor: str, note: str | None
) -> WorkflowInstanceState:
    """Let a paused instance enter the phase it waits for (``resume(approved_by=)``);
    otherwise record an approval the current phase's exit gate counts (``engine.approve``)."""
    if views.awaits_approval(instance(engine, instance_id)):
        return engine.resume(instance_id, approved_by=actor, note=note)
    return engine.approve(instance_id, by=actor, note=note)


def _extend(
    engine: WorkflowEngine, instance_id: str, actor: str, note: str | None, extend: object
) -> WorkflowInstanceState:
    """A person allows more budget (``{"extend": {"cost_usd": 5}}``) and the instance goes on."""
    if not isinstance(extend, dict) or not all(isinstance(key, str) for key in extend):
        raise ValidationError('extend must be an object such as {"cost_usd": 5}', field="extend")
    return engine.extend_budget(instance_id, by=actor, note=note, **extend)


def _text(value: object, what: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ValidationError(f"{what} is required: say who acts", field=what)
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.strip():
        raise ValidationError(f"{what} must be a text of 1 to {MAX_TEXT} characters", field=what)
    return value.strip()
