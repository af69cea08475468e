"""Stateful property test of the lifecycle: random action sequences against its rules.

Hypothesis drives one engine through start, record, next (with and without the gate's
data), approve, reject, fail, retry, jump, pause, resume, cancel and fork, and checks
each outcome against ``lifecycle.ALLOWED`` (an action succeeds only from a status the
table lists; a refusal changes nothing), and after every step that histories only grow,
``verify`` passes, progress reads 100 % only when completed, and the actions the views
offer are the ones the lifecycle accepts. Small and derandomized: seconds, repeatable.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from chatflow import WorkflowEngine, views
from chatflow.domain.lifecycle import ALLOWED
from chatflow.domain.models import InstanceStatus
from chatflow.domain.status import progress, status_info
from chatflow.errors import ChatFlowError, GateNotSatisfiedError, InvalidTransitionError
from chatflow.ui import api

FLOW: dict[str, Any] = {
    "name": "machine",
    "phases": [
        {
            "name": "draft",
            "exit_requires": {"condition": {"path": "trigger.doc", "op": "==", "value": "d"}},
        },
        {"name": "review", "requires_approval": True, "max_retries": 2},
        {"name": "ship", "exit_requires": {"approvals": 1}},
    ],
}
PHASES = [phase["name"] for phase in FLOW["phases"]]

# The engine call behind each table row; the page's actions go through the UI API,
# as the page sends them.
TABLE_ACTION = {
    "next": "trigger a step",
    "approve": "approve",
    "pause": "pause",
    "resume": "resume",
    "reject": "reject",
    "fail": "fail",
    "retry": "retry",
    "cancel": "cancel",
    "jump": "jump",
}


def _events(engine: WorkflowEngine, iid: str) -> list[dict[str, Any]]:
    return [event.to_dict() for event in engine.get_workflow_history(iid)]


class LifecycleMachine(RuleBasedStateMachine):
    instances = Bundle("instances")

    def __init__(self) -> None:
        super().__init__()
        self.engine = WorkflowEngine("memory://")
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}

    @initialize(target=instances)
    def start(self) -> str:
        iid = self.engine.start_workflow_instance(FLOW, {}, "feat_m")
        self._remember(iid)
        return iid

    @rule(target=instances, iid=instances, at=st.integers(0, 6))
    def fork(self, iid: str, at: int) -> Any:
        state = self._state(iid)
        before = _events(self.engine, iid)
        try:
            child = self.engine.fork(iid, at, actor="ann")
        except ChatFlowError:
            assert at >= len(state.history) or not state.history
            assert _events(self.engine, iid) == before, "a refused fork changed the parent"
            return multiple()
        assert self._state(child).parent is not None
        self._remember(child)
        return child

    @rule(iid=instances, response=st.sampled_from(["", "r"]))
    def record(self, iid: str, response: str) -> None:
        before = self._state(iid)
        try:
            self.engine.record_task_artifacts(iid, "p", response)
        except ChatFlowError:
            assert self._state(iid).to_dict() == before.to_dict()

    @rule(iid=instances, with_data=st.booleans())
    def next(self, iid: str, with_data: bool) -> None:
        self._try(
            iid,
            "next",
            lambda: self.engine.trigger_next_step(iid, {"doc": "d"} if with_data else None),
        )

    @rule(iid=instances, page_action=st.sampled_from(views.PAGE_ACTIONS))
    def page(self, iid: str, page_action: str) -> None:
        state = self._state(iid)
        open_gates = status_info(state)["open_requirements"]
        offered = views.available_actions(state, open_gates)
        body = {"actor": "bob", "note": "n"}
        accepted = self._try(iid, page_action, lambda: api.act(self.engine, iid, page_action, body))
        if accepted:  # an extra approval of a met gate is accepted but not offered
            assert page_action in offered or page_action == "approve", (page_action, offered)
        else:
            assert page_action not in offered, (page_action, offered)

    @rule(iid=instances)
    def fail(self, iid: str) -> None:
        self._try(iid, "fail", lambda: self.engine.fail_phase(iid, "broke", actor="ann"))

    @rule(iid=instances, phase=st.sampled_from(PHASES))
    def jump(self, iid: str, phase: str) -> None:
        self._try(iid, "jump", lambda: self.engine.jump_to(iid, phase, "back", actor="ann"))

    def _try(self, iid: str, action: str, call: Any) -> bool:
        """Run ``call``; check it against the table. True if it was accepted."""
        before = self._state(iid)
        status = before.status
        refusal: ChatFlowError | None = None
        try:
            call()
        except ChatFlowError as error:  # e.g. retries exhausted: still nothing changed
            refusal = error
        if refusal is None:
            assert status in ALLOWED[TABLE_ACTION[action]], f"{action} succeeded from {status}"
            return True
        after = self._state(iid)
        assert after.to_dict() == before.to_dict(), f"refused {action} changed the state"
        if isinstance(refusal, GateNotSatisfiedError):  # the table allowed it; a gate held it
            assert status in ALLOWED[TABLE_ACTION[action]], (action, status)
        elif isinstance(refusal, InvalidTransitionError):
            narrowed = action in ("resume", "reject", "approve")  # the approval pause rule
            assert status not in ALLOWED[TABLE_ACTION[action]] or narrowed, (action, str(refusal))
        return False

    def _state(self, iid: str) -> Any:
        state = self.engine.get_workflow_instance_status(iid)
        assert state is not None
        return state

    def _remember(self, iid: str) -> None:
        self.history[iid] = [entry.to_dict() for entry in self._state(iid).history]
        self.seen[iid] = _events(self.engine, iid)

    @invariant()
    def logs_only_grow_and_verify(self) -> None:
        for iid, old_events in self.seen.items():
            state = self._state(iid)
            events = _events(self.engine, iid)
            assert events[: len(old_events)] == old_events, "the event log was rewritten"
            entries = [entry.to_dict() for entry in state.history]
            old = self.history[iid]
            assert len(entries) >= len(old)
            for was, now in zip(old[:-1], entries, strict=False):
                assert was == now, "a closed history entry changed"
            assert self.engine.verify(iid) is None
            share = progress(state)
            completed = state.status is InstanceStatus.COMPLETED
            assert share == 1.0 if completed else 0.0 <= share < 1.0, (state.status, share)
            self.seen[iid], self.history[iid] = events, entries


LifecycleMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
class TestLifecycleMachine(LifecycleMachine.TestCase):  # type: ignore[misc,valid-type]
    """Run as a pytest class so it reports as one test."""
