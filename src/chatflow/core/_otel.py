"""OpenTelemetry spans: one per action on an instance, never one for a whole run.

Every change to an instance passes ``WorkflowEngine._update`` and every new instance is
made by ``start_workflow_instance`` or ``fork``; those run through ``traced`` and
``created`` here, so each action (a step, an approval, a usage record, a timeout acted
on ...) is one span named ``chatflow.<action>`` and no public method knows about
tracing. A run that lasts days is a series of short spans, tied together by the
``chatflow.instance_id`` attribute and by one trace per instance (``instance_ids``).

ChatFlow never imports OpenTelemetry on its own (no import cost, nothing at all when it
is not installed): by default (``tracing=None``, ``CHATFLOW_OTEL`` unset) it traces
only once the application has imported ``opentelemetry.trace``, which configuring a
tracer provider (in code or with ``opentelemetry-instrument``) always does. Loaded but
with no provider configured, an action pays one type check. docs/library.md ("Tracing
with OpenTelemetry") lists every span and attribute, and why the traces are placed so.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from chatflow.core._stored import Change, NoChange
from chatflow.domain import usage as _usage
from chatflow.domain.models import EventKind, WorkflowEvent, WorkflowInstanceState
from chatflow.errors import ChatFlowError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

ENV_SWITCH = "CHATFLOW_OTEL"
"""``1`` (``true``, ``yes``, ``on``): trace, and say what to install if OpenTelemetry is
missing; ``0`` (``false``, ``no``, ``off``): never trace; unset: trace if the
application loaded OpenTelemetry."""
INSTALL = "tracing needs OpenTelemetry: pip install 'chatflow-engine[otel]'"
SCOPE = "chatflow"
"""The instrumentation scope (tracer name) of every ChatFlow span."""
API = "opentelemetry.trace"

INSTANCE = "chatflow.instance_id"
Commit = Callable[[Change], tuple[WorkflowInstanceState, int]]
"""Runs a change as one appended event; the new state and the event's ``seq``."""


class Tracing:
    """How one engine traces: never, with the global tracer provider, or with one it
    was given. Decided lazily, so building an engine imports nothing."""

    def __init__(self, setting: bool | TracerProvider | None) -> None:
        self._setting = setting
        self._current: tuple[object, Tracer | None] = (None, None)  # (provider, its tracer)
        self._mode = "unresolved"
        if setting is True:
            self._mode = "global"
            api()  # asked for explicitly: say now what to install
        elif setting is False:
            self._mode = "off"
        elif setting is not None:
            if not callable(getattr(setting, "get_tracer", None)):
                raise ChatFlowError(
                    "tracing must be True, False, None or an OpenTelemetry TracerProvider, "
                    f"not {type(setting).__name__}"
                )
            self._mode = "given"

    def tracer(self) -> Tracer | None:
        """The tracer for this action, or ``None`` when not tracing (the hot path: a
        dictionary lookup when OpenTelemetry is not loaded, a type check when it is
        but no provider was configured)."""
        if self._mode == "unresolved":
            self._mode = _mode_from_env()
        if self._mode == "off" or (self._mode == "auto" and API not in sys.modules):
            return None
        provider: Any = self._setting if self._mode == "given" else api().get_tracer_provider()
        known, tracer = self._current
        if provider is not known:  # the global one is set once, maybe after this engine
            tracer = None if _no_op(provider) else provider.get_tracer(SCOPE)
            self._current = (provider, tracer)  # one assignment: threads see a pair
        return tracer


def _no_op(provider: object) -> bool:
    """Whether ``provider`` is the API's stand-in (none configured yet) or its no-op."""
    trace = api()
    return isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _mode_from_env() -> str:
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "off"
    if value in ("1", "true", "yes", "on"):
        api()
        return "global"
    return "auto"


def api() -> ModuleType:
    """``opentelemetry.trace``, or a ``ChatFlowError`` saying what to install."""
    loaded = sys.modules.get(API)  # once per action: the import machinery only once
    if loaded is not None:
        return loaded
    try:
        from opentelemetry import trace  # noqa: PLC0415 - the optional extra, when asked
    except ImportError:
        raise ChatFlowError(INSTALL) from None
    return trace


def instance_ids(instance_id: str) -> tuple[int, int]:
    """The trace id and span id every span of ``instance_id`` is tied to: the first 16
    and next 8 bytes of SHA-256 of ``chatflow:<instance id>`` (so any tool can find the
    instance's trace from its id alone)."""
    digest = hashlib.sha256(f"chatflow:{instance_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def instance_trace_id(instance_id: str) -> str:
    """The instance's trace id as backends show it (32 hex digits)."""
    return f"{instance_ids(instance_id)[0]:032x}"


def traced(
    tracing: Tracing, action: str, instance_id: str, change: Change, commit: Commit
) -> WorkflowInstanceState:
    """Run ``change`` through ``commit`` inside one ``chatflow.<action>`` span."""
    tracer = tracing.tracer()
    if tracer is None:
        return commit(change)[0]
    trace = api()
    span = _start(trace, tracer, action, instance_id)
    with trace.use_span(span, True, record_exception=False, set_status_on_exception=False):
        if not span.is_recording():  # no provider, or sampled out: nothing to fill in
            return commit(change)[0]
        seen = _Seen(change)
        try:
            state, seq = commit(seen)
        except BaseException as error:
            span.set_attributes(seen.before())  # where the refused action found it
            _ended_by(trace, span, error)
            raise
        span.set_attributes(seen.attributes(state, seq))
        return state


def created(
    tracing: Tracing,
    action: str,
    state: WorkflowInstanceState,
    create: Callable[[], None],
    extra: Mapping[str, str | int] | None = None,
    origin: str | None = None,
) -> None:
    """Store a new instance (``create``) inside one ``chatflow.<action>`` span; a fork
    names its ``origin`` (the parent instance), whose trace the span links to."""
    tracer = tracing.tracer()
    if tracer is None:
        create()
        return
    trace = api()
    span = _start(trace, tracer, action, state.instance_id, origin)
    with trace.use_span(span, True, record_exception=False, set_status_on_exception=False):
        try:
            create()
        except BaseException as error:
            _ended_by(trace, span, error)
            raise
        if span.is_recording():
            attributes = {**_state_attributes(state, 1), **(extra or {})}
            attributes.update(_event_attributes(state.events))
            span.set_attributes(attributes)


def _start(
    trace: ModuleType, tracer: Tracer, action: str, instance_id: str, origin: str | None = None
) -> Span:
    """The span of one action: under the application's current span (linked to the
    instance's trace), or, with none current, in the instance's own trace."""
    own = _instance_context(instance_id)
    links = []
    context = None
    if trace.get_current_span().get_span_context().is_valid:
        links.append(trace.Link(own, {INSTANCE: instance_id}))
    else:
        context = trace.set_span_in_context(trace.NonRecordingSpan(own))
    if origin is not None:
        links.append(trace.Link(_instance_context(origin), {INSTANCE: origin}))
    return tracer.start_span(
        f"chatflow.{action}",
        context=context,
        links=links,
        attributes={INSTANCE: instance_id},
        record_exception=False,
        set_status_on_exception=False,
    )


@functools.lru_cache(maxsize=1024)
def _instance_context(instance_id: str) -> Any:
    """The span context standing for the instance (the parent of its trace; sampled, so
    a parent-based sampler keeps its spans: see docs/library.md)."""
    trace = api()
    trace_id, span_id = instance_ids(instance_id)
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED)
    return trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)


def _ended_by(trace: ModuleType, span: Span, error: BaseException) -> None:
    """A change that chose to write nothing is noted; any other exception (a
    ``ChatFlowError`` or a failure) makes the span an ERROR, recorded; the caller
    re-raises it unchanged."""
    if isinstance(error, NoChange):
        span.set_attribute("chatflow.changed", False)
    else:
        _failed(trace, span, error)


def _failed(trace: ModuleType, span: Span, error: BaseException) -> None:
    """Status ERROR with ``error.type`` (OpenTelemetry's general convention, so error
    dashboards group by it) and the exception as a span event."""
    kind = type(error)
    span.set_attribute("error.type", f"{kind.__module__}.{kind.__qualname__}")
    span.record_exception(error)
    span.set_status(trace.Status(trace.StatusCode.ERROR, f"{kind.__name__}: {error}"))


class _Seen:
    """A change that notes what it started from and which events it appended (the
    store may run it more than once, on a retry: the last run is the one committed)."""

    def __init__(self, change: Change) -> None:
        self._change = change
        self.first = 0
        self.found: dict[str, Any] = {}

    def __call__(self, state: WorkflowInstanceState) -> None:
        self.first = len(state.events)  # free on a head-loaded state: see LazyList
        self.found = {
            "chatflow.feature_id": state.feature_id,
            "chatflow.workflow": state.workflow_name,
            "chatflow.phase.before": state.current_phase,
            "chatflow.status": str(state.status.value),
        }
        self._change(state)

    def before(self) -> dict[str, Any]:
        """What the instance was when the action started (nothing if never read)."""
        return self.found

    def attributes(self, state: WorkflowInstanceState, seq: int) -> dict[str, Any]:
        """The span's attributes once the change is committed as event ``seq``."""
        found = _state_attributes(state, seq)
        found["chatflow.phase.before"] = self.found["chatflow.phase.before"]
        found.update(_event_attributes(state.events[self.first :]))
        return found


def _state_attributes(state: WorkflowInstanceState, seq: int) -> dict[str, Any]:
    """What the instance is after the action."""
    found: dict[str, Any] = {
        "chatflow.feature_id": state.feature_id,
        "chatflow.workflow": state.workflow_name,
        "chatflow.phase.after": state.current_phase,
        "chatflow.status": str(state.status.value),
        "chatflow.seq": seq,
    }
    version = state.workflow_schema.get("version")
    if isinstance(version, (int, str)) and not isinstance(version, bool):
        found["chatflow.workflow_version"] = version
    if state.pause is not None and isinstance(state.pause.get("kind"), str):
        found["chatflow.pause.kind"] = state.pause["kind"]
    return found


def _event_attributes(events: Sequence[WorkflowEvent]) -> dict[str, Any]:
    """The kinds of the events the action appended, who acted, and what it spent."""
    found: dict[str, Any] = {"chatflow.events": [event.kind.value for event in events]}
    actor = next((event.actor for event in events if event.actor), None)
    if actor is not None:
        found["chatflow.actor"] = actor
    totals: dict[str, Any] = {}
    for event in events:
        if event.kind is EventKind.USAGE:
            _usage.add_to(totals, _usage.from_event(event.data))
    if totals:
        found.update(_usage_attributes(totals))
    return found


def _usage_attributes(totals: Mapping[str, Any]) -> dict[str, Any]:
    """Usage under the names its JSON uses (OpenTelemetry GenAI where they exist)."""
    found = {
        _usage.OTEL_NAMES[key]: totals[key]
        for key in ("input_tokens", "output_tokens", "cost_usd", "duration_s")
        if key in totals
    }
    models = totals.get("models", [])
    if models:
        found[_usage.OTEL_NAMES["model"]] = models[-1]
    return found
