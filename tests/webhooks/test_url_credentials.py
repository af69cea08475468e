"""A webhook URL with ``user:password@`` (kept, shown as ``***``) is delivered with the
credentials as Basic authentication, and no failure message carries the password."""

from __future__ import annotations

import base64
import socket

from chatflow import WorkflowEngine
from chatflow.storage import MemoryStore
from chatflow.webhooks import Retry, Sender, hooks

from ._receiver import receiving

FLOW = {"name": "one_step", "phases": [{"name": "draft"}, {"name": "ship"}]}


def test_credentials_in_the_url_are_sent_as_basic_authentication() -> None:
    store = MemoryStore()
    with receiving() as receiver:
        url = receiver.url.replace("http://", "http://ana:hunter%3A22@")
        hooks.add(store, url, cursor=None)
        WorkflowEngine(store=store).start_workflow_instance(FLOW, feature_id="feat_a")
        (report,) = Sender(store, sleep=lambda _: None).deliver_all()
        assert report.failing is None and report.delivered > 0
        delivery = receiver.wait_for(1)[0]
    expected = base64.b64encode(b"ana:hunter:22").decode()
    assert delivery.headers["authorization"] == f"Basic {expected}"


def test_a_failure_never_names_the_password() -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    store = MemoryStore()
    hooks.add(store, f"http://ana:pa%20ss@127.0.0.1:{port}/in", cursor=None)
    WorkflowEngine(store=store).start_workflow_instance(FLOW, feature_id="feat_a")
    sender = Sender(store, retry=Retry(attempts=1), sleep=lambda _: None)
    (report,) = sender.deliver_all()
    assert report.failing is not None
    assert "pa ss" not in report.failing["error"] and "pa%20ss" not in report.failing["error"]
    assert "ana:***@127.0.0.1" in report.failing["error"]
