"""The page server under load and against idle clients: a burst of connections is
queued and answered, a bounded number is served at once, silent ones are closed."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.errors import ValidationError
from chatflow.ui import UIServer

from ._support import GATED

GENEROUS = 30.0  # a client's patience: far beyond any healthy answer, short of a hang


@pytest.fixture
def engine(tmp_path: Path) -> WorkflowEngine:
    engine = WorkflowEngine(storage_dir=tmp_path / "store", durable=False)
    engine.start_workflow_instance(GATED, {}, "feat_load")
    return engine


@pytest.fixture
def app(engine: WorkflowEngine) -> Iterator[UIServer]:
    app = UIServer(engine).start()
    yield app
    app.shutdown()


def get(app: UIServer, path: str = "/api/features", timeout: float = GENEROUS) -> int:
    """One GET on a fresh connection, as a script holding the token makes it."""
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=timeout)
    try:
        headers = {"Host": f"127.0.0.1:{app.port}", "Authorization": f"Bearer {app.token}"}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def request(app: UIServer, extra: bytes = b"") -> bytes:
    """A GET of the feature list as raw bytes (HTTP/1.1: the connection stays open)."""
    head = (
        f"GET /api/features HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
        f"Authorization: Bearer {app.token}\r\n"
    ).encode()
    return head + extra + b"\r\n"


def open_and_use(app: UIServer) -> socket.socket:
    """A keep-alive connection that made one request and now sits idle on the server."""
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=GENEROUS)
    sock.sendall(request(app))
    reply = sock.makefile("rb")
    assert reply.readline().startswith(b"HTTP/1.1 200")
    length = 0
    while (line := reply.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    reply.read(length)
    return sock


def test_two_hundred_concurrent_gets_all_succeed(app: UIServer) -> None:
    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(lambda _: get(app), range(200)))
    assert statuses == [200] * 200


def test_two_hundred_pending_connections_wait_in_the_backlog(engine: WorkflowEngine) -> None:
    """A burst arriving before the server accepts: the old backlog of 5 dropped all but
    a few (83 to 95 of 200 concurrent GETs timed out)."""
    app = UIServer(engine)  # listening, not accepting yet
    with ThreadPoolExecutor(max_workers=200) as pool:
        connected = list(pool.map(lambda _: connect(app), range(200)))
        app.start()
        try:
            refused = [found for found in connected if not isinstance(found, socket.socket)]
            assert refused == []
            replies = list(pool.map(exchange, connected, [app] * 200))
        finally:
            app.shutdown()
    assert [reply[:12] for reply in replies] == [b"HTTP/1.1 200"] * 200


def connect(app: UIServer) -> socket.socket | OSError:
    """A connection to the server, or why none was made (kept to be reported)."""
    try:
        return socket.create_connection(("127.0.0.1", app.port), timeout=GENEROUS)
    except OSError as error:
        return error


def exchange(sock: socket.socket | OSError, app: UIServer) -> bytes:
    """Send one GET asking the server to close after it; return everything it answered."""
    assert isinstance(sock, socket.socket)
    with sock:
        sock.sendall(request(app, b"Connection: close\r\n"))
        received = []
        while chunk := sock.recv(65536):
            received.append(chunk)
    return b"".join(received)


def test_a_burst_beyond_the_thread_bound_waits_and_is_answered(engine: WorkflowEngine) -> None:
    app = UIServer(engine, max_threads=2).start()
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(lambda _: get(app), range(50)))
    finally:
        app.shutdown()
    assert statuses == [200] * 50


def test_connections_beyond_the_bound_wait_for_a_free_thread(engine: WorkflowEngine) -> None:
    app = UIServer(engine, max_threads=2, idle_timeout=GENEROUS).start()
    try:
        held = [open_and_use(app), open_and_use(app)]  # both threads wait on them
        waiting = socket.create_connection(("127.0.0.1", app.port), timeout=1.0)
        waiting.sendall(request(app))
        with pytest.raises(TimeoutError):  # no thread for it: not answered yet
            waiting.recv(1)
        held[0].close()  # frees a thread: the waiting connection is served
        waiting.settimeout(GENEROUS)
        assert waiting.recv(12) == b"HTTP/1.1 200"
        waiting.close()
        held[1].close()
    finally:
        app.shutdown()


def test_an_idle_connection_is_closed_by_the_server(engine: WorkflowEngine) -> None:
    app = UIServer(engine, idle_timeout=0.3).start()
    try:
        used = open_and_use(app)
        assert used.recv(1) == b""  # the server hung up (a hang fails after GENEROUS s)
        used.close()
        silent = socket.create_connection(("127.0.0.1", app.port), timeout=GENEROUS)
        assert silent.recv(1) == b""  # never sent a byte: closed as well
        silent.close()
        assert get(app) == 200  # and the server still answers
    finally:
        app.shutdown()


def test_thread_bound_and_timeout_must_make_sense(engine: WorkflowEngine) -> None:
    with pytest.raises(ValidationError):
        UIServer(engine, max_threads=0)
    with pytest.raises(ValidationError):
        UIServer(engine, idle_timeout=0)
