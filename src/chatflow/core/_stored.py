"""Instance state to and from a store: parsing what a store hands over, and running
one change as one appended event (or on a private copy, for a dry run).

The engine's operations say *what* changes; this module says how a change reaches
the store, so every operation gets the same locking, corruption checks and lazy
history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatflow.domain import lifecycle
from chatflow.domain.models import WorkflowInstanceState, generate_timestamp
from chatflow.errors import CorruptStateError, GateNotSatisfiedError, ValidationError
from chatflow.storage import codec
from chatflow.storage.base import IWorkflowStateStore

Change = Callable[[WorkflowInstanceState], None]


class NoChange(Exception):
    """Raised by a change to write nothing on purpose (it found nothing left to do):
    the transaction ends unwritten, and a trace does not count it as a failure."""


def load(store: IWorkflowStateStore, instance_id: str) -> WorkflowInstanceState | None:
    """The instance's state, or ``None`` if the store has no such instance."""
    data = store.load_state(instance_id)
    return None if data is None else _parse(data, instance_id)


def simulate(state: WorkflowInstanceState, change: Change) -> WorkflowInstanceState:
    """Apply ``change`` to ``state`` (a private copy), writing nothing.

    A refusal by a gate is reported in the copy, not raised: a dry run says what
    would happen, and "refused, missing ..." is an answer.
    """
    try:
        change(state)
    except GateNotSatisfiedError as error:
        lifecycle.note_blocked(state, error, generate_timestamp())
        return state
    state.version += 1
    return state


def update(store: IWorkflowStateStore, instance_id: str, change: Change) -> WorkflowInstanceState:
    """Apply ``change`` to the instance as one appended event (see ``commit``)."""
    return commit(store, instance_id, change)[0]


def commit(
    store: IWorkflowStateStore, instance_id: str, change: Change
) -> tuple[WorkflowInstanceState, int]:
    """Apply ``change`` to the instance as one appended event; the new state and the
    event's ``seq`` (its place in the log and the change feed).

    The store hands over the instance's head, not its log: the state ``change``
    works on loads history older than the head's tail only if it reads it. That
    state is what the caller gets back; nothing the caller later does to it can
    reach stored data (the event was encoded when it was appended).
    """
    changed: list[WorkflowInstanceState] = []
    # Where older history loads from: the transaction's log while the step runs, then
    # the committed log as of the head the step read.
    sources: list[Callable[[], dict[str, Any]]] = []

    def load_older() -> dict[str, Any]:
        return sources[-1]()

    def step(head: dict[str, Any], load: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        sources.append(load)
        state = _parse_head(head, instance_id, load_older)
        change(state)
        changed.append(state)
        return codec.update_event(state, head, load)

    new_head = store.step(instance_id, step)
    state = changed[-1]
    state.version = codec.head_version(new_head)
    upto = codec.head_seq(new_head) - 1
    sources.append(lambda: store.read_history(instance_id, upto))
    return state, upto + 1


def _parse_head(
    head: dict[str, Any], instance_id: str, load: Callable[[], dict[str, Any]]
) -> WorkflowInstanceState:
    try:
        return _usable(codec.state_from_head(head, load))
    except (ValidationError, KeyError, TypeError, AttributeError) as error:
        raise CorruptStateError(
            f"stored head of instance {instance_id!r} is invalid: {error}", instance_id=instance_id
        ) from None


def _usable(state: WorkflowInstanceState) -> WorkflowInstanceState:
    """``state``, if it carries the schema every step and report routes by."""
    phases = state.workflow_schema.get("phases")
    if not isinstance(phases, list) or not phases or not all(isinstance(p, dict) for p in phases):
        raise ValidationError("it has no usable workflow_schema (a list of phases)")
    return state


def _parse(data: dict[str, Any], instance_id: str) -> WorkflowInstanceState:
    try:
        return _usable(WorkflowInstanceState.from_dict(data))
    except ValidationError as error:
        raise CorruptStateError(
            f"stored state of instance {instance_id!r} is invalid: {error}", instance_id=instance_id
        ) from None
