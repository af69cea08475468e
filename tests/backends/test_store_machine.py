"""Stateful property test: each store behaves as the memory store, operation by operation.

Hypothesis runs the same random sequence (start, record, next, approve, pause, resume,
reject, fail, retry, jump, cancel, fork, compact) on an engine over the memory store,
the model, and on one over the store under test (file, SQLite, PostgreSQL), and after
every step compares what a caller can observe: each instance's state and event log
(ids mapped, times dropped), its recorded texts, verification, the features and their
instances, and whether the operation was refused with the same error. Small and
derandomized: seconds, repeatable.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from chatflow import WorkflowEngine
from chatflow.errors import ChatFlowError
from store_harness import PostgresHarness, empty_postgres

FLOW: dict[str, Any] = {
    "name": "mirror",
    "phases": [
        {"name": "draft"},
        {"name": "review", "requires_approval": True, "max_retries": 1},
        {"name": "ship", "exit_requires": {"artifacts": ["response"]}},
    ],
}
PHASES = [phase["name"] for phase in FLOW["phases"]]
TIMES = {"created_at", "updated_at", "started_at", "ended_at", "at"}
SETTINGS = settings(
    max_examples=10,
    stateful_step_count=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
Pair = tuple[str, str]  # (id in the model, id in the store under test)
Opener = Callable[[], tuple[str, Callable[[], None]]]


class StoreMirrors(RuleBasedStateMachine):
    """The memory store is the model; ``open_store`` gives the store under test."""

    open_store: Opener
    pairs = Bundle("pairs")

    def __init__(self) -> None:
        super().__init__()
        self.model = WorkflowEngine("memory://")
        target, self.cleanup = self.open_store()
        self.real = WorkflowEngine(target)
        self.labels: tuple[dict[str, str], dict[str, str]] = ({}, {})
        self.known: list[Pair] = []

    def teardown(self) -> None:
        self.model.close()
        self.real.close()
        self.cleanup()

    def both(self, call: Callable[[WorkflowEngine, str], Any], pair: Pair | None) -> Any:
        """Run ``call`` on both engines; both succeed alike or refuse alike."""
        outcomes = []
        for engine, iid in zip((self.model, self.real), pair or ("", ""), strict=True):
            try:
                outcomes.append(("ok", call(engine, iid)))
            except ChatFlowError as error:
                outcomes.append((type(error).__name__, str(error).replace(iid, "<id>")))
        (model_kind, model_value), (real_kind, real_value) = outcomes
        assert model_kind == real_kind, (model_kind, model_value, real_kind, real_value)
        if model_kind != "ok":
            assert model_value == real_value
        return model_value, real_value if model_kind == "ok" else None

    def _new(self, ids: tuple[Any, Any]) -> Pair:
        pair: Pair = (ids[0], ids[1])
        label = f"I{len(self.known)}"
        self.labels[0][pair[0]], self.labels[1][pair[1]] = label, label
        self.known.append(pair)
        return pair

    @rule(target=pairs, feature=st.sampled_from(["feat_a", "feat_b"]))
    def start(self, feature: str) -> Pair:
        ids = self.both(lambda e, _: e.start_workflow_instance(FLOW, {"n": 1}, feature), None)
        return self._new(ids)

    @rule(target=pairs, pair=pairs, at=st.integers(0, 4))
    def fork(self, pair: Pair, at: int) -> Pair:
        ids = self.both(lambda e, iid: e.fork(iid, at, actor="ann"), pair)
        return self._new(ids) if ids[1] is not None else pair

    @rule(pair=pairs, text=st.sampled_from(["p", "ü\n", ""]))
    def record(self, pair: Pair, text: str) -> None:
        self.both(lambda e, iid: e.record_task_artifacts(iid, "prompt " + text, text), pair)

    @rule(pair=pairs, data=st.sampled_from([None, {"k": 1}]))
    def next(self, pair: Pair, data: dict[str, Any] | None) -> None:
        self.both(lambda e, iid: e.trigger_next_step(iid, data), pair)

    @rule(
        pair=pairs,
        action=st.sampled_from(["approve", "pause", "resume", "reject", "fail", "retry", "cancel"]),
    )
    def act(self, pair: Pair, action: str) -> None:
        calls: dict[str, Callable[[WorkflowEngine, str], Any]] = {
            "approve": lambda e, iid: e.resume(iid, approved_by="bob"),
            "pause": lambda e, iid: e.pause(iid, "lunch", actor="ann"),
            "resume": lambda e, iid: e.resume(iid, actor="ann"),
            "reject": lambda e, iid: e.reject(iid, rejected_by="bob", note="no"),
            "fail": lambda e, iid: e.fail_phase(iid, "broke", actor="ann"),
            "retry": lambda e, iid: e.retry_phase(iid, actor="ann"),
            "cancel": lambda e, iid: e.cancel(iid, "dropped", actor="ann"),
        }
        self.both(calls[action], pair)

    @rule(pair=pairs, phase=st.sampled_from(PHASES))
    def jump(self, pair: Pair, phase: str) -> None:
        self.both(lambda e, iid: e.jump_to(iid, phase, "back", actor="ann"), pair)

    @rule(pair=pairs)
    def compact(self, pair: Pair) -> None:
        self.both(lambda e, iid: e.compact(iid) and None, pair)

    @invariant()
    def same_observable_state(self) -> None:
        assert self._features(self.model, 0) == self._features(self.real, 1)
        for pair in self.known:
            assert self._observe(self.model, pair[0], 0) == self._observe(self.real, pair[1], 1)

    def _features(self, engine: WorkflowEngine, side: int) -> dict[str, list[str]]:
        return {
            feature: sorted(
                self.labels[side][iid] for iid in engine.list_feature_instances(feature)
            )
            for feature in sorted(engine.list_features())
        }

    def _observe(self, engine: WorkflowEngine, iid: str, side: int) -> Any:
        state = engine.get_workflow_instance_status(iid)
        assert state is not None
        texts = {}
        for entry in state.history:
            artifacts = engine.get_task_artifacts(iid, entry.task) if entry.task else None
            if artifacts is not None:
                texts[entry.task] = (artifacts.prompt, artifacts.response)
        return self._plain(
            {
                "state": state.to_dict(),
                "log": [event.to_dict() for event in engine.get_workflow_history(iid)],
                "texts": texts,
                "verify": engine.verify(iid),
            },
            side,
        )

    def _plain(self, value: Any, side: int) -> Any:
        """``value`` without times, ids replaced by their labels."""
        if isinstance(value, dict):
            return {k: self._plain(v, side) for k, v in value.items() if k not in TIMES}
        if isinstance(value, list):
            return [self._plain(item, side) for item in value]
        if isinstance(value, str):
            return self.labels[side].get(value, value)
        return value


def _folder(make: Callable[[Path], str]) -> Opener:
    def open_store() -> tuple[str, Callable[[], None]]:
        folder = Path(tempfile.mkdtemp(prefix="chatflow_mirror_"))
        return make(folder), lambda: shutil.rmtree(folder, ignore_errors=True)

    return open_store


OPENERS: dict[str, Opener] = {
    "file": _folder(lambda folder: str(folder / ".chatflow")),
    "sqlite": _folder(lambda folder: f"sqlite:///{folder / 'state.db'}"),
}


@pytest.mark.parametrize("kind", [*OPENERS, "postgres"])
def test_store_mirrors_the_memory_store(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "postgres":
        url: str = request.getfixturevalue("pg_url")
        schema: str = request.getfixturevalue("pg_schema")  # dropped with its namesakes
        harness = PostgresHarness("postgres", url=url, schema=f"{schema}_mirror")
        admin = request.getfixturevalue("pg_admin")

        def open_postgres() -> tuple[str, Callable[[], None]]:
            empty_postgres(admin, harness)  # one schema, emptied per example
            return f"{url}?schema={harness.schema}", lambda: None

        opener = open_postgres
    else:
        opener = OPENERS[kind]
    machine = type(f"{kind.title()}Mirrors", (StoreMirrors,), {"open_store": staticmethod(opener)})
    run_state_machine_as_test(machine, settings=SETTINGS)
