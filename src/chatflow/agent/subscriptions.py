"""Resource subscriptions for ``chatflow mcp``: a client that subscribes to a
``chatflow://...`` resource is sent ``notifications/resources/updated`` when any process
changes it (within about a second: ``POLL_S``).

One background thread follows the store's change feed (``engine.events_since``) from
the moment the first client subscribes, maps each committed event to the resources it
changes (its instance, the instance's artifacts, its feature, the features list) and
notifies each session subscribed to one of them (``resources/subscribe``, 2025-era
clients), and publishes them on the server's subscription bus for ``subscriptions/listen``
streams (2026-07-28 clients). A thread, not a task: it needs no task group of the
transport's, and blocking store reads never stall the event loop. Notifications go back
onto the loop that served the subscription; a session that is gone is forgotten.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from chatflow.core.engine import WorkflowEngine
from chatflow.errors import ChatFlowError
from chatflow.storage.feed import FeedEvent

POLL_S = 0.5  # how often the feed is asked while nothing arrives
SCHEME = "chatflow://"


def changed_uris(change: FeedEvent) -> set[str]:
    """The resources one committed event changes."""
    uris = {
        f"{SCHEME}features",
        f"{SCHEME}feature/{change.feature_id}",
        f"{SCHEME}instance/{change.instance_id}",
    }
    task = change.event.get("task")
    if isinstance(task, str):
        uris.add(f"{SCHEME}instance/{change.instance_id}/artifacts/{task.split('--')[0]}")
    return uris


def affected(subscribed: str, changed: set[str], instance_ids: set[str]) -> bool:
    """Whether a subscribed URI is among those changed (any artifacts of a changed
    instance count: a task key need not be its phase's name)."""
    if subscribed in changed:
        return True
    return any(subscribed.startswith(f"{SCHEME}instance/{iid}/") for iid in instance_ids)


def _connection(ctx: ServerRequestContext[Any, Any]) -> Any:
    """What stays the same across one client's requests (each request has a session
    object of its own, over the connection)."""
    return getattr(ctx.session, "_connection", ctx.session)


class Subscriptions:
    """Who subscribed to what, and the thread that tells them of changes."""

    def __init__(self, engine: WorkflowEngine, server: MCPServer[Any]) -> None:
        self.engine, self.server = engine, server
        self._lock = threading.Lock()
        # connection -> (loop token, a session on it to send with, URIs)
        self._sessions: dict[Any, tuple[Any, Any, set[str]]] = {}
        self._listen_token: Any = None  # the loop serving subscriptions/listen streams
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        """Serve ``resources/subscribe`` and ``resources/unsubscribe`` (which makes the
        server announce ``resources.subscribe``), and start following on a listen."""
        lowlevel = self.server._lowlevel_server
        lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, self._subscribe)
        lowlevel.add_request_handler(
            "resources/unsubscribe", UnsubscribeRequestParams, self._unsubscribe
        )
        self.server.middleware.append(self._on_listen)

    async def _subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        uri = str(params.uri)
        if not uri.startswith(SCHEME):
            raise MCPError(INVALID_PARAMS, f"only {SCHEME}... resources can be subscribed to")
        token, key = anyio.lowlevel.current_token(), _connection(ctx)
        with self._lock:
            uris = self._sessions.get(key, (None, None, set()))[2]
            uris.add(uri)
            self._sessions[key] = (token, ctx.session, uris)
        await anyio.to_thread.run_sync(self._start)
        return EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        with self._lock:
            found = self._sessions.get(_connection(ctx))
            if found is not None:
                found[2].discard(str(params.uri))
        return EmptyResult()

    async def _on_listen(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "subscriptions/listen":
            self._listen_token = anyio.lowlevel.current_token()
            await anyio.to_thread.run_sync(self._start)
        return await call_next(ctx)

    def _start(self) -> None:
        """Start following the feed from now (once); in a worker thread, as it reads
        the store."""
        with self._lock:
            if self._thread is not None:
                return
            cursor = self.engine.feed_end()
            self._thread = threading.Thread(
                target=self._follow, args=(cursor,), name="chatflow-mcp-feed", daemon=True
            )
            self._thread.start()

    def _follow(self, cursor: str) -> None:
        """Forever: read what was committed since ``cursor``, tell who subscribed."""
        wake = threading.Event()
        while True:
            try:
                page = self.engine.events_since(cursor, limit=1000)
            except ChatFlowError:  # a store hiccup: try again next time, never stop
                page = None
            if page is not None and page.events:
                cursor = page.cursor
                self._notify(page.events)
            else:
                wake.wait(POLL_S)

    def _notify(self, events: list[FeedEvent]) -> None:
        changed = set().union(*(changed_uris(event) for event in events))
        instances = {event.instance_id for event in events}
        with self._lock:
            targets = [
                (key, token, session, sorted(u for u in uris if affected(u, changed, instances)))
                for key, (token, session, uris) in self._sessions.items()
            ]
        for key, token, session, uris in targets:
            try:
                for uri in uris:
                    anyio.from_thread.run(session.send_resource_updated, uri, token=token)
            except Exception:  # noqa: BLE001 - the client went away: forget it
                with self._lock:
                    self._sessions.pop(key, None)
        if self._listen_token is not None:
            bus = self.server._subscriptions
            for uri in sorted(changed):
                try:
                    anyio.from_thread.run(
                        bus.publish, ResourceUpdated(uri=uri), token=self._listen_token
                    )
                except Exception:  # noqa: BLE001 - the loop is gone: no one listens
                    self._listen_token = None
                    break
