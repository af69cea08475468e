"""Typed values for the small records an instance keeps as JSON objects.

A pause, a fork's parent link, an open gate item and a history entry's status were
read as untyped dicts and strings in every layer. Each is a frozen value here, with
``from_dict`` (lenient where older versions wrote less, strict about types) and
``to_dict`` (exactly the JSON object ChatFlow stores and returns: ``to_dict`` of what
``from_dict`` read of such an object gives it back). The instance keeps the dicts it
always kept (``state.pause``, ``state.parent``, ``entry.status``): the typed reading is
``state.pause_info``, ``state.parent_link`` and ``EntryStatus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from chatflow.domain.models import InstanceStatus, parse_status
from chatflow.errors import ValidationError


class EntryStatus(str, Enum):
    """What became of one visit (``HistoryEntry.status``), as the lifecycle writes it."""

    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    PAUSED = "paused"
    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"
    RETRIED = "retried"
    CANCELLED = "cancelled"
    JUMPED = "jumped"
    TIMED_OUT = "timed_out"
    """Closed by a passed deadline whose ``on_timeout`` is ``default`` (``domain.deadlines``)."""

    def __str__(self) -> str:
        return self.value


APPROVAL = "approval"
MANUAL = "manual"


@dataclass(frozen=True)
class Pause:
    """Why a paused instance waits.

    ``kind`` is ``"approval"`` (a person must approve: entering the phase, or with
    ``pending_trigger`` completing it, a risky last step held open) or ``"manual"`` (a
    pause by hand, with its ``reason``). ``reasons`` and ``risk`` say why approval is
    needed; ``resume_status`` is the status the instance goes back to.
    """

    kind: str
    resume_status: InstanceStatus = InstanceStatus.RUNNING
    reason: str | None = None
    reasons: tuple[str, ...] | None = None
    risk: float | None = None
    pending_trigger: dict[str, Any] | None = None

    @property
    def is_approval(self) -> bool:
        return self.kind == APPROVAL

    @property
    def waits_to_enter(self) -> bool:
        """An approval to enter the current phase (not to complete it)."""
        return self.is_approval and self.pending_trigger is None

    @property
    def because(self) -> str | None:
        """The one-line why: the reason given, else the approval reasons joined."""
        return self.reason or "; ".join(self.reasons or ()) or None

    @classmethod
    def manual(cls, reason: str, resume_status: InstanceStatus) -> Pause:
        return cls(MANUAL, resume_status, reason=reason)

    @classmethod
    def approval(
        cls,
        reasons: list[str],
        risk: float | None,
        resume_status: InstanceStatus,
        pending_trigger: dict[str, Any] | None = None,
    ) -> Pause:
        return cls(APPROVAL, resume_status, None, tuple(reasons), risk, pending_trigger)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == MANUAL or self.reason is not None:
            data["reason"] = self.reason
        if self.reasons is not None:
            data["reasons"] = list(self.reasons)
        if self.kind == APPROVAL or self.risk is not None:
            data["risk"] = self.risk
        data["resume_status"] = self.resume_status.value
        if self.pending_trigger is not None:
            data["pending"] = {"trigger": self.pending_trigger}
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Pause:
        fields = _object(data, "pause")
        kind = fields.get("kind", MANUAL)
        reason, reasons, risk = fields.get("reason"), fields.get("reasons"), fields.get("risk")
        pending = fields.get("pending")
        trigger = pending.get("trigger") if isinstance(pending, dict) else None
        if (
            not isinstance(kind, str)
            or not (reason is None or isinstance(reason, str))
            or not (reasons is None or _strings(reasons))
            or not (risk is None or _number(risk))
            or not (pending is None or isinstance(trigger, dict))
        ):
            raise ValidationError(f"pause record is malformed: {data!r}")
        return cls(
            kind,
            parse_status(fields.get("resume_status", InstanceStatus.RUNNING.value)),
            reason,
            None if reasons is None else tuple(reasons),
            risk,
            trigger,
        )


@dataclass(frozen=True)
class ParentLink:
    """Where a fork came from: the instance and the index of the history entry."""

    instance_id: str
    history_index: int

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "history_index": self.history_index}

    @classmethod
    def from_dict(cls, data: Any) -> ParentLink:
        fields = _object(data, "parent link")
        instance_id, index = fields.get("instance_id"), fields.get("history_index")
        if not isinstance(instance_id, str) or type(index) is not int:
            raise ValidationError(f"parent link is malformed: {data!r}")
        return cls(instance_id, index)


@dataclass(frozen=True)
class GateItem:
    """One open item of an exit gate (``GateNotSatisfiedError.missing`` holds their
    ``to_dict()``): an ``artifact`` to record, ``approvals`` still ``required`` beyond
    those who ``have``, a ``variable`` to set or a ``condition`` that does not hold.
    ``remedy`` names the call that settles it (a ``chatflow.errors.TERMS`` key)."""

    kind: str
    text: str
    name: str | None = None
    required: int | None = None
    have: tuple[str, ...] | None = None
    condition: str | None = None
    remedy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.name is not None:
            data["name"] = self.name
        if self.required is not None:
            data["required"] = self.required
        if self.have is not None:
            data["have"] = list(self.have)
        if self.condition is not None:
            data["condition"] = self.condition
        data["text"] = self.text
        if self.remedy is not None:
            data["remedy"] = self.remedy
        return data

    @classmethod
    def from_dict(cls, data: Any) -> GateItem:
        fields = _object(data, "gate item")
        kind, text, have = fields.get("kind"), fields.get("text"), fields.get("have")
        name, condition, remedy = fields.get("name"), fields.get("condition"), fields.get("remedy")
        required = fields.get("required")
        if (
            not isinstance(kind, str)
            or not isinstance(text, str)
            or not all(v is None or isinstance(v, str) for v in (name, condition, remedy))
            or not (required is None or type(required) is int)
            or not (have is None or _strings(have))
        ):
            raise ValidationError(f"gate item is malformed: {data!r}")
        return cls(
            kind, text, name, required, None if have is None else tuple(have), condition, remedy
        )


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError(f"{what} must be an object, not {type(data).__name__}")
    return data


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
