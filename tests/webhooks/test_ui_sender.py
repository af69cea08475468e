"""``chatflow ui`` delivers webhooks from a thread of its own while it serves, and stops
it cleanly on Ctrl-C (its lease given up); ``SenderThread`` stops after the POST in
flight."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from chatflow import WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.webhooks import hooks
from chatflow.webhooks.sender import SenderThread
from cli_runner import ctrl_c_as_in_a_terminal

from ._receiver import receiving
from .test_delivery import REVIEW, _walk


def test_chatflow_ui_delivers_webhooks_and_stops_cleanly(tmp_path: Path) -> None:
    folder = tmp_path / ".chatflow"
    engine = WorkflowEngine(storage_dir=folder)
    iid = engine.start_workflow_instance(REVIEW, feature_id="feat_a")
    with receiving() as receiver:
        hook = hooks.add(engine.state_store, receiver.url, cursor=None)
        ui = subprocess.Popen(
            [sys.executable, "-m", "chatflow", "ui", "--dir", str(folder), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=ctrl_c_as_in_a_terminal,  # noqa: PLW1509 - it takes no lock a thread could hold
        )
        try:
            got = receiver.wait_for(1)
            assert got[0].data["instance_id"] == iid and got[0].signed_by(hook["secret"])
            engine.trigger_next_step(iid)  # committed by another process: sent too
            assert receiver.wait_for(2)[1].data["seq"] == 2
        finally:
            ui.send_signal(signal.SIGINT)
            out, err = ui.communicate(timeout=60)
        assert ui.returncode == 130, err  # Ctrl-C, as documented
        assert "open: http://127.0.0.1:" in out and "Traceback" not in err
    assert engine.state_store.get_value(hooks.LEASE + hook["id"]) is None  # given up
    assert hooks.cursor_of(engine.state_store, hook["id"])["delivered"] == 2


def test_a_sender_thread_stops_between_deliveries(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    _walk(engine)
    entered, go_on = threading.Event(), threading.Event()
    posted: list[bytes] = []

    def slow(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        posted.append(body)
        entered.set()
        assert go_on.wait(60)
        return 200

    hook = hooks.add(store, "http://127.0.0.1:9/in", cursor=None)
    thread = SenderThread(store, transport=slow).start()
    assert entered.wait(60)  # the first POST is in flight
    stopping = threading.Thread(target=thread.stop)
    stopping.start()
    go_on.set()
    stopping.join(60)
    assert not stopping.is_alive()
    # It finished the POST in flight and kept it, and sent nothing after it.
    assert hooks.cursor_of(store, hook["id"])["delivered"] == len(posted) == 1
    assert store.get_value(hooks.LEASE + hook["id"]) is None
