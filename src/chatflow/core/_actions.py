"""The engine's human-in-the-loop and recovery operations: pause, resume, approve,
reject, fail, retry, cancel and jump.

Each one checks its arguments, then runs one ``lifecycle`` change through the
engine's ``_update`` (one appended event). ``WorkflowEngine`` inherits them; this
split keeps the engine module to its API and store plumbing.

Who acted is ``actor=`` (approvals name their person: ``approve(by=)``,
``resume(approved_by=)``, ``reject(rejected_by=)``); left out, it is the one the
instance's meta names (``actor`` or ``user_id``), as it always was. Entering a phase
that requires approval waits for it; ``force=True`` (reject, retry, jump) enters
anyway and logs who did (``approval_overridden``).
"""

from __future__ import annotations

from collections.abc import Callable

from chatflow._validation import check_text, validate_id
from chatflow.core import _arguments
from chatflow.core._stored import Change
from chatflow.domain import lifecycle
from chatflow.domain.models import WorkflowInstanceState, generate_timestamp


class HumanActions:
    """Operations a person (or a recovering caller) takes on an instance."""

    _update: Callable[[str, Change, str], WorkflowInstanceState]
    """Provided by ``WorkflowEngine``: apply a change as one appended event, named as
    an action (the span's name when tracing)."""

    def pause(
        self, instance_id: str, reason: str = "", *, actor: str | None = None
    ) -> WorkflowInstanceState:
        """Suspend a created or running instance until ``resume``."""
        reason = check_text(reason, "reason")
        return self._act(
            "pause", instance_id, actor, lambda s, who, now: lifecycle.pause(s, reason, who, now)
        )

    def resume(
        self,
        instance_id: str,
        *,
        approved_by: str | None = None,
        note: str | None = None,
        actor: str | None = None,
    ) -> WorkflowInstanceState:
        """Continue a paused instance. Approving a gated phase needs ``approved_by``;
        who approved, when and the ``note`` go into the event log."""
        approved_by = _arguments.optional_text(approved_by, "approved_by")
        note = _arguments.optional_text(note, "note")
        return self._act(
            "resume",
            instance_id,
            actor,
            lambda s, who, now: lifecycle.resume(s, approved_by, note, who, now),
        )

    def reject(
        self,
        instance_id: str,
        *,
        rejected_by: str | None = None,
        note: str | None = None,
        to: str | None = None,
        force: bool = False,
    ) -> WorkflowInstanceState:
        """Refuse a pending approval: re-enter ``to`` (default: the phase that asked).
        A ``to`` that requires approval waits for it, unless ``force=True``."""
        rejected_by = _arguments.optional_text(rejected_by, "rejected_by")
        note = _arguments.optional_text(note, "note")
        target = None if to is None else validate_id(to, "phase")
        force = _arguments.flag(force, "force")
        return self._act(
            "reject",
            instance_id,
            rejected_by,
            lambda s, who, now: lifecycle.reject(s, who, note, target, now, force=force),
        )

    def fail_phase(
        self, instance_id: str, error: str, *, actor: str | None = None
    ) -> WorkflowInstanceState:
        """Mark the current phase failed (an AI call broke); ``retry_phase`` recovers."""
        error = check_text(error, "error")
        return self._act(
            "fail", instance_id, actor, lambda s, who, now: lifecycle.fail(s, error, who, now)
        )

    def retry_phase(
        self,
        instance_id: str,
        *,
        note: str | None = None,
        actor: str | None = None,
        force: bool = False,
    ) -> WorkflowInstanceState:
        """Start the current phase over as a new visit; counts toward its ``max_retries``.
        A phase that requires approval waits for it again, unless ``force=True``."""
        note = _arguments.optional_text(note, "note")
        force = _arguments.flag(force, "force")
        return self._act(
            "retry",
            instance_id,
            actor,
            lambda s, who, now: lifecycle.retry(s, note, who, now, force=force),
        )

    def cancel(
        self, instance_id: str, reason: str = "", *, actor: str | None = None
    ) -> WorkflowInstanceState:
        """Abandon the instance; it takes no further steps."""
        reason = check_text(reason, "reason")
        return self._act(
            "cancel", instance_id, actor, lambda s, who, now: lifecycle.cancel(s, reason, who, now)
        )

    def jump_to(
        self,
        instance_id: str,
        phase: str,
        reason: str = "",
        *,
        actor: str | None = None,
        force: bool = False,
    ) -> WorkflowInstanceState:
        """Human override: enter ``phase`` now, ignoring routes and visit limits. The
        current phase's exit gate and ``phase``'s approval to enter still apply unless
        ``force=True`` (recorded in the ``jumped`` event; a skipped approval also as
        ``approval_overridden``)."""
        phase = validate_id(phase, "phase")
        reason = check_text(reason, "reason")
        force = _arguments.flag(force, "force")
        return self._act(
            "jump",
            instance_id,
            actor,
            lambda s, who, now: lifecycle.jump(s, phase, reason, who, now, force=force),
        )

    def approve(
        self, instance_id: str, *, by: str, note: str | None = None
    ) -> WorkflowInstanceState:
        """Record ``by``'s approval of the current phase's visit, for its ``exit_requires``
        ``approvals`` (distinct people count; the same person twice counts once)."""
        by = _arguments.name(by, "by")
        note = _arguments.optional_text(note, "note")
        return self._act(
            "approve", instance_id, by, lambda s, who, now: lifecycle.approve(s, by, note, now)
        )

    def _act(
        self,
        action: str,
        instance_id: str,
        actor: str | None,
        change: Callable[[WorkflowInstanceState, str | None, float], None],
    ) -> WorkflowInstanceState:
        """Run a lifecycle change; the actor defaults to the one in the instance's meta."""
        validate_id(instance_id, "instance_id")
        actor = _arguments.optional_text(actor, "actor")

        def apply(state: WorkflowInstanceState) -> None:
            change(state, actor or lifecycle.actor_of(state.meta), generate_timestamp())

        return self._update(instance_id, apply, action)
