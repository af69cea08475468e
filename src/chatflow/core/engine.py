"""``WorkflowEngine``: moves workflow instances through their phases.

The engine validates everything it is given, then talks to its store only through
``IWorkflowStateStore``. Every change to an instance is one ``update_state`` call, so
the store's lock or transaction covers the whole read-modify-write: two processes
triggering one instance can never lose each other's step.

This module is the API layer: what each operation changes lives in ``lifecycle``
(state changes and events), ``transitions`` (routing), ``registry`` (schemas by name),
``status`` (reports) and ``upgrade`` (live upgrades); how a change reaches the store in
``_stored``, task records in ``_artifacts``, argument checks in ``_arguments``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow import _logger
from chatflow._validation import check_json_object, check_text, new_instance_id, validate_id
from chatflow.core import _arguments, _artifacts, _otel, _spend, _stored, gitlinks
from chatflow.core._actions import HumanActions
from chatflow.core._spend import SpendActions
from chatflow.core._stored import Change
from chatflow.domain import lifecycle
from chatflow.domain import usage as _usage
from chatflow.domain.definition import Workflow
from chatflow.domain.history import timeline
from chatflow.domain.models import (
    TaskArtifacts,
    TaskExecutionRecord,
    WorkflowEvent,
    WorkflowInstanceState,
    WorkflowStartResult,
    generate_timestamp,
)
from chatflow.domain.schema import validate_schema
from chatflow.domain.status import feature_rollup, phase_statuses, status_info
from chatflow.errors import CorruptStateError, StorageError, StoreNotFoundError, ValidationError
from chatflow.storage import is_store_url, open_store
from chatflow.storage.base import (
    UNREADABLE,
    InstanceSummary,
    IWorkflowStateStore,
    Problem,
    TaskTexts,
    not_found,
)

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from chatflow.core.registry import SchemaRegistry, WorkflowInfo
    from chatflow.core.upgrade import UpgradeOutcome
    from chatflow.storage.feed import FeedPage

DEFAULT_DIR_ENV = "CHATFLOW_DIR"
DEFAULT_DIR = ".chatflow"
SCHEMAS_SUBDIR = "schemas"


def default_storage_dir() -> Path:
    """``$CHATFLOW_DIR`` if set, else ``./.chatflow``, resolved against the current folder."""
    return Path(os.environ.get(DEFAULT_DIR_ENV) or DEFAULT_DIR).resolve()


def default_store_target() -> str | Path:
    """Where the store is when none is given: ``$CHATFLOW_DIR`` (a folder or a store URL,
    exactly what ``storage_dir=`` and ``chatflow --dir`` accept), else ``./.chatflow``."""
    value = os.environ.get(DEFAULT_DIR_ENV)
    if value and is_store_url(value):
        return value
    return default_storage_dir()


class WorkflowEngine(HumanActions, SpendActions):
    """Starts, advances and reports on workflow instances kept in one store.

    ``WorkflowEngine(storage_dir=...)`` uses the default file store in that folder, or
    the store a URL names (``sqlite:///state.db``, ``postgresql://...``, ``memory://``);
    ``state_store=`` (or ``store=``) uses any ``IWorkflowStateStore``. With none, the
    folder is ``$CHATFLOW_DIR`` or ``./.chatflow``. Nothing touches the disk or network
    until the first call that needs the store.

    Workflow schemas are found by name in ``schema_dirs`` and then in the storage
    folder's ``schemas/`` (see ``chatflow.core.registry``).

    ``git`` records, on every step that opens or closes a visit, the commit, branch and
    dirtiness of the work tree (``chatflow.core.gitlinks``); ``None`` (the default):
    on unless ``CHATFLOW_GIT=0``.

    ``tracing`` emits one OpenTelemetry span per action (docs/library.md, "Tracing"):
    ``None`` (the default) when the application has loaded OpenTelemetry (unless
    ``CHATFLOW_OTEL=0``; ``CHATFLOW_OTEL=1`` requires it), ``True`` with the global
    tracer provider (a ``ChatFlowError`` says what to install if it is missing), a
    ``TracerProvider`` with that one, ``False`` never.
    """

    default_merge_trigger_data: str | None = None
    """The ``merge_trigger_data`` mode given to schemas that choose none (``None``: the
    schema default, ``"none"``). ChatCoder's engine class sets ``"flat"``."""

    def __init__(
        self,
        storage_dir: str | os.PathLike[str] | None = None,
        state_store: IWorkflowStateStore | None = None,
        *,
        store: IWorkflowStateStore | None = None,
        durable: bool = True,
        schema_dirs: Sequence[str | os.PathLike[str]] = (),
        git: bool | None = None,
        tracing: bool | TracerProvider | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._tracing = _otel.Tracing(tracing)
        self._git = gitlinks.enabled_by_env() if git is None else _arguments.flag(git, "git")
        self._store: IWorkflowStateStore | None = None
        self._schema_dirs = [Path(folder) for folder in schema_dirs]
        self._schemas: SchemaRegistry | None = None
        self._configure(storage_dir, state_store or store, durable=durable)

    def _configure(
        self,
        storage_dir: str | os.PathLike[str] | None,
        state_store: IWorkflowStateStore | None,
        *,
        durable: bool,
    ) -> None:
        if storage_dir is not None and state_store is not None:
            raise ValidationError("give a storage folder/URL or a store, not both")
        if state_store is not None and not isinstance(state_store, IWorkflowStateStore):
            raise ValidationError(
                f"store must implement IWorkflowStateStore, not {type(state_store).__name__}"
            )
        if storage_dir is not None and not isinstance(storage_dir, (str, os.PathLike)):
            raise ValidationError(
                f"storage_dir must be a path or URL, not {type(storage_dir).__name__}"
            )
        with self._lock:
            self._target = storage_dir
            self._durable = durable
            self._store = state_store
            self._owns_store = state_store is None

    @property
    def state_store(self) -> IWorkflowStateStore:
        """The store this engine uses, opened on first access."""
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                target = self._target if self._target is not None else default_store_target()
                self._store = open_store(target, durable=self._durable)
                if _logger.loaded():  # else no one can be listening for info
                    _logger.logger(__name__).info("opened %r", self._store)
            return self._store

    @property
    def schemas(self) -> SchemaRegistry:
        """The engine's schema registry, created on first use (it is not needed at import)."""
        with self._lock:
            if self._schemas is None:
                from chatflow.core.registry import SchemaRegistry  # noqa: PLC0415

                self._schemas = SchemaRegistry(
                    self._schema_folders,
                    stored=self._existing_store,
                    store=lambda: self.state_store,
                )
            return self._schemas

    def _existing_store(self) -> IWorkflowStateStore | None:
        """The store, unless it does not exist yet: looking schemas up must not create one
        (``require_store`` says, asking a PostgreSQL server without creating anything)."""
        if self._store is None:
            from chatflow.storage import require_store  # noqa: PLC0415 - lookups only

            try:
                require_store(self._target if self._target is not None else default_store_target())
            except StoreNotFoundError:
                return None
        return self.state_store

    def _schema_folders(self) -> list[Path]:
        """The user's schema folders, then ``schemas/`` of the storage folder, if any."""
        store = self._store
        base = getattr(store, "base_dir", None) if store is not None else None
        if base is None and store is None:
            target = self._target if self._target is not None else default_store_target()
            if not is_store_url(target):
                base = Path(target).resolve()
        folders = list(self._schema_dirs)
        if isinstance(base, Path):
            folders.append(base / SCHEMAS_SUBDIR)
        return folders

    def close(self) -> None:
        """Close the store if this engine opened it (a store handed in stays the caller's)."""
        with self._lock:
            if not self._owns_store or self._store is None:
                return
            store, self._store = self._store, None
        store.close()

    def __repr__(self) -> str:
        store = self._store
        where = repr(store) if store is not None else f"{self._target!r}, not opened yet"
        return f"WorkflowEngine({where})"

    # -- starting and advancing ----------------------------------------------------

    def start_workflow_instance(
        self,
        workflow_schema: dict[str, Any] | str | os.PathLike[str] | Workflow | None = None,
        initial_context: dict[str, Any] | None = None,
        feature_id: str = "",
        meta: dict[str, Any] | None = None,
        *,
        schema_name: str | None = None,
        schema_version: int | str | None = None,
        automation_level: int | None = None,
        actor: str | None = None,
        budget: dict[str, Any] | None = None,
    ) -> WorkflowStartResult:
        """Create an instance in the schema's first phase; return its id.

        The schema is given as a dict, a JSON/YAML file path (``str`` or ``Path``) or a
        validated ``Workflow``, or found by
        ``schema_name`` (+ ``schema_version``, default the latest) in the registry. The
        validated schema is stored with the instance, so every later step follows the
        definition the instance started with. ``automation_level`` (0-100; default
        ``meta["automation_level"]``, else the schema's) pauses steps whose trigger data
        carries a higher ``risk``. The returned id is a ``WorkflowStartResult``: a
        ``str`` that also tells ``initial_phase`` and ``created_at``. ``actor`` is who
        starts it (default: ``meta["actor"]``, else ``meta["user_id"]``). ``budget``
        (``{"cost_usd": 5, "tokens": ..., "wall": "2h", "visits": ...}``) limits this
        run on top of the workflow's own budgets (``chatflow.domain.budgets``).
        """
        workflow = self._resolve_schema(workflow_schema, schema_name, schema_version)
        if self.default_merge_trigger_data is not None:
            workflow = _with_merge_default(workflow, self.default_merge_trigger_data)
        validate_id(feature_id, "feature_id")
        variables = check_json_object(
            {} if initial_context is None else initial_context, "initial_context"
        )
        meta = check_json_object({} if meta is None else meta, "meta")
        if automation_level is None:
            automation_level = meta.get("automation_level", workflow.automation_level)
        level = _arguments.automation_level(automation_level)
        actor = _arguments.optional_text(actor, "actor")
        limits = _spend.check_budget_argument(budget)
        state = lifecycle.new_state(
            instance_id=new_instance_id(),
            feature_id=feature_id,
            workflow=workflow,
            variables=variables,
            meta=meta,
            automation_level=level,
            now=generate_timestamp(),
            actor=actor,
        )
        self._stamp_git(state, 0)
        state.budget = limits
        _spend.after_change(state, state.created_at, actor)
        _spend.WaitNotes(self.state_store, state.instance_id).created(state)
        store = self.state_store
        _otel.created(self._tracing, "start", state, lambda: store.create_state(state.to_dict()))
        return WorkflowStartResult(state.instance_id, state.current_phase, state.created_at)

    def _resolve_schema(
        self,
        workflow_schema: dict[str, Any] | str | os.PathLike[str] | Workflow | None,
        schema_name: str | None,
        schema_version: int | str | None,
    ) -> Workflow:
        if schema_name is not None:
            if workflow_schema is not None:
                raise ValidationError("give workflow_schema or schema_name, not both")
            return self.schemas.find(schema_name, schema_version)
        if isinstance(workflow_schema, (str, os.PathLike)):
            from chatflow.core.registry import load_workflow  # noqa: PLC0415 - see schemas

            return load_workflow(workflow_schema)
        if isinstance(workflow_schema, Workflow):
            return workflow_schema
        return validate_schema(workflow_schema)

    def trigger_next_step(
        self,
        instance_id: str,
        trigger_data: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
        actor: str | None = None,
    ) -> WorkflowInstanceState:
        """Complete the current phase and route to the next; return the new state.

        The open history entry is closed with ``trigger_data`` as its snapshot; ``meta``
        is merged into the instance's meta. The next phase follows the schema's routing
        rule (``chatflow.domain.transitions``); completing the last phase completes the
        instance. Entering a phase that needs approval pauses the instance instead.
        A paused or finished instance raises ``InvalidTransitionError`` and is unchanged;
        if the current phase's ``exit_requires`` do not all hold,
        ``GateNotSatisfiedError`` lists every missing item and nothing changes.
        With ``dry_run=True`` nothing is written: the returned state is what the step
        would produce, or, for a step a gate refuses, the unchanged state with a
        ``gate_blocked`` event at the end of ``events`` listing what is missing.
        ``actor`` is who takes the step (default: the one ``meta``, else the instance's
        meta, names).
        """
        validate_id(instance_id, "instance_id")
        data = {} if trigger_data is None else check_json_object(trigger_data, "trigger_data")
        extra_meta = {} if meta is None else check_json_object(meta, "meta")
        who = _arguments.optional_text(actor, "actor")

        usage = _usage.from_trigger(data)

        def advance(state: WorkflowInstanceState) -> None:
            now = generate_timestamp()
            if usage is not None:  # charged to the phase the step leaves, before it does
                lifecycle.require_step(state)
                _spend.charge(state, usage, None, who or lifecycle.actor_of(state.meta), now)
            lifecycle.advance(state, data, extra_meta, now, who)

        if dry_run:
            return self._simulate(instance_id, advance)
        return self._update(instance_id, advance, "trigger_next")

    def _simulate(self, instance_id: str, change: Change) -> WorkflowInstanceState:
        """Apply ``change`` to a private copy of the state, writing nothing (a gate's
        refusal is reported in the copy: see ``_stored.simulate``)."""
        return _stored.simulate(self._require_state(instance_id), _checked(change))

    def _update(self, instance_id: str, change: Change, action: str) -> WorkflowInstanceState:
        """Apply ``change`` to the instance as one appended event, as the ``action``
        span when tracing (``chatflow.core._otel``): every action on an existing
        instance passes here."""
        return _otel.traced(self._tracing, action, instance_id, change, self._commit(instance_id))

    def _commit(self, instance_id: str) -> Callable[[Change], tuple[WorkflowInstanceState, int]]:
        """What applies a change to the instance as one appended event, returning the
        state and the event's seq (git-stamped: see ``chatflow.core.gitlinks``; a wait
        it starts is indexed before, one it ends after, the commit:
        ``chatflow.storage.waits``)."""

        def commit(change: Change) -> tuple[WorkflowInstanceState, int]:
            change = _checked(change)
            if self._git:
                change = gitlinks.recording(change, gitlinks.once(self.git_snapshot))
            waits = _spend.WaitNotes(self.state_store, instance_id)
            state, seq = _stored.commit(self.state_store, instance_id, waits.around(change))
            waits.committed()
            return state, seq

        return commit

    def _stamp_git(self, state: WorkflowInstanceState, before: int) -> None:
        """Stamp the visits a new instance opened after its first ``before`` entries."""
        if self._git:
            gitlinks.stamp(state, before, False, self.git_snapshot)

    def git_snapshot(self) -> dict[str, Any] | None:
        """Where the work tree stands: ``{"commit", "branch", "dirty"}``, or ``None`` when
        the current folder and the store's folder are in no git repository (or git is
        not installed, fails or times out). The work tree is the repository of the
        current folder, else the one of the store's folder."""
        from chatflow import _git  # noqa: PLC0415 - subprocess is loaded only to step

        return _git.snapshot(gitlinks.work_tree_folders(self.state_store))

    def verify_git(self, instance_id: str) -> list[dict[str, Any]]:
        """The commits the instance recorded that the work tree's repository does not
        have (rewritten history, another repository): ``{"history_index", "phase",
        "when" ("start"/"end"), "commit", "problem"}`` each; empty if all are there.
        With commits recorded but no repository or git to ask, every one is listed."""
        state = self._require_state(validate_id(instance_id, "instance_id"))
        rows = gitlinks.recorded(state)
        return gitlinks.unconfirmed(rows, gitlinks.work_tree_folders(self.state_store))

    # -- time travel ---------------------------------------------------------------------

    def fork(
        self,
        instance_id: str,
        at: int,
        *,
        meta: dict[str, Any] | None = None,
        actor: str | None = None,
        force: bool = False,
    ) -> str:
        """Start a new instance of the same feature as this one was on entering
        ``history[at]`` (time travel); return its id. The fork records its ``parent``
        and the parent gets a ``forked`` event, both by ``actor`` (default: the one
        ``meta``, else the parent's meta, names). A phase that requires approval waits
        for it in the fork, unless ``force=True`` (logged as ``approval_overridden``)."""
        validate_id(instance_id, "instance_id")
        if not isinstance(at, int) or isinstance(at, bool):
            raise ValidationError(f"at must be a history index (int), not {at!r}", field="at")
        extra_meta = check_json_object({} if meta is None else meta, "meta")
        actor = _arguments.optional_text(actor, "actor")
        force = _arguments.flag(force, "force")
        parent = self._require_state(instance_id)
        child = lifecycle.fork_state(
            parent,
            at,
            instance_id=new_instance_id(),
            meta=extra_meta,
            now=generate_timestamp(),
            actor=actor,
            force=force,
        )
        _spend.inherit(parent, child)
        _spend.WaitNotes(self.state_store, child.instance_id).created(child)
        artifacts = self._inherited_artifacts(parent, child)
        self._stamp_git(child, len(child.history) - 1)
        index = child.parent["history_index"] if child.parent else at
        who = actor or lifecycle.actor_of(extra_meta)

        def note(state: WorkflowInstanceState) -> None:
            lifecycle.note_fork(state, child.instance_id, index, who, generate_timestamp())

        def create() -> None:  # the fork and the parent's note: one action, one span
            self.state_store.create_state(child.to_dict(), artifacts=artifacts)
            self._commit(instance_id)(note)

        origin = {"chatflow.fork.parent_instance_id": instance_id, "chatflow.fork.at": index}
        _otel.created(self._tracing, "fork", child, create, origin, origin=instance_id)
        return child.instance_id

    def _inherited_artifacts(
        self, parent: WorkflowInstanceState, child: WorkflowInstanceState
    ) -> list[tuple[str, TaskTexts]]:
        """Every stored version of each task the fork's inherited history names, read
        back verified from the parent: the fork keeps its own copies (same version
        numbers), so its ``show``, ``artifacts`` and ``verify`` need no parent."""
        store, parent_id = self.state_store, parent.instance_id
        stored = set(store.list_task_phases(parent_id))
        copies = []
        for key in dict.fromkeys(entry.task for entry in child.history):
            version = 1
            while (
                key in stored
                and (found := store.load_task_artifacts(parent_id, key, version)) is not None
            ):
                _artifacts.checked(found, parent_id, key)
                copies.append((key, TaskTexts(found["record"], found["prompt"], found["response"])))
                version += 1
        return copies

    # -- live upgrade ------------------------------------------------------------------

    def upgrade_instance(
        self,
        instance_id: str,
        *,
        to_version: int | str,
        phase_map: dict[str, str] | None = None,
        dry_run: bool = False,
        actor: str | None = None,
        force: bool = False,
    ) -> WorkflowInstanceState:
        """Move a created, running or paused instance to version ``to_version`` of its
        workflow (found by name like ``start_workflow_instance(schema_name=...)``).

        ``phase_map`` renames phases ``{old: new}``; unmapped phases keep their name.
        Refusals raise ``UpgradeRefusedError`` listing every reason
        (``chatflow.core.upgrade``) and change nothing; so does ``dry_run=True``, which
        returns the state the upgrade would produce. A ``schema_upgraded`` event records
        from, to, the map and who; every later step follows the new definition. If the
        current phase requires approval in the new version and its visit had none, the
        instance waits for it, unless ``force=True`` (logged as ``approval_overridden``).
        """
        from chatflow.core import upgrade  # noqa: PLC0415 - only upgrades need it

        validate_id(instance_id, "instance_id")
        to_version = _arguments.version(to_version)
        mapping = _arguments.phase_map(phase_map)
        actor = _arguments.optional_text(actor, "actor")
        force = _arguments.flag(force, "force")
        target = self.schemas.find(self._require_state(instance_id).workflow_name, to_version)

        def change(state: WorkflowInstanceState) -> None:
            who = actor or lifecycle.actor_of(state.meta)
            upgrade.apply(state, target, mapping, who, generate_timestamp(), force=force)

        if dry_run:
            return self._simulate(instance_id, change)
        return self._update(instance_id, change, "upgrade")

    def upgrade_instances(
        self,
        *,
        to_version: int | str,
        feature_id: str | None = None,
        workflow_name: str | None = None,
        phase_map: dict[str, str] | None = None,
        dry_run: bool = False,
        actor: str | None = None,
        force: bool = False,
    ) -> list[UpgradeOutcome]:
        """Upgrade every active instance (of ``feature_id`` and/or ``workflow_name``, if
        given); one outcome per instance, refusals included. ``dry_run`` touches none."""
        from chatflow.core import upgrade  # noqa: PLC0415 - only upgrades need it

        return upgrade.upgrade_many(
            self,
            to_version=_arguments.version(to_version),
            feature_id=feature_id,
            workflow_name=workflow_name,
            phase_map=_arguments.phase_map(phase_map),
            dry_run=dry_run,
            actor=actor,
            force=_arguments.flag(force, "force"),
        )

    # -- task artifacts ----------------------------------------------------------------

    def record_task_artifacts(
        self,
        instance_id: str,
        prompt: str,
        response: str,
        *,
        phase_name: str | None = None,
        status: str = "completed",
        started_at: float | None = None,
        ended_at: float | None = None,
        actor: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> TaskExecutionRecord:
        """Store the prompt sent to the AI and its response for a phase (default: current).

        Writes the task record with SHA-256 checksums of both texts and links it to the
        phase's latest history entry (its ``task`` field names the record). The first
        visit of a phase is keyed by the phase name; later visits (loops, retries) by
        ``<phase>--<visit>``, so every visit keeps its own prompt and response. A
        ``task_recorded`` event says who recorded it: ``actor`` (default: the one the
        instance's meta names). ``usage`` (``input_tokens``, ``output_tokens``,
        ``cost_usd``, ``model``, ``duration_s``) is recorded with it, as by
        ``record_usage``.
        """
        validate_id(instance_id, "instance_id")
        spent = None if usage is None else _usage.check(usage)
        check_text(prompt, "prompt")
        check_text(response, "response")
        actor = _arguments.optional_text(actor, "actor")
        state = self._require_state(instance_id)
        index, key, record = _artifacts.new_record(
            state,
            phase_name,
            prompt,
            response,
            status=status,
            started_at=started_at,
            ended_at=ended_at,
        )
        self.state_store.save_task_artifacts(
            state.feature_id, instance_id, key, record.to_dict(), prompt, response
        )

        def link(current: WorkflowInstanceState) -> None:
            # History only grows, so the visit found above keeps its index.
            now = generate_timestamp()
            lifecycle.note_recorded(current, index, key, actor, now)
            if spent is not None:
                who = actor or lifecycle.actor_of(current.meta)
                _spend.charge(current, spent, current.history[index].phase, who, now)

        self._update(instance_id, link, "record_task")
        return record

    def record_files(
        self,
        instance_id: str,
        paths: Sequence[str | os.PathLike[str]],
        *,
        root: str | os.PathLike[str] | None = None,
        actor: str | None = None,
    ) -> list[dict[str, Any]]:
        """Record that ``paths`` were written during the instance's current visit, each
        with the SHA-256 and size of the file now (``sha256: None``: no such file), as
        one ``files_touched`` event; return the entries. Paths inside ``root`` (a work
        tree) are kept relative to it. What ``chatflow hook claude PostToolUse`` calls.
        ``InvalidTransitionError`` for a finished instance: it has no visit open.
        """
        from chatflow.core import _files  # noqa: PLC0415 - hashing files is rare

        validate_id(instance_id, "instance_id")
        who = _arguments.optional_text(actor, "actor")
        _files.check_open(self._require_state(instance_id))
        files = _files.file_entries(paths, root)
        if not files:
            return []

        def note(state: WorkflowInstanceState) -> None:
            _files.check_open(state)  # (again, under the lock: it may have finished since)
            _files.note_files(state, files, who, generate_timestamp())

        self._update(instance_id, note, "record_files")
        return files

    def get_task_artifacts(
        self, instance_id: str, phase_name: str, *, version: int | None = None
    ) -> TaskArtifacts | None:
        """A phase's record, prompt and response, checksums verified; ``None`` if never recorded.

        ``phase_name`` may also be the task key of a later visit (``review--2``), as
        named by the history entry's ``task`` field. Recording a phase again adds a
        version; this returns the latest, or ``version`` (1 is the first).
        """
        validate_id(instance_id, "instance_id")
        validate_id(phase_name, "phase_name")
        _artifacts.check_version(version)
        stored = self.state_store.load_task_artifacts(instance_id, phase_name, version)
        return None if stored is None else _artifacts.checked(stored, instance_id, phase_name)

    # -- integrity and retention ------------------------------------------------------

    def verify(self, instance_id: str) -> Problem | None:
        """Check the instance's hash chain, every artifact against its recorded SHA-256,
        its head against its log, and that every task record its history names is
        stored; return the first problem, or ``None`` if clean."""
        problem = self.state_store.verify(validate_id(instance_id, "instance_id"))
        if problem is not None:
            return problem
        stored = set(self.state_store.list_task_phases(instance_id))
        return _artifacts.missing_record(self._require_state(instance_id), stored)

    def feature_digest(self, feature_id: str) -> str:
        """One SHA-256 over the last event hash of each of the feature's instances.

        Keep it (in git, say): a later ``verify`` cannot notice a rewrite of a whole
        chain together with its head, but the digest of that feature changes.
        """
        from chatflow.storage.codec import sha256_hex  # noqa: PLC0415

        validate_id(feature_id, "feature_id")
        store = self.state_store
        lines = [
            f"{iid} {store.instance_digest(iid)}\n"
            for iid in store.list_instances_by_feature(feature_id)
        ]
        return sha256_hex("".join(lines))

    def compact(
        self,
        instance_id: str,
        keep_last: int = 100,
        *,
        archive: str | os.PathLike[str] | None = None,
    ) -> int:
        """Fold all but the last ``keep_last`` events of the log into one checkpoint event
        (which records the hash of what it replaced); return how many were folded.

        The state, ``verify`` and the chain's digest are unchanged. With ``archive``, the
        folded events are appended to that file as JSON lines (and synced) before the
        log changes: a compaction that cannot write its archive (a missing folder, a
        full disk) raises ``StorageError`` and folds nothing.
        """
        validate_id(instance_id, "instance_id")
        if archive is None:
            return len(self.state_store.compact(instance_id, keep_last))
        writer = functools.partial(_write_archive, archive)
        return len(self.state_store.compact(instance_id, keep_last, writer))

    # -- queries ---------------------------------------------------------------------

    def events_since(
        self,
        cursor: str | None = None,
        *,
        feature: str | None = None,
        instance: str | None = None,
        limit: int | None = None,
    ) -> FeedPage:
        """Every event committed after ``cursor`` (``None``: from the start), in commit
        order, across processes: a ``FeedPage`` of ``FeedEvent`` (instance id, feature
        id, seq, the stored event) and the ``cursor`` to pass next time. ``feature`` or
        ``instance`` keep only theirs; ``limit`` caps the page. Never blocks a writer;
        ``FeedCursorError`` for a cursor this store did not give (see
        ``chatflow.storage.feed`` for compaction and copies)."""
        return self.state_store.events_since(
            cursor, feature=feature, instance=instance, limit=limit
        )

    def feed_end(self) -> str:
        """The feed's cursor now: ``events_since`` from it returns only later events."""
        return self.state_store.feed_end()

    def get_workflow_instance_status(self, instance_id: str) -> WorkflowInstanceState | None:
        """The instance's current state, or ``None`` if no instance has that id."""
        validate_id(instance_id, "instance_id")
        return _stored.load(self.state_store, instance_id)

    def get_workflow_history(self, instance_id: str) -> list[WorkflowEvent]:
        """Every event of the instance, oldest first: the audit log of what happened,
        when, who did it and with what data."""
        return timeline(self._require_state(instance_id))

    def get_status_info(self, instance_id: str) -> dict[str, Any]:
        """Where the instance is: status, current and next phase, ``progress`` (0-1),
        the path taken and forecast, and each phase's status (``chatflow.domain.status``)."""
        return status_info(self._require_state(instance_id))

    def _require_state(self, instance_id: str) -> WorkflowInstanceState:
        state = self.get_workflow_instance_status(instance_id)
        if state is None:
            raise not_found(instance_id)
        return state

    def list_feature_instances(self, feature_id: str) -> list[str]:
        """Ids of the feature's instances, oldest first."""
        return self.state_store.list_instances_by_feature(validate_id(feature_id, "feature_id"))

    def list_features(self) -> list[str]:
        """Every feature with at least one instance, sorted."""
        return self.state_store.list_features()

    def list_instances(
        self, feature_id: str | None = None, status: str | None = None
    ) -> list[InstanceSummary]:
        """Summaries of instances, optionally of one feature and/or in one status.

        Answered by the store's index or query, without loading each instance. Order:
        features sorted by id, each feature's instances oldest first.
        """
        if feature_id is not None:
            validate_id(feature_id, "feature_id")
        return self.state_store.list_instances(feature_id=feature_id, status=status)

    def get_feature_status(self, feature_id: str, schema_name: str = "default") -> dict[str, Any]:
        """Roll-up of a feature's instances.

        ``latest_instance_id`` is the most recently started instance;
        ``active_instance_id`` the newest one not finished (created, running or paused).
        ``phases`` maps each phase of the active instance (else the latest) to its status.
        ``status`` is ``not_started`` with no instances, ``in_progress`` while any
        instance is active, else ``completed`` if any completed, else ``failed`` if any
        failed, else ``cancelled``. If the shown instance cannot be read, ``phases`` is
        empty and ``problem`` says why (the counts still cover every instance).
        ``schema_name`` is accepted for compatibility with the seed and ignored.
        """
        validate_id(feature_id, "feature_id")
        # One aggregate query in the SQL stores: a row per status, not per instance
        # (bench/bench_stores.py: 10,000 instances in a few ms).
        counts = self.state_store.feature_status_counts(feature_id)
        return self._with_phases(feature_rollup(feature_id, counts))

    def list_feature_rollups(self) -> list[dict[str, Any]]:
        """Every feature's roll-up (as ``get_feature_status``), sorted by feature id.

        The counts come from one pass over the store (``list_feature_counts``), not a
        query per feature; ``phases`` still loads each feature's shown instance.
        """
        lost = self.unreadable_by_feature()
        return [
            _naming(
                self._with_phases(feature_rollup(found.feature_id, found.counts)),
                lost.get(found.feature_id),
            )
            for found in self.state_store.list_feature_counts()
        ]

    def unreadable_by_feature(self) -> dict[str, list[str]]:
        """Instances whose head is lost (``store.lost_heads``), by feature: counted in
        their feature's roll-up still, and named there (``unreadable_instances``). Costs
        nothing more than the store's tripwire while no head is lost."""
        store = self.state_store
        if not store.lost_heads():
            return {}
        found: dict[str, list[str]] = {}
        for summary in store.list_instances(status=UNREADABLE):
            found.setdefault(summary.feature_id, []).append(summary.instance_id)
        return found

    def _with_phases(self, rollup: dict[str, Any]) -> dict[str, Any]:
        """``rollup`` with the ``phases`` of its active (else latest) instance."""
        shown = rollup["active_instance_id"] or rollup["latest_instance_id"]
        try:
            state = None if shown is None else self.get_workflow_instance_status(shown)
        except CorruptStateError as error:  # one bad instance must not hide the feature
            state, rollup["problem"] = None, str(error)
        rollup["phases"] = {} if state is None else phase_statuses(state)
        return rollup

    # -- workflow schemas --------------------------------------------------------------

    def register_schema(
        self, schema: dict[str, Any] | str | os.PathLike[str], *, replace: bool = True
    ) -> WorkflowInfo:
        """Validate a schema (a dict or a JSON/YAML file) and make it startable by name.

        Other content already registered under its name and version is replaced (with a
        warning), or with ``replace=False`` refused (``ValidationError``)."""
        return self.schemas.register(schema, replace=replace)

    def get_schema(self, name: str, version: int | str | None = None) -> dict[str, Any]:
        """The workflow schema ``name`` at ``version`` (default: the latest), as JSON data."""
        return self.schemas.find(name, version).to_dict()

    def list_workflows(self) -> list[WorkflowInfo]:
        """Every workflow schema startable by name: registered ones and those in the
        schema folders, sorted by name and version."""
        return self.schemas.available()


def _naming(rollup: dict[str, Any], unreadable: list[str] | None) -> dict[str, Any]:
    """``rollup`` naming the feature's ``unreadable`` instances, if it has any (a key
    only a damaged store's roll-ups carry; ``views.feature_view`` shows it always)."""
    if unreadable:
        rollup["unreadable_instances"] = unreadable
    return rollup


def _checked(change: Change) -> Change:
    """``change``, then the budget and deadline checks every change ends with."""

    def checked(state: WorkflowInstanceState) -> None:
        change(state)
        _spend.after_change(state, generate_timestamp(), lifecycle.actor_of(state.meta))

    return checked


def _with_merge_default(workflow: Workflow, mode: str) -> Workflow:
    """``workflow`` with ``merge_trigger_data`` set to ``mode`` if it declares none."""
    data = workflow.to_dict()
    if "merge_trigger_data" in data:
        return workflow
    return validate_schema({**data, "merge_trigger_data": mode})


def _write_archive(path: str | os.PathLike[str], events: list[dict[str, Any]]) -> None:
    """Append ``events`` to the archive file as JSON lines and sync them to disk."""
    import json  # noqa: PLC0415

    data = "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events)
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        raise StorageError(
            f"cannot write the archive {os.fspath(path)}: {error.strerror or error}; "
            "nothing was folded",
            path=os.fspath(path),
        ) from error
