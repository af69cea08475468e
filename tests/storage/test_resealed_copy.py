"""A copied log whose edited event was re-sealed link by link, but whose recorded head
digests were left alone, is refused: the per-event head is the backstop that catches
an edit which keeps the hash chain whole."""

from __future__ import annotations

import copy

from chatflow import WorkflowEngine
from chatflow.storage import InstanceLog
from chatflow.storage._log import event_hash, link_of
from chatflow.storage.base import log_problem
from chatflow.storage.memory import MemoryStore

SCHEMA = {"name": "flow", "phases": [{"name": "draft"}, {"name": "review"}]}


def test_an_edit_resealed_without_its_head_digest_is_refused() -> None:
    store = MemoryStore()
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(SCHEMA, {"budget": 1}, "feat_r")
    engine.trigger_next_step(iid, {"verdict": "ok"})
    engine.trigger_next_step(iid)
    log = store.read_log(iid)
    assert log_problem(log) is None
    events = copy.deepcopy(log.events)
    events[0]["state"]["variables"]["budget"] = 1000  # the edit: replays differently
    for index, event in enumerate(events):  # re-sealed link by link; heads untouched
        if index:
            event["prev"] = link_of(events[index - 1])
        event["hash"] = event_hash(event)
    problem = log_problem(InstanceLog(iid, events, log.texts))
    assert problem is not None
    assert problem.seq == events[0]["seq"]
    assert "head" in problem.what


def test_an_event_that_does_not_link_to_its_predecessor_is_refused() -> None:
    store = MemoryStore()
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_r")
    engine.trigger_next_step(iid)
    log = store.read_log(iid)
    events = copy.deepcopy(log.events)
    events[1]["prev"] = "0" * 64  # sealed again, but chained to nothing
    events[1]["hash"] = event_hash(events[1])
    problem = log_problem(InstanceLog(iid, events, log.texts))
    assert problem is not None
    assert problem.seq == events[1]["seq"]
    assert "link" in problem.what
