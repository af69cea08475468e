"""``verify`` on hand-edited logs that try to pass as intact: an event edited *and*
given a fresh hash still breaks the chain, because the next event links to the hash
the original had (git's guarantee: you cannot change a commit under its children)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatflow import CorruptStateError, WorkflowEngine
from chatflow.storage._log import chain_problem, event_hash

SCHEMA = {"name": "flow", "phases": [{"name": "draft"}, {"name": "review"}, {"name": "ship"}]}


def log_lines(tmp_path: Path, iid: str) -> tuple[Path, list[Any]]:
    log = tmp_path / ".chatflow" / "instances" / iid / "events.jsonl"
    return log, [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def write_lines(log: Path, events: list[Any]) -> None:
    text = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in events)
    log.write_text(text, encoding="utf-8")


def test_an_event_resealed_after_an_edit_no_longer_links(tmp_path: Path) -> None:
    engine = WorkflowEngine(storage_dir=tmp_path / ".chatflow")
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_v")
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid)
    assert engine.verify(iid) is None
    log, events = log_lines(tmp_path, iid)
    # An addition that replays to the same state, sealed with a hash that matches it.
    events[1]["note"] = "approved by the CTO"
    events[1]["hash"] = event_hash(events[1])
    write_lines(log, events)
    problem = engine.verify(iid)
    assert problem is not None
    assert problem.seq == events[2]["seq"]
    assert "does not follow" in problem.what or "link" in problem.what


def test_a_step_refuses_to_build_on_an_edited_last_event(tmp_path: Path) -> None:
    engine = WorkflowEngine(storage_dir=tmp_path / ".chatflow")
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_v")
    engine.trigger_next_step(iid)
    log = tmp_path / ".chatflow" / "instances" / iid / "events.jsonl"
    raw = log.read_bytes()
    # Change one digit of the last event's updated_at: same size, so the head's
    # recorded log size still matches; only the event's own hash can tell.
    at = raw.rindex(b'"updated_at":') + len(b'"updated_at":')
    digit = raw[at : at + 1]
    log.write_bytes(raw[:at] + (b"2" if digit != b"2" else b"3") + raw[at + 1 :])
    fresh = WorkflowEngine(storage_dir=tmp_path / ".chatflow")
    with pytest.raises(CorruptStateError, match=iid):
        fresh.trigger_next_step(iid)
    assert log.read_bytes()[len(raw) :] == b""  # nothing was appended after it
    problem = fresh.verify(iid)
    assert problem is not None and "edited" in problem.what


def test_a_replaced_value_resealed_in_the_last_event_differs_from_its_recorded_head(
    tmp_path: Path,
) -> None:
    # The last event has no child to break the link, so only the replay can tell: the
    # head digest it recorded was computed over the value before the edit. The replay
    # encodes an unchanged value once; a value an event replaced must be encoded again.
    engine = WorkflowEngine(storage_dir=tmp_path / ".chatflow")
    iid = engine.start_workflow_instance(SCHEMA, {"ticket": "A-1"}, "feat_v")
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid)
    _, events = log_lines(tmp_path, iid)
    assert chain_problem(events) is None
    changed = events[-1].setdefault("set", {})
    changed["variables"] = {"ticket": "A-2"}
    events[-1]["hash"] = event_hash(events[-1])
    # (The file store's committed marker would say so first: check the chain itself,
    # as verify does on every store.)
    assert chain_problem(events) == (
        events[-1]["seq"],
        "the head it records differs from the replayed state",
    )
