"""The webhook sender: follows the store's change feed and POSTs each matching event.

Delivery is at least once and in feed order per hook (so in order per instance): a
hook's cursor (``hooks.CURSOR``) is written only after the receiver answered 2xx, so a
sender killed mid-way sends again at most the event it had in flight. An event that
keeps failing is retried with exponential back-off (capped) and blocks the hook's later
events, reported in the hook's status (``webhook list``), never skipped.

Several senders on one store (``webhook run`` in two terminals, ``chatflow ui``): each
hook is delivered by the sender holding its lease (``hooks.LEASE``: owner and expiry,
renewed as it goes). The store's values are last-writer-wins, so two senders starting
in the same instant may both take a lease; each checks it again after every delivery
and the one that lost it stops, so at most the event in flight is sent twice.

Each body is signed: ``X-ChatFlow-Signature: sha256=<hex HMAC-SHA256 of the raw body
keyed with the hook's secret>``; ``X-ChatFlow-Delivery`` is the same for every attempt
at one event, so a receiver can drop repeats. Standard library only (``urllib``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlsplit

from chatflow import views
from chatflow.errors import ChatFlowError, FeedCursorError
from chatflow.webhooks import hooks

if TYPE_CHECKING:
    from chatflow.storage.base import IWorkflowStateStore
    from chatflow.storage.feed import FeedEvent

Transport = Callable[[str, bytes, dict[str, str], float], int]
"""``(url, body, headers, timeout) -> HTTP status``; raises ``OSError`` when no answer."""
POLL_S = 0.5  # how often an idle sender asks the feed again
PAGE = 100


@dataclass(frozen=True)
class Retry:
    """How a failing event is retried: ``attempts`` tries in a row (``run --once``
    waits between them; ``run`` tries other hooks meanwhile), waiting ``base_s``,
    then twice as long each time, at most ``cap_s``."""

    attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row."""
        return float(min(self.cap_s, self.base_s * 2 ** min(failures - 1, 60)))


class HookReport(NamedTuple):
    """What one pass did for one hook."""

    hook_id: str
    delivered: int
    failing: dict[str, Any] | None = None  # the event it is stuck on, and why
    busy: bool = False  # another sender holds its lease


def sign(secret: str, body: bytes) -> str:
    """The ``X-ChatFlow-Signature`` header of ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def delivery_id(hook_id: str, change: FeedEvent) -> str:
    """The same for every attempt at one event for one hook, different otherwise."""
    key = f"{hook_id}\n{change.instance_id}\n{change.seq}\n{change.event.get('hash', '')}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def body_of(hook: dict[str, Any], change: FeedEvent, name: str, types: list[str]) -> bytes:
    """The JSON a receiver gets (docs/webhooks.md): the same bytes on every attempt."""
    view = views.feed_event_view(change.instance_id, change.feature_id, change.event)
    data = {
        **view,
        "delivery": delivery_id(hook["id"], change),
        "hook": hook["id"],
        "event": name,
        "types": types,
        "events": views.feed_lifecycle_events(change.event),
        "cursor": change.cursor,
    }
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: the hook's URL must be the receiver's."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` with ``urllib``; the HTTP status (3xx, 4xx and 5xx included)."""
    url, headers = _without_userinfo(url, headers)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


def _without_userinfo(url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """``user:password@`` of ``url`` as a Basic ``Authorization`` header, and the host as
    IDNA: ``urllib`` sends neither itself (``http.client`` would take ``user:pass@host``
    for a host and port, and put the password in its error message)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(userinfo.encode("utf-8")).decode("ascii")
        headers = {**headers, "Authorization": f"Basic {token}"}
    return parts._replace(netloc=host).geturl(), headers


def _machine() -> str:
    """This machine and PID namespace: two containers may share a host name, but a pid
    means something only within its own namespace."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # Linux: "pid:[4026531836]"
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}/{namespace}".replace(":", "")


def _owner() -> str:
    return f"{_machine()}:{os.getpid()}:{secrets.token_hex(3)}"


def _ended(owner: object) -> bool:
    """Whether a lease's owner was a process of this machine (and PID namespace) that is
    gone (killed): its lease need not run out before another sender takes over."""
    if os.name != "posix" or not isinstance(owner, str) or owner.count(":") < 2:
        return False
    machine, pid, _ = owner.rsplit(":", 2)
    if machine != _machine() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


@dataclass
class Sender:
    """Delivers every hook kept in ``store``; ``deliver_all`` once, ``run`` until stopped.

    ``transport``, ``clock`` (wall time, for leases) and ``sleep`` are injectable for
    tests; ``on_report`` hears of each hook that starts or stops failing.
    """

    store: IWorkflowStateStore
    transport: Transport = post
    retry: Retry = field(default_factory=Retry)
    timeout: float = 10.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Any] = time.sleep
    lease_s: float = 60.0
    owner: str = field(default_factory=_owner)
    page: int = PAGE
    on_report: Callable[[HookReport], None] | None = None
    on_delivered: Callable[[dict[str, Any], FeedEvent, str], None] | None = None
    # What one sender remembers between passes: failures in a row and when to try
    # again, per hook; the leases it holds (until when); whether to retry in a row,
    # waiting (``--once``), or leave it to later passes (``run``); the stop of ``run``.
    _failures: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _retry_at: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _leases: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _inline: bool = field(default=True, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def deliver_all(self) -> list[HookReport]:
        """One pass: each hook up to the feed's end, or up to an event that failed
        ``retry.attempts`` times in a row (reported, left to block the hook)."""
        reports = []
        kept = hooks.every(self.store)
        for gone in set(self._retry_at) - {hook["id"] for hook in kept}:
            self._retry_at.pop(gone)  # removed while failing
            self._failures.pop(gone, None)
        for hook in kept:
            if self._retry_at.get(hook["id"], 0.0) > self.clock():
                if hook["id"] in self._leases:
                    self._take_lease(hook["id"])  # kept while backing off (``run``)
                continue
            reports.append(self._deliver_hook(hook))
        return reports

    def run(self, stop: threading.Event, poll_s: float = POLL_S) -> None:
        """Deliver until ``stop`` is set, asking the feed again every ``poll_s`` while
        idle; a failing hook is retried on later passes (back-off) while the others go
        on. Leases are given up on the way out."""
        self._inline, self._stop = False, stop
        try:
            while not stop.is_set():
                reports = self.deliver_all()
                if not any(report.delivered for report in reports):
                    stop.wait(self._idle(poll_s))
        finally:
            self.release()

    def release(self) -> None:
        """Give up every lease this sender holds, so another may take over at once."""
        for hook_id in list(self._leases):
            self._leases.pop(hook_id)
            lease = self.store.get_value(hooks.LEASE + hook_id)
            if isinstance(lease, dict) and lease.get("owner") == self.owner:
                self.store.put_value(hooks.LEASE + hook_id, None)

    def _idle(self, poll_s: float) -> float:
        now = self.clock()
        waits = [at - now for at in self._retry_at.values() if at > now]
        return max(0.0, min([poll_s, *waits]))

    # -- one hook --------------------------------------------------------------------

    def _deliver_hook(self, hook: dict[str, Any]) -> HookReport:
        hook_id = hook["id"]
        if not self._take_lease(hook_id):
            return HookReport(hook_id, 0, busy=True)
        kept = hooks.cursor_of(self.store, hook_id)
        cursor, count, delivered = kept.get("cursor"), int(kept.get("delivered", 0)), 0
        written = cursor
        while True:
            try:
                page = self.store.events_since(cursor, feature=hook["feature"], limit=self.page)
            except FeedCursorError as error:  # a cursor of another store's feed (migrated)
                # its own remedy, in the command's words (the error's hint is the library's)
                message = (
                    f"{error.message}; to go on: chatflow webhook reset {hook_id} [--from-start]"
                )
                return self._failed(hook, None, message)
            for change in page.events:
                types = views.feed_event_types(change.event)
                name = hooks.matching(hook, types)
                if name is not None:
                    failure = self._send(hook, change, name, types)
                    if failure is not None:
                        self._keep_cursor(hook_id, cursor, written, count, check=True)
                        return self._failed(hook, change, failure, delivered)
                    if not self._still_ours(hook_id):
                        return HookReport(hook_id, delivered + 1, busy=True)
                    count, delivered = count + 1, delivered + 1
                    self._keep_cursor(hook_id, change.cursor, None, count)
                    written = change.cursor
                    if self.on_delivered is not None:
                        self.on_delivered(hook, change, name)
                    if self._stop.is_set():
                        return self._recovered(hook_id, delivered)
                cursor = change.cursor
            if len(page.events) < self.page:
                break
        self._keep_cursor(hook_id, cursor, written, count, check=True)
        return self._recovered(hook_id, delivered)

    def _send(
        self, hook: dict[str, Any], change: FeedEvent, name: str, types: list[str]
    ) -> str | None:
        """Deliver one event: ``None``, or why it failed ``retry.attempts`` times in a
        row (``run --once``) or this time (``run``: later passes try again)."""
        body = body_of(hook, change, name, types)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "chatflow-webhooks/1",
            "X-ChatFlow-Event": name,
            "X-ChatFlow-Delivery": delivery_id(hook["id"], change),
            "X-ChatFlow-Hook": hook["id"],
            "X-ChatFlow-Signature": sign(hook["secret"], body),
        }
        while True:
            error = self._attempt(hook["url"], body, headers)
            if error is None:
                return None
            failures = self._failures[hook["id"]] = self._failures.get(hook["id"], 0) + 1
            self._note_failure(hook, change, error, failures)
            if not self._inline or failures % self.retry.attempts == 0:
                self._retry_at[hook["id"]] = self.clock() + self.retry.delay(failures)
                return error
            self.sleep(self.retry.delay(failures))

    def _attempt(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        try:
            status = self.transport(url, body, headers, self.timeout)
        except (OSError, ValueError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            return f"no answer from {hooks.shown_url(url)}: {reason}"
        if 200 <= status < 300:
            return None
        return f"{hooks.shown_url(url)} answered HTTP {status}"

    # -- records ---------------------------------------------------------------------

    def _keep_cursor(
        self, hook_id: str, cursor: Any, written: Any, count: int, *, check: bool = False
    ) -> None:
        """Keep the hook's cursor if it moved (only ever past delivered or unmatched
        events); with ``check``, only if the lease is still ours (a sender that lost it
        must not set back the cursor of the one that has it)."""
        if cursor is not None and cursor != written and (not check or self._still_ours(hook_id)):
            self.store.put_value(hooks.CURSOR + hook_id, {"cursor": cursor, "delivered": count})

    def _note_failure(
        self, hook: dict[str, Any], change: FeedEvent, error: str, failures: int
    ) -> None:
        """Keep the failing event and why in the hook's status (``webhook list``)."""
        status = hooks.status_of(self.store, hook["id"])
        since = (status.get("failing") or {}).get("since") or self.clock()
        status["failing"] = {
            "instance_id": change.instance_id,
            "seq": change.seq,
            "cursor": change.cursor,
            "error": error,
            "attempts": failures,
            "since": since,
        }
        self.store.put_value(hooks.STATUS + hook["id"], status)

    def _failed(
        self, hook: dict[str, Any], change: FeedEvent | None, error: str, delivered: int = 0
    ) -> HookReport:
        if change is None:  # nothing was tried: keep why, and back off
            failures = self._failures[hook["id"]] = self._failures.get(hook["id"], 0) + 1
            status = hooks.status_of(self.store, hook["id"])
            status["failing"] = {"error": error, "attempts": failures, "since": self.clock()}
            self.store.put_value(hooks.STATUS + hook["id"], status)
            self._retry_at[hook["id"]] = self.clock() + self.retry.delay(failures)
        report = HookReport(
            hook["id"], delivered, hooks.status_of(self.store, hook["id"]).get("failing")
        )
        if self.on_report is not None:
            self.on_report(report)
        return report

    def _recovered(self, hook_id: str, delivered: int) -> HookReport:
        report = HookReport(hook_id, delivered)
        if self._failures.pop(hook_id, None) is not None or delivered:
            self._retry_at.pop(hook_id, None)
            status = hooks.status_of(self.store, hook_id)
            was_failing = status.get("failing") is not None
            self.store.put_value(
                hooks.STATUS + hook_id, {"failing": None, "last_ok_at": self.clock()}
            )
            if was_failing and self.on_report is not None:
                self.on_report(report)
        return report

    # -- leases ----------------------------------------------------------------------

    def _take_lease(self, hook_id: str) -> bool:
        """Hold the hook's lease (taking it if free or expired, renewing our own)."""
        now = self.clock()
        if self._leases.get(hook_id, 0.0) - now > self.lease_s / 2:
            return self._still_ours(hook_id)
        lease = self.store.get_value(hooks.LEASE + hook_id)
        if (
            isinstance(lease, dict)
            and lease.get("owner") != self.owner
            and float(lease.get("until", 0)) > now
            and not _ended(lease.get("owner"))
        ):
            return False
        until = now + self.lease_s
        self.store.put_value(hooks.LEASE + hook_id, {"owner": self.owner, "until": until})
        self._leases[hook_id] = until
        return self._still_ours(hook_id)

    def _still_ours(self, hook_id: str) -> bool:
        """Whether we hold the lease still (another sender may have taken it in the same
        instant, or the hook was removed); renewed when half gone."""
        lease = self.store.get_value(hooks.LEASE + hook_id)
        if not isinstance(lease, dict) or lease.get("owner") != self.owner:
            self._leases.pop(hook_id, None)
            return False
        now = self.clock()
        if float(lease.get("until", 0)) - now < self.lease_s / 2:
            until = now + self.lease_s
            self.store.put_value(hooks.LEASE + hook_id, {"owner": self.owner, "until": until})
            self._leases[hook_id] = until
        return True


class SenderThread:
    """A ``Sender`` running in a daemon thread (``chatflow ui``) until ``stop``."""

    def __init__(self, store: IWorkflowStateStore, **options: Any) -> None:
        self.sender = Sender(store, **options)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chatflow-webhooks", daemon=True)

    def start(self) -> SenderThread:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the POST in flight, if any; leases are given up."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from chatflow._logger import logger  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                self.sender.run(self._stop)
            except ChatFlowError as error:  # the store failed: say so, and try again later
                logger("chatflow.webhooks").warning("webhook sender: %s", error)
                self._stop.wait(POLL_S * 10)
