"""Workflow schemas by name: loaded from JSON or YAML files, registered, listed, looked up.

Where a name is looked up, in order: schemas registered with ``SchemaRegistry.register``,
which are kept in the store (``put_schema``), so every process using that store, the
CLI and other machines on PostgreSQL see them; then each folder given by the user; then
the storage directory's ``schemas/`` folder. Files are ``*.json``, ``*.yaml`` or
``*.yml``; the name and version come from the file's contents. Only when no schema has
that name is the file name tried (``quicktask`` finds ``schemas/quicktask.yaml``
whatever name it declares), as ChatCoder looks its workflows up. Without a version
the latest one wins (``2.10`` is later than ``2.9``).

A folder is rescanned only when its listing or a file's size or mtime changed, so lookups
stay cheap, and an edited file is seen at the next lookup. Running instances are not
affected by edits: each stores the exact schema it started with.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatflow._logger import logger
from chatflow._text import counted
from chatflow._validation import parse_json
from chatflow.domain.definition import Workflow
from chatflow.domain.schema import MAX_SCHEMA_BYTES, validate_schema, version_key
from chatflow.errors import ChatFlowError, SchemaError, SchemaNotFoundError, ValidationError
from chatflow.storage.base import IWorkflowStateStore

SCHEMA_SUFFIXES = (".json", ".yaml", ".yml")


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a workflow schema from a JSON or YAML file; return its JSON data.

    YAML needs PyYAML (``pip install 'chatflow-engine[yaml]'``); it is imported only
    when a YAML file is read, so JSON users need nothing beyond the standard library.
    """
    return load_workflow(path).to_dict()


def load_workflow(path: str | os.PathLike[str]) -> Workflow:
    """Read and validate a workflow schema file into its typed ``Workflow``."""
    if not os.fspath(path).strip():
        raise SchemaError("workflow schema path is empty", problems=["path: empty"])
    file = Path(path)
    try:
        with file.open("rb") as stream:
            raw = stream.read(MAX_SCHEMA_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SchemaError(
            f"cannot read workflow schema {file}: {error}", problems=[f"{file}: {error}"]
        ) from error
    if len(raw) > MAX_SCHEMA_BYTES:
        message = f"{file}: larger than {MAX_SCHEMA_BYTES:,} bytes, too large for a workflow schema"
        raise SchemaError(message, problems=[message], path=str(file))
    data = _parse_yaml(text, file) if file.suffix in (".yaml", ".yml") else _parse_json(text, file)
    try:
        return validate_schema(data)
    except SchemaError as error:
        problems = [f"{file}: {problem}" for problem in error.context.get("problems", [])]
        raise SchemaError(f"{file}: {error}", problems=problems, path=str(file)) from None


def _parse_json(text: str, file: Path) -> Any:
    try:
        return parse_json(text, "the workflow schema")
    except json.JSONDecodeError as error:
        where = f"{file}:{error.lineno}:{error.colno}"
        raise SchemaError(
            f"{where}: not valid JSON: {error.msg}", problems=[f"{where}: {error.msg}"]
        ) from None
    except ValidationError:  # nested too deeply
        raise _unusable(file, "nested too deeply to be a workflow schema") from None
    except ValueError as error:  # an int of over 4,300 digits
        raise _unusable(file, f"holds a value that cannot be read: {error}") from None


def _parse_yaml(text: str, file: Path) -> Any:
    try:
        import yaml  # noqa: PLC0415 - optional dependency, imported only for YAML files
    except ImportError:
        raise ChatFlowError(
            f"reading {file} needs PyYAML: pip install 'chatflow-engine[yaml]'"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SchemaError(
            f"{file}: not valid YAML: {error}", problems=[f"{file}: {error}"]
        ) from None
    except RecursionError:
        # PyYAML recurses per nesting level (tests/test_gates.py: no RecursionError)
        raise _unusable(file, "nested too deeply to be a workflow schema") from None
    except ValueError as error:  # an int of over 4,300 digits, a date such as 2024-13-45
        raise _unusable(file, f"holds a value that cannot be read: {error}") from None


def _unusable(file: Path, why: object) -> SchemaError:
    message = f"{file}: {why}"
    return SchemaError(message, problems=[message], path=str(file))


@dataclass(frozen=True)
class WorkflowInfo:
    """One available workflow schema and where it comes from."""

    name: str
    version: int | str
    source: str
    hash: str
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "hash": self.hash,
            "title": self.title,
        }


@dataclass(frozen=True)
class _Entry:
    info: WorkflowInfo
    workflow: Workflow


class SchemaRegistry:
    """Finds workflow schemas by name and version; safe to share between threads.

    ``stored`` gives the store registered schemas are read from (``None`` while it does
    not exist), ``store`` the one ``register`` writes to. ``folders`` is called at each
    lookup, so the engine can point it at a storage directory that is chosen (or changed
    by ``chatflow.init``) later.
    """

    def __init__(
        self,
        folders: Callable[[], list[Path]],
        *,
        stored: Callable[[], IWorkflowStateStore | None],
        store: Callable[[], IWorkflowStateStore],
    ) -> None:
        self._folders = folders
        self._stored_in = stored  # for lookups: None while the store does not exist
        self._store = store  # for registering: created if need be
        self._lock = threading.Lock()
        self._stored: dict[str, Workflow] = {}  # validated stored schemas, by content hash
        self._scans: dict[Path, tuple[object, list[_Entry], list[str]]] = {}

    def register(
        self, schema: dict[str, Any] | str | os.PathLike[str], *, replace: bool = True
    ) -> WorkflowInfo:
        """Validate ``schema`` (a dict or a file path), keep it in the store and make it
        findable by name. Registering it again changes nothing. Another schema with the
        same name and version replaces the stored one, with a warning naming both
        content hashes; with ``replace=False`` (what the ``chatflow`` command uses) it is
        refused instead: ``ValidationError`` naming both hashes."""
        if isinstance(schema, (str, os.PathLike)):
            entry = _entry(load_workflow(schema), str(Path(schema)))
        elif isinstance(schema, dict):
            entry = _entry(validate_schema(schema), "registered")
        else:
            raise SchemaError(
                f"workflow schema must be a dict or a file path, not {type(schema).__name__}",
                problems=[f"schema: expected a dict or a path, got {type(schema).__name__}"],
            )
        workflow = entry.workflow
        store = self._store()
        if not _registered(store, workflow, replace=replace):
            store.put_schema(
                workflow.name, workflow.version, workflow.content_hash, workflow.to_dict()
            )
        return entry.info

    def find(self, name: str, version: int | str | None = None) -> Workflow:
        """The workflow called ``name`` (at ``version``, or the latest)."""
        if version is not None and version_key(version) is None:
            raise ValidationError(f"invalid schema version {version!r}", field="schema_version")
        entries, broken = self._entries()
        matches = [entry for entry in entries if entry.info.name == name]
        if not matches:  # ChatCoder names a schema by its file: schemas/quicktask.yaml
            matches = [entry for entry in entries if _file_stem(entry.info) == name]
        if version is not None:
            wanted = version_key(version)
            matches = [entry for entry in matches if version_key(entry.info.version) == wanted]
        if not matches:
            raise _not_found(name, version, broken, self._folders())
        best = max(matches, key=lambda entry: version_key(entry.info.version) or ())
        return best.workflow

    def available(self) -> list[WorkflowInfo]:
        """Every findable schema (first source wins per name and version), sorted."""
        entries, _ = self._entries()
        return sorted(
            (entry.info for entry in entries),
            key=lambda info: (info.name, version_key(info.version) or ()),
        )

    def problems(self) -> list[str]:
        """Files in the schema folders that could not be loaded, with the reason."""
        return self._entries()[1]

    def _entries(self) -> tuple[list[_Entry], list[str]]:
        """Stored entries, then each folder's; the first per (name, version) wins."""
        found, broken = self._stored_entries()
        for folder in self._folders():
            entries, problems = self._scan(folder)
            found += entries
            broken += problems
        unique: dict[tuple[str, tuple[int, ...]], _Entry] = {}
        for entry in found:
            unique.setdefault(_key(entry.info), entry)
        return list(unique.values()), broken

    def _stored_entries(self) -> tuple[list[_Entry], list[str]]:
        """The store's registered schemas, each validated once per process."""
        entries: list[_Entry] = []
        broken: list[str] = []
        store = self._stored_in()
        for row in [] if store is None else store.list_schemas():
            with self._lock:
                workflow = self._stored.get(row.content_hash)
            if workflow is None:
                where = f"stored schema {row.name!r} version {row.version!r}"
                try:
                    workflow = validate_schema(row.schema)
                except SchemaError as error:
                    broken.append(f"{where}: {error}")
                    continue
                if workflow.content_hash != row.content_hash:
                    broken.append(f"{where}: its content does not match its recorded hash")
                    continue
                with self._lock:
                    self._stored[row.content_hash] = workflow
            entries.append(_entry(workflow, "registered"))
        return entries, broken

    def _scan(self, folder: Path) -> tuple[list[_Entry], list[str]]:
        try:
            files = sorted(p for p in folder.iterdir() if p.suffix in SCHEMA_SUFFIXES)
            signature = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        except FileNotFoundError:
            return [], []
        except OSError as error:
            logger(__name__).warning(
                "cannot read schema folder %s: %s", folder, error.strerror or error
            )
            return [], [f"{folder}: {error.strerror or error}"]
        with self._lock:
            cached = self._scans.get(folder)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]
        entries: list[_Entry] = []
        problems: list[str] = []
        for file in files:
            try:
                entries.append(_entry(load_workflow(file), str(file)))
            except ChatFlowError as error:
                logger(__name__).warning("skipped workflow schema file: %s", error)
                problems.append(str(error))
        with self._lock:
            self._scans[folder] = (signature, entries, problems)
        return entries, problems


def _registered(store: IWorkflowStateStore, workflow: Workflow, *, replace: bool) -> bool:
    """Whether ``store`` keeps ``workflow`` already. Other content under its name and
    version is refused (``ValidationError``) unless ``replace``, which warns."""
    version = version_key(workflow.version)
    for row in store.list_schemas():
        if row.name != workflow.name or version_key(row.version) != version:
            continue
        if row.content_hash == workflow.content_hash:
            return True
        what = f"workflow {workflow.name!r} version {workflow.version!r}"
        hashes = f"sha256 {row.content_hash[:16]}, this one {workflow.content_hash[:16]}"
        if replace:
            logger(__name__).warning("%s replaces its registered content (%s)", what, hashes)
            return False
        raise ValidationError(
            f"{what} is already registered with other content ({hashes}): "
            "give the changed workflow a new version",
            field="schema",
            name=workflow.name,
            version=workflow.version,
            registered_hash=row.content_hash,
            content_hash=workflow.content_hash,
        )
    return False


def _entry(workflow: Workflow, source: str) -> _Entry:
    info = WorkflowInfo(
        name=workflow.name,
        version=workflow.version,
        source=source,
        hash=workflow.content_hash,
        title=workflow.title,
    )
    return _Entry(info, workflow)


def _file_stem(info: WorkflowInfo) -> str | None:
    """The file name without suffix of a schema loaded from a folder, else ``None``."""
    source = Path(info.source)
    return source.stem if source.suffix in SCHEMA_SUFFIXES else None


def _key(info: WorkflowInfo) -> tuple[str, tuple[int, ...]]:
    return info.name, version_key(info.version) or ()


def _not_found(
    name: str, version: int | str | None, broken: list[str], folders: list[Path]
) -> SchemaNotFoundError:
    # "Schema <name> not found" is the wording ChatCoder's engine used and its tests match.
    what = name if version is None else f"{name} version {version}"
    where = ", ".join(map(str, folders)) or "none"
    message = f"Schema {what} not found: not registered, nor in the schema folders ({where})"
    if broken:
        files = counted(len(broken), "schema file")
        message += f" ({files} could not be loaded: {'; '.join(broken)})"
    return SchemaNotFoundError(message, name=name, version=version)
