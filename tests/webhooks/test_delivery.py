"""The sender on every store, in this process: what it POSTs, signed; filters; retries
with back-off (an injected sleep, no waiting); a failing event blocking the hook; leases
between senders; removal."""

from __future__ import annotations

from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.webhooks import Retry, Sender, hooks
from chatflow.webhooks.sender import delivery_id

from ._receiver import Delivery, receiving

REVIEW: dict[str, Any] = {
    "name": "review_flow",
    "version": 1,
    "phases": [{"name": "draft"}, {"name": "review", "requires_approval": True}, {"name": "ship"}],
}


def _walk(engine: WorkflowEngine, feature: str = "feat_a") -> str:
    """start, next (approval pause), approve, next, next: five events, one instance."""
    iid = engine.start_workflow_instance(REVIEW, feature_id=feature)
    engine.trigger_next_step(iid)
    engine.resume(iid, approved_by="ana")
    engine.trigger_next_step(iid)
    engine.trigger_next_step(iid)
    return str(iid)


def _sender(store: IWorkflowStateStore, **options: Any) -> tuple[Sender, list[float]]:
    slept: list[float] = []
    sender = Sender(store, sleep=slept.append, **options)
    return sender, slept


def _keys(deliveries: list[Delivery]) -> list[tuple[str, int]]:
    return [(d.data["instance_id"], d.data["seq"]) for d in deliveries]


def test_every_event_is_posted_in_order_signed_and_once(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    with receiving() as receiver:
        hook = hooks.add(store, receiver.url, cursor=None)
        first, second = _walk(engine), _walk(engine, "feat_b")
        sender, slept = _sender(store)
        (report,) = sender.deliver_all()
        assert report.delivered == 10 and report.failing is None and not slept
        got = receiver.wait_for(10)
        feed = store.events_since(None).events
        assert _keys(got) == [(e.instance_id, e.seq) for e in feed]  # the feed's order
        for iid in (first, second):
            assert [seq for i, seq in _keys(got) if i == iid] == [1, 2, 3, 4, 5]
        assert all(d.signed_by(hook["secret"]) for d in got)
        assert not got[0].signed_by("another secret")
        assert [d.data["cursor"] for d in got] == [e.cursor for e in feed]
        mine = [d for d in got if d.data["instance_id"] == first]
        data = mine[2].data  # the approval
        assert data["event"] == "resumed" and data["types"] == ["resumed", "approved"]
        assert data["events"][0]["actor"] == "ana"
        assert (data["feature_id"], data["hook"], data["status"]) == (
            "feat_a",
            hook["id"],
            "running",
        )
        assert mine[2].headers["x-chatflow-event"] == "resumed"
        assert mine[2].headers["x-chatflow-delivery"] == data["delivery"]
        approval = next(e for e in feed if (e.instance_id, e.seq) == (first, 3))
        assert data["delivery"] == delivery_id(hook["id"], approval)
        assert len({d.data["delivery"] for d in receiver.deliveries}) == 10
        # Delivered is delivered: a new sender (a restart) sends only what is new.
        assert sender.deliver_all()[0].delivered == 0
        sender.release()
        later = engine.start_workflow_instance(REVIEW, feature_id="feat_a")
        again, _ = _sender(store)
        assert again.deliver_all()[0].delivered == 1
        assert _keys(receiver.wait_for(11)[10:]) == [(str(later), 1)]
        assert hooks.cursor_of(store, hook["id"])["delivered"] == 11


def test_filters_by_event_type_pattern_and_feature(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    with receiving() as approvals, receiving() as phases:
        hooks.add(store, approvals.url, events=["approved"], cursor=None)
        hooks.add(store, phases.url, events=["phase_*"], feature="feat_b", cursor=None)
        _walk(engine)
        second = _walk(engine, "feat_b")
        sender, _ = _sender(store)
        assert [r.delivered for r in sender.deliver_all()] == [2, 4]  # oldest hook first
        assert [d.data["event"] for d in approvals.wait_for(2)] == ["approved", "approved"]
        got = phases.wait_for(4)
        assert {d.data["instance_id"] for d in got} == {second}
        assert [d.data["event"] for d in got] == ["phase_entered"] + ["phase_completed"] * 3
        assert [d.data["seq"] for d in got] == [1, 2, 4, 5]


def test_a_hook_added_without_from_start_sends_only_later_events(
    store: IWorkflowStateStore,
) -> None:
    engine = WorkflowEngine(store=store)
    _walk(engine)
    with receiving() as receiver:
        hooks.add(store, receiver.url, cursor=store.feed_end())
        later = engine.start_workflow_instance(REVIEW, feature_id="feat_c")
        sender, _ = _sender(store)
        assert sender.deliver_all()[0].delivered == 1
        assert _keys(receiver.wait_for(1)) == [(str(later), 1)]


def test_500_then_200_is_retried_with_backoff_and_the_same_body(
    store: IWorkflowStateStore,
) -> None:
    engine = WorkflowEngine(store=store)
    with receiving(statuses=[500, 503]) as receiver:
        hook = hooks.add(store, receiver.url, cursor=None)
        iid = engine.start_workflow_instance(REVIEW, feature_id="feat_a")
        sender, slept = _sender(store, retry=Retry(attempts=5, base_s=0.5, cap_s=60))
        assert sender.deliver_all()[0].delivered == 1
        got = receiver.wait_for(3)
        assert slept == [0.5, 1.0]
        assert got[0].body == got[1].body == got[2].body
        assert got[0].headers["x-chatflow-delivery"] == got[2].headers["x-chatflow-delivery"]
        assert all(d.signed_by(hook["secret"]) for d in got)
        assert _keys(got[2:]) == [(str(iid), 1)]
        assert hooks.status_of(store, hook["id"])["failing"] is None


def test_an_event_that_keeps_failing_blocks_the_hook_and_is_reported(
    store: IWorkflowStateStore,
) -> None:
    engine = WorkflowEngine(store=store)
    with receiving(statuses=[500] * 3) as receiver:
        hook = hooks.add(store, receiver.url, cursor=None)
        first = engine.start_workflow_instance(REVIEW, feature_id="feat_a")
        engine.trigger_next_step(first)
        reported = []
        retry = Retry(attempts=3, base_s=1, cap_s=1.5)
        sender, slept = _sender(store, retry=retry, on_report=reported.append)
        (report,) = sender.deliver_all()
        assert slept == [1, 1.5] and report.delivered == 0
        assert report.failing is not None and report.failing["seq"] == 1
        assert "HTTP 500" in report.failing["error"] and report.failing["attempts"] == 3
        assert reported == [report]
        assert len(receiver.wait_for(3)) == 3  # the first event only: the second waits
        shown = hooks.public(store, hooks.get(store, hook["id"]))
        assert shown["failing"]["instance_id"] == str(first) and "secret" not in shown
        assert hooks.cursor_of(store, hook["id"])["delivered"] == 0
        # The receiver is back: the stuck event goes first, then the one it held up.
        sender.release()
        later, _ = _sender(store, on_report=reported.append)
        assert later.deliver_all()[0].delivered == 2
        assert _keys(receiver.wait_for(5)[3:]) == [(str(first), 1), (str(first), 2)]
        assert hooks.status_of(store, hook["id"])["failing"] is None


def test_no_answer_at_all_is_a_failure_naming_the_url(store: IWorkflowStateStore) -> None:
    with receiving() as receiver:
        url = receiver.url
    hook = hooks.add(store, url.replace("/hook", "/x"), cursor=None)  # nobody listens now
    WorkflowEngine(store=store).start_workflow_instance(REVIEW, feature_id="feat_a")
    sender, slept = _sender(store, retry=Retry(attempts=2, base_s=0.25))
    (report,) = sender.deliver_all()
    assert slept == [0.25] and report.failing is not None
    assert report.failing["error"].startswith(f"no answer from {url.replace('/hook', '/x')}")
    assert hooks.get(store, hook["id"])["id"] == hook["id"]


def test_a_second_sender_leaves_a_hook_to_the_one_holding_its_lease(
    store: IWorkflowStateStore,
) -> None:
    engine = WorkflowEngine(store=store)
    with receiving() as receiver:
        hooks.add(store, receiver.url, cursor=None)
        _walk(engine)
        first, _ = _sender(store)
        second, _ = _sender(store)
        assert first.deliver_all()[0].delivered == 5
        (busy,) = second.deliver_all()
        assert busy.busy and busy.delivered == 0
        first.release()  # given up: the other takes over at once, from the cursor
        _walk(engine)
        assert second.deliver_all()[0].delivered == 5
        got = receiver.wait_for(10)
        assert len({d.data["delivery"] for d in got}) == 10


def test_a_sender_that_lost_its_lease_stops_after_the_event_in_flight(
    store: IWorkflowStateStore,
) -> None:
    engine = WorkflowEngine(store=store)
    with receiving() as receiver:
        hook = hooks.add(store, receiver.url, cursor=None)
        _walk(engine)
        sender, _ = _sender(store)

        def taken(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
            store.put_value(hooks.LEASE + hook["id"], {"owner": "other:1:x", "until": 4e9})
            return 200

        sender.transport = taken
        (report,) = sender.deliver_all()
        assert report.busy and report.delivered == 1
        assert hooks.cursor_of(store, hook["id"])["delivered"] == 0  # the other sends it again


def test_a_removed_hook_is_no_longer_sent(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    with receiving() as receiver:
        hook = hooks.add(store, receiver.url, cursor=None)
        kept = hooks.add(store, receiver.url, events=["created"], cursor=None)
        hooks.remove(store, hook["id"])
        assert [h["id"] for h in hooks.every(store)] == [kept["id"]]
        _walk(engine)
        sender, _ = _sender(store)
        assert [r.hook_id for r in sender.deliver_all()] == [kept["id"]]
        assert [d.data["hook"] for d in receiver.wait_for(1)] == [kept["id"]]


def test_hooks_live_in_the_store_for_every_process(store: IWorkflowStateStore) -> None:
    hook = hooks.add(store, "https://example.com/in", events=["phase_*"], cursor=None)
    assert hooks.every(store) == [hook]
    assert store.list_values(hooks.HOOK) == {hooks.HOOK + hook["id"]: hook}
    with pytest.raises(LookupError, match="no webhook 'wh_00000000'"):
        hooks.remove(store, "wh_00000000")


def test_a_hook_behind_a_compaction_gets_its_checkpoint(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    with receiving() as receiver:
        hook = hooks.add(store, receiver.url, cursor=None)
        iid = _walk(engine)
        store.compact(iid, keep_last=1)
        sender, _ = _sender(store)
        (report,) = sender.deliver_all()
        got = receiver.wait_for(report.delivered)
        assert [d.data["types"] for d in got] == [["checkpoint"], ["phase_completed", "completed"]]
        assert [d.data["seq"] for d in got] == [4, 5]
        assert got[0].headers["x-chatflow-event"] == "checkpoint"
        assert all(d.signed_by(hook["secret"]) for d in got)


def test_run_waits_out_a_failing_hook_and_forgets_one_removed(
    store: IWorkflowStateStore,
) -> None:
    """``run`` between passes: a failing hook is tried again only after its back-off,
    and once removed it leaves no back-off behind that would keep the sender busy."""
    now = [1000.0]
    hook = hooks.add(store, "http://127.0.0.1:9/in", cursor=None)
    WorkflowEngine(store=store).start_workflow_instance(REVIEW, feature_id="feat_a")
    tries: list[float] = []

    def down(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        tries.append(now[0])
        return 503

    sender = Sender(store, transport=down, clock=lambda: now[0], retry=Retry(5, 2.0, 8.0))
    sender._inline = False  # as ``run`` does
    for step in range(12):
        sender.deliver_all()
        assert sender._idle(0.5) <= 0.5
        now[0] += 1.0 if step < 11 else 0.0
    assert tries == [1000.0, 1002.0, 1006.0]  # waits of 2, then 4 (then 8)
    hooks.remove(store, hook["id"])
    sender.deliver_all()
    assert sender._idle(0.5) == 0.5 and sender._retry_at == {}
