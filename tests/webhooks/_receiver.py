"""A local HTTP server standing in for a webhook receiver: it keeps every POST it gets
(headers and raw body), answers each with the next status of a script (then 200), and
lets a test wait for the n-th delivery, or hold a delivery open (a sender mid-POST)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from chatflow.webhooks import verify


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]  # by lower-case name
    body: bytes

    @property
    def data(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def signed_by(self, secret: str) -> bool:
        return verify(secret, self.body, self.headers.get("x-chatflow-signature"))


class Receiver:
    """``url`` takes POSTs; ``deliveries`` keeps them in the order they arrived."""

    def __init__(self, statuses: list[int] | None = None, hold_at: int | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.statuses = list(statuses or [])
        self.hold_at = hold_at  # the delivery (1-based) held open until ``release``
        self.held = threading.Event()  # set once that delivery has arrived
        self.release = threading.Event()
        self._arrived = threading.Condition()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Delivery]:
        """Block until ``count`` deliveries arrived (a Condition, not a sleep)."""
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.deliveries) >= count, timeout), (
                f"{len(self.deliveries)} of {count} deliveries arrived"
            )
            return list(self.deliveries)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._arrived:
                    receiver.deliveries.append(
                        Delivery({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    number = len(receiver.deliveries)
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver._arrived.notify_all()
                if number == receiver.hold_at:
                    receiver.held.set()
                    receiver.release.wait(60)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender was killed while we held it

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def receiving(statuses: list[int] | None = None, hold_at: int | None = None) -> Iterator[Receiver]:
    receiver = Receiver(statuses, hold_at)
    receiver._thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()
