"""A real crash: ``chatflow webhook run`` killed with SIGKILL while a POST is in flight,
then started again. No event is lost, none arrives out of order for its instance, only
the event in flight arrives twice, and every signature verifies. On every store that
lives outside one process (file, SQLite, PostgreSQL)."""

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

HELD = 6  # the delivery the receiver holds open while the sender is killed


def _chatflow(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "chatflow", "--dir", url, "webhook", *args]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_sender_killed_mid_post_resumes_losing_nothing(harness: Harness, tmp_path: Path) -> None:
    if not harness.shared_across_processes:
        pytest.skip("a memory store lives in one process")
    store = harness.open()
    engine = WorkflowEngine(store=store)
    for feature in ("feat_a", "feat_b", "feat_c"):
        _walk(engine, feature)
    url = harness.target()
    with receiving(hold_at=HELD) as receiver:
        hook = hooks.add(store, receiver.url, cursor=None)
        sender = subprocess.Popen(
            _chatflow(url, "run"),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert receiver.held.wait(60), "the sender never reached the held delivery"
        finally:
            sender.kill()
            _, err = sender.communicate(timeout=60)
        assert sender.returncode == -signal.SIGKILL, err
        receiver.release.set()
        _walk(engine, "feat_d")  # more while no sender runs
        again = subprocess.run(
            _chatflow(url, "run", "--once"),
            check=False,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        got = list(receiver.deliveries)
    feed = [(e.instance_id, e.seq) for e in store.events_since(None).events]
    keys = [(d.data["instance_id"], d.data["seq"]) for d in got]
    assert len(feed) == 20
    assert list(dict.fromkeys(keys)) == feed  # nothing lost, in the feed's order
    assert [key for key in feed if keys.count(key) > 1] == [keys[HELD - 1]]  # in flight
    assert keys[HELD] == keys[HELD - 1]  # sent again first, before anything after it
    for iid in {iid for iid, _ in feed}:
        seqs = [seq for i, seq in keys if i == iid]
        assert seqs == sorted(seqs), seqs  # in order per instance (one repeat at most)
    assert all(d.signed_by(hook["secret"]) for d in got)
    assert len({d.data["delivery"] for d in got}) == 20  # a repeat keeps its delivery id
    assert hooks.cursor_of(store, hook["id"])["delivered"] == 20
    store.close()
