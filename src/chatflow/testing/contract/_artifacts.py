"""Task artifacts: a phase's record, prompt and response come back exactly as stored."""

from __future__ import annotations

from chatflow.storage import IWorkflowStateStore
from chatflow.testing._check import parametrize
from chatflow.testing._states import make_state

CAPABILITY = "artifacts"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = [
    "test_artifacts_do_not_change_the_state",
    "test_artifacts_round_trip",
    "test_missing_artifacts_load_as_none",
    "test_phases_with_artifacts_are_listed",
    "test_saving_again_replaces_the_phase",
]


RECORD = {"phase_name": "design", "status": "completed", "started_at": 1.0, "ended_at": 2.0}

TEXTS = [
    ("# Prompt\n\nwith unicode: é ✓ 🚀\n", "response\r\nwith CRLF\n"),
    ("", ""),
    ("NUL \x00 inside", "tab\tand trailing spaces   "),
    ("x" * 200_000, "y" * 100_000),
]


@parametrize(("prompt", "response"), TEXTS, ids=["unicode", "empty", "nul", "big"])
def test_artifacts_round_trip(store: IWorkflowStateStore, prompt: str, response: str) -> None:
    state = make_state()
    store.create_state(state)
    iid = state["instance_id"]
    store.save_task_artifacts("feat_a", iid, "design", RECORD, prompt, response)
    assert store.load_task_artifacts(iid, "design") == {
        "record": RECORD,
        "prompt": prompt,
        "response": response,
    }


def test_saving_again_replaces_the_phase(store: IWorkflowStateStore) -> None:
    store.create_state(make_state(instance_id="wfi_one"))
    store.save_task_artifacts("feat_a", "wfi_one", "design", RECORD, "old prompt", "old")
    store.save_task_artifacts("feat_a", "wfi_one", "design", {**RECORD, "n": 2}, "new", "new")
    loaded = store.load_task_artifacts("wfi_one", "design")
    assert loaded == {"record": {**RECORD, "n": 2}, "prompt": "new", "response": "new"}


def test_missing_artifacts_load_as_none(store: IWorkflowStateStore) -> None:
    store.create_state(make_state(instance_id="wfi_one"))
    store.save_task_artifacts("feat_a", "wfi_one", "design", RECORD, "p", "r")
    assert store.load_task_artifacts("wfi_one", "implementation") is None
    assert store.load_task_artifacts("wfi_other", "design") is None


def test_phases_with_artifacts_are_listed(store: IWorkflowStateStore) -> None:
    history = [
        {"phase": name, "task": name, "started_at": 1.0}
        for name in ("requirement_analysis", "design", "implementation")
    ]
    store.create_state(make_state(instance_id="wfi_one", history=history))
    store.create_state(make_state(instance_id="wfi_two", history=history))
    for phase in ("implementation", "design"):
        store.save_task_artifacts("feat_a", "wfi_one", phase, RECORD, "p", "r")
    assert store.list_task_phases("wfi_one") == ["design", "implementation"]
    assert store.list_task_phases("wfi_two") == []


def test_artifacts_do_not_change_the_state(store: IWorkflowStateStore) -> None:
    state = make_state()
    store.create_state(state)
    store.save_task_artifacts("feat_a", state["instance_id"], "design", RECORD, "p", "r")
    assert store.load_state(state["instance_id"]) == state
