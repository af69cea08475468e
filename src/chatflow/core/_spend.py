"""The engine's time-and-money operations: ``record_usage``, ``extend_budget``, ``due``
and ``apply_due``, and the check every change goes through (``after_change``).

``WorkflowEngine`` inherits them; the rules live in ``chatflow.domain.usage``,
``budgets`` and ``deadlines``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chatflow._validation import validate_id
from chatflow.core import _arguments
from chatflow.core._stored import Change, NoChange
from chatflow.domain import budgets, deadlines, lifecycle
from chatflow.domain import usage as _usage
from chatflow.domain.definition import workflow_of
from chatflow.domain.models import (
    EventKind,
    WorkflowEvent,
    WorkflowInstanceState,
    generate_timestamp,
)
from chatflow.errors import (
    ChatFlowError,
    InstanceNotFoundError,
    InvalidTransitionError,
    ValidationError,
)
from chatflow.storage.base import InstanceSummary, IWorkflowStateStore
from chatflow.storage.waits import WaitIndex, WaitKey, index_of

Problems = list[ChatFlowError]
"""Where ``due``, ``apply_due`` and ``waits`` put the error of each instance they could
not read or act on (the ``chatflow`` command warns and exits 1)."""


class _NothingDue(NoChange):
    """Raised inside a transaction to write nothing: the wait is no longer due."""


def after_change(state: WorkflowInstanceState, now: float, actor: str | None) -> None:
    """What every change ends with: budgets checked (the change that crosses one
    pauses), and the instance's wait and its deadline kept current."""
    schema = state.workflow_schema
    if (
        state.usage is None
        and state.budget is None
        and state.wait is None
        and "budget" not in schema
        and not any(_limited(phase) for phase in schema.get("phases", ()))
    ):
        return  # nothing to check: a workflow without budgets or deadlines pays nothing
    budgets.check(state, now, actor)
    deadlines.refresh(state, now)


def _limited(phase: object) -> bool:
    return isinstance(phase, dict) and ("budget" in phase or "deadline" in phase)


def charge(
    state: WorkflowInstanceState,
    usage: Mapping[str, Any],
    phase: str | None,
    actor: str | None,
    now: float,
) -> None:
    """Append a ``usage`` event for ``phase``'s latest visit (default: the current one)
    and add it to the running totals."""
    name = state.current_phase if phase is None else phase
    workflow_of(state.workflow_schema).phase(name)  # an unknown phase is refused
    index = _latest_visit(state, name)
    state.usage = _usage.charge(state.usage, name, usage)
    event = WorkflowEvent(
        kind=EventKind.USAGE,
        at=now,
        actor=actor,
        phase=name,
        data=_usage.event_data(usage),
        history_index=index,
        while_open=index == len(state.history) - 1 and state.open_entry is not None,
    )
    state.events.append(event)
    state.updated_at = now


def _latest_visit(state: WorkflowInstanceState, phase: str) -> int:
    """The history index of ``phase``'s latest visit (the current one, usually); a phase
    never entered had no AI call to pay for, and no visit to charge it to."""
    for index in range(len(state.history) - 1, -1, -1):
        if state.history[index].phase == phase:
            return index
    raise InvalidTransitionError(
        f"instance {state.instance_id!r} has not entered phase {phase!r}; "
        "it can only record usage for phases in its history",
        instance_id=state.instance_id,
        phase=phase,
    )


@dataclass(frozen=True)
class Timeout:
    """One overdue wait: what ``due`` lists and ``apply_due`` acts on."""

    instance_id: str
    feature_id: str
    phase: str
    of: str
    due_at: float
    waited_s: float
    on_timeout: str | None
    outcome: str | None = None
    """What ``apply_due`` did (``None``: listed only, or another process acted first)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "feature_id": self.feature_id,
            "phase": self.phase,
            "of": self.of,
            "due_at": self.due_at,
            "waited_s": self.waited_s,
            "on_timeout": self.on_timeout,
            "outcome": self.outcome,
        }


def wait_key(wait: Mapping[str, Any] | None) -> WaitKey | None:
    """The index key of a wait (an escalated one keeps waiting, and its key)."""
    if wait is None:
        return None
    return WaitKey(int(wait["visit"]), float(wait["due_at"]))


class WaitNotes:
    """Keeps the store's waits index a superset of its waits around one change."""

    def __init__(self, store: IWorkflowStateStore, instance_id: str) -> None:
        self.index = index_of(store)
        self.instance_id = instance_id
        self.ended: list[WaitKey] = []

    def created(self, state: WorkflowInstanceState) -> None:
        """Before a new instance is created: index its wait, if it starts with one."""
        key = wait_key(state.wait)
        if key is not None and self.index is not None:
            self.index.add(self.instance_id, key)

    def around(self, change: Change) -> Change:
        """``change``, noting the wait it starts (indexed now, inside the transaction)
        and the one it ends (cleared by ``committed``)."""
        if self.index is None:
            return change
        index = self.index

        def noted(state: WorkflowInstanceState) -> None:
            before = wait_key(state.wait)
            change(state)
            after = wait_key(state.wait)
            if after != before:
                if after is not None:
                    index.add(self.instance_id, after)
                if before is not None:
                    self.ended.append(before)

        return noted

    def committed(self) -> None:
        """After the commit: clear the waits the change ended."""
        for key in dict.fromkeys(self.ended):
            assert self.index is not None
            self.index.clear(self.instance_id, key)


class SpendActions:
    """Usage, budgets and deadlines, on top of the engine's ``_update``."""

    _update: Callable[[str, Change, str], WorkflowInstanceState]
    _require_state: Callable[[str], WorkflowInstanceState]
    get_workflow_instance_status: Callable[[str], WorkflowInstanceState | None]
    list_instances: Callable[..., list[InstanceSummary]]

    @property
    def state_store(self) -> IWorkflowStateStore:
        raise NotImplementedError  # WorkflowEngine's

    def record_usage(
        self,
        instance_id: str,
        phase: str | None = None,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        model: str | None = None,
        duration_s: float | None = None,
        actor: str | None = None,
    ) -> WorkflowInstanceState:
        """Append what a visit of ``phase`` (default: the current one) spent, as one
        ``usage`` event in the hash chain; totals per phase and instance follow. The
        step that crosses a budget pauses the instance (``chatflow.domain.budgets``).
        Negative, non-numeric or non-finite amounts raise ``ValidationError`` and
        nothing is written."""
        validate_id(instance_id, "instance_id")
        if phase is not None:
            validate_id(phase, "phase")
        usage = _usage.check(
            {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cost_usd": cost_usd,
                "model": model,
                "duration_s": duration_s,
            }
        )
        actor = _arguments.optional_text(actor, "actor")

        def change(state: WorkflowInstanceState) -> None:
            charge(
                state, usage, phase, actor or lifecycle.actor_of(state.meta), generate_timestamp()
            )

        return self._update(instance_id, change, "record_usage")

    def extend_budget(
        self, instance_id: str, *, by: str, note: str | None = None, **more: Any
    ) -> WorkflowInstanceState:
        """A person (``by``) allows more: every limit on each key named
        (``cost_usd=5``, ``tokens=``, ``wall="1h"``, ``visits=``) rises by that much,
        recorded in a ``budget_extended`` event, and a budget pause ends. Refused,
        changing nothing, if the instance would still be over a limit."""
        validate_id(instance_id, "instance_id")
        by = _arguments.name(by, "by")
        note = _arguments.optional_text(note, "note")
        amounts = budgets.more(more)

        def change(state: WorkflowInstanceState) -> None:
            budgets.extend(state, by, amounts, note, generate_timestamp())

        return self._update(instance_id, change, "extend_budget")

    def due(self, now: float | None = None, *, problems: Problems | None = None) -> list[Timeout]:
        """Every wait whose deadline has passed and was not acted on, most overdue first.
        ``now`` (seconds since the epoch) defaults to the time now; tests inject it.
        An instance that cannot be read is left out, never silently: its error goes to
        ``problems`` if given, else is logged as a warning on the ``chatflow`` logger."""
        at = budgets.now_or(now)
        found = [
            _timeout(state, at)
            for state in self._waiting(lambda key: key.due_at <= at, problems)
            if deadlines.overdue(state.wait, at)
        ]
        found.sort(key=lambda timeout: timeout.due_at)
        return found

    def _waiting(
        self, wanted: Callable[[WaitKey], bool], problems: Problems | None
    ) -> list[WorkflowInstanceState]:
        """The instances whose indexed wait ``wanted`` picks, read from their heads (the
        truth): stale index entries are cleared on the way (not an unreadable
        instance's: once repaired, its wait is still found). A store without an index
        (memory, PostgreSQL) has every active instance's head read instead."""
        index = index_of(self.state_store)
        if index is not None and not index.exists():
            self.rebuild_waits()  # e.g. instances imported or copied in before it existed
        if index is None:
            ids = [
                summary.instance_id
                for summary in self.list_instances(status=None)
                if summary.status in ("created", "running", "paused")
            ]
            found = (self._readable(instance_id, problems) for instance_id in ids)
            return [state for state in found if state is not None and state.wait is not None]
        states = []
        for instance_id, keys in index.live().items():
            picked = [key for key in keys if wanted(key)]
            if picked and (state := self._picked(index, instance_id, picked, problems)):
                states.append(state)
        return states

    def _picked(
        self, index: WaitIndex, instance_id: str, picked: list[WaitKey], problems: Problems | None
    ) -> WorkflowInstanceState | None:
        """The instance if its current wait is among ``picked``; the picked keys that are
        not its wait any more are cleared (a deleted instance's too), an unreadable
        instance's kept."""
        try:
            state = self.get_workflow_instance_status(instance_id)
        except InstanceNotFoundError:
            state = None
        except ChatFlowError as error:
            _report(problems, error)
            return None
        current = wait_key(state.wait) if state is not None else None  # None: deleted
        for key in picked:
            if key != current:  # ended, acted on, or never committed
                index.clear(instance_id, key)
        return state if current is not None and current in picked else None

    def _readable(
        self, instance_id: str, problems: Problems | None = None
    ) -> WorkflowInstanceState | None:
        """The instance, or ``None`` with its error reported (``_report``): one bad
        instance must not stop the rest, nor vanish from them unsaid."""
        try:
            return self.get_workflow_instance_status(instance_id)
        except InstanceNotFoundError:
            return None  # deleted since it was listed
        except ChatFlowError as error:
            _report(problems, error)
            return None

    def rebuild_waits(self) -> int | None:
        """Rebuild the store's waits index from every active instance's head (derived
        data: ``chatflow doctor`` runs this); how many waits it holds, ``None`` if the
        store keeps no index."""
        index = index_of(self.state_store)
        if index is None:
            return None
        waits = []
        for summary in self.list_instances(status=None):
            if summary.status in ("created", "running", "paused"):
                state = self._readable(summary.instance_id)
                key = None if state is None else wait_key(state.wait)
                if key is not None:
                    waits.append((summary.instance_id, key))
        return index.rebuild(waits)

    def apply_due(
        self, now: float | None = None, *, problems: Problems | None = None
    ) -> list[Timeout]:
        """Act on every overdue wait (``on_timeout``), each in its own store transaction
        that checks again that it is still due: any number of processes may run this at
        once, and each timeout is acted on exactly once (by one of them). Returns the
        overdue waits, each with the ``outcome`` this call applied (``None``: another
        process had, or it failed: reported as ``due`` reports an unreadable instance)."""
        at = budgets.now_or(now)
        done = []
        for timeout in self.due(at, problems=problems):
            outcome = self._time_out(timeout.instance_id, at, problems)
            done.append(_replace(timeout, outcome))
        return done

    def _time_out(
        self, instance_id: str, now: float, problems: Problems | None = None
    ) -> str | None:
        """Act on the instance's overdue wait in one transaction; the outcome, or
        ``None`` if it is no longer due (another process acted, or the wait ended) or
        could not be acted on (reported)."""
        outcomes: list[str | None] = []

        def change(state: WorkflowInstanceState) -> None:
            outcome = deadlines.act(state, now, stamp=generate_timestamp())
            outcomes.append(outcome)
            if outcome is None:
                raise _NothingDue

        try:
            self._update(instance_id, change, "apply_due")
        except _NothingDue:
            return None
        except ChatFlowError as error:
            _report(problems, error)
            return None
        return outcomes[-1]

    def waits(
        self, now: float | None = None, *, problems: Problems | None = None
    ) -> list[dict[str, Any]]:
        """What every active instance with a deadline waits for and for how long,
        overdue first (``deadlines.waiting_view``); unreadable instances as in ``due``."""
        at = budgets.now_or(now)
        rows = [
            row
            for state in self._waiting(lambda key: True, problems)
            if (row := deadlines.waiting_view(state, at)) is not None
        ]
        rows.sort(key=lambda row: (not row["overdue"], row["due_at"]))
        return rows


def _report(problems: Problems | None, error: ChatFlowError) -> None:
    """Keep ``error`` in ``problems``, or, with no list to keep it, warn on the logger."""
    if problems is not None:
        problems.append(error)
        return
    from chatflow._logger import logger  # noqa: PLC0415 - only when something is wrong

    logger("chatflow").warning("%s", error)


def _timeout(state: WorkflowInstanceState, now: float) -> Timeout:
    wait = state.wait or {}
    view = deadlines.waiting_view(state, now) or {}
    return Timeout(
        instance_id=state.instance_id,
        feature_id=state.feature_id,
        phase=str(wait.get("phase")),
        of=str(wait.get("of")),
        due_at=float(wait.get("due_at", 0.0)),
        waited_s=float(view.get("waited_s", 0.0)),
        on_timeout=view.get("on_timeout"),
    )


def _replace(timeout: Timeout, outcome: str | None) -> Timeout:
    from dataclasses import replace  # noqa: PLC0415

    return replace(timeout, outcome=outcome)


def check_budget_argument(value: object) -> dict[str, Any] | None:
    """``start(budget=)``: ``None`` or a budget object (``ValidationError`` otherwise)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(f"budget must be an object, not {type(value).__name__}")
    return budgets.start_budget(value)


def inherit(parent: WorkflowInstanceState, child: WorkflowInstanceState) -> None:
    """A fork keeps its parent's spend as of the fork point (the usage events of the
    visits it inherits) and the parent's budget with its extensions."""
    at = len(child.history) - 1  # the child's fresh visit replaces parent.history[at]
    totals: dict[str, Any] | None = None
    for event in parent.events:
        if event.kind is EventKind.USAGE and 0 <= event.history_index < at:
            phase = event.phase or parent.current_phase
            totals = _usage.charge(totals, phase, _usage.from_event(event.data))
    child.usage = totals
    if parent.budget is not None:
        child.budget = {k: v for k, v in parent.budget.items() if k != "warned"}
    after_change(child, child.created_at, None)
