"""``IWorkflowStateStore``: the written-down contract every ChatFlow store fulfils.

An instance is stored as an append-only, hash-chained event log (the truth) plus a small
head (a projection of the log that a step can read without the log; see
``chatflow.storage._log``). This base class owns every rule the stores share: id
checks, the not-found and already-exists errors, the version bump, building and
sealing events, artifact versions and their checksums, ``verify`` and ``compact``.
A store supplies only primitives: an exclusive ``_transaction`` on one instance (read
the head, read the log, append events and replace the head as one atomic unit),
unlocked reads, artifact texts, and its feature index.

States travel as the plain dicts ``WorkflowInstanceState.to_dict`` produces. Every dict
a store returns is the caller's to keep and change.

``chatflow.testing`` runs the whole contract against any store; a new store is done
when it passes it.
"""

from __future__ import annotations

import contextlib
import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from chatflow._validation import check_json_value, copy_json, id_problem, validate_id
from chatflow.domain.counts import StatusCount as StatusCount  # noqa: PLC0414 - re-exported
from chatflow.domain.counts import newest_active
from chatflow.domain.models import mismatched_texts, record_checksums
from chatflow.errors import (
    CorruptStateError,
    HistoryConflictError,
    InstanceNotFoundError,
    StorageError,
    UnsupportedOperationError,
    ValidationError,
)
from chatflow.storage import _log
from chatflow.storage._heads import HeadCache
from chatflow.storage._log import Event, Head
from chatflow.storage.feed import FeedPage

if TYPE_CHECKING:
    from chatflow.storage._raw import RawAccess

StateDict = dict[str, Any]
Mutation = Callable[[StateDict], StateDict]
Loader = Callable[[], StateDict]
Step = Callable[[Head, Loader], Event]


class InstanceSummary(NamedTuple):
    """The few fields of an instance that listings and feature roll-ups need."""

    instance_id: str
    feature_id: str
    status: str
    current_phase: str
    created_at: float
    updated_at: float


class FeatureCounts(NamedTuple):
    """One feature's status counts (as ``feature_status_counts``) and its last activity.

    ``updated_at`` is the newest ``updated_at`` among the feature's instances (the file
    store reads it from the head files' modification times, which it writes with them).
    """

    feature_id: str
    counts: list[StatusCount]
    updated_at: float


class TaskTexts(NamedTuple):
    """One stored version of a task's artifacts."""

    record: dict[str, Any]
    prompt: str
    response: str


class SchemaRow(NamedTuple):
    """A workflow schema registered in a store (see ``put_schema``)."""

    name: str
    version: int | str
    content_hash: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class InstanceLog:
    """One instance's whole stored history: what ``read_log`` returns and ``install_log``
    takes, to copy an instance between stores event for event (same hashes, same digest).

    ``events`` are the sealed events, oldest first (a compacted log starts with its
    checkpoint); ``texts`` holds every stored version of each task's texts, by
    ``(task, version)``.
    """

    instance_id: str
    events: list[Event]
    texts: dict[tuple[str, int], TaskTexts]

    @functools.cached_property
    def feature_id(self) -> str:
        """The feature the log's state belongs to (``KeyError`` if the log has none)."""
        return str(_log.project(self.events)[0]["feature_id"])


@dataclass(frozen=True)
class Problem:
    """The first thing ``verify`` found wrong with an instance."""

    instance_id: str
    seq: int | None
    where: str
    what: str

    def __str__(self) -> str:
        at = f" at event {self.seq}" if self.seq is not None else ""
        return f"instance {self.instance_id}{at} ({self.where}): {self.what}"


UNREADABLE = "unreadable"
"""The ``status`` of a listed instance whose head cannot be read: listings name it
(``unreadable_summary``) instead of hiding it; ``list_instances(status=UNREADABLE)``
lists only such instances."""


def unreadable_summary(
    instance_id: str, feature_id: str, created_at: float = 0.0
) -> InstanceSummary:
    """The summary listings give an instance whose head cannot be read (damaged, or
    lost while its log remains): its id and feature, status ``UNREADABLE``; loading it
    raises the ``CorruptStateError`` that says why."""
    return InstanceSummary(instance_id, feature_id, UNREADABLE, "", created_at, 0.0)


def summarize(state: StateDict) -> InstanceSummary:
    """The ``InstanceSummary`` of a state dict (or of a head's ``state``)."""
    return InstanceSummary(
        state["instance_id"],
        state["feature_id"],
        state["status"],
        state["current_phase"],
        state.get("created_at", 0.0),
        state.get("updated_at", 0.0),
    )


class LogTransaction(ABC):
    """Exclusive access to one instance's log and head, committed as one unit."""

    @abstractmethod
    def head(self) -> Head | None:
        """The instance's head (repaired from the log if a crash left it behind)."""

    @abstractmethod
    def events(self) -> list[Event]:
        """Every event of the instance's log, oldest first."""

    @abstractmethod
    def append(self, commit: _log.Commit, texts: tuple[str, int, TaskTexts] | None) -> None:
        """Append the sealed ``commit.events`` and replace the head with ``commit.head``,
        atomically; write the encodings the commit made (``lines``, ``head_json()``).

        ``texts`` (task key, version, texts) are stored first, for an artifact event.
        A first append (a ``created`` event) also adds the instance to its feature index.
        """

    @abstractmethod
    def replace_prefix(self, checkpoint: Event, upto: int) -> None:
        """Replace the events up to seq ``upto`` with ``checkpoint`` (compaction)."""

    def put_texts(self, task: str, version: int, texts: TaskTexts) -> None:
        """Store one version of a task's texts ahead of the ``append`` that records it
        (``install_log`` stores several per commit). Not abstract, so stores written
        before it existed keep working; they cannot install copied logs."""
        raise UnsupportedOperationError(
            f"{type(self).__name__} cannot store copied task texts", operation="put_texts"
        )

    def ensure_listed(self) -> None:  # noqa: B027 - most stores list an instance with its log
        """Make sure the instance (which has a head) is in its feature's index: for a
        store that lists an instance apart from committing its log, so a crash between
        the two cannot leave a copied instance unlisted for good."""


class IWorkflowStateStore(ABC):
    """Durable home of instance logs, feature indexes and task artifacts.

    Every method is safe to call from many threads, and (for stores shared between
    processes) from many processes at once.
    """

    where = "the store"

    @property
    def _heads(self) -> HeadCache:
        """Heads this store object committed (see ``chatflow.storage._heads``)."""
        cache: HeadCache | None = self.__dict__.get("_head_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_head_cache", HeadCache())
        return cache

    # -- primitives a store supplies ---------------------------------------------------

    @abstractmethod
    def _transaction(
        self, instance_id: str, feature_id: str | None = None
    ) -> contextlib.AbstractContextManager[LogTransaction]:
        """Exclusive access to one instance; ``feature_id`` is given when creating it."""

    @abstractmethod
    def _read(self, instance_id: str) -> tuple[Head, list[Event]] | None:
        """A consistent unlocked read of the head and the log; ``None`` if absent."""

    @abstractmethod
    def _read_head(self, instance_id: str) -> Head | None:
        """The head alone, unlocked; ``None`` if the instance does not exist."""

    @abstractmethod
    def _read_texts(self, instance_id: str, task: str, version: int) -> TaskTexts | None:
        """One stored version of a task's texts and record."""

    @abstractmethod
    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        """Ids of the feature's instances, oldest first (creation order)."""

    @abstractmethod
    def list_features(self) -> list[str]:
        """Every feature id that has at least one instance, sorted."""

    @abstractmethod
    def put_schema(
        self, name: str, version: int | str, content_hash: str, schema: dict[str, Any]
    ) -> None:
        """Keep a registered workflow schema; the same name and version again replaces it.

        ``name`` is any non-empty text and ``version`` a positive int or a dotted number
        such as ``"1.2"`` (its type is kept), as a workflow schema allows.
        """

    @abstractmethod
    def list_schemas(self) -> list[SchemaRow]:
        """Every schema kept by ``put_schema``, sorted by name and version."""

    def add_schema(
        self,
        name: str,
        version: int | str,
        content_hash: str,
        schema: dict[str, Any],
        *,
        replace: bool = True,
    ) -> SchemaRow | None:
        """Keep ``schema`` under its name and version unless other content is kept there
        (then only if ``replace``); return the row kept there before, if any.

        Registering is read-then-write: ChatFlow's stores do both under one lock or
        transaction, so registrations racing in many processes never lose one, and a
        version never ends up with two contents. This default (for stores written
        before it) reads, then writes.
        """
        old = same_version(self.list_schemas(), name, version)
        if old is None or (replace and old.content_hash != content_hash):
            self.put_schema(name, version, content_hash, schema)
        return old

    def _log_where(self, instance_id: str) -> str:
        """Where an instance's log lives, for messages (a file, a table)."""
        return self.where

    # -- states ------------------------------------------------------------------------

    def create_state(
        self, state_data: StateDict, *, artifacts: Sequence[tuple[str, TaskTexts]] = ()
    ) -> None:
        """Store a new instance (its ``created`` event) and add it to its feature's index.

        ``artifacts`` (task, texts) are stored with it in the same commit, each as the
        next version of its task (a fork's copies of the artifacts it inherits).
        Raises ``ValidationError`` if an instance with that id already exists.
        """
        instance_id, feature_id = _ids(state_data)
        bodies: list[Event] = [{"kind": "created", "state": state_data}]
        texts: dict[tuple[str, int], TaskTexts] = {}
        for task, found in artifacts:
            validate_id(task, "phase_name")
            version = 1 + sum(1 for key in texts if key[0] == task)
            texts[(task, version)] = found
            bodies.append(_artifact_body(task, version, found))
        with self._transaction(instance_id, feature_id) as txn:
            if txn.head() is not None:
                raise ValidationError(
                    f"workflow instance {instance_id!r} already exists", instance_id=instance_id
                )
            if not texts:
                self._append(txn, None, bodies[0])
                return
            commit = _log.Commit(None)
            head = _log.head_of(state_data, {})
            commit.add(bodies[0], head)
            for body in bodies[1:]:
                head = _log.advance_head(head, body)
                commit.add(body, head)
            for (task, version), found in texts.items():
                txn.put_texts(task, version, found)
            txn.append(commit, None)

    def save_state(self, instance_id: str, state_data: StateDict) -> None:
        """Make ``state_data`` the instance's state (as one event), creating it if new."""
        validate_id(instance_id, "instance_id")
        if _ids(state_data)[0] != instance_id:
            raise ValidationError(
                f"state_data is the state of {state_data.get('instance_id')!r}, "
                f"not of {instance_id!r}",
                instance_id=instance_id,
            )
        with self._transaction(instance_id, state_data["feature_id"]) as txn:
            head = txn.head()
            if head is None:
                self._append(txn, None, {"kind": "created", "state": state_data})
            else:
                old = _log.project(txn.events())[0]
                self._append(txn, head, _log.diff(old, state_data))

    def load_state(self, instance_id: str) -> StateDict | None:
        """The instance's current state (the log replayed), or ``None`` if absent.

        Raises ``CorruptStateError`` if stored data exists but cannot be read, or if the
        head disagrees with the log: corrupt data is never reported as absent.
        """
        validate_id(instance_id, "instance_id")
        found = self._read(instance_id)
        if found is None:
            return None
        head, events = found
        state, _ = self._replay(instance_id, events)
        last = events[-1]["seq"] if events else None
        if head.get("seq") == last:
            problem = _log.head_problem(head, events)
            if problem is not None:
                raise _log.corrupt(instance_id, self.where, problem)
        elif not isinstance(head.get("seq"), int) or last is None or head["seq"] > last:
            raise _log.corrupt(instance_id, self.where, "its log is shorter than its head")
        return _check_state(state, instance_id, self.where)

    def _replay(self, instance_id: str, events: list[Event]) -> tuple[StateDict, dict[str, Any]]:
        try:
            return _log.project(events)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise _log.corrupt(
                instance_id, self._log_where(instance_id), f"its log cannot be replayed ({error!r})"
            ) from None

    def update_state(self, instance_id: str, mutate: Mutation) -> StateDict:
        """Atomically replace the instance's state with ``mutate(current)``; return it.

        ``mutate`` receives the latest committed state (a private copy it may change in
        place) and runs exactly once while the store holds the instance exclusively. If
        it raises, nothing is written and the exception propagates. The store sets
        ``version`` to the old version plus one. Replays the whole log: the engine's
        steps use ``step``, which reads only the head.
        Raises ``InstanceNotFoundError`` if the instance does not exist.
        """
        validate_id(instance_id, "instance_id")
        with self._transaction(instance_id) as txn:
            head = txn.head()
            if head is None:
                raise not_found(instance_id)
            old, _ = self._replay(instance_id, txn.events())
            new = mutate(copy_json(old))
            new["version"] = _version(head) + 1
            self._append(txn, head, _log.diff(old, new))
        return new

    def step(self, instance_id: str, step: Step) -> Head:
        """Append the ``update`` event ``step(head, load)`` returns; return the new head.

        ``step`` sees only the head; ``load()`` replays the log if it needs older items.
        The store adds the version bump. Raises ``InstanceNotFoundError`` if absent.
        """
        validate_id(instance_id, "instance_id")
        with self._transaction(instance_id) as txn:
            head = txn.head()
            if head is None:
                raise not_found(instance_id)
            loaded: list[StateDict] = []

            def load() -> StateDict:
                if not loaded:
                    loaded.append(self._replay(instance_id, txn.events())[0])
                return loaded[0]

            body = step(head, load)
            body.setdefault("set", {})["version"] = _version(head) + 1
            return self._append(txn, head, body)

    def _append(
        self,
        txn: LogTransaction,
        head: Head | None,
        body: Event,
        texts: tuple[str, int, TaskTexts] | None = None,
    ) -> Head:
        """Seal ``body`` after ``head`` and commit it with the head it leads to."""
        if head is None:
            new = _log.head_of(body["state"], {})
        else:
            try:
                new = _log.advance_head(head, body)
            except _log._NeedsReplay:
                state, tasks = _log.project(txn.events())
                new = _log.head_of(_log.apply(state, body), tasks)
        commit = _log.Commit(head)
        commit.add(body, new)
        txn.append(commit, texts)
        return new

    def read_history(self, instance_id: str, upto: int) -> StateDict:
        """The state as of event ``upto`` (what a returned state's lazy lists load)."""
        found = self._read(instance_id)
        if found is None:
            raise not_found(instance_id)
        events = [event for event in found[1] if event["seq"] <= upto]
        if not events or events[-1]["seq"] != upto:
            raise CorruptStateError(
                f"the history of instance {instance_id!r} as of event {upto} is no longer "
                "stored (compacted since); reload the instance",
                instance_id=instance_id,
            )
        return self._replay(instance_id, events)[0]

    # -- task artifacts ----------------------------------------------------------------

    def save_task_artifacts(
        self,
        feature_id: str,
        instance_id: str,
        phase_name: str,
        task_record_data: dict[str, Any],
        prompt_content: str,
        ai_response_content: str,
    ) -> None:
        """Store a new version of a task's record, prompt and response.

        Earlier versions stay readable (``load_task_artifacts(..., version=n)``); the
        artifact event in the log carries the SHA-256 of both texts.
        """
        validate_id(feature_id, "feature_id")
        validate_id(instance_id, "instance_id")
        validate_id(phase_name, "phase_name")
        texts = TaskTexts(task_record_data, prompt_content, ai_response_content)
        body = _artifact_body(phase_name, 0, texts)
        with self._transaction(instance_id) as txn:
            head = txn.head()
            if head is None:
                raise not_found(instance_id)
            version = int(head["tasks"].get(phase_name, {}).get("version", 0)) + 1
            body["version"] = version
            self._append(txn, head, body, (phase_name, version, texts))

    def load_task_artifacts(
        self,
        instance_id: str,
        phase_name: str,
        version: int | None = None,
        *,
        checked: bool = True,
    ) -> dict[str, Any] | None:
        """``{"record", "prompt", "response"}`` of a task's latest (or given) version.

        ``None`` if never recorded; ``CorruptStateError`` if a text does not match the
        SHA-256 recorded for it, unless ``checked=False`` (to show what changed).
        """
        validate_id(instance_id, "instance_id")
        validate_id(phase_name, "phase_name")
        head = self._read_head(instance_id)
        entry = None if head is None else head["tasks"].get(phase_name)
        if entry is None:
            return None
        wanted = entry["version"] if version is None else version
        if (
            not isinstance(wanted, int)
            or isinstance(wanted, bool)
            or not 1 <= wanted <= entry["version"]
        ):
            return None
        texts = self._read_texts(instance_id, phase_name, wanted)
        if texts is None:
            raise CorruptStateError(
                f"task {phase_name!r} version {wanted} of instance {instance_id!r} in "
                f"{self.where} is recorded in its log but its texts are missing",
                instance_id=instance_id,
                phase=phase_name,
            )
        if checked:
            expected = entry if wanted == entry["version"] else None
            self._check_texts(instance_id, phase_name, texts, expected)
        return {"record": texts.record, "prompt": texts.prompt, "response": texts.response}

    def _check_texts(
        self, instance_id: str, task: str, texts: TaskTexts, expected: dict[str, Any] | None
    ) -> None:
        """Both texts match their checksums: the log's if known, else the record's."""
        checksums = expected if expected is not None else record_checksums(texts.record)
        bad = mismatched_texts(texts.prompt, texts.response, checksums, unrecorded_ok=True)
        if bad:
            raise CorruptStateError(
                f"task artifacts of phase {task!r} of instance {instance_id!r} in "
                f"{self.where} are corrupt: the {bad[0]} does not match its recorded "
                "SHA-256 checksum",
                instance_id=instance_id,
                phase=task,
            )

    def list_task_phases(self, instance_id: str) -> list[str]:
        """Task keys of the instance with stored artifacts, sorted."""
        validate_id(instance_id, "instance_id")
        head = self._read_head(instance_id)
        return [] if head is None else sorted(head["tasks"])

    # -- integrity ---------------------------------------------------------------------

    def note_repair(self, instance_id: str, what: str) -> None:
        """Tell of a repair made to the instance's data from outside the store (the
        engine mending a fork): a WARNING on the ``chatflow`` logger; the file store
        also records it in ``repairs.jsonl``, as it does its own repairs."""
        from chatflow._logger import logger  # noqa: PLC0415 - repairs are rare

        logger(__name__).warning("repaired instance %s in %s: %s", instance_id, self.where, what)

    def verify(self, instance_id: str) -> Problem | None:
        """The first broken link, edited event, mismatched artifact or stale head; ``None``
        if the instance's log, artifacts and head all check out."""
        validate_id(instance_id, "instance_id")
        where = self._log_where(instance_id)
        # Reads only (a read-only store verifies): a head a crash left behind its log is
        # not damage, and the store's read answers with the log's head.
        try:
            found = self._read(instance_id)
        except CorruptStateError as error:
            seq, reason = error.context.get("seq"), error.context.get("reason")
            return Problem(instance_id, seq, where, reason or str(error))
        if found is None:
            raise not_found(instance_id)
        head, events = found
        broken = _log.chain_problem(events)
        if broken is not None:
            return Problem(instance_id, broken[0], where, broken[1])
        problem = _log.head_problem(head, events)
        if problem is not None:
            return Problem(instance_id, head.get("seq"), f"head of {where}", problem)
        for event in events:
            if event.get("kind") == "artifact":
                found_problem = self._artifact_problem(instance_id, event)
                if found_problem is not None:
                    return found_problem
        return None

    def lost_heads(self, *, thorough: bool = False) -> list[str]:
        """Ids of instances whose log is stored but whose head is gone (damage: a head
        is written with every commit), sorted. Cheap unless there are some: stores
        scan their logs only when a tripwire they keep says a head is missing (the SQL
        stores: their per-step counts), or always if ``thorough`` (``chatflow
        doctor``). Stores whose head cannot be lost apart from the log (the file store
        rebuilds a missing head file) keep this default: none."""
        return []

    def rebuild_head(self, instance_id: str) -> bool:
        """Write the head of an instance that ``lost_heads`` names, projected from its
        log, only if the log verifies (``chatflow doctor --fix``): False if it has a
        head (nothing to do); ``CorruptStateError`` naming the instance, changing
        nothing, if its log does not verify; ``InstanceNotFoundError`` if it has no
        log either. Nothing stored is deleted or rewritten: only the head is added."""
        raise UnsupportedOperationError(
            f"{type(self).__name__} cannot rebuild lost heads", operation="rebuild_head"
        )

    def _artifact_problem(self, instance_id: str, event: Event) -> Problem | None:
        task, version = event["task"], event["version"]
        try:
            texts = self._read_texts(instance_id, task, version)
        except CorruptStateError as error:
            texts, reason = None, str(error)
        else:
            reason = "its texts are missing"
        where = f"artifacts of task {task!r} version {version}"
        if texts is None:
            return Problem(instance_id, event["seq"], where, reason)
        bad = mismatched_texts(texts.prompt, texts.response, event)
        if bad:
            return Problem(
                instance_id,
                event["seq"],
                where,
                f"the {bad[0]} does not match the SHA-256 in the log",
            )
        return None

    def instance_digest(self, instance_id: str) -> str:
        """The hash of the instance's last event: changes with any change to its history."""
        head = self._read_head(validate_id(instance_id, "instance_id"))
        if head is None:
            raise not_found(instance_id)
        return str(head["hash"])

    # -- copying whole histories ------------------------------------------------------

    def read_log(self, instance_id: str) -> InstanceLog:
        """The instance's sealed events and every stored version of its task texts, as
        stored (check them with ``log_problem``); what ``install_log`` copies."""
        validate_id(instance_id, "instance_id")
        found = self._read(instance_id)
        if found is None:
            raise not_found(instance_id)
        events = found[1]
        texts: dict[tuple[str, int], TaskTexts] = {}
        for task, entry in self._replay(instance_id, events)[1].items():
            for version in range(1, int(entry["version"]) + 1):
                stored = self._read_texts(instance_id, task, version)
                if stored is not None:
                    texts[(task, version)] = stored
        return InstanceLog(instance_id, events, texts)

    def install_log(self, log: InstanceLog) -> str:
        """Store a copy of another store's instance, event for event: its hashes, its
        digest and every version of its task texts stay exactly as they were.

        The log is verified first (``log_problem``): ``CorruptStateError`` naming the
        instance and its first bad event if it does not. Returns ``"copied"`` (new
        here), ``"updated"`` (the events this store's copy lacked were appended) or
        ``"unchanged"``. Raises ``HistoryConflictError``, changing nothing, if this
        store's copy is not a prefix of ``log`` (changed here, or compacted past it).
        Safe to repeat after a crash: a partly stored copy is completed.
        """
        problem = log_problem(log)
        if problem is not None:
            raise CorruptStateError(
                f"refusing to store a copy that does not verify: {problem}",
                instance_id=log.instance_id,
            )
        events = log.events
        feature_id = log.feature_id
        with self._transaction(log.instance_id, feature_id) as txn:
            head = txn.head()
            start = 0 if head is None else _resume_at(log, head)
            new = events[start:]
            for event in new:
                if event.get("kind") == "artifact":
                    key = (event["task"], event["version"])
                    txn.put_texts(*key, log.texts[key])
            if head is None:  # versions folded into a checkpoint have no event of their own
                for (task, version), texts in log.texts.items():
                    if not any(e.get("task") == task and e.get("version") == version for e in new):
                        txn.put_texts(task, version, texts)
            if new:
                commit = _log.Commit(head)
                commit.add_sealed(new, _log.project_head(events))
                txn.append(commit, None)
            txn.ensure_listed()
        return "copied" if head is None else "updated" if new else "unchanged"

    def compact(
        self,
        instance_id: str,
        keep_last: int,
        archive: Callable[[list[Event]], None] | None = None,
    ) -> list[Event]:
        """Fold all but the last ``keep_last`` events into one checkpoint; return the
        folded events. The projection and ``verify`` are unchanged.

        ``archive`` is given the events to fold before anything changes, under the
        instance's lock: if it raises, the log is left as it was.
        """
        validate_id(instance_id, "instance_id")
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise ValidationError(
                f"keep_last must be a whole number of 0 or more, not {keep_last!r}",
                field="keep_last",
            )
        with self._transaction(instance_id) as txn:
            if txn.head() is None:
                raise not_found(instance_id)
            events = txn.events()
            folded = events[: len(events) - keep_last]
            if len(folded) < 2:
                return []
            state, tasks = self._replay(instance_id, folded)
            checkpoint: Event = {
                "kind": "checkpoint",
                "state": state,
                "tasks": tasks,
                "replaced": _log.link_of(folded[-1]),
                "folded_from": folded[0]["seq"],
                "seq": folded[-1]["seq"],
                "prev": folded[0]["prev"],
                "head": _log.head_digest(_log.head_of(state, tasks)),
            }
            checkpoint["hash"] = _log.event_hash(checkpoint)
            if archive is not None:
                archive(folded)
            txn.replace_prefix(checkpoint, folded[-1]["seq"])
            return folded

    # -- listings and roll-ups ---------------------------------------------------------

    def list_feature_summaries(self, feature_id: str) -> list[InstanceSummary]:
        """Summaries of the feature's instances, oldest first, read from their heads.

        An instance whose head cannot be read is listed as ``unreadable_summary`` (its
        load and ``verify`` say why): one corrupt instance never hides the rest of its
        feature, nor itself.
        """
        summaries = []
        for instance_id in self.list_instances_by_feature(feature_id):
            try:
                head = self._read_head(instance_id)
                if head is not None:
                    summaries.append(summarize(head["state"]))
            except (CorruptStateError, KeyError, TypeError):
                summaries.append(unreadable_summary(instance_id, feature_id))
        return summaries

    def feature_status_counts(self, feature_id: str) -> list[StatusCount]:
        """The feature's instances counted by status, for roll-ups without a row each.

        Ordered by each status's newest instance, oldest first: the last entry's
        ``newest_instance_id`` is the feature's newest instance. Stores answer it from
        counts they keep up to date with every step; this default walks the heads.
        """
        return status_counts(self.list_feature_summaries(feature_id))

    def list_feature_counts(self) -> list[FeatureCounts]:
        """Every feature's status counts and last activity, sorted by feature id.

        What an overview of every feature needs, in one pass over the store rather than
        a roll-up per feature (bench/bench_ui.py). Stores answer it from their kept
        counts; this default groups one ``list_instances`` listing.
        """
        by_feature: dict[str, list[InstanceSummary]] = {}
        for summary in self.list_instances():
            by_feature.setdefault(summary.feature_id, []).append(summary)
        return [
            FeatureCounts(feature, status_counts(group), max(s.updated_at for s in group))
            for feature, group in sorted(by_feature.items())
        ]

    def get_current_task_id_for_feature(self, feature_id: str) -> str | None:
        """The feature's newest instance that is still active (created, running or
        paused), or ``None``: ChatCoder's "instance to continue".

        Built on ``feature_status_counts``, so stores answer it from their kept counts.
        """
        return newest_active(self.feature_status_counts(validate_id(feature_id, "feature_id")))

    def list_instances(
        self, feature_id: str | None = None, status: str | None = None
    ) -> list[InstanceSummary]:
        """Summaries of instances, optionally only one feature's and/or one status's.

        Order: features sorted by id, each feature's instances oldest first. An
        instance whose head cannot be read is listed with status ``UNREADABLE`` (see
        ``unreadable_summary``): without a status filter, or with that one.
        """
        check_status_filter(status)
        features = self.list_features() if feature_id is None else [feature_id]
        return [
            summary
            for feature in features
            for summary in self.list_feature_summaries(feature)
            if status is None or summary.status == status
        ]

    def list_instance_ids(self) -> list[str]:
        """Every instance id in the store, feature by feature in creation order."""
        return [
            iid
            for feature in self.list_features()
            for iid in self.list_instances_by_feature(feature)
        ]

    # -- small store-wide values ------------------------------------------------------

    def get_value(self, key: str) -> Any:
        """The JSON value ``put_value`` last kept under ``key``, or ``None``.

        Built once, here, on the schema primitives every store has (``put_schema`` and
        ``list_schemas``, under the reserved name ``VALUES_NAME``), so every store,
        a third party's too, keeps values without a table or file of its own, and
        ``chatflow migrate`` copies them with the schemas. Meant for a few small
        settings (a work tree's bound instance): a read scans the kept schemas.
        """
        version = _value_version(key)
        for row in self.list_schemas():
            if row.name == VALUES_NAME and str(row.version) == version:
                found = row.schema.get("value") if isinstance(row.schema, dict) else None
                return copy_json(found)
        return None

    def put_value(self, key: str, value: Any) -> None:
        """Keep the JSON ``value`` under ``key`` (any non-empty text), replacing the one
        there; ``None`` clears it. One write: two writers of one key, the last wins."""
        version = _value_version(key)
        check_json_value(value, "value")
        body = {"key": key, "value": value}
        self.put_schema(VALUES_NAME, version, _log.sha256_hex(_log.canonical(body)), body)

    def list_values(self, prefix: str) -> dict[str, Any]:
        """Every value ``put_value`` keeps under a key starting with ``prefix`` (cleared
        ones left out), by key: so a set of things can each live under a key of its own
        (``webhook:<id>``), and two writers adding different ones never lose either."""
        if not isinstance(prefix, str) or not prefix:
            raise ValidationError(
                f"a prefix must be non-empty text, not {prefix!r}", field="prefix"
            )
        found: dict[str, Any] = {}
        for row in self.list_schemas():
            body = row.schema if row.name == VALUES_NAME else None
            if not isinstance(body, dict) or body.get("value") is None:
                continue
            key = body.get("key")
            if isinstance(key, str) and key.startswith(prefix):
                found[key] = copy_json(body["value"])
        return dict(sorted(found.items()))

    def delete_instance(self, instance_id: str) -> bool:
        """Remove the instance, its task artifacts and its feature-index entry.

        Returns False if there was no such instance. Not abstract, so stores written
        before deletion existed keep working; they refuse it with
        ``UnsupportedOperationError`` (a ``StorageError``).
        """
        raise UnsupportedOperationError(
            f"{type(self).__name__} cannot delete instances", operation="delete_instance"
        )

    def delete_instance_by(self, instance_id: str, by: str) -> bool:
        """Delete the instance as ``delete_instance`` does, keeping who deleted it, when,
        and what (its feature, status and last event's ``seq``/hash) in the store's
        append-only deletion record (``deletions()``): the instance's log goes, so this
        record is what says it existed. Returns False if there was no such instance.

        The record is written before (file) or with (SQL, memory) the deletion. Stores
        that keep no record (the default, for stores written before it existed) delete
        only.
        """
        validate_id(instance_id, "instance_id")
        try:
            head = self._read_head(instance_id)
        except CorruptStateError:
            head = None  # damaged: still deleted (what `chatflow delete` is for), and told
        record = deletion_record(instance_id, head, by)
        return self._delete_recorded(instance_id, record)

    def _delete_recorded(self, instance_id: str, record: dict[str, Any]) -> bool:
        """Delete the instance and append ``record`` to the deletion record, together."""
        return self.delete_instance(instance_id)

    def deletions(self) -> list[dict[str, Any]]:
        """Every deletion recorded by ``delete_instance_by``, oldest first: ``{at,
        instance_id, feature_id, by, status, seq, hash}``."""
        return []

    def events_since(
        self,
        cursor: str | None = None,
        *,
        feature: str | None = None,
        instance: str | None = None,
        limit: int | None = None,
    ) -> FeedPage:
        """Every event committed after ``cursor`` (``None``: from the start), in commit
        order, optionally only one feature's or one instance's, at most ``limit``; with
        the cursor to pass next (see ``chatflow.storage.feed``). Reading never blocks a
        writer. ``FeedCursorError`` for a cursor this store's feed never gave.

        Not abstract, so stores written before the feed existed keep working; they
        refuse it with ``StorageError``.
        """
        raise StorageError(f"{type(self).__name__} keeps no change feed (events_since)")

    def feed_end(self) -> str:
        """The cursor after the last committed event: to follow only what comes next.
        This default pages through ``events_since``; stores answer it directly."""
        cursor = None
        while True:
            page = self.events_since(cursor, limit=1000)
            if not page.events:
                return page.cursor
            cursor = page.cursor

    def raw_access(self) -> RawAccess:
        """The stored bytes of instances, to damage them behind the store's back: for
        ``chatflow.testing``'s damage checks only (capability ``damage``; ChatFlow never
        calls it). Stores without it refuse with ``UnsupportedOperationError``."""
        raise UnsupportedOperationError(
            f"{type(self).__name__} gives no raw access to its instances (damage checks)",
            operation="raw_access",
        )

    def close(self) -> None:  # noqa: B027 - optional hook; most stores hold nothing to release
        """Release connections or handles; the store is unusable afterwards."""


def same_version(rows: Sequence[SchemaRow], name: str, version: int | str) -> SchemaRow | None:
    """The row kept under ``name`` and ``version`` (``2`` and ``"2"`` are one version)."""
    from chatflow.domain.schema import version_key  # noqa: PLC0415 - registering only

    wanted = version_key(version)
    for row in rows:
        if row.name == name and version_key(row.version) == wanted:
            return row
    return None


def deletion_record(instance_id: str, head: Head | None, by: str) -> dict[str, Any]:
    """What the deletion record keeps of a deleted instance (``head``: its head, if
    readable)."""
    import time  # noqa: PLC0415 - deletions only

    state = head["state"] if head is not None else {}
    return {
        "at": time.time(),
        "instance_id": instance_id,
        "feature_id": state.get("feature_id"),
        "by": by,
        "status": state.get("status"),
        "seq": None if head is None else head.get("seq"),
        "hash": None if head is None else head.get("hash"),
    }


VALUES_NAME = "chatflow:values"
"""The schema name ``put_value`` keeps values under: never a workflow's (the registry
skips its rows)."""


def _value_version(key: object) -> str:
    """The schema version a value's key is kept as: a digest, so any text is a key."""
    if not isinstance(key, str) or not key:
        raise ValidationError(f"a value's key must be non-empty text, not {key!r}", field="key")
    return "k" + _log.sha256_hex(key)[:32]


def status_counts(summaries: list[InstanceSummary]) -> list[StatusCount]:
    """Instances (oldest first) counted by status, ordered by each status's newest one;
    unreadable ones have no status to count (listings name them)."""
    groups: dict[str, tuple[int, str]] = {}
    for summary in summaries:
        if summary.status == UNREADABLE:
            continue
        count, _ = groups.pop(summary.status, (0, ""))  # re-inserted last: newest
        groups[summary.status] = (count + 1, summary.instance_id)
    return [StatusCount(status, count, newest) for status, (count, newest) in groups.items()]


def _artifact_body(task: str, version: int, texts: TaskTexts) -> Event:
    """The unsealed ``artifact`` event of one task version."""
    for what, text in (("prompt", texts.prompt), ("response", texts.response)):
        if not isinstance(text, str):
            raise ValidationError(f"{what} must be a str, not {type(text).__name__}")
    return {
        "kind": "artifact",
        "task": task,
        "version": version,
        "record": texts.record,
        "prompt_sha256": _log.text_sha256(texts.prompt),
        "response_sha256": _log.text_sha256(texts.response),
    }


def log_problem(log: InstanceLog) -> Problem | None:  # noqa: PLR0911 - one per kind
    """The first thing wrong with a log to install: a broken or edited event, a state
    of another instance, texts missing or not matching the SHA-256 the log (or, for a
    version folded into a checkpoint, its record) gives them; ``None`` if it verifies."""
    iid, events, where = log.instance_id, log.events, "the copied log"
    if not events:
        return Problem(iid, None, where, "it has no events")
    broken = _log.chain_problem(events)
    if broken is not None:
        return Problem(iid, broken[0], where, broken[1])
    state, tasks = _log.project(events)
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        return Problem(iid, events[-1]["seq"], where, "its state is not an instance's state")
    if state["instance_id"] != iid:
        return Problem(iid, None, where, f"it holds instance {state['instance_id']!r}")
    if id_problem(state["feature_id"]) is not None:
        return Problem(iid, None, where, f"its feature id {state['feature_id']!r} is invalid")
    logged = {(e["task"], e["version"]): e for e in events if e.get("kind") == "artifact"}
    for (task, version), event in logged.items():
        problem = _texts_problem(log.texts.get((task, version)), event)
        if problem is not None:
            return Problem(
                iid, event["seq"], f"artifacts of task {task!r} version {version}", problem
            )
    for (task, version), texts in log.texts.items():
        entry = tasks.get(task)
        if (task, version) in logged:
            continue
        if entry is None or not isinstance(version, int) or not 1 <= version <= entry["version"]:
            return Problem(
                iid, None, where, f"texts of task {task!r} version {version} are not in its log"
            )
        expected = entry if version == entry["version"] else record_checksums(texts.record)
        problem = _texts_problem(texts, expected)
        if problem is not None:
            return Problem(iid, None, f"artifacts of task {task!r} version {version}", problem)
    return None


def _texts_problem(texts: TaskTexts | None, expected: dict[str, Any]) -> str | None:
    """How texts differ from the SHA-256s ``expected`` gives (a missing one is not checked)."""
    if texts is None:
        return "its texts are missing"
    if not isinstance(texts.record, dict):
        return "its task record is not an object"
    if "record" in expected and texts.record != expected["record"]:
        return "its task record differs from the one in the log"
    bad = mismatched_texts(texts.prompt, texts.response, expected, unrecorded_ok=True)
    return f"the {bad[0]} does not match the SHA-256 in the log" if bad else None


def _resume_at(log: InstanceLog, head: Head) -> int:
    """Where ``log`` goes on after the event ``head`` stands at; ``HistoryConflictError``
    if it never passes there (the stored copy went its own way, or was compacted past)."""
    same_feature = head["state"].get("feature_id") == log.feature_id
    for index, event in enumerate(log.events):
        if same_feature and (event["seq"], _log.link_of(event)) == (head["seq"], head["hash"]):
            return index + 1
    raise HistoryConflictError(
        f"instance {log.instance_id!r} is stored with a history the copy does not continue "
        f"(here at event {head.get('seq')}, changed here or compacted past); left untouched",
        instance_id=log.instance_id,
    )


def _ids(state: Any) -> tuple[str, str]:
    if not isinstance(state, dict):
        raise ValidationError(f"state_data must be a dict, not {type(state).__name__}")
    return validate_id(state.get("instance_id"), "instance_id"), validate_id(
        state.get("feature_id"), "feature_id"
    )


def _version(head: Head) -> int:
    version = head["state"].get("version", 0)
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


REQUIRED_KEYS = ("instance_id", "feature_id", "status", "current_phase")


def _check_state(state: Any, instance_id: str, where: str) -> StateDict:
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise _log.corrupt(instance_id, where, f"its state lacks {', '.join(REQUIRED_KEYS)}")
    if state["instance_id"] != instance_id:
        raise _log.corrupt(instance_id, where, f"it holds instance {state['instance_id']!r}")
    return state


def rebuilt_head(instance_id: str, where: str, events: list[Event]) -> Head:
    """The head a lost one is rebuilt as: what the log projects to, only if the log
    verifies (``CorruptStateError`` naming the instance and the first bad event if not)."""
    if not events:
        raise _log.corrupt(instance_id, where, "its log is empty: no head to rebuild")
    broken = _log.chain_problem(events)
    if broken is not None:
        seq, what = broken
        problem = f"event {seq}: {what} (and its head is lost: not rebuilt from a damaged log)"
        raise _log.corrupt(instance_id, where, problem, seq=seq, reason=what)
    try:
        head = _log.project_head(events)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        problem = f"its log cannot be replayed ({error!r}), and its head is lost"
        raise _log.corrupt(instance_id, where, problem) from None
    _check_state(head["state"], instance_id, where)
    return head


def check_status_filter(status: object) -> None:
    """Reject a ``list_instances`` status filter that could never match a stored status."""
    if status is not None and not isinstance(status, str):
        raise ValidationError(f"status must be a str or None, not {type(status).__name__}")


def not_found(instance_id: str) -> InstanceNotFoundError:
    """The error every store raises for an instance that does not exist."""
    return InstanceNotFoundError(
        f"workflow instance {instance_id!r} not found", instance_id=instance_id
    )


def parse_task_texts(
    instance_id: str, where: str, task: str, version: int, raw: tuple[Any, Any, Any]
) -> TaskTexts:
    """A stored task version from its raw record and texts (``str`` or UTF-8 bytes);
    ``CorruptStateError`` if any of them cannot be read."""
    record, prompt, response = raw
    try:
        parsed = json.loads(record)
        texts = [
            text if isinstance(text, str) else bytes(text).decode() for text in (prompt, response)
        ]
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        problem = f"task {task!r} version {version} is unreadable ({error})"
        raise _log.corrupt(instance_id, where, problem) from None
    if not isinstance(parsed, dict):
        raise _log.corrupt(instance_id, where, f"task {task!r} record is not an object")
    return TaskTexts(parsed, *texts)
