"""Live upgrade: move a running instance to another version of its workflow.

``apply`` changes a loaded state (the engine runs it inside one ``update_state``, or
on a private copy for a dry run). It refuses, listing every reason, when:

- the instance is finished or failed (only created, running and paused ones move);
- the target is another workflow, or the very version the instance runs;
- ``phase_map`` names a phase the current version lacks, or maps to one the target lacks;
- the current phase has no counterpart in the target (same name, or mapped);
- the target's limits are already exceeded: a phase visited or retried more often than
  its new ``max_visits`` / ``max_retries`` allow (having reached a limit is fine: it
  binds the next visit or retry);
- the current phase needs approval to be entered in the target, its visit neither had
  nor waits for one, and the instance is paused by hand (it cannot wait for both).

Exit gates are not "violated" by an upgrade: they apply from now on, so the status
report lists what the new version still requires. Approval to enter is honoured as
for every other way into a phase (``lifecycle.gate_entry``): a visit entered without
the approval its phase now requires waits for it after the upgrade, unless forced
(logged as ``approval_overridden``). History entries keep the names they had; the
open visit, the visit and retry counters take the new names, and a
``schema_upgraded`` event records from, to, the map and who did it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatflow._text import counted
from chatflow.domain.definition import Workflow, workflow_of
from chatflow.domain.lifecycle import gate_entry, log_event, schema_ref, visit_events
from chatflow.domain.models import EventKind, InstanceStatus, WorkflowInstanceState
from chatflow.domain.transitions import approval_reasons
from chatflow.errors import SchemaNotFoundError, UpgradeRefusedError

if TYPE_CHECKING:
    from chatflow.core.engine import WorkflowEngine

UPGRADABLE = (InstanceStatus.CREATED, InstanceStatus.RUNNING, InstanceStatus.PAUSED)


@dataclass(frozen=True)
class UpgradeOutcome:
    """What a bulk upgrade did (or, in a dry run, would do) to one instance."""

    instance_id: str
    upgraded: bool
    from_version: int | str | None
    to_version: int | str
    reasons: tuple[str, ...] = ()
    dry_run: bool = False
    unchanged: bool = False
    """It already runs the target (same content): nothing to do, and not a refusal."""
    hint: str | None = None
    """What to do about the refusal (``ChatFlowError``'s ``hint``: ``{term}`` fields)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "upgraded": self.upgraded,
            "unchanged": self.unchanged,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reasons": list(self.reasons),
            "dry_run": self.dry_run,
        }


def upgrade_many(
    engine: WorkflowEngine,
    *,
    to_version: int | str,
    feature_id: str | None,
    workflow_name: str | None,
    phase_map: dict[str, str] | None,
    dry_run: bool,
    actor: str | None,
    force: bool = False,
) -> list[UpgradeOutcome]:
    """``engine.upgrade_instances``: each active instance upgraded on its own (one
    refusal does not stop the others), one outcome each."""
    outcomes = []
    for summary in engine.list_instances(feature_id=feature_id):
        if summary.status not in UPGRADABLE:
            continue
        state = engine.get_workflow_instance_status(summary.instance_id)
        if state is None or workflow_name not in (None, state.workflow_name):
            continue
        source = workflow_of(state.workflow_schema)
        version = source.version
        reasons: tuple[str, ...] = ()
        hint = None
        try:
            target = engine.schemas.find(state.workflow_name, to_version)
            if target.content_hash == source.content_hash:
                outcomes.append(
                    UpgradeOutcome(state.instance_id, False, version, to_version, (), dry_run, True)
                )
                continue
            engine.upgrade_instance(
                state.instance_id,
                to_version=to_version,
                phase_map=phase_map,
                dry_run=dry_run,
                actor=actor,
                force=force,
            )
        except (UpgradeRefusedError, SchemaNotFoundError) as error:
            reasons = tuple(error.context.get("reasons", [str(error)]))
            hint = error.context.get("hint")
        outcome = UpgradeOutcome(
            state.instance_id, not reasons, version, to_version, reasons, dry_run, hint=hint
        )
        outcomes.append(outcome)
    return outcomes


def apply(
    state: WorkflowInstanceState,
    target: Workflow,
    phase_map: dict[str, str],
    actor: str | None,
    now: float,
    *,
    force: bool = False,
) -> None:
    """Move ``state`` to ``target``; ``UpgradeRefusedError`` (``reasons``) if it cannot.

    If the current phase now needs approval to be entered, the instance waits for it
    (``force``: goes on, the override logged).
    """
    source = workflow_of(state.workflow_schema)
    mapping = {name: phase_map.get(name, name) for name in source.phase_names}
    reasons = problems(state, source, target, phase_map, mapping)
    if reasons:
        raise UpgradeRefusedError(
            f"cannot upgrade instance {state.instance_id!r} from version "
            f"{source.version!r} to {target.version!r}: " + "; ".join(reasons),
            instance_id=state.instance_id,
            reasons=reasons,
            hint=remedies(state, target, mapping),
        )
    kept = {old: new for old, new in mapping.items() if target.has_phase(new)}
    state.visits = _rekeyed(state.visits, kept)
    state.retries = _rekeyed(state.retries, kept)
    state.current_phase = kept[state.current_phase]
    entry = state.open_entry
    if entry is not None:  # the open visit continues under its new name
        entry.phase = state.current_phase
    state.workflow_schema = target.to_dict()
    renamed = {old: new for old, new in kept.items() if old != new}
    data = {"from": schema_ref(source), "to": schema_ref(target), "phase_map": renamed, "by": actor}
    log_event(state, EventKind.SCHEMA_UPGRADED, now, actor, state.current_phase, data)
    reasons = _entry_approval(state, target, state.current_phase)
    if reasons:
        gate_entry(state, reasons, now, actor, force=force)


def problems(
    state: WorkflowInstanceState,
    source: Workflow,
    target: Workflow,
    phase_map: dict[str, str],
    mapping: dict[str, str],
) -> list[str]:
    """Every reason ``state`` cannot move from ``source`` to ``target`` (empty: it can)."""
    reasons = []
    if state.status not in UPGRADABLE:
        reasons.append(
            f"it is {state.status.value}; only created, running or paused instances move"
        )
    if target.name != source.name:
        reasons.append(f"the target is workflow {target.name!r}, not {source.name!r}")
    elif target.content_hash == source.content_hash:
        reasons.append(f"it already runs version {target.version!r}")
    for old, new in phase_map.items():
        if not source.has_phase(old):
            reasons.append(f"the phase map renames {old!r}, which version {source.version!r} lacks")
        if not target.has_phase(new):
            reasons.append(f"the phase map names {new!r}, which version {target.version!r} lacks")
    current = mapping.get(state.current_phase, state.current_phase)
    if not target.has_phase(current):
        reasons.append(
            f"the current phase {state.current_phase!r} has no counterpart in version "
            f"{target.version!r}"
        )
    reasons += _limit_problems(state, target, mapping)
    manual = state.pause_info is not None and not state.pause_info.is_approval
    if manual and _entry_approval(state, target, current):
        reasons.append(
            f"phase {current!r} requires approval in version {target.version!r}, and the "
            "instance is paused by hand: resume it first, or upgrade with force"
        )
    return reasons


def remedies(state: WorkflowInstanceState, target: Workflow, mapping: dict[str, str]) -> str | None:
    """What to do about the refusals ``problems`` found that have a remedy: the error's
    ``hint``, naming the steps as ``{term}`` (``chatflow.errors.TERMS``)."""
    current = mapping.get(state.current_phase, state.current_phase)
    if target.has_phase(current):
        return None
    return f" (map {state.current_phase!r} to a phase of version {target.version!r} with {{map}})"


def _entry_approval(state: WorkflowInstanceState, target: Workflow, current: str) -> list[str]:
    """Why the current visit must still be approved to be entered under ``target``: it
    requires approval there, and the visit neither had, waits for nor overrode one."""
    if not target.has_phase(current) or _visit_was_approved(state):
        return []
    return approval_reasons(target.phase(current), None, None)


def _limit_problems(
    state: WorkflowInstanceState, target: Workflow, mapping: dict[str, str]
) -> list[str]:
    reasons = []
    for counts, verb, field in (
        (state.visits, "visited", "max_visits"),
        (state.retries, "retried", "max_retries"),
    ):
        for name, count in _rekeyed(counts, mapping).items():
            limit = getattr(target.phase(name), field) if target.has_phase(name) else None
            if limit is not None and count > limit:
                reasons.append(
                    f"phase {name!r} was {verb} {counted(count, 'time')}; "
                    f"version {target.version!r} allows {field} {limit}"
                )
    return reasons


def _visit_was_approved(state: WorkflowInstanceState) -> bool:
    """Whether the current visit waits for, was given, or was forced past approval to
    be entered."""
    if state.pause_info is not None and state.pause_info.is_approval:
        return True
    asked = (EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_OVERRIDDEN)
    return any(event.kind in asked for event in visit_events(state))


def _rekeyed(counts: dict[str, int], mapping: dict[str, str]) -> dict[str, int]:
    """Counts under their new names (phases that map together add up)."""
    result: dict[str, int] = {}
    for name, count in counts.items():
        new = mapping.get(name)
        if new is not None:
            result[new] = result.get(new, 0) + count
    return result
