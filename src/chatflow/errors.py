"""ChatFlow's exception tree: every error the library raises on purpose is a ``ChatFlowError``.

Each subclass carries its context as attributes (``instance_id``, ``path``, ...) and
subclasses the matching builtin where one fits, so ``except KeyError`` or
``except TimeoutError`` in a caller keeps working. Errors pickle across processes
because the base class rebuilds them from the keyword arguments it was given.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: errors load first
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

TERMS: dict[str, str] = {
    "resume": "resume()",
    "approve_entry": "resume(approved_by=<who approves>)",
    "approve": "approve(by=<who approves>)",
    "reject": "reject()",
    "cancel": "cancel()",
    "retry": "retry_phase()",
    "jump": "jump_to()",
    "record": "record_task_artifacts()",
    "map": "phase_map",
    "extend_budget": "extend_budget(by=<who allows it>, cost_usd=...)",
    "feed_start": "pass None to read from the start",
    "feed_cursor": "an earlier events_since()",
}
"""How the library's messages name what a caller can do: its own calls and arguments.
A front end has its own terms (``chatflow.cli``: commands and flags) for the same names."""

USER_TERMS: dict[str, str] = {
    "resume": "chatflow resume {instance_id}",
    "approve_entry": "chatflow approve {instance_id} --by NAME",
    "approve": "chatflow approve {instance_id} --by NAME",
    "extend_budget": "chatflow approve {instance_id} --by NAME --extend KEY=AMOUNT",
    "reject": "chatflow reject {instance_id} --by NAME",
    "cancel": "chatflow cancel {instance_id}",
    "retry": "chatflow retry {instance_id}",
    "jump": "chatflow jump {instance_id} PHASE",
    "record": "chatflow record {instance_id}",
    "map": "--map OLD=NEW",
    # arguments a message may start with (its ``field``)
    "to_version": "--to",
    "phase_map": "--map",
    "keep_last": "--keep-last",
    "at": "--at",
    "approved_by": "--by",
    "budget": "--budget",
    "extend": "--extend",
    # the kind of an invalid id (``InvalidIdError``: ``id.`` and its ``kind``)
    "id.instance_id": "instance id",
    "id.feature_id": "feature id",
    "id.phase_name": "phase",
    # the change feed (``chatflow watch --since``; the page follows it by itself)
    "feed_start": "use --since start for the whole feed, or leave --since out to follow from now",
    "feed_cursor": "a `chatflow watch --json` line",
}
"""``TERMS`` as people see them, in the ``chatflow`` command's words (commands and
flags): the one mapping both the command and the web page phrase errors with."""


class ChatFlowError(Exception):
    """Root of every error ChatFlow raises on purpose.

    Two optional context items let each front end word the error in its own terms
    (``phrased``), while ``str(error)`` uses the library's (``TERMS``):

    - ``hint``: what to do about it, appended to the message: a sentence naming each
      remedy as a ``{term}`` field, such as ``": {resume} or {reject} it first"``;
    - ``field``: the argument at fault; a message that starts with its name (followed
      by a space, ``:`` or ``.``) starts with the front end's name for it instead
      (``to_version`` is ``--to`` to the CLI, ``budget.tokens:`` is ``--budget tokens:``).
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for name, value in context.items():
            setattr(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context))

    def __str__(self) -> str:
        return self.phrased(TERMS)

    def phrased(self, terms: Mapping[str, str]) -> str:
        """The message in a front end's ``terms`` (each may name ``{instance_id}``)."""
        text = self.message
        field = self.context.get("field")
        if isinstance(field, str) and field in terms:
            text = _renamed(text, field, terms[field])
        hint = self.context.get("hint")
        return text + phrase(hint, terms, self.context) if isinstance(hint, str) else text


def _renamed(text: str, name: str, words: str) -> str:
    """``text`` starting with ``words`` for the argument ``name`` it starts with (then a
    space, ``:`` or ``.``: ``budget.tokens:`` becomes ``--budget tokens:``)."""
    rest = text[len(name) :]
    if not text.startswith(name) or rest[:1] not in (" ", ":", "."):
        return text
    return words + (" " + rest[1:] if rest.startswith(".") else rest)


def phrase(template: str, terms: Mapping[str, str], context: Mapping[str, Any]) -> str:
    """``template`` with each ``{term}`` in ``terms``' words, their ``{instance_id}``
    filled from ``context`` (else ``ID``)."""
    instance_id = context.get("instance_id") or "ID"
    words = {name: text.replace("{instance_id}", str(instance_id)) for name, text in terms.items()}
    return template.format_map(words)


def _rebuild(cls: type[ChatFlowError], message: str, context: dict[str, Any]) -> ChatFlowError:
    error = cls.__new__(cls)
    ChatFlowError.__init__(error, message, **context)
    return error


class ValidationError(ChatFlowError, ValueError):
    """Input the caller gave is unusable: a bad id, non-JSON data, a wrong type."""


class InvalidIdError(ValidationError):
    """An instance, feature or phase id that is empty, too long or path-like.

    ``kind`` is the argument's name (``feature_id``); a front end's terms name it in
    their own words (``id.feature_id``: the command says "feature id")."""

    def phrased(self, terms: Mapping[str, str]) -> str:
        kind = self.context.get("kind")
        text = super().phrased(terms)
        words = terms.get(f"id.{kind}")
        if words is not None and text.startswith(f"invalid {kind} "):
            text = f"invalid {words} " + text[len(f"invalid {kind} ") :]
        return text


class SchemaError(ValidationError):
    """A workflow schema is malformed; ``problems`` lists every problem with its location."""


class SchemaNotFoundError(ChatFlowError, FileNotFoundError, LookupError):
    """No registered or stored workflow schema has that name (and version).

    Also a ``FileNotFoundError``, as ChatCoder's engine raised for a missing schema file
    (``FileNotFoundError`` comes before ``LookupError`` so its constructor is the one
    used when the error is rebuilt after pickling).
    """


class InstanceNotFoundError(ChatFlowError, KeyError, ValueError):
    """No instance with that id exists in the store.

    A ``KeyError`` for the seed's callers and a ``ValueError`` for ChatCoder's, whose
    engine raised ``ValueError("Instance ... not found")``.
    """

    def __str__(self) -> str:
        # KeyError would otherwise quote the message like a repr.
        return self.message


class StoreNotFoundError(ValidationError, LookupError):
    """A store that must already exist (read-only commands, a migration's source) does not."""


class StoreURLError(ValidationError):
    """A store target that names no store ChatFlow can open: a URL of an unknown scheme,
    a ``sqlite://`` URL without a path, a known scheme without ``//`` (``sqlite:x.db``,
    which would otherwise be a folder of that name). The CLI's usage error (exit 2)."""


class InvalidTransitionError(ChatFlowError):
    """The requested step is not allowed from the instance's current state."""


class GateNotSatisfiedError(InvalidTransitionError):
    """The current phase's ``exit_requires`` do not all hold, so it may not be left.

    ``missing`` lists every open item as the JSON object events and front ends show
    (``{"kind", "text", ...}``; ``chatflow.domain.values.GateItem.from_dict`` reads one
    as a typed value); ``phase`` and ``instance_id`` say where.
    """

    missing: list[dict[str, Any]]
    phase: str
    instance_id: str


class AgentApprovalError(ChatFlowError):
    """An approval (or an override of one) asked for by a coding agent: approvals come
    from a person (``chatflow.agent.person``)."""


class UpgradeRefusedError(InvalidTransitionError):
    """An instance cannot move to another schema version; ``reasons`` says every why."""

    reasons: list[str]


class StorageError(ChatFlowError, OSError):
    """The store could not read or write (disk full, permission denied, server down)."""


class UnsupportedOperationError(StorageError):
    """The store does not offer an optional operation (``chatflow.storage.spi`` lists
    them): a store without ``delete_instance`` refuses deletes, one without
    ``LogTransaction.put_texts`` refuses copied logs."""


class CorruptStateError(StorageError):
    """Stored data exists but cannot be trusted: truncated, not JSON, wrong shape, bad checksum."""


class LockTimeoutError(StorageError, TimeoutError):
    """A lock was not acquired within its timeout."""


class HistoryConflictError(ValidationError):
    """An instance is already stored with a history the copy being installed does not
    continue (``install_log``): it was changed there, so it is left untouched."""


class FeedCursorError(ValidationError):
    """A change-feed cursor (``events_since``) that is garbled, belongs to another store
    (or to this store's feed before it was replaced), or points past the feed's end."""


class WebhookNotFoundError(ChatFlowError, LookupError):
    """No webhook with that id is kept in the store (``chatflow webhook remove``)."""


class WebhookDeliveryError(ChatFlowError):
    """A webhook's next event could not be delivered after every retry: it blocks the
    hook's later events (delivery is in order) until it goes through."""
