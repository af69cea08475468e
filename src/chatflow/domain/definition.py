"""Typed workflow definitions: frozen objects with every default resolved here, once.

``chatflow.domain.schema.validate_schema`` checks a schema's JSON and returns a
``Workflow``. The router, the gates, the status report and the diagram read these
objects; none of them looks at the raw dict or re-derives a default:

- a phase without ``transitions`` has one implicit transition: to the next phase in the
  list, or to ``$end`` after the last one;
- ``fallback`` (taken once ``max_visits`` is reached) defaults to ``$fail``;
- ``merge_trigger_data`` defaults to ``"none"`` and ``version`` to ``1``;
- ``exit_requires`` defaults to a gate that requires nothing;
- a transition's display label is its ``label``, else its condition, else
  ``otherwise`` when the phase has other transitions.

Instances store the validated JSON (``Workflow.to_dict()``); ``workflow_of`` turns a
stored dict back into a ``Workflow``, cached, so a step does not rebuild it.
"""

from __future__ import annotations

import functools
import marshal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatflow._validation import copy_json
from chatflow.domain.conditions import describe, evaluate
from chatflow.errors import CorruptStateError, ValidationError

END = "$end"
"""Transition target that completes the instance."""
FAIL = "$fail"
"""Transition target that fails the instance."""
TERMINALS = (END, FAIL)
MERGE_MODES = ("none", "phase", "flat")
DEFAULT_VERSION = 1
ARTIFACTS = ("prompt", "response")
"""What ``exit_requires.artifacts`` may name: the texts ``record_task_artifacts`` stores."""
GATE_KEYS = ("artifacts", "approvals", "variables", "condition")


@dataclass(frozen=True)
class Condition:
    """A validated condition (see ``chatflow.domain.conditions``), kept as its data."""

    spec: Mapping[str, Any]

    def holds(self, context: Mapping[str, Any]) -> bool:
        return evaluate(self.spec, context)

    def __str__(self) -> str:
        return describe(self.spec)


@dataclass(frozen=True)
class Transition:
    """One way out of a phase; ``implicit`` marks the default route, not declared."""

    to: str
    when: Condition | None = None
    label: str = ""
    implicit: bool = False


@dataclass(frozen=True)
class Gate:
    """What must hold before a phase may be left (a phase's ``exit_requires``).

    ``artifacts``: texts recorded for the current visit; ``approvals``: distinct people
    who ``approve``-d the current visit; ``variables``: dotted paths into the variables
    that must be set (present and not ``null``); ``condition``: must hold.
    """

    artifacts: tuple[str, ...] = ()
    approvals: int = 0
    variables: tuple[str, ...] = ()
    condition: Condition | None = None

    @property
    def requires_anything(self) -> bool:
        return bool(self.artifacts or self.approvals or self.variables or self.condition)


@dataclass(frozen=True)
class Deadline:
    """How long a phase's wait may last (``of``: its approval or the whole visit) and
    what ``due`` does after (``chatflow.domain.deadlines``)."""

    seconds: float
    of: str
    on_timeout: str = "escalate"
    default: str | None = None
    escalate_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Phase:
    """One phase; ``transitions`` is never empty (the default route is resolved).

    ``task`` is what the phase does, as ChatCoder's v1.1 schemas name it (``""``: unnamed).
    """

    name: str
    transitions: tuple[Transition, ...]
    requires_approval: bool = False
    max_visits: int | None = None
    fallback: str = FAIL
    max_retries: int | None = None
    exit_requires: Gate = Gate()
    title: str | None = None
    task: str = ""
    budget: Mapping[str, float] | None = None
    deadline: Deadline | None = None

    @property
    def targets(self) -> list[str]:
        """Where the phase's transitions lead, in declaration order."""
        return [transition.to for transition in self.transitions]


@dataclass(frozen=True)
class Workflow:
    """A validated workflow; ``content_hash`` is the SHA-256 of its canonical JSON."""

    name: str
    version: int | str
    phases: tuple[Phase, ...]
    merge_trigger_data: str = "none"
    automation_level: int | None = None
    title: str | None = None
    content_hash: str = ""
    budget: Mapping[str, float] | None = None
    _data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _by_name: dict[str, Phase] = field(default_factory=dict, compare=False, repr=False)

    @property
    def first(self) -> Phase:
        """The phase a new instance starts in."""
        return self.phases[0]

    @property
    def phase_names(self) -> list[str]:
        return [phase.name for phase in self.phases]

    def has_phase(self, name: str) -> bool:
        return name in self._by_name

    def phase(self, name: str) -> Phase:
        """The phase called ``name``; ``ValidationError`` naming the workflow if none."""
        found = self._by_name.get(name)
        if found is None:
            raise ValidationError(
                f"workflow {self.name!r} has no phase {name!r}", field="phase", phase=name
            )
        return found

    def edges(self) -> dict[str, list[str]]:
        """Every phase's possible next steps (phases or terminals), in declaration order.

        A step into a phase with ``max_visits`` may be redirected to that phase's
        fallback, so the fallback counts as a possible next step of every phase leading
        there.
        """
        result: dict[str, list[str]] = {}
        for phase in self.phases:
            targets: list[str] = []
            for target in phase.targets:
                targets.append(target)
                limited = self._by_name.get(target)
                if limited is not None and limited.max_visits is not None:
                    targets.append(limited.fallback)
            result[phase.name] = list(dict.fromkeys(targets))
        return result

    def to_dict(self) -> dict[str, Any]:
        """A private copy of the validated JSON (what an instance stores)."""
        return copy_json(self._data)


def build(data: dict[str, Any], content_hash: str) -> Workflow:
    """The ``Workflow`` of validated schema ``data`` (which it keeps; pass a private copy)."""
    raw = data["phases"]
    phases = tuple(
        _phase(spec, raw[index + 1]["name"] if index + 1 < len(raw) else END)
        for index, spec in enumerate(raw)
    )
    title = data.get("title")
    return Workflow(
        name=data["name"],
        version=data.get("version", DEFAULT_VERSION),
        phases=phases,
        merge_trigger_data=data.get("merge_trigger_data", "none"),
        automation_level=data.get("automation_level"),
        title=title if isinstance(title, str) else None,
        content_hash=content_hash,
        budget=_budget(data.get("budget")),
        _data=data,
        _by_name={phase.name: phase for phase in phases},
    )


def _phase(spec: dict[str, Any], following: str) -> Phase:
    declared = spec.get("transitions")
    if declared:
        transitions = tuple(_transition(item, len(declared)) for item in declared)
    else:
        transitions = (Transition(following, implicit=True),)
    title = spec.get("title")
    return Phase(
        name=spec["name"],
        transitions=transitions,
        requires_approval=spec.get("requires_approval", False),
        max_visits=spec.get("max_visits"),
        fallback=spec.get("fallback", FAIL),
        max_retries=spec.get("max_retries"),
        exit_requires=_gate(spec.get("exit_requires", {})),
        title=None if title is None else str(title),
        task=spec.get("task", ""),
        budget=_budget(spec.get("budget")),
        deadline=_deadline(spec),
    )


def _budget(spec: Any) -> Mapping[str, float] | None:
    from chatflow.domain.limits import budget  # noqa: PLC0415 - only budgeted workflows

    return None if spec is None else budget(spec)


def _deadline(spec: dict[str, Any]) -> Deadline | None:
    if "deadline" not in spec:
        return None
    from chatflow.domain.limits import duration  # noqa: PLC0415 - only phases with deadlines

    return Deadline(
        seconds=duration(spec["deadline"]),
        of=spec.get("deadline_of", "approval" if spec.get("requires_approval") else "phase"),
        on_timeout=spec.get("on_timeout", "escalate"),
        default=spec.get("default"),
        escalate_to=tuple(spec.get("escalate_to", ())),
    )


def _transition(spec: dict[str, Any], siblings: int) -> Transition:
    when = Condition(spec["when"]) if "when" in spec else None
    if when is not None:
        label = spec.get("label") or str(when)
    else:
        label = spec.get("label", "otherwise" if siblings > 1 else "")
    return Transition(spec["to"], when, label)


def _gate(spec: dict[str, Any]) -> Gate:
    condition = spec.get("condition")
    return Gate(
        artifacts=tuple(spec.get("artifacts", ())),
        approvals=spec.get("approvals", 0),
        variables=tuple(spec.get("variables", ())),
        condition=None if condition is None else Condition(condition),
    )


def workflow_of(data: dict[str, Any]) -> Workflow:
    """The ``Workflow`` of a schema an instance stored (validated when it started).

    Cached by the dict's contents: every step of every instance of one schema shares
    one object. Stored data of the wrong shape raises ``CorruptStateError``.
    """
    try:
        return _cached(marshal.dumps(data))
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise CorruptStateError(f"stored workflow schema is malformed: {error!r}") from None


@functools.lru_cache(maxsize=256)
def _cached(key: bytes) -> Workflow:
    from chatflow.domain.schema import schema_hash  # noqa: PLC0415 - schema imports this module

    data = marshal.loads(key)
    if not isinstance(data, dict):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    return build(data, schema_hash(data))
