"""Webhooks kept in the store: what each one is (URL, filter, secret) and how far it got.

Everything lives in the store's small values (``put_value``), one key per hook and per
kind of record, so every store (file, SQLite, PostgreSQL, memory, a third party's) keeps
webhooks without a table of its own, ``chatflow migrate`` copies them, and two processes
adding hooks at once never lose one (no shared index to overwrite):

- ``webhook:<id>``: the hook (``url``, ``events``, ``feature``, ``secret``, ``created_at``);
- ``webhook-cursor:<id>``: the feed cursor after the last event delivered (or skipped
  as not matching), written only once that delivery succeeded;
- ``webhook-status:<id>``: the event that is failing, if one is, and the last success;
- ``webhook-lease:<id>``: which sender is delivering it, until when.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chatflow import views
from chatflow._validation import validate_id
from chatflow.domain.usage import did_you_mean
from chatflow.errors import ValidationError, WebhookNotFoundError

if TYPE_CHECKING:
    from chatflow.storage.base import IWorkflowStateStore

HOOK = "webhook:"
CURSOR = "webhook-cursor:"
STATUS = "webhook-status:"
LEASE = "webhook-lease:"
MAX_URL = 2048
_PATTERN = re.compile(r"[a-z_*?]{1,64}")
_ID = re.compile(r"wh_[0-9a-f]{8}")


def shown_url(url: str) -> str:
    """``url`` without its password, if it holds one: for messages and listings."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url.rsplit("@", maxsplit=1)[-1] if "@" in url else url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def check_url(url: object) -> str:
    """``url`` if a sender can POST to it: ``http``/``https`` with a host, printable, no
    spaces. ``ValidationError`` naming the problem otherwise (``file:``, ``ftp:``, no
    host, a bad port), before anything is written."""
    if not isinstance(url, str) or not url:
        raise ValidationError(f"a webhook URL must be non-empty text, not {url!r}", field="url")
    if len(url) > MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        raise ValidationError(
            f"webhook URL {shown_url(url)[:80]!r} is not a URL (spaces, control characters or over "
            f"{MAX_URL} characters)",
            field="url",
        )
    try:
        parts = urlsplit(url)
    except ValueError as error:  # an unclosed [IPv6] bracket, ...
        raise ValidationError(
            f"webhook URL {shown_url(url)!r} is not a URL: {error}", field="url"
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise ValidationError(
            f"webhook URL {shown_url(url)!r} must be http:// or https://, not {scheme}",
            field="url",
        )
    try:
        port = parts.port  # raises for a port that is not 0-65535
    except ValueError:
        port = 0
    if port == 0:  # 0 is no port a receiver listens on
        raise ValidationError(f"webhook URL {shown_url(url)!r} has a bad port", field="url")
    if not parts.hostname:
        raise ValidationError(f"webhook URL {shown_url(url)!r} names no host", field="url")
    return url


def in_the_clear(url: str) -> bool:
    """Whether ``url`` sends bodies unencrypted beyond this machine (``http://`` to a
    host other than loopback): signed, so not forged, but readable on the way."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    return parts.scheme.lower() == "http" and not loopback


def check_events(patterns: list[str] | None) -> list[str]:
    """The event filter: exact names from ``views.EVENT_TYPES`` (else "did you mean")
    or shell-style patterns (``phase_*``) that match at least one; default every event."""
    if patterns is None or patterns == []:
        return ["*"]
    checked: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not _PATTERN.fullmatch(pattern):
            raise ValidationError(
                f"event filter {pattern!r} is not an event name or pattern (lower-case "
                "letters, _, * and ?)",
                field="events",
            )
        if not any(fnmatch.fnmatchcase(name, pattern) for name in views.EVENT_TYPES):
            hint = did_you_mean(pattern, views.EVENT_TYPES)
            what = "pattern" if any(c in pattern for c in "*?") else "event"
            raise ValidationError(
                f"unknown {what} {pattern!r}: no event type matches{hint}", field="events"
            )
        if pattern not in checked:
            checked.append(pattern)
    return checked


def check_secret(secret: object) -> str:
    """A signing secret: printable text without spaces, at least 8 characters."""
    if (
        not isinstance(secret, str)
        or len(secret) < 8
        or len(secret) > 512
        or not secret.isprintable()
        or any(c.isspace() for c in secret)
    ):
        raise ValidationError(
            "a webhook secret must be 8-512 printable characters without spaces", field="secret"
        )
    return secret


def matching(hook: dict[str, Any], types: list[str]) -> str | None:
    """The first of an event's ``types`` the hook's filter takes, or ``None``."""
    for name in types:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in hook["events"]):
            return name
    return None


def add(
    store: IWorkflowStateStore,
    url: str,
    *,
    events: list[str] | None = None,
    feature: str | None = None,
    secret: str | None = None,
    cursor: str | None,
) -> dict[str, Any]:
    """Keep a new hook delivering what is committed after ``cursor`` (``None``: the whole
    feed); return it, with its secret (generated unless given). Everything is checked
    before anything is written; the cursor is written before the hook, so a sender
    never sees a hook without one."""
    hook_id = "wh_" + secrets.token_hex(4)
    hook: dict[str, Any] = {
        "id": hook_id,
        "url": check_url(url),
        "events": check_events(events),
        "feature": None if feature is None else validate_id(feature, "feature_id"),
        "secret": secrets.token_urlsafe(32) if secret is None else check_secret(secret),
        "created_at": time.time(),
    }
    store.put_value(CURSOR + hook_id, {"cursor": cursor, "delivered": 0})
    store.put_value(HOOK + hook_id, hook)
    return hook


def every(store: IWorkflowStateStore) -> list[dict[str, Any]]:
    """Every hook kept in the store, oldest first."""
    found = [h for h in store.list_values(HOOK).values() if isinstance(h, dict) and "id" in h]
    return sorted(found, key=lambda hook: (hook.get("created_at", 0), hook["id"]))


def get(store: IWorkflowStateStore, hook_id: object) -> dict[str, Any]:
    """The hook, or ``WebhookNotFoundError`` (exit 3) naming the ids there are."""
    if not isinstance(hook_id, str) or not _ID.fullmatch(hook_id):
        found = None
    else:
        found = store.get_value(HOOK + hook_id)
    if not isinstance(found, dict):
        ids = [hook["id"] for hook in every(store)]
        there = f"; there are: {', '.join(ids)}" if ids else "; there are none"
        raise WebhookNotFoundError(f"no webhook {hook_id!r}{there}", hook_id=hook_id)
    return found


def remove(store: IWorkflowStateStore, hook_id: str) -> dict[str, Any]:
    """Forget the hook and its records; return it. A sender stops delivering it at its
    next event."""
    hook = get(store, hook_id)
    store.put_value(HOOK + hook_id, None)
    for prefix in (CURSOR, STATUS, LEASE):
        store.put_value(prefix + hook_id, None)
    return hook


def reset(store: IWorkflowStateStore, hook_id: str, cursor: str | None) -> dict[str, Any]:
    """Have the hook go on after ``cursor`` (``None``: the feed's start) and forget its
    failure: what a person does after ``migrate`` (a cursor never carries to another
    store) or to give up on an event no receiver will take. Returns the hook."""
    hook = get(store, hook_id)
    delivered = cursor_of(store, hook_id).get("delivered", 0)
    store.put_value(CURSOR + hook_id, {"cursor": cursor, "delivered": delivered})
    store.put_value(STATUS + hook_id, None)
    return hook


def cursor_of(store: IWorkflowStateStore, hook_id: str) -> dict[str, Any]:
    """Where the hook goes on from: ``{"cursor", "delivered"}``."""
    found = store.get_value(CURSOR + hook_id)
    return found if isinstance(found, dict) else {"cursor": None, "delivered": 0}


def status_of(store: IWorkflowStateStore, hook_id: str) -> dict[str, Any]:
    """The hook's delivery status: ``failing`` (the event it is stuck on, the error,
    attempts, since when) or ``None``, and ``last_ok_at``."""
    found = store.get_value(STATUS + hook_id)
    return found if isinstance(found, dict) else {"failing": None, "last_ok_at": None}


def public(store: IWorkflowStateStore, hook: dict[str, Any]) -> dict[str, Any]:
    """A hook as ``webhook list`` shows it: never its secret."""
    shown = {key: value for key, value in hook.items() if key != "secret"}
    shown["created_at"] = views.iso_time(hook.get("created_at"))
    status = status_of(store, hook["id"])
    shown["delivered"] = cursor_of(store, hook["id"]).get("delivered", 0)
    shown["failing"] = status.get("failing")
    shown["last_ok_at"] = views.iso_time(status.get("last_ok_at"))
    return shown
