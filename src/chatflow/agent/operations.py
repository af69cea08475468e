"""What ``chatflow mcp``'s tools, resources and prompts do, in terms of the engine.

Standard library only (the SDK glue is ``mcp_server``). Every answer is a JSON-ready
dict built from ``chatflow.views``; a refused step is an answer (``outcome:
"refused"`` listing every missing item), a mistake is a ``ChatFlowError`` whose
``phrased(TERMS)`` tells an agent what to do in its own terms: its tools, or what a
person runs.
"""

from __future__ import annotations

import re
from typing import Any

from chatflow import views
from chatflow.core.engine import WorkflowEngine
from chatflow.domain.models import InstanceStatus, WorkflowInstanceState
from chatflow.errors import ChatFlowError, GateNotSatisfiedError, ValidationError, phrase
from chatflow.storage.base import not_found

JSON = dict[str, Any]

PERSON_APPROVES = (
    "a person's approval: `chatflow approve {instance_id} --by NAME` or the web page "
    "(`chatflow ui --allow-actions`)"
)
TERMS: dict[str, str] = {
    "resume": "a person resuming it (`chatflow resume {instance_id}`)",
    "approve_entry": PERSON_APPROVES,
    "approve": PERSON_APPROVES,
    "reject": "a person rejecting it (`chatflow reject {instance_id} --by NAME`)",
    "cancel": "`chatflow cancel {instance_id}` (a person)",
    "retry": "the `retry` tool",
    "jump": "`chatflow jump {instance_id} PHASE` (a person)",
    "record": "the `record` tool",
    "map": "`--map OLD=NEW`",
    "extend_budget": (
        "a person allowing more (`chatflow approve {instance_id} --by NAME --extend KEY=AMOUNT`)"
    ),
    "feed_start": "start again without a cursor",
    "feed_cursor": "an earlier answer",
}
"""The library's remedies (``chatflow.errors.TERMS``) as an agent can act on them: its
own tools, or what a person runs (an agent never approves)."""

WHAT_TO_DO = {
    "none": "nothing: the instance is {status}",
    "retry": "call `retry` to start the failed phase over (or a person cancels it)",
    "approve_entry": (
        "it waits for a person's approval: call `next` to ask them (if your client can "
        "show them a form), else they run `chatflow approve {instance_id} --by NAME` "
        "or use the web page"
    ),
    "resume": "it was paused by hand: wait for a person to run `chatflow resume {instance_id}`",
    "meet_gate": "meet every item of `open_gates`, then call `next`",
    "next": "do the phase's work, `record` the prompt and response, then call `next`",
    "extend_budget": (
        "it went over budget: wait for a person to allow more "
        "(`chatflow approve {instance_id} --by NAME --extend KEY=AMOUNT`)"
    ),
}
"""Each of ``views.NEXT_ACTIONS`` in words an agent acts on."""

MAX_LISTED = 100  # features or instances in one status answer: the agent's context is small
MAX_EVENTS = 200  # events in one history answer; page on with the cursor


def phrased(error: ChatFlowError) -> str:
    """The error in one line, in the agent's terms."""
    return " ".join(error.phrased(TERMS).split())


def require(engine: WorkflowEngine, instance_id: str) -> WorkflowInstanceState:
    """The instance, or ``InstanceNotFoundError`` that says where to look."""
    state = engine.get_workflow_instance_status(instance_id)
    if state is None:
        error = not_found(instance_id)
        error.context.setdefault("hint", "; call `status` to list features and their instances")
        raise error
    return state


def gate_items(items: list[JSON], instance_id: str) -> list[JSON]:
    """Open exit-gate items, each with ``to_do``: what meets it, in the agent's terms."""
    found = []
    for item in items:
        remedy = item.get("remedy")
        to_do = (
            phrase("{" + remedy + "}", TERMS, {"instance_id": instance_id})
            if remedy in TERMS
            else "pass it in `next`'s data or the instance's variables"
        )
        found.append({"kind": item["kind"], "text": item["text"], "to_do": to_do})
    return found


def instance_status(state: WorkflowInstanceState) -> JSON:
    """Where an instance is and what it needs next (a short form of ``instance_view``)."""
    view = views.instance_view(state)
    action = views.next_action(state, view["open_gates"])
    entry = state.open_entry
    return {
        "instance_id": state.instance_id,
        "feature_id": state.feature_id,
        "workflow": view["workflow"],
        "status": view["status"],
        "current_phase": state.current_phase,
        "phase_title": view["phase_title"],
        "next_phase": view["next_phase"],
        "progress": view["progress"],
        "actions": view["actions"],
        "recorded": bool(entry is not None and entry.task),
        "open_gates": gate_items(view["open_gates"], state.instance_id),
        "pause": view["pause"],
        "next_action": action,
        "what_to_do": WHAT_TO_DO[action].format(
            status=state.status.value, instance_id=state.instance_id
        ),
        "variables": state.variables,
        "events": len(state.events),
        "updated_at": view["updated_at"],
    }


def status(
    engine: WorkflowEngine, feature_id: str | None = None, instance_id: str | None = None
) -> JSON:
    """One instance, one feature (its roll-up and newest instances), or every feature
    with their ``totals`` (``views.overview_totals``, as the page's overview);
    without arguments in a working tree bound by ``chatflow use``, also the bound
    instance (``instance``) and the binding (``bound``)."""
    if instance_id:
        return {"instance": instance_status(require(engine, instance_id))}
    if feature_id:
        return {"feature": feature(engine, feature_id)}
    rollups = [views.feature_view(rollup) for rollup in engine.list_feature_rollups()]
    answer: JSON = {
        "features": [_short_rollup(view) for view in rollups[:MAX_LISTED]],
        "total_features": len(rollups),
        "totals": views.overview_totals(rollups),
    }
    return {**_bound(engine), **answer}


def _bound(engine: WorkflowEngine) -> JSON:
    """The working tree's bound instance, if ``chatflow use`` bound one that exists."""
    from chatflow.agent import binding  # noqa: PLC0415

    root = binding.work_tree_root()
    found = binding.read(engine.state_store, root)
    if found is None:
        return {}
    instance_id = binding.resolve(engine, found)
    state = None if instance_id is None else engine.get_workflow_instance_status(instance_id)
    bound = {"root": str(root), **found}
    return {"bound": bound, **({"instance": instance_status(state)} if state else {})}


def feature(engine: WorkflowEngine, feature_id: str) -> JSON:
    """The feature's roll-up and its newest instances (at most ``MAX_LISTED``)."""
    summaries = engine.list_instances(feature_id=feature_id)
    if not summaries:
        raise ValidationError(
            f"no feature {feature_id!r} (it has no instances); call `status` with no "
            "arguments to list features, or `start` to begin one",
            field="feature_id",
        )
    summaries.sort(key=lambda summary: summary.created_at, reverse=True)
    view = _short_rollup(views.feature_view(engine.get_feature_status(feature_id)))
    return {**view, "instances": views.listed_rows(engine, summaries[:MAX_LISTED])}


def _short_rollup(view: JSON) -> JSON:
    return {key: view[key] for key in ("feature_id", "status", "counts", "active_instance_id")}


def start(
    engine: WorkflowEngine,
    workflow: str,
    feature_id: str,
    variables: JSON | None = None,
    version: str | None = None,
) -> JSON:
    """Start ``workflow`` (a registered name or a JSON/YAML file) for the feature."""
    instance_id = views.start(engine, workflow, feature_id, variables, {"actor": "mcp"}, version)
    return {"instance": instance_status(require(engine, instance_id))}


def record(
    engine: WorkflowEngine,
    instance_id: str,
    prompt: str,
    response: str,
    usage: JSON | None = None,
) -> JSON:
    """Record the current phase's prompt and response (checksummed), and what it spent
    (``usage``: ``record_usage``'s names; the record that crosses a budget pauses)."""
    require(engine, instance_id)
    engine.record_task_artifacts(instance_id, prompt, response, usage=usage)
    return {"recorded": True, "instance": instance_status(require(engine, instance_id))}


def step(engine: WorkflowEngine, instance_id: str, data: JSON | None) -> JSON:
    """Complete the current phase with ``data`` and route on. ``outcome`` says what
    happened: ``advanced``, ``completed``, ``awaits_approval`` (the phase entered, or
    the one it waits on, needs a person), ``over_budget`` (the step crossed a budget: a
    person allows more), or ``refused`` with every ``missing`` item."""
    state = require(engine, instance_id)
    if views.awaits_approval(state):
        return _outcome("awaits_approval", state)
    try:
        state = engine.trigger_next_step(instance_id, data or {})
    except GateNotSatisfiedError as refusal:
        missing = gate_items(list(refusal.context.get("missing", [])), instance_id)
        answer = _outcome("refused", require(engine, instance_id))
        answer["missing"] = missing
        return answer
    if views.awaits_approval(state):
        return _outcome("awaits_approval", state)
    if state.pause is not None and state.pause.get("kind") == "budget":
        return _outcome("over_budget", state)
    completed = state.status is InstanceStatus.COMPLETED
    return _outcome("completed" if completed else "advanced", state)


def _outcome(outcome: str, state: WorkflowInstanceState) -> JSON:
    return {"outcome": outcome, "instance": instance_status(state)}


def approve(
    engine: WorkflowEngine, instance_id: str, by: str, note: str | None
) -> WorkflowInstanceState:
    """Record ``by``'s approval as ``chatflow approve`` does: let a paused instance go
    on, else count it for the current phase's exit gate. Only a person's answer (an
    elicitation) reaches this: no tool takes an approver."""
    if views.awaits_approval(require(engine, instance_id)):
        return engine.resume(instance_id, approved_by=by, note=note)
    return engine.approve(instance_id, by=by, note=note)


def history(engine: WorkflowEngine, instance_id: str, cursor: int = 0) -> JSON:
    """The instance's events after ``cursor`` (0: from the start), oldest first, at most
    ``MAX_EVENTS``; ``cursor`` in the answer is where the next call goes on from."""
    events = engine.get_workflow_history(require(engine, instance_id).instance_id)
    if cursor < 0 or cursor > len(events):
        raise ValidationError(
            f"cursor {cursor} is outside 0..{len(events)} (the instance has "
            f"{len(events)} events); pass 0 or a cursor an earlier answer gave",
            field="cursor",
        )
    page = events[cursor : cursor + MAX_EVENTS]
    end = cursor + len(page)
    return {"events": views.history_view(page), "cursor": end, "more": end < len(events)}


def fail(engine: WorkflowEngine, instance_id: str, error: str) -> JSON:
    require(engine, instance_id)
    return {"instance": instance_status(engine.fail_phase(instance_id, error))}


def retry(engine: WorkflowEngine, instance_id: str, note: str | None) -> JSON:
    require(engine, instance_id)
    return {"instance": instance_status(engine.retry_phase(instance_id, note=note, actor="mcp"))}


def verify(engine: WorkflowEngine, instance_id: str) -> JSON:
    """Whether the instance's hash-chained log, head and artifacts are intact."""
    require(engine, instance_id)
    problem = engine.verify(instance_id)
    return {"instance_id": instance_id, "ok": problem is None, "problem": _text(problem)}


def _text(problem: object) -> str | None:
    return None if problem is None else str(problem)


# -- resources and prompts ---------------------------------------------------------------


def instance_document(engine: WorkflowEngine, instance_id: str) -> JSON:
    """``chatflow show --json`` of the instance (artifacts verified)."""
    state = require(engine, instance_id)
    return views.instance_view(state, views.artifact_checks(engine, state))


def artifacts_document(engine: WorkflowEngine, instance_id: str, phase: str) -> JSON:
    """``chatflow artifacts --json``: the phase's latest recorded prompt and response."""
    state = require(engine, instance_id)
    key = views.latest_task(state, phase)
    artifacts = engine.get_task_artifacts(instance_id, key)
    if artifacts is None:
        raise ValidationError(
            f"instance {instance_id!r} has no artifacts for phase {phase!r}; "
            "the `record` tool records the current phase's",
            field="phase",
        )
    return views.artifacts_view(instance_id, key, artifacts)


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def phase_prompt(engine: WorkflowEngine, instance_id: str, phase: str | None = None) -> JSON:
    """The phase's (default: the current one's) ``template`` with every ``{{ name }}``
    (``{{ a.b }}`` reads nested variables) filled from the instance's variables.

    ``missing`` names the placeholders no variable fills; they stay as written, so the
    agent sees what it was not given rather than an empty string.
    """
    state = require(engine, instance_id)
    name = phase or state.current_phase
    spec = next((p for p in state.workflow_schema.get("phases", []) if p.get("name") == name), None)
    if spec is None:
        raise ValidationError(f"phase {name!r} is not in workflow {state.workflow_name!r}")
    template = spec.get("template")
    if not isinstance(template, str) or not template:
        raise ValidationError(
            f"phase {name!r} of workflow {state.workflow_name!r} has no template",
            field="phase",
        )
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        value = _lookup(state.variables, match.group(1))
        if value is _ABSENT:
            missing.append(match.group(1))
            return match.group(0)
        return value if isinstance(value, str) else _json(value)

    text = _PLACEHOLDER.sub(fill, template)
    return {"phase": name, "title": spec.get("title"), "text": text, "missing": missing}


_ABSENT = object()


def _lookup(variables: JSON, path: str) -> Any:
    value: Any = variables
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def _json(value: Any) -> str:
    import json  # noqa: PLC0415

    return json.dumps(value, ensure_ascii=False, sort_keys=True)
