"""The event log every store keeps per instance, its hash chain, and the head it projects to.

An instance is an append-only list of events plus a small *head*. Every store writes
the same events and heads, built and checked here, so a writer and ``verify`` can never
disagree:

- ``created``: the whole first state (``state``).
- ``update``: what one step changed: ``set``/``unset`` of top-level keys, and for each
  list (``history``, ``events``) the items it ``put`` at existing indexes and the
  ``items`` it wrote from index ``from`` on (an append, or rarely a truncation).
- ``artifact``: a task's record and the SHA-256 of its prompt and response texts
  (``task``, ``version``); the texts live beside the log.
- ``checkpoint``: written by compaction in place of the events it folds: the state
  they projected to and ``replaced`` (the hash of the last event folded), so the chain
  still links to the events kept after it.

Each event carries ``seq``, ``prev`` (the previous event's link hash), ``head`` (the
digest of the head after it) and ``hash``: SHA-256 over the canonical encoding of the
event without ``hash``. The head repeats the state's small fields, the length and last
items of each list, the latest version of each task, and the last event's ``seq`` and
``hash``; it is a cache that ``project`` can always rebuild from the log.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from chatflow._validation import same_json
from chatflow.errors import CorruptStateError, ValidationError

StateDict = dict[str, Any]
Event = dict[str, Any]
Head = dict[str, Any]

HEAD_FORMAT = 3
TAIL = 2  # list items kept in the head: a step needs the open entry and the one before
GENESIS = ""


_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical(value: Any) -> bytes:
    """The one encoding hashes are computed over: sorted keys, no spaces, UTF-8."""
    try:
        return _encode(value).encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValidationError(
            f"text holds a lone surrogate ({error.object[error.start : error.end]!r}); "
            "it cannot be stored as UTF-8"
        ) from None
    except (TypeError, ValueError) as error:
        raise ValidationError(f"value cannot be stored as JSON: {error}") from None


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256 of bytes, or of a text as UTF-8 (the artifact checksum)."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def text_sha256(text: str) -> str:
    """The SHA-256 of a text to store; ``ValidationError`` if it is not valid Unicode."""
    try:
        return sha256_hex(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError("text holds a lone surrogate; it cannot be stored as UTF-8") from None


def event_hash(event: Event) -> str:
    """The hash of an event: over everything in it but its own ``hash``."""
    return sha256_hex(canonical({key: value for key, value in event.items() if key != "hash"}))


def line_start(link: str) -> str:
    """How the stored line of the event with hash ``link`` begins (74 characters):
    ``hash`` sorts first among an event's keys."""
    return f'{{"hash":"{link}"'


def line_is_sealed(line: bytes, event: Event) -> bool:
    """Whether a stored line still holds what its ``hash`` was computed over.

    A line this version wrote begins with its hash, followed by the canonical encoding
    of the rest: hashing those bytes checks it without re-encoding the event. Any other
    line (written in another key order) is checked by re-encoding it.
    """
    digest = event.get("hash")
    if line[:9] == b'{"hash":"' and line[73:75] == b'",' and sha256_hex(b"{" + line[75:]) == digest:
        return True
    return event_hash(event) == digest


def link_of(event: Event) -> str:
    """What the next event's ``prev`` must be: a checkpoint stands for what it replaced."""
    return str(event.get("replaced" if event.get("kind") == "checkpoint" else "hash"))


def content(head: Head) -> Head:
    """A head without its position (``seq``, ``hash``) and a store's own ``_`` keys."""
    return {k: v for k, v in head.items() if k not in ("seq", "hash") and not k.startswith("_")}


def head_digest(head: Head) -> str:
    """Digest of a head's content (its ``seq``/``hash`` are checked separately)."""
    return sha256_hex(_joined(parts_of(content(head))))


class _ReplayDigests:
    """``head_digest`` of each head a replay passes through, encoding a state value only
    when an event replaced it: a workflow definition, the largest value, is encoded
    once per replay instead of once per event (which made checking a log quadratic).

    Safe because ``apply`` replaces a non-list value and never changes it in place;
    the value is kept with its bytes, so its ``id`` cannot be reused meanwhile.
    """

    def __init__(self) -> None:
        self._state: dict[str, tuple[Any, bytes]] = {}

    def of(self, state: StateDict, tasks: dict[str, Any]) -> str:
        head = head_of(state, tasks)
        parts: dict[str, bytes] = {}
        for key, value in head["state"].items():
            known = self._state.get(key)
            if known is None or known[0] is not value:
                known = self._state[key] = (value, canonical(value))
            parts[key] = known[1]
        whole = parts_of({k: v for k, v in head.items() if k != "state"})
        whole["state"] = _joined(parts)
        return sha256_hex(_joined(whole))


def parts_of(head: Head) -> dict[str, bytes]:
    """The canonical encoding of each top-level value of ``head``, by key."""
    return {key: canonical(value) for key, value in head.items()}


def _joined(parts: dict[str, bytes]) -> bytes:
    """The canonical encoding of the object whose values ``parts`` encode: the same
    bytes ``canonical`` gives for the whole object, which sorts keys the same way."""
    return b"{" + b",".join(_key(key) + b":" + parts[key] for key in sorted(parts)) + b"}"


@functools.lru_cache(maxsize=64)
def _key(key: str) -> bytes:
    return canonical(key)


class Commit:
    """Events sealed one after another, each event and the last head encoded once.

    What a store writes comes from here: ``lines`` are the events' canonical encodings
    and ``head_json()`` the head's, reusing the bytes the hashes were computed over
    (encoding is most of a step's cost).
    """

    def __init__(self, after: Head | None) -> None:
        self.events: list[Event] = []
        self.lines: list[bytes] = []
        self.head: Head = {}
        self._parts: dict[str, bytes] = {}
        self.seq: int = 0 if after is None else after["seq"]
        self.prev: str = GENESIS if after is None else after["hash"]

    def add(self, body: Event, head: Head) -> Event:
        """Seal ``body`` as the next event, leading to ``head`` (given its ``seq``/``hash``)."""
        parts = parts_of(content(head))
        self.seq += 1
        event = {**body, "seq": self.seq, "prev": self.prev, "head": sha256_hex(_joined(parts))}
        unhashed = canonical(event)
        digest = sha256_hex(unhashed)
        first = min(event) > "hash"  # then "hash" sorts first: splice it in
        event["hash"] = digest
        line = line_start(digest).encode() + b"," + unhashed[1:] if first else canonical(event)
        self.lines.append(line)
        head["seq"], head["hash"] = self.seq, digest
        parts["seq"], parts["hash"] = b"%d" % self.seq, b'"%s"' % digest.encode()
        self.events.append(event)
        self.head, self._parts, self.prev = head, parts, digest
        return event

    def add_sealed(self, events: Sequence[Event], head: Head) -> None:
        """Take ``events`` sealed elsewhere (a copied log) verbatim, leading to ``head``
        (with its ``seq``/``hash``); the caller has checked their chain."""
        for event in events:
            self.lines.append(canonical(event))  # the very line ``add`` wrote for it
            self.events.append(event)
        self.seq, self.prev = events[-1]["seq"], link_of(events[-1])
        self.head, self._parts = head, parts_of(head)

    def head_parts(self) -> dict[str, bytes]:
        """The last head's canonical top-level values, by key (``seq`` and ``hash`` too)."""
        return dict(self._parts)

    def head_json(self) -> bytes:
        """The last head's canonical encoding."""
        return _joined(self._parts)


# -- heads -----------------------------------------------------------------------------


def head_of(state: StateDict, tasks: dict[str, Any]) -> Head:
    """The head of a whole state: its small fields, and each list's length and tail."""
    head: Head = {"format": HEAD_FORMAT, "state": {}, "lists": {}, "tasks": tasks}
    for key, value in state.items():
        if isinstance(value, list):
            head["lists"][key] = {"len": len(value), "tail": value[-TAIL:]}
        else:
            head["state"][key] = value
    return head


def advance_head(head: Head, body: Event) -> Head:
    """The head after ``body`` (an ``update`` or ``artifact``), without reading the log."""
    new: Head = {
        "format": HEAD_FORMAT,
        "state": dict(head["state"]),
        "lists": dict(head["lists"]),
        "tasks": dict(head["tasks"]),
    }
    if body["kind"] == "artifact":
        new["tasks"][body["task"]] = task_entry(body)
        return new
    for key in body.get("unset", ()):
        new["state"].pop(key, None)
        new["lists"].pop(key, None)
    for key, value in body.get("set", {}).items():
        new["state"][key] = value
        new["lists"].pop(key, None)
    for key, change in body.get("lists", {}).items():
        new["state"].pop(key, None)
        old = new["lists"].get(key, {"len": 0, "tail": []})
        new["lists"][key] = _advance_list(old, change)
    return new


def _advance_list(old: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    length, tail = old["len"], list(old["tail"])
    start = length - len(tail)
    for index, item in change.get("put", {}).items():
        if int(index) >= start:
            tail[int(index) - start] = item
    if "from" in change:
        cut = change["from"]
        if cut < start:  # truncated below the known tail: only a full replay knows it
            raise _NeedsReplay
        tail = tail[: cut - start] + change["items"]
        length = cut + len(change["items"])
        start = length - len(tail)
    return {"len": length, "tail": tail[-TAIL:]}


class _NeedsReplay(Exception):
    """A change reaches further back than the head knows: rebuild it from the log."""


def task_entry(event: Event) -> dict[str, Any]:
    """What the head keeps of a task's latest artifacts."""
    return {
        "version": event["version"],
        "prompt_sha256": event["prompt_sha256"],
        "response_sha256": event["response_sha256"],
    }


def head_status(head: Head) -> str:
    return str(head["state"].get("status", ""))


# -- changes ---------------------------------------------------------------------------


def diff(old: StateDict, new: StateDict) -> Event:
    """The ``update`` event that turns the whole state ``old`` into ``new``."""
    body: Event = {"kind": "update", "set": {}, "unset": [], "lists": {}}
    for key in old:
        if key not in new:
            body["unset"].append(key)
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, list) and (isinstance(before, list) or key not in old):
            change = list_change(before if isinstance(before, list) else [], value)
            if change:
                body["lists"][key] = change
        elif key not in old or not same_json(before, value):
            body["set"][key] = value
    return body


def list_change(
    old: Sequence[Any], new: Sequence[Any], known: Iterable[int] | None = None
) -> dict[str, Any]:
    """How ``new`` differs from ``old``: changed items by index, then what was appended.

    ``known`` limits the comparison to those indexes of ``old`` (the rest are unchanged
    by construction); by default every index is compared.
    """
    shared = min(len(old), len(new))
    indexes = range(shared) if known is None else (i for i in known if i < shared)
    put = {str(i): new[i] for i in indexes if not same_json(new[i], old[i])}
    change: dict[str, Any] = {"put": put} if put else {}
    if len(new) != len(old):
        change["from"] = shared
        change["items"] = list(new[shared:])
    return change


def apply(state: StateDict, event: Event) -> StateDict:
    """``state`` after one event (``state`` is changed in place and returned)."""
    kind = event.get("kind")
    if kind in ("created", "checkpoint"):
        # Lists are copied: later events change them in place, never the event itself.
        return {k: list(v) if isinstance(v, list) else v for k, v in event["state"].items()}
    if kind == "artifact":
        return state
    if kind != "update":
        raise ValueError(f"unknown event kind {kind!r}")
    for key in event.get("unset", ()):
        state.pop(key, None)
    state.update(event.get("set", {}))
    for key, change in event.get("lists", {}).items():
        items = state.get(key)
        if not isinstance(items, list):
            items = state[key] = []
        for index, item in change.get("put", {}).items():
            items[int(index)] = item
        if "from" in change:
            del items[change["from"] :]
            items.extend(change["items"])
    return state


def project(events: Iterable[Event]) -> tuple[StateDict, dict[str, Any]]:
    """The state and task versions the log projects to (every event applied in order)."""
    state: StateDict = {}
    tasks: dict[str, Any] = {}
    for event in events:
        if event.get("kind") == "checkpoint":
            tasks = dict(event.get("tasks", {}))
        elif event.get("kind") == "artifact":
            tasks[event["task"]] = task_entry(event)
        state = apply(state, event)
    return state, tasks


def project_head(events: Sequence[Event]) -> Head:
    """The head the log projects to, with the last event's ``seq`` and ``hash``."""
    state, tasks = project(events)
    head = head_of(state, tasks)
    if events:
        head["seq"], head["hash"] = events[-1]["seq"], link_of(events[-1])
    return head


# -- checking --------------------------------------------------------------------------


def chain_problem(  # noqa: PLR0911 - one return per kind of break, in checking order
    events: Sequence[Event], after: tuple[int, str] = (0, GENESIS)
) -> tuple[int, str] | None:
    """The first broken link of ``events`` as ``(seq, what)``; ``None`` if whole.

    ``after`` is the ``(seq, link)`` of the event before the first one given.
    """
    seq, link = after
    state: StateDict = {}
    tasks: dict[str, Any] = {}
    digests = _ReplayDigests()
    for number, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
            return seq + 1, "event is not an object with a seq"
        folded = number == 0 and event.get("kind") == "checkpoint"
        if event["seq"] != seq + 1 and not folded:
            return seq + 1, f"expected event {seq + 1}, found {event['seq']} (deleted or reordered)"
        if event.get("hash") != event_hash(event):
            return event["seq"], "its content does not match its hash (edited)"
        if event.get("prev") != link and event.get("kind") != "checkpoint":
            return event["seq"], "it does not link to the event before it"
        try:
            if event.get("kind") == "checkpoint":
                tasks = dict(event.get("tasks", {}))
            elif event.get("kind") == "artifact":
                tasks[event["task"]] = task_entry(event)
            state = apply(state, event)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            return event["seq"], f"cannot be replayed ({error!r})"
        if event.get("head") != digests.of(state, tasks):
            return event["seq"], "the head it records differs from the replayed state"
        seq, link = event["seq"], link_of(event)
    return None


def link_problem(events: Sequence[Event], texts: Sequence[str | bytes]) -> tuple[int, str] | None:
    """The first edited, deleted, duplicated or reordered event of a stored log, found
    without replaying it (what every load checks; ``chain_problem`` checks more).

    ``texts`` are the events as stored: canonical, ``hash`` first, so an event's hash
    is checked over its stored bytes instead of encoding it again.
    """
    seq, link = 0, GENESIS
    for number, (event, text) in enumerate(zip(events, texts, strict=True)):
        found = event.get("seq")
        if not isinstance(found, int) or isinstance(found, bool):
            return seq + 1, "event is not an object with a seq"
        checkpoint = event.get("kind") == "checkpoint"
        if found != seq + 1 and not (number == 0 and checkpoint):
            return seq + 1, f"expected event {seq + 1}, found {found} (deleted or reordered)"
        if not _hash_matches(event, text):
            return found, "its content does not match its hash (edited)"
        if event.get("prev") != link and not checkpoint:
            return found, "it does not link to the event before it"
        seq, link = found, link_of(event)
    return None


def _hash_matches(event: Event, text: str | bytes) -> bool:
    claimed = event.get("hash")
    if not isinstance(claimed, str):
        return False
    if isinstance(text, str):  # as written: hash the stored text after the hash
        start = line_start(claimed) + ","
        if text.startswith(start) and sha256_hex("{" + text[len(start) :]) == claimed:
            return True
    try:
        return event_hash(event) == claimed  # stored in another encoding, or edited
    except ValidationError:  # holds what no event can (NaN): not as written
        return False


def is_tail_of(event: Any, head: Head) -> bool:
    """Whether ``event`` is intact, is the one ``head`` was written after, and records
    that very head: the check a step makes before trusting a head (one event, not the
    whole log)."""
    return (
        isinstance(event, dict)
        and event.get("seq") == head.get("seq")
        and link_of(event) == head.get("hash")
        and event.get("hash") == event_hash(event)
        and event.get("head") == head_digest(head)
    )


def head_problem(head: Head, events: Sequence[Event]) -> str | None:
    """How a stored head differs from the one the log projects to; ``None`` if equal."""
    if not events:
        return "the log is empty"
    expected = project_head(events)
    if head.get("seq") != expected.get("seq") or head.get("hash") != expected.get("hash"):
        return f"head is at event {head.get('seq')!r}, the log at {expected.get('seq')!r}"
    stored, wanted = content(head), content(expected)
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) != wanted.get(key):
            return f"head field {key!r} differs from the log"
    return None


def check_head(head: Any, instance_id: str, where: str) -> Head:
    """A stored head, checked for shape; ``CorruptStateError`` naming the instance if not."""
    if (
        not isinstance(head, dict)
        or head.get("format") != HEAD_FORMAT
        or not isinstance(head.get("state"), dict)
        or not isinstance(head.get("lists"), dict)
        or not isinstance(head.get("tasks"), dict)
        or not isinstance(head.get("seq"), int)
    ):
        raise corrupt(instance_id, where, "its head is not a ChatFlow instance head")
    return head


def corrupt(instance_id: str, where: str, problem: str, **context: Any) -> CorruptStateError:
    """The error for unusable stored data of one instance."""
    return CorruptStateError(
        f"instance {instance_id!r} in {where} is corrupt: {problem}",
        instance_id=instance_id,
        **context,
    )


LOST_HEAD = (
    "its head is missing but its log is stored (`chatflow doctor --fix` rebuilds the "
    "head from the log if the log verifies)"
)
"""The problem of an instance whose log outlived its head: damage (a head is written
with every commit), never absence."""


def lost_head(instance_id: str, where: str) -> CorruptStateError:
    """The error for an instance whose head is gone while its log remains."""
    return corrupt(instance_id, where, LOST_HEAD, reason=LOST_HEAD, lost_head=True)


def decode_json(text: str | bytes, instance_id: str, where: str) -> Any:
    """Parse stored JSON; ``CorruptStateError`` (never a JSON or recursion error) if not."""
    try:
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise corrupt(instance_id, where, f"not JSON ({type(error).__name__})") from None
