"""OpenTelemetry spans on every store: one span per action, named ``chatflow.<action>``,
with the instance's ids, phase, status, seq, actor and usage as attributes, tied to one
trace per instance; a refused action is an ERROR span and its error reaches the caller
unchanged (docs/observability.md). Checked with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from chatflow import WorkflowEngine
from chatflow.core import _otel
from chatflow.core._otel import instance_ids, instance_trace_id
from chatflow.errors import GateNotSatisfiedError, InvalidTransitionError
from chatflow.storage import IWorkflowStateStore

HOUR = 3600.0

TRACED: dict[str, Any] = {
    "name": "traced",
    "budget": {"cost_usd": 1},
    "phases": [
        {"name": "code"},
        {"name": "review", "requires_approval": True},
        {"name": "ship", "exit_requires": {"approvals": 1}},
    ],
}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """The application's own provider, handed to the engine (the global one is left
    alone: other tests in this process must not record spans)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def engine(store: IWorkflowStateStore, provider: TracerProvider) -> Iterator[WorkflowEngine]:
    engine = WorkflowEngine(store=store, tracing=provider, git=False)
    yield engine
    engine.close()


def spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return {
        key: (list(v) if isinstance(v, tuple) else v) for key, v in (span.attributes or {}).items()
    }


def feed_seqs(engine: WorkflowEngine, instance_id: str) -> list[int]:
    return [event.seq for event in engine.events_since(None, instance=instance_id).events]


def test_each_action_of_a_run_is_one_span_with_its_attributes(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    iid = engine.start_workflow_instance(TRACED, {}, "feat_otel", actor="ana")
    usage = {"input_tokens": 120, "output_tokens": 30, "cost_usd": 0.25, "model": "m1"}
    engine.trigger_next_step(iid, usage, actor="bot")  # into review: waits for approval
    with pytest.raises(InvalidTransitionError) as refused:
        engine.trigger_next_step(iid, actor="bot")  # paused: refused, nothing written
    engine.resume(iid, approved_by="ana")
    engine.trigger_next_step(iid, {"cost_usd": 0.9}, actor="bot")  # crosses the budget
    engine.extend_budget(iid, by="ana", cost_usd=1)
    engine.approve(iid, by="dan")
    child = engine.fork(iid, 1, actor="cy")

    found = spans(exporter)
    assert [span.name for span in found] == [
        "chatflow.start",
        "chatflow.trigger_next",
        "chatflow.trigger_next",
        "chatflow.resume",
        "chatflow.trigger_next",
        "chatflow.extend_budget",
        "chatflow.approve",
        "chatflow.fork",
    ]
    ids = {"chatflow.instance_id": iid, "chatflow.feature_id": "feat_otel"}
    ids["chatflow.workflow"] = "traced"
    seqs = feed_seqs(engine, iid)
    assert seqs == [1, 2, 3, 4, 5, 6, 7]  # the last: the parent's note of the fork
    start, step, failed, resume, crossing, extend, approve, fork = map(attributes, found)
    assert start == {
        **ids,
        "chatflow.phase.after": "code",
        "chatflow.status": "created",
        "chatflow.seq": 1,
        "chatflow.events": ["started"],
        "chatflow.actor": "ana",
    }
    assert step == {
        **ids,
        "chatflow.phase.before": "code",
        "chatflow.phase.after": "review",
        "chatflow.status": "paused",
        "chatflow.pause.kind": "approval",
        "chatflow.seq": 2,
        "chatflow.events": ["usage", "approval_requested"],
        "chatflow.actor": "bot",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.request.model": "m1",
        "chatflow.cost_usd": 0.25,
    }
    assert failed == {
        **ids,
        "chatflow.phase.before": "review",
        "chatflow.status": "paused",
        "error.type": "chatflow.errors.InvalidTransitionError",
    }
    assert resume == {
        **ids,
        "chatflow.phase.before": "review",
        "chatflow.phase.after": "review",
        "chatflow.status": "running",
        "chatflow.seq": 3,
        "chatflow.events": ["resumed"],
        "chatflow.actor": "ana",
    }
    assert crossing["chatflow.status"] == "paused"
    assert crossing["chatflow.pause.kind"] == "budget"
    assert crossing["chatflow.phase.after"] == "ship"
    assert crossing["chatflow.events"][0] == "usage"
    assert "budget_exceeded" in crossing["chatflow.events"]
    assert crossing["chatflow.cost_usd"] == 0.9 and crossing["chatflow.seq"] == 4
    assert "gen_ai.usage.input_tokens" not in crossing  # only what the action carried
    assert extend["chatflow.status"] == "running" and extend["chatflow.seq"] == 5
    assert extend["chatflow.actor"] == "ana"
    assert extend["chatflow.events"] == ["budget_extended", "resumed"]
    assert approve["chatflow.events"] == ["approved"] and approve["chatflow.actor"] == "dan"
    assert approve["chatflow.seq"] == 6
    assert fork == {
        "chatflow.instance_id": child,
        "chatflow.feature_id": "feat_otel",
        "chatflow.workflow": "traced",
        "chatflow.phase.after": "review",
        "chatflow.status": "paused",
        "chatflow.pause.kind": "approval",
        "chatflow.seq": 1,
        "chatflow.events": ["started", "approval_requested"],
        "chatflow.actor": "cy",
        "chatflow.fork.parent_instance_id": iid,
        "chatflow.fork.at": 1,
    }
    assert feed_seqs(engine, child) == [1]

    # The refused step: status ERROR, the exception recorded, the caller's error intact.
    error = found[2]
    assert error.status.status_code is StatusCode.ERROR
    assert error.status.description == f"InvalidTransitionError: {refused.value}"
    (event,) = error.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "chatflow.errors.InvalidTransitionError"
    assert event.attributes["exception.message"] == str(refused.value)
    assert all(span.status.status_code is StatusCode.UNSET for span in found if span is not error)

    # One trace per instance: with no span of the application current, each action is
    # a child of the instance's own span context, derived from its id.
    trace_id, span_id = instance_ids(iid)
    for span in found[:-1]:
        assert span.context is not None and span.parent is not None
        assert span.context.trace_id == trace_id and span.parent.span_id == span_id
        assert span.parent.is_remote and not span.links
    assert f"{trace_id:032x}" == instance_trace_id(iid)
    assert fork_placement(found[-1]) == (instance_ids(child), instance_ids(iid), iid)


def fork_placement(span: ReadableSpan) -> tuple[tuple[int, int], tuple[int, int], Any]:
    """(the fork's trace and parent span, the trace and span it links to, the link's id)."""
    assert span.context is not None and span.parent is not None
    (link,) = span.links
    linked = link.attributes["chatflow.instance_id"] if link.attributes else None
    return (
        (span.context.trace_id, span.parent.span_id),
        (link.context.trace_id, link.context.span_id),
        linked,
    )


def test_under_an_application_span_actions_nest_there_and_link_the_instance(
    engine: WorkflowEngine, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    iid = engine.start_workflow_instance(TRACED, {}, "feat_otel")
    with provider.get_tracer("app").start_as_current_span("POST /step") as request:
        engine.trigger_next_step(iid)
        engine.record_usage(iid, input_tokens=5, model="m2", duration_s=1.5)
    *_, step, usage, outer = spans(exporter)
    assert outer.name == "POST /step"
    for span in (step, usage):
        assert span.parent is not None and span.context is not None
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.context.trace_id == request.get_span_context().trace_id
        (link,) = span.links
        assert (link.context.trace_id, link.context.span_id) == instance_ids(iid)
        assert link.attributes == {"chatflow.instance_id": iid}
    assert usage.name == "chatflow.record_usage"
    assert {k: v for k, v in attributes(usage).items() if "." in k and "gen_ai" in k} == {
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.request.model": "m2",
    }
    assert attributes(usage)["chatflow.duration_s"] == 1.5
    assert attributes(usage)["chatflow.events"] == ["usage"]


def test_every_human_action_is_named_for_itself(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    schema = {"name": "w", "phases": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    iid = engine.start_workflow_instance(schema, {}, "feat_otel")
    engine.pause(iid, "lunch", actor="ana")
    engine.resume(iid, actor="ana")
    engine.fail_phase(iid, "the model timed out", actor="bot")
    engine.retry_phase(iid, actor="ana")
    engine.jump_to(iid, "c", "skip b", actor="ana")
    engine.record_task_artifacts(iid, "prompt", "response", actor="bot")
    engine.cancel(iid, "done elsewhere", actor="ana")
    names = [span.name for span in spans(exporter)]
    assert names == [
        "chatflow.start",
        "chatflow.pause",
        "chatflow.resume",
        "chatflow.fail",
        "chatflow.retry",
        "chatflow.jump",
        "chatflow.record_task",
        "chatflow.cancel",
    ]
    *_, cancel = spans(exporter)
    assert attributes(cancel)["chatflow.status"] == "cancelled"
    assert attributes(cancel)["chatflow.phase.before"] == "c"
    assert attributes(cancel)["chatflow.seq"] == feed_seqs(engine, iid)[-1]


def test_a_gate_refusal_is_an_error_span_and_a_dry_run_none(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    schema = {"name": "w", "phases": [{"name": "a", "exit_requires": {"approvals": 1}}]}
    iid = engine.start_workflow_instance(schema, {}, "feat_otel")
    engine.trigger_next_step(iid, dry_run=True)  # writes nothing: no action, no span
    with pytest.raises(GateNotSatisfiedError):
        engine.trigger_next_step(iid)
    start, refused = spans(exporter)
    assert start.name == "chatflow.start" and refused.name == "chatflow.trigger_next"
    assert refused.status.status_code is StatusCode.ERROR
    assert attributes(refused)["error.type"] == "chatflow.errors.GateNotSatisfiedError"
    assert "chatflow.seq" not in attributes(refused)  # nothing was appended


def test_a_timeout_acted_on_is_one_span_and_one_found_done_is_no_error(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    schema = {
        "name": "deadline_fail",
        "phases": [
            {"name": "code"},
            {"name": "review", "requires_approval": True, "deadline": "1h", "on_timeout": "fail"},
        ],
    }
    iid = engine.start_workflow_instance(schema, {}, "feat_otel")
    state = engine.trigger_next_step(iid)
    assert state.wait is not None
    later = float(state.wait["due_at"]) + HOUR
    (timeout,) = engine.apply_due(later)
    assert timeout.outcome == "fail"
    assert engine.apply_due(later) == []  # nothing due: nothing acted on, no span
    *_, acted = spans(exporter)
    assert acted.name == "chatflow.apply_due"
    assert attributes(acted)["chatflow.status"] == "failed"
    assert "deadline_passed" in attributes(acted)["chatflow.events"]
    assert acted.status.status_code is StatusCode.UNSET
    # Another process acted first: the transaction writes nothing, and says so.
    assert engine._time_out(iid, later) is None
    late = spans(exporter)[-1]
    assert late.name == "chatflow.apply_due"
    assert attributes(late)["chatflow.changed"] is False
    assert late.status.status_code is StatusCode.UNSET


def test_a_no_op_provider_costs_no_attributes(
    store: IWorkflowStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's no-op provider: the engine steps without building a span at all."""

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a span was built for a no-op provider")

    monkeypatch.setattr(_otel, "_start", never)
    monkeypatch.setattr(_otel, "_Seen", never)
    engine = WorkflowEngine(store=store, tracing=trace.NoOpTracerProvider(), git=False)
    iid = engine.start_workflow_instance(TRACED, {}, "feat_otel")
    assert engine.trigger_next_step(iid).current_phase == "review"


def test_upgrades_and_files_touched_are_actions_too(
    engine: WorkflowEngine, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    first = {"name": "up", "version": 1, "phases": [{"name": "code"}, {"name": "ship"}]}
    engine.register_schema(first)
    engine.register_schema({**first, "version": 2})
    iid = engine.start_workflow_instance(schema_name="up", schema_version=1, feature_id="feat_u")
    engine.upgrade_instance(iid, to_version=2, dry_run=True)  # nothing written: no span
    engine.upgrade_instance(iid, to_version=2, actor="ops")
    touched = tmp_path / "app.py"
    touched.write_text("print('hi')\n", encoding="utf-8")
    engine.record_files(iid, [touched], actor="bot")
    start, upgrade, files = spans(exporter)
    assert (start.name, upgrade.name, files.name) == (
        "chatflow.start",
        "chatflow.upgrade",
        "chatflow.record_files",
    )
    assert attributes(start)["chatflow.workflow_version"] == 1
    assert attributes(upgrade)["chatflow.workflow_version"] == 2
    assert attributes(upgrade)["chatflow.events"] == ["schema_upgraded"]
    assert attributes(upgrade)["chatflow.actor"] == "ops"
    assert attributes(files)["chatflow.events"] == ["files_touched"]
