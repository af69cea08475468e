"""The data ChatFlow keeps: instance state, its history, and task execution records.

Each model converts to and from plain JSON-ready dicts. ``from_dict`` is strict: stored
data of the wrong shape raises ``ValidationError`` (which stores report as
``CorruptStateError`` naming the file or row) instead of producing a half-built object
that fails later. ``STATE_FORMAT`` versions the dict layout so later releases can read
what this one wrote: format 2 added the event log, visit and retry counters, the pause
record, the automation level and the fork link; format 1 files still load (their
missing fields get the values an instance without those features would have).
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from chatflow.domain import _fields
from chatflow.errors import CorruptStateError, ValidationError

if TYPE_CHECKING:
    from chatflow.domain.values import ParentLink, Pause

T = TypeVar("T")

STATE_FORMAT = 2
READABLE_FORMATS = (1, 2)


def generate_timestamp() -> float:
    """Seconds since the epoch, as the seed stores them."""
    return time.time()


def sha256_text(text: str) -> str:
    """Hex SHA-256 of ``text`` encoded as UTF-8 (the artifact checksum)."""
    import hashlib  # noqa: PLC0415 - loaded on first use: keeps `import chatflow` fast

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


TEXTS = ("prompt", "response")
"""A task's two texts, in the order every check names them."""

RECORD_CHECKSUMS = {"prompt_sha256": "prompt_checksum", "response_sha256": "response_checksum"}
"""Each text's checksum by its one name in every view (``prompt_sha256``), and the name
the task record stores it under (``TaskExecutionRecord.prompt_checksum``).

Two stored fields hold the same SHA-256, and both stay: the record's is part of the
public data model (``TaskExecutionRecord``, written by the engine, read by callers and
in every old log), and the log's ``artifact`` event carries the store's own, computed
from the texts it wrote, so that ``verify`` never trusts a checksum a caller handed in.
Both are inside the hash chain, so old entries must keep them. Every output names the
value ``prompt_sha256``/``response_sha256``; ``record_checksums`` reads a record's."""


def record_checksums(record: Any) -> dict[str, Any]:
    """A stored task record's checksums under their view names (``prompt_sha256``);
    ``None`` for one it lacks (an old or hand-written record)."""
    fields = record if isinstance(record, dict) else {}
    return {name: fields.get(stored) or None for name, stored in RECORD_CHECKSUMS.items()}


def mismatched_texts(
    prompt: object, response: object, checksums: Any, *, unrecorded_ok: bool = False
) -> list[str]:
    """Which of ``TEXTS`` do not match their SHA-256 in ``checksums`` (view names:
    ``prompt_sha256``): the one per-text check, used by the stores (reads, ``verify``,
    copies), the engine and the views. A text that is not a str never matches; a
    checksum that is missing matches only with ``unrecorded_ok`` (nothing to check)."""
    found = []
    for what, text in zip(TEXTS, (prompt, response), strict=True):
        expected = checksums.get(f"{what}_sha256") if isinstance(checksums, dict) else None
        if not isinstance(text, str):
            found.append(what)
        elif not expected:
            if not unrecorded_ok:
                found.append(what)
        elif sha256_text(text) != expected:
            found.append(what)
    return found


class InstanceStatus(str, Enum):
    """Lifecycle of an instance; the values are the plain strings the seed stores."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """True once triggers no longer move the instance (a failed one can still be retried)."""
        return self in _FINISHED

    @property
    def is_active(self) -> bool:
        """True while the instance is in progress: created, running or paused."""
        return not self.is_finished

    def __str__(self) -> str:
        return self.value


_STATUSES = {status.value: status for status in InstanceStatus}
_FINISHED = frozenset({InstanceStatus.COMPLETED, InstanceStatus.FAILED, InstanceStatus.CANCELLED})

WorkflowStatus = InstanceStatus
"""ChatCoder's (v1.1) name for ``InstanceStatus``: the same ``str`` enum, so a status
compares equal to its plain string and ``json.dumps`` writes it as one."""


def parse_status(value: object) -> InstanceStatus:
    """The status named by ``value`` (a member or its string), or a ``ValidationError``."""
    if type(value) is InstanceStatus:
        return value
    try:
        return InstanceStatus(value)
    except ValueError:
        known = ", ".join(status.value for status in InstanceStatus)
        raise ValidationError(f"unknown status {value!r} (one of {known})") from None


class EventKind(str, Enum):
    """What happened to an instance; the values are what the event log stores."""

    STARTED = "started"
    PHASE_ENTERED = "phase_entered"
    PHASE_COMPLETED = "phase_completed"
    APPROVAL_REQUESTED = "approval_requested"
    PAUSED = "paused"
    RESUMED = "resumed"
    REJECTED = "rejected"
    FAILED = "failed"
    RETRIED = "retried"
    CANCELLED = "cancelled"
    JUMPED = "jumped"
    COMPLETED = "completed"
    FORKED = "forked"
    APPROVED = "approved"
    GATE_BLOCKED = "gate_blocked"
    SCHEMA_UPGRADED = "schema_upgraded"
    APPROVAL_OVERRIDDEN = "approval_overridden"
    """A phase that requires approval was entered without it, forced by ``actor``."""
    TASK_RECORDED = "task_recorded"
    """A visit's prompt and response were recorded (``record_task_artifacts``)."""
    FILES_TOUCHED = "files_touched"
    """Files written during a visit, with their SHA-256 (``record_files``)."""
    USAGE = "usage"
    """Tokens, cost, model or time spent on a visit (``record_usage``, ``domain.usage``)."""
    BUDGET_WARNING = "budget_warning"
    """A budget reached 80 % (``chatflow.domain.budgets``)."""
    BUDGET_EXCEEDED = "budget_exceeded"
    """A budget was crossed; the instance pauses with kind ``budget``."""
    BUDGET_EXTENDED = "budget_extended"
    """A person allowed more (``extend_budget``)."""
    DEADLINE_PASSED = "deadline_passed"
    """A wait outlived its ``deadline``; ``data.outcome`` says what was done (``due``)."""

    def __str__(self) -> str:
        return self.value


_V11_EVENT_TYPES = {
    EventKind.STARTED: "workflow_started",
    EventKind.PHASE_ENTERED: "phase_started",
    EventKind.PHASE_COMPLETED: "phase_completed",
    EventKind.COMPLETED: "workflow_completed",
}


@dataclass
class WorkflowEvent:
    """One entry of an instance's audit log: what happened, when, who did it, with what data.

    ``history_index`` is the history entry the event belongs to (-1: before the first).
    ``while_open`` says whether that entry was still open, which orders the event
    before the entry's completion in ``get_workflow_history``.
    """

    kind: EventKind
    at: float
    actor: str | None = None
    phase: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    history_index: int = -1
    while_open: bool = False

    def __post_init__(self) -> None:
        if type(self.kind) is not EventKind:
            self.kind = EventKind(self.kind)

    @property
    def event_type(self) -> str:
        """The event's name in ChatCoder's v1.1 history (``workflow_started``,
        ``phase_started``, ...); kinds v1.1 had no name for keep their own."""
        return _V11_EVENT_TYPES.get(self.kind, self.kind.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "at": self.at,
            "actor": self.actor,
            "phase": self.phase,
            "data": self.data,
            "history_index": self.history_index,
            "while_open": self.while_open,
        }

    @classmethod
    def from_dict(cls, data: Any) -> WorkflowEvent:
        fields = _fields.require(data, "event", ("kind", "at"))
        return cls(
            kind=_fields.member(fields, "kind", EventKind, "event"),
            at=_fields.number(fields, "at"),
            actor=_fields.optional_str(fields, "actor"),
            phase=_fields.optional_str(fields, "phase"),
            data=_fields.optional_dict(fields, "data") or {},
            history_index=_fields.typed(fields, "history_index", int, -1),
            while_open=_fields.typed(fields, "while_open", bool, False),
        )


@dataclass
class HistoryEntry:
    """One visit to a phase: opened when the phase is entered, closed by the next trigger.

    ``task`` names the visit's task record (``tasks/<task>.json`` in the file store);
    it is empty until the phase's prompt and response are recorded. ``actor`` is who
    closed the visit (from the closing call's meta), if known. ``git`` is where the work
    tree stood when the visit started and ended (``chatflow.core.gitlinks``), if known.
    """

    phase: str
    task: str
    started_at: float
    ended_at: float | None = None
    status: str = "running"
    trigger_data_snapshot: dict[str, Any] | None = None
    actor: str | None = None
    git: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "phase": self.phase,
            "task": self.task,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "status": self.status,
            "trigger_data_snapshot": self.trigger_data_snapshot,
        }
        if self.actor is not None:  # omitted when unknown: every step rewrites every entry
            data["actor"] = self.actor
        if self.git is not None:
            data["git"] = self.git
        return data

    @classmethod
    def from_dict(cls, data: Any) -> HistoryEntry:
        # Every step parses every entry, so the well-formed case is checked inline (exact
        # JSON types, no helper calls); anything else takes the path with precise errors.
        if type(data) is dict:
            phase, task = data.get("phase"), data.get("task")
            started, ended = data.get("started_at"), data.get("ended_at")
            status = data.get("status", "running")
            snapshot, actor = data.get("trigger_data_snapshot"), data.get("actor")
            git = data.get("git")
            if (
                type(phase) is str
                and type(task) is str
                and type(started) is float
                and (ended is None or type(ended) is float)
                and type(status) is str
                and (snapshot is None or type(snapshot) is dict)
                and (actor is None or type(actor) is str)
                and (git is None or type(git) is dict)
            ):
                return cls(phase, task, started, ended, status, snapshot, actor, git)
        return cls._checked_from_dict(data)

    @classmethod
    def _checked_from_dict(cls, data: Any) -> HistoryEntry:
        fields = _fields.require(data, "history entry", ("phase", "task", "started_at"))
        return cls(
            phase=_fields.typed(fields, "phase", str),
            task=_fields.typed(fields, "task", str),
            started_at=_fields.number(fields, "started_at"),
            ended_at=_fields.optional_number(fields, "ended_at"),
            status=_fields.typed(fields, "status", str, "running"),
            trigger_data_snapshot=_fields.optional_dict(fields, "trigger_data_snapshot"),
            actor=_fields.optional_str(fields, "actor"),
            git=_fields.optional_dict(fields, "git"),
        )


@dataclass
class TaskExecutionRecord:
    """What ran in a phase: timing and the SHA-256 of the prompt and the AI's response."""

    phase_name: str
    status: str
    started_at: float
    ended_at: float | None = None
    prompt_checksum: str = ""
    response_checksum: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase_name": self.phase_name,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "prompt_checksum": self.prompt_checksum,
            "response_checksum": self.response_checksum,
        }

    @classmethod
    def from_dict(cls, data: Any) -> TaskExecutionRecord:
        fields = _fields.require(data, "task record", ("phase_name", "status", "started_at"))
        return cls(
            phase_name=_fields.typed(fields, "phase_name", str),
            status=_fields.typed(fields, "status", str),
            started_at=_fields.number(fields, "started_at"),
            ended_at=_fields.optional_number(fields, "ended_at"),
            prompt_checksum=_fields.typed(fields, "prompt_checksum", str, ""),
            response_checksum=_fields.typed(fields, "response_checksum", str, ""),
        )


@dataclass
class TaskArtifacts:
    """A phase's task record together with the texts its checksums cover."""

    record: TaskExecutionRecord
    prompt: str
    response: str


@dataclass
class WorkflowInstanceState:
    """Everything known about one workflow instance.

    ``workflow_schema`` is the validated schema the instance started with, so every
    step follows the instance's own definition. ``version`` counts committed writes;
    stores use it to detect concurrent changes.

    ``events`` holds the lifecycle events (``WorkflowEvent``) that the history entries
    do not already tell: a plain step stores no event, because its "phase completed" and
    "phase entered" are the entries' own timestamps (``chatflow.domain.history`` merges
    both into the full log, so a long history costs no extra per step). ``visits``
    counts history entries per phase (every entry is a visit, retries included), kept
    as a counter so a step never rescans the history. ``retries`` counts
    ``retry_phase`` calls per phase.
    ``pause`` says why a paused instance waits (``kind`` "approval" or "manual").
    ``automation_level`` (0-100) gates risky steps; ``parent`` links a fork to the
    instance and history index it was forked from.
    """

    instance_id: str
    feature_id: str
    workflow_name: str
    current_phase: str
    variables: dict[str, Any]
    status: InstanceStatus = InstanceStatus.CREATED
    history: MutableSequence[HistoryEntry] = field(default_factory=list)
    created_at: float = field(default_factory=generate_timestamp)
    updated_at: float = field(default_factory=generate_timestamp)
    meta: dict[str, Any] = field(default_factory=dict)
    workflow_schema: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    events: MutableSequence[WorkflowEvent] = field(default_factory=list)
    visits: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    pause: dict[str, Any] | None = None
    automation_level: int | None = None
    parent: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    wait: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.status = parse_status(self.status)

    @property
    def open_entry(self) -> HistoryEntry | None:
        """The history entry of the phase being worked on, if the instance is not finished."""
        if not self.history:
            return None
        last = self.history[-1]
        return last if last.ended_at is None else None

    @property
    def pause_info(self) -> Pause | None:
        """``pause`` read as a typed value (the dict stays what is stored and returned)."""
        from chatflow.domain.values import Pause  # noqa: PLC0415 - values builds on this module

        return None if self.pause is None else self._read(Pause.from_dict, self.pause)

    @property
    def parent_link(self) -> ParentLink | None:
        """``parent`` read as a typed value: the instance and history index forked from."""
        from chatflow.domain.values import ParentLink  # noqa: PLC0415 - see pause_info

        return None if self.parent is None else self._read(ParentLink.from_dict, self.parent)

    def _read(self, parse: Callable[[Any], T], data: Any) -> T:
        try:
            return parse(data)
        except ValidationError as error:  # a stored record: damage, not a caller's mistake
            raise CorruptStateError(
                f"stored state of instance {self.instance_id!r} is invalid: {error}",
                instance_id=self.instance_id,
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.small_dict(),
            "history": [entry.to_dict() for entry in self.history],
            "events": [event.to_dict() for event in self.events],
        }

    def small_dict(self) -> dict[str, Any]:
        """Every field but the two lists: what an instance's head keeps whole."""
        return {
            "format": STATE_FORMAT,
            "instance_id": self.instance_id,
            "feature_id": self.feature_id,
            "workflow_name": self.workflow_name,
            "current_phase": self.current_phase,
            "status": self.status.value,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "variables": self.variables,
            "meta": self.meta,
            "workflow_schema": self.workflow_schema,
            "visits": self.visits,
            "retries": self.retries,
            "pause": self.pause,
            "automation_level": self.automation_level,
            "parent": self.parent,
            # Written only once used, so heads without spend, budget or deadline keep
            # their exact bytes (``chatflow.domain.usage``, ``budgets``, ``deadlines``).
            **{key: value for key, value in self._limits() if value is not None},
        }

    def _limits(self) -> tuple[tuple[str, dict[str, Any] | None], ...]:
        return (("usage", self.usage), ("budget", self.budget), ("wait", self.wait))

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        lists: tuple[MutableSequence[HistoryEntry], MutableSequence[WorkflowEvent]] | None = None,
    ) -> WorkflowInstanceState:
        # Every step parses a state, so the case this version writes is checked inline
        # (exact JSON types, no helper calls); anything else takes the path with precise
        # errors (and the defaults for what older versions left out).
        if type(data) is dict:
            get = data.get
            named = get("status")
            status = _STATUSES.get(named) if type(named) is str else None
            visits, retries, level = get("visits"), get("retries"), get("automation_level")
            if (
                get("format") == STATE_FORMAT
                and status is not None
                and type(get("instance_id")) is str
                and type(get("feature_id")) is str
                and type(get("workflow_name")) is str
                and type(get("current_phase")) is str
                and type(get("created_at")) is float
                and type(get("updated_at")) is float
                and type(get("version")) is int
                and type(get("variables")) is dict
                and type(get("meta")) is dict
                and type(get("workflow_schema")) is dict
                and type(visits) is dict
                and type(retries) is dict
                and all(type(n) is int and n >= 0 for n in (*visits.values(), *retries.values()))
                and (get("pause") is None or type(get("pause")) is dict)
                and (get("parent") is None or type(get("parent")) is dict)
                and (level is None or type(level) is int)
                and all(get(k) is None or type(get(k)) is dict for k in _LIMIT_KEYS)
            ):
                history, events = _parsed_lists(data) if lists is None else lists
                return cls(
                    data["instance_id"],
                    data["feature_id"],
                    data["workflow_name"],
                    data["current_phase"],
                    data["variables"],
                    status,
                    history,
                    data["created_at"],
                    data["updated_at"],
                    data["meta"],
                    data["workflow_schema"],
                    data["version"],
                    events,
                    visits,
                    retries,
                    get("pause"),
                    level,
                    get("parent"),
                    get("usage"),
                    get("budget"),
                    get("wait"),
                )
        return cls._checked_from_dict(data, lists)

    @classmethod
    def _checked_from_dict(
        cls,
        data: Any,
        lists: tuple[MutableSequence[HistoryEntry], MutableSequence[WorkflowEvent]] | None,
    ) -> WorkflowInstanceState:
        required = ("instance_id", "feature_id", "workflow_name", "current_phase", "status")
        fields = _fields.require(data, "instance state", required)
        fmt = fields.get("format", STATE_FORMAT)
        if fmt not in READABLE_FORMATS or isinstance(fmt, bool):
            raise ValidationError(
                f"instance state has format {fmt!r}; this ChatFlow reads formats "
                f"{', '.join(map(str, READABLE_FORMATS))}"
            )
        history, events = _parsed_lists(fields) if lists is None else lists
        return cls(
            instance_id=_fields.typed(fields, "instance_id", str),
            feature_id=_fields.typed(fields, "feature_id", str),
            workflow_name=_fields.typed(fields, "workflow_name", str),
            current_phase=_fields.typed(fields, "current_phase", str),
            variables=_fields.optional_dict(fields, "variables") or {},
            status=_fields.member(fields, "status", InstanceStatus, "instance state"),
            history=history,
            created_at=_fields.number(fields, "created_at", 0.0),
            updated_at=_fields.number(fields, "updated_at", 0.0),
            meta=_fields.optional_dict(fields, "meta") or {},
            workflow_schema=_fields.optional_dict(fields, "workflow_schema") or {},
            version=_fields.typed(fields, "version", int, 0),
            events=events,
            visits=_fields.counts(fields, "visits")
            if "visits" in fields
            else _visit_counts(history),
            retries=_fields.counts(fields, "retries"),
            pause=_fields.optional_dict(fields, "pause"),
            automation_level=_fields.optional_int(fields, "automation_level"),
            parent=_fields.optional_dict(fields, "parent"),
            usage=_fields.optional_dict(fields, "usage"),
            budget=_fields.optional_dict(fields, "budget"),
            wait=_fields.optional_dict(fields, "wait"),
        )


_LIMIT_KEYS = ("usage", "budget", "wait")


class WorkflowStartResult(str):
    """What ``start_workflow_instance`` returns: the new instance's id, and where it began.

    It *is* the id string, so the seed's callers keep using the return value as the id;
    it also has the attributes ChatCoder's v1.1 API gives it.

    >>> result = WorkflowStartResult("wfi_0123456789abcdef", "analyze", 1700000000.0)
    >>> result == "wfi_0123456789abcdef", result.instance_id, result.initial_phase
    (True, 'wfi_0123456789abcdef', 'analyze')
    """

    initial_phase: str
    created_at: float

    def __new__(
        cls, instance_id: str, initial_phase: str, created_at: float
    ) -> WorkflowStartResult:
        result = super().__new__(cls, instance_id)
        result.initial_phase = initial_phase
        result.created_at = created_at
        return result

    @property
    def instance_id(self) -> str:
        """The id as a plain ``str``."""
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.initial_phase, self.created_at))


@dataclass
class HistoryEvent:
    """One entry of ChatCoder's (v1.1) view of an instance's history.

    One entry per visit to a phase: ``workflow_started`` for the first (its ``task`` is
    ``"system"``), ``phase_started`` for each later one, with the ``task`` its phase
    declares. ``data`` has the visit's ``status``, ``ended_at`` and
    ``trigger_data_snapshot``. The full audit log is ``get_workflow_history``.
    """

    event_type: str
    phase: str
    task: str
    timestamp: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorkflowState:
    """ChatCoder's (v1.1) view of an instance, as ``get_workflow_state`` returns it.

    A detached snapshot of the stored ``WorkflowInstanceState``: changing it changes
    nothing stored. ``dataclasses.asdict`` of it passes ``json.dumps`` as it is (the
    status is a ``str`` enum). ChatCoder also builds one itself to preview a prompt,
    so ``status`` may be given as a plain string.
    """

    instance_id: str
    feature_id: str
    workflow_name: str
    current_phase: str
    variables: dict[str, Any]
    status: InstanceStatus = InstanceStatus.CREATED
    history: list[HistoryEvent] = field(default_factory=list)
    created_at: float = field(default_factory=generate_timestamp)
    updated_at: float = field(default_factory=generate_timestamp)
    meta: dict[str, Any] = field(default_factory=dict)
    automation_level: int | None = None

    def __post_init__(self) -> None:
        self.status = parse_status(self.status)


@dataclass
class WorkflowStatusInfo:
    """A short status of one instance, as ChatCoder lists a feature's instances.

    A dataclass (``asdict`` works) that also answers ``info["status"]`` and
    ``"progress" in info``, as v1.1's callers use it. ``status`` is the plain string.
    ``depth`` is v1.1's nesting depth of sub-workflows; ChatFlow has none, so it is 0.
    """

    instance_id: str
    status: str
    progress: float
    current_phase: str
    feature_id: str
    created_at: float
    updated_at: float
    depth: int = 0

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.__dataclass_fields__


def _parsed_lists(
    fields: dict[str, Any],
) -> tuple[MutableSequence[HistoryEntry], MutableSequence[WorkflowEvent]]:
    """A whole state's history and events."""
    history = [HistoryEntry.from_dict(entry) for entry in _fields.json_list(fields, "history")]
    events = [WorkflowEvent.from_dict(event) for event in _fields.json_list(fields, "events")]
    return history, events


def _visit_counts(history: MutableSequence[HistoryEntry]) -> dict[str, int]:
    """Visits of a format-1 state, which kept no counter: one per history entry."""
    counts: dict[str, int] = {}
    for entry in history:
        counts[entry.phase] = counts.get(entry.phase, 0) + 1
    return counts
