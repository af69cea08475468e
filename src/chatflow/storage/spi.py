"""The store provider interface: every name a third-party store author needs, public.

A store is a subclass of ``Store`` (the same class as ``IWorkflowStateStore``) whose
transactions are ``LogTransaction`` s. The base class owns every rule the stores share
(ids, errors, version bumps, sealing events and heads, artifact versions, ``verify``,
``compact``, copying logs); a store supplies the primitives below. Import from here
only: nothing under ``chatflow.storage._*`` is needed, and those modules may change.

REQUIRED (abstract; a store that lacks one cannot be instantiated):

- ``Store._transaction(instance_id, feature_id=None)``: a context manager yielding a
  ``LogTransaction`` with exclusive access to one instance; leaving it by an exception
  commits nothing;
- ``Store._read(instance_id)``: ``(head, events)`` read consistently without the lock,
  or ``None``;
- ``Store._read_head(instance_id)``: the head alone, or ``None``;
- ``Store._read_texts(instance_id, task, version)``: a ``TaskTexts`` or ``None``;
- ``Store.list_instances_by_feature(feature_id)``: ids, oldest first;
- ``Store.list_features()``: feature ids with an instance, sorted;
- ``Store.put_schema(name, version, content_hash, schema)`` / ``Store.list_schemas()``;
- ``LogTransaction.head()``, ``.events()``, ``.append(commit, texts)`` (write
  ``commit.lines`` and ``commit.head_json()`` atomically; a first append lists the
  instance in its feature), ``.replace_prefix(checkpoint, upto)`` (compaction).

OPTIONAL (the base class has a default; ``CAPABILITIES`` lists those a store can lack):

- ``delete_instance`` (capability ``delete``): absent, deletes are refused with
  ``UnsupportedOperationError``;
- ``LogTransaction.put_texts`` (capability ``copy``): absent, ``install_log`` (so
  ``migrate``, ``import`` and a fork into this store) is refused with
  ``UnsupportedOperationError``; ``LogTransaction.ensure_listed`` defaults to nothing,
  right for a store whose first ``append`` lists the instance;
- ``feature_status_counts``, ``list_feature_counts``: default walks the heads (override
  to answer from counts kept by every step);
- ``list_feature_summaries``, ``list_instances``, ``list_instance_ids``,
  ``get_current_task_id_for_feature``, ``read_log``, ``install_log``: built on the
  required primitives;
- ``raw_access`` (capability ``damage``): a ``RawAccess`` reading and overwriting an
  instance's stored bytes (its head and each event) behind the store's back, so
  ``chatflow.testing`` can damage it in each of the ``DAMAGE_KINDS`` its ``kinds``
  names and check what reads, ``verify`` and steps then do; absent, those checks are
  skipped (to pass them, ``_read`` refuses a log whose events do not chain:
  ``link_problem(events, stored_texts)``). For tests only: ChatFlow never calls it;
- ``note_repair(instance_id, what)``: tells of a repair the engine made (a WARNING on
  the ``chatflow`` logger; the file store also records it in ``repairs.jsonl``);
- ``close``: does nothing; ``where`` (a class attribute naming the store in messages)
  defaults to ``"the store"``; ``_log_where(instance_id)`` defaults to ``where``.

Errors: translate the backend's own at the boundary into ``StorageError`` (server down,
disk full), ``LockTimeoutError`` (a lock held too long) or ``CorruptStateError`` (data
that does not parse: build it with ``corrupt``), never a driver's exception.

``chatflow.testing`` checks a store against this contract (``validate(factory)``, or
the pytest suite in ``chatflow.testing.contract``), skipping the checks of an optional
capability the store lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chatflow._validation import validate_id
from chatflow.domain.counts import newest_active
from chatflow.errors import (
    ChatFlowError,
    CorruptStateError,
    HistoryConflictError,
    InstanceNotFoundError,
    InvalidIdError,
    LockTimeoutError,
    StorageError,
    UnsupportedOperationError,
    ValidationError,
)
from chatflow.storage._log import (
    Commit,
    Event,
    Head,
    canonical,
    check_head,
    corrupt,
    decode_json,
    head_status,
    is_tail_of,
    link_problem,
    sha256_hex,
    text_sha256,
)
from chatflow.storage._open import open_store, register_store_scheme
from chatflow.storage._raw import DAMAGE_KINDS, HEAD_KINDS, RawAccess, RawInstance
from chatflow.storage.base import (
    FeatureCounts,
    InstanceLog,
    InstanceSummary,
    IWorkflowStateStore,
    LogTransaction,
    Mutation,
    Problem,
    SchemaRow,
    StateDict,
    StatusCount,
    Step,
    TaskTexts,
    log_problem,
    not_found,
    parse_task_texts,
    status_counts,
    summarize,
)

Store = IWorkflowStateStore
"""The base class a store subclasses (the same class as ``IWorkflowStateStore``)."""


@dataclass(frozen=True)
class Capability:
    """A group of operations the contract checks together.

    ``detect(store)`` says, without touching its data, whether the store has an optional
    capability; ``None`` means it is found out when used: an operation the store lacks
    raises ``UnsupportedOperationError``, and the contract skips its checks.
    """

    name: str
    required: bool
    operations: tuple[str, ...]
    when_absent: str = ""
    detect: Callable[[IWorkflowStateStore], bool] | None = None


def overrides(operation: str) -> Callable[[IWorkflowStateStore], bool]:
    """A ``detect`` for an optional operation: the store's class replaces the base's."""

    def detect(store: IWorkflowStateStore) -> bool:
        return getattr(type(store), operation, None) is not getattr(Store, operation)

    return detect


CAPABILITIES: tuple[Capability, ...] = (
    Capability("states", True, ("_transaction", "_read", "_read_head")),
    Capability("artifacts", True, ("_read_texts", "LogTransaction.append")),
    Capability("features", True, ("list_instances_by_feature", "list_features")),
    Capability("schemas", True, ("put_schema", "list_schemas")),
    Capability("event_log", True, ("LogTransaction.replace_prefix",)),
    Capability("threads", True, ()),
    Capability(
        "delete",
        False,
        ("delete_instance",),
        "deletes are refused with UnsupportedOperationError",
        overrides("delete_instance"),
    ),
    Capability(
        "copy",
        False,
        ("LogTransaction.put_texts",),
        "install_log (migrate, import) is refused with UnsupportedOperationError",
    ),
    Capability(
        "feed",
        False,
        ("events_since", "feed_end"),
        "events_since (watch, the page's live update, webhooks) is refused with StorageError",
        overrides("events_since"),
    ),
    Capability(
        "damage",
        False,
        ("raw_access",),
        "the damage checks (reads, verify and steps after a damaged log or head) are skipped",
        overrides("raw_access"),
    ),
)
"""Every capability the contract knows, required first. To add one (say a change
feed), append a ``Capability`` and tag its checks with ``chatflow.testing.requires``."""


def capability(name: str) -> Capability:
    """The capability called ``name`` (``KeyError`` if there is none)."""
    for known in CAPABILITIES:
        if known.name == name:
            return known
    raise KeyError(name)


def capabilities(store: IWorkflowStateStore) -> frozenset[str]:
    """The capabilities ``store`` has as far as can be told without using it: every
    required one, and each optional one its ``detect`` does not rule out."""
    return frozenset(
        known.name
        for known in CAPABILITIES
        if known.required or known.detect is None or known.detect(store)
    )


__all__ = [
    "CAPABILITIES",
    "DAMAGE_KINDS",
    "HEAD_KINDS",
    "Capability",
    "ChatFlowError",
    "Commit",
    "CorruptStateError",
    "Event",
    "FeatureCounts",
    "Head",
    "HistoryConflictError",
    "IWorkflowStateStore",
    "InstanceLog",
    "InstanceNotFoundError",
    "InstanceSummary",
    "InvalidIdError",
    "LockTimeoutError",
    "LogTransaction",
    "Mutation",
    "Problem",
    "RawAccess",
    "RawInstance",
    "SchemaRow",
    "StateDict",
    "StatusCount",
    "Step",
    "StorageError",
    "Store",
    "TaskTexts",
    "UnsupportedOperationError",
    "ValidationError",
    "canonical",
    "capabilities",
    "capability",
    "check_head",
    "corrupt",
    "decode_json",
    "head_status",
    "is_tail_of",
    "link_problem",
    "log_problem",
    "newest_active",
    "not_found",
    "open_store",
    "overrides",
    "parse_task_texts",
    "register_store_scheme",
    "sha256_hex",
    "status_counts",
    "summarize",
    "text_sha256",
    "validate_id",
]
