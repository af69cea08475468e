"""Two ``chatflow webhook run`` processes on one store: each hook is delivered by one of
them (its lease), so every event arrives, in order per instance, and at most the event
in flight when they both started arrives twice (no duplicate storm)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.webhooks import hooks
from store_harness import Harness

from ._receiver import receiving
from .test_delivery import _walk


def _stops_on_sigterm(pid: int) -> bool:
    """Whether the process has installed its SIGTERM handler (Linux: /proc), i.e. it is
    past start-up: a SIGTERM before that ends it by default, holding nothing yet."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _wait_until_running(senders: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 60
    while not all(_stops_on_sigterm(sender.pid) for sender in senders):
        assert time.monotonic() < deadline and all(s.poll() is None for s in senders)
        time.sleep(0.01)  # polls a condition; stands in for no event


@pytest.mark.skipif(sys.platform != "linux", reason="SIGTERM; a sender's start read in /proc")
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
            _wait_until_running(senders)  # both take part: a SIGTERM finds both running
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
