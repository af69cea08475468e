"""Which instance a working tree works on: ``chatflow use``, read by the hooks, MCP's
``status`` without arguments and ``chatflow show`` without an id.

A binding is kept in the store (``put_value``), keyed by the work tree's root: the
folder holding ``.git`` (what ``git rev-parse --show-toplevel`` names, found without
running git, as a hook runs on every tool call), else the folder itself. So every
process using the store, in any folder of the tree, sees the same binding, and a
store shared by two work trees keeps one binding per tree.

It names an instance, or a feature: a feature's binding follows its newest active
instance (else its newest), so starting the feature's next instance needs no new
``use``. Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow._validation import validate_id

if TYPE_CHECKING:
    from chatflow.core.engine import WorkflowEngine
    from chatflow.storage.base import IWorkflowStateStore

PREFIX = "binding:"


def work_tree_root(folder: str | os.PathLike[str] | None = None) -> Path:
    """The root of the git work tree holding ``folder`` (default: the current one), else
    ``folder`` itself; resolved, so every spelling of one tree gives one key."""
    start = Path(folder if folder is not None else os.getcwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():  # a folder, or a worktree's or submodule's file
            return candidate
    return start


def key_of(root: Path) -> str:
    """The store value's key of a work tree's binding."""
    return PREFIX + str(root)


def read(store: IWorkflowStateStore, root: Path) -> dict[str, Any] | None:
    """The binding of the tree at ``root`` (``instance_id`` or ``feature_id``), if any."""
    found = store.get_value(key_of(root))
    return found if isinstance(found, dict) and found else None


def bind(
    store: IWorkflowStateStore,
    root: Path,
    *,
    instance_id: str | None = None,
    feature_id: str | None = None,
) -> dict[str, Any]:
    """Bind the tree at ``root`` to an instance or a feature; return the binding."""
    if (instance_id is None) == (feature_id is None):
        from chatflow.errors import ValidationError  # noqa: PLC0415

        raise ValidationError("bind to an instance or to a feature, not both or neither")
    binding = (
        {"instance_id": validate_id(instance_id, "instance_id")}
        if instance_id is not None
        else {"feature_id": validate_id(feature_id, "feature_id")}
    )
    store.put_value(key_of(root), binding)
    return binding


def clear(store: IWorkflowStateStore, root: Path) -> bool:
    """Forget the tree's binding; whether there was one."""
    had = read(store, root) is not None
    if had:
        store.put_value(key_of(root), None)
    return had


def resolve(engine: WorkflowEngine, binding: dict[str, Any]) -> str | None:
    """The instance a binding names now: its instance, or its feature's newest active
    instance (else its newest); ``None`` if the feature has none."""
    instance_id = binding.get("instance_id")
    if isinstance(instance_id, str):
        return instance_id
    feature_id = binding.get("feature_id")
    if not isinstance(feature_id, str):
        return None
    store = engine.state_store
    active = store.get_current_task_id_for_feature(feature_id)
    if active is not None:
        return active
    instances = store.list_instances_by_feature(feature_id)
    return instances[-1] if instances else None


def bound_instance(
    engine: WorkflowEngine, folder: str | os.PathLike[str] | None = None
) -> str | None:
    """The instance the work tree holding ``folder`` (default: the current one) is bound
    to, or ``None`` if it is bound to none."""
    binding = read(engine.state_store, work_tree_root(folder))
    return None if binding is None else resolve(engine, binding)


def describe(binding: dict[str, Any]) -> str:
    """A binding in words: ``instance wfi_…`` or ``feature feat_…``."""
    if "instance_id" in binding:
        return f"instance {binding['instance_id']}"
    return f"feature {binding.get('feature_id')} (its active instance)"
