"""Two ``chatflow webhook run`` processes on one store: each hook is delivered by one of
them (its lease), so every event arrives, in order per instance, and at most the event
in flight when they both started arrives twice (no duplicate storm)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.webhooks import hooks
from store_harness import Harness

from ._receiver import receiving
from .test_delivery import _walk


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_two_senders_share_the_work_without_a_duplicate_storm(
    harness: Harness, tmp_path: Path
) -> None:
    if not harness.shared_across_processes:
        pytest.skip("a memory store lives in one process")
    store = harness.open()
    engine = WorkflowEngine(store=store)
    url = harness.target()
    with receiving() as receiver:
        hook = hooks.add(store, receiver.url, cursor=None)
        for feature in ("feat_a", "feat_b"):
            _walk(engine, feature)
        command = [sys.executable, "-m", "chatflow", "--dir", url, "webhook", "run"]
        senders = [
            subprocess.Popen(
                command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        try:
            receiver.wait_for(10)
            for feature in ("feat_c", "feat_d"):  # while both run
                _walk(engine, feature)
            feed = [(e.instance_id, e.seq) for e in store.events_since(None).events]
            with receiver._arrived:
                assert receiver._arrived.wait_for(
                    lambda: (
                        len({(d.data["instance_id"], d.data["seq"]) for d in receiver.deliveries})
                        == len(feed)
                    ),
                    60,
                )
        finally:
            for sender in senders:
                sender.send_signal(signal.SIGTERM)
            errors = [sender.communicate(timeout=60)[1] for sender in senders]
        assert [sender.returncode for sender in senders] == [0, 0], errors
        got = list(receiver.deliveries)
    keys = [(d.data["instance_id"], d.data["seq"]) for d in got]
    assert list(dict.fromkeys(keys)) == feed  # all of them, in the feed's order
    assert len(keys) - len(feed) <= 1, keys  # at most the one both sent as they started
    assert all(d.signed_by(hook["secret"]) for d in got)
    assert store.get_value(hooks.LEASE + hook["id"]) is None  # given up on SIGTERM
    store.close()
