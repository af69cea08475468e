"""The edges users hit: first and last entries, limits reached exactly, boundaries of
ranges. Each test here pins a rule a planted bug (``bench/mutant_list.py``) broke
without any other test noticing."""

from __future__ import annotations

from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.errors import ValidationError

THREE: dict[str, Any] = {
    "name": "three",
    "phases": [{"name": "draft"}, {"name": "review"}, {"name": "ship"}],
}


def test_fork_takes_every_index_in_range_and_refuses_one_past_either_end(
    engine: WorkflowEngine,
) -> None:
    iid = engine.start_workflow_instance(THREE, {}, "feat_fork")
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid)  # history: draft, review, ship (open)
    for at, phase in ((0, "draft"), (2, "ship"), (-1, "ship"), (-3, "draft")):
        child = engine.get_workflow_instance_status(engine.fork(iid, at=at))
        assert child is not None
        assert child.current_phase == phase
        assert child.parent == {"instance_id": iid, "history_index": at % 3}
    before = engine.list_feature_instances("feat_fork")
    for at in (3, -4):
        with pytest.raises(ValidationError, match="out of range"):
            engine.fork(iid, at=at)
    assert engine.list_feature_instances("feat_fork") == before  # nothing was created


def test_a_fork_at_the_first_entry_is_a_fresh_created_instance(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(THREE, {"ticket": 7}, "feat_fork")
    engine.trigger_next_step(iid)
    fresh = engine.get_workflow_instance_status(iid)
    child = engine.get_workflow_instance_status(engine.fork(iid, at=0))
    assert child is not None and fresh is not None
    assert child.status.value == "created"  # as its parent was on entering history[0]
    assert (child.current_phase, child.variables, child.visits) == (
        "draft",
        {"ticket": 7},
        {"draft": 1},
    )
    later = engine.get_workflow_instance_status(engine.fork(iid, at=1))
    assert later is not None and later.status.value == "running"


def test_risk_takes_both_ends_of_0_to_100_and_nothing_outside(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(THREE, {}, "feat_risk", automation_level=100)
    assert engine.trigger_next_step(iid, {"risk": 0}).current_phase == "review"
    state = engine.trigger_next_step(iid, {"risk": 100})  # at the level: no approval needed
    assert (state.status.value, state.current_phase) == ("running", "ship")
    for risk in (-1, 100.5, True, "50"):
        with pytest.raises(ValidationError, match="from 0 to 100"):
            engine.trigger_next_step(iid, {"risk": risk})
    after = engine.get_workflow_instance_status(iid)
    assert after is not None and after.current_phase == "ship"  # refused steps changed nothing


def test_a_finished_feature_is_completed_then_failed_then_cancelled(
    engine: WorkflowEngine,
) -> None:
    """A feature's status once no instance is active: completed if any completed, else
    failed if any failed, else cancelled (a failure must not hide behind a cancel)."""
    cancelled = engine.start_workflow_instance(THREE, {}, "feat_done")
    engine.cancel(cancelled, "obsolete")
    assert engine.get_feature_status("feat_done")["status"] == "cancelled"
    failed = engine.start_workflow_instance(THREE, {}, "feat_done")
    engine.fail_phase(failed, "the model gave up")
    rollup = engine.get_feature_status("feat_done")
    assert (rollup["status"], rollup["failed_count"], rollup["cancelled_count"]) == ("failed", 1, 1)
    engine.cancel(engine.start_workflow_instance(THREE, {}, "feat_done"), "dropped")
    assert engine.get_feature_status("feat_done")["status"] == "failed"  # the newest: cancelled
    done = engine.start_workflow_instance(
        {"name": "one", "phases": [{"name": "a"}]}, {}, "feat_done"
    )
    engine.trigger_next_step(done)
    assert engine.get_feature_status("feat_done")["status"] == "completed"


def test_progress_counts_only_completed_phases(engine: WorkflowEngine) -> None:
    iid = engine.start_workflow_instance(THREE, {}, "feat_progress")
    engine.fail_phase(iid, "the build broke")
    assert engine.get_status_info(iid)["progress"] == 0  # a failed visit is no progress
    engine.retry_phase(iid)
    assert engine.get_status_info(iid)["progress"] == 0  # nor a retried one
    engine.trigger_next_step(iid)
    assert engine.get_status_info(iid)["progress"] == pytest.approx(1 / 3, abs=1e-3)


def test_ids_of_exactly_the_maximum_length_are_accepted(engine: WorkflowEngine) -> None:
    longest, too_long = "f" * 128, "f" * 129
    iid = engine.start_workflow_instance(THREE, {}, longest)
    assert engine.list_feature_instances(longest) == [iid]
    with pytest.raises(ValidationError, match="longer than 128"):
        engine.start_workflow_instance(THREE, {}, too_long)
