"""Pick a store from a folder path or a URL, importing its driver only when used.

``open_store(".chatflow")`` or ``file:///abs/path`` -> ``FileStateStore``;
``memory://`` -> ``MemoryStore``; ``sqlite:///path/state.db`` -> ``SQLiteStore``;
``postgresql://...`` (or ``postgres://``) -> ``PostgresStore``.
"""

from __future__ import annotations

import os

from chatflow.errors import ValidationError
from chatflow.storage.base import IWorkflowStateStore

_URL_SCHEMES = ("file", "memory", "sqlite", "postgresql", "postgres")


def is_store_url(target: str | os.PathLike[str]) -> bool:
    """True if ``target`` names a store by URL rather than by folder path."""
    return (
        isinstance(target, str)
        and target.split("://", 1)[0].lower() in _URL_SCHEMES
        and ("://" in target)
    )


def open_store(target: str | os.PathLike[str], *, durable: bool = True) -> IWorkflowStateStore:
    """The store ``target`` names: a folder path, or a URL of one of the schemes above."""
    if not is_store_url(target):
        from chatflow.storage.file_state_store import FileStateStore  # noqa: PLC0415

        return FileStateStore(target, durable=durable)
    assert isinstance(target, str)
    scheme = target.split("://", 1)[0].lower()
    if scheme == "memory":
        from chatflow.storage.memory import MemoryStore  # noqa: PLC0415

        return MemoryStore()
    if scheme == "file":
        from urllib.parse import unquote, urlsplit  # noqa: PLC0415

        from chatflow.storage.file_state_store import FileStateStore  # noqa: PLC0415

        return FileStateStore(unquote(urlsplit(target).path), durable=durable)
    if scheme == "sqlite":
        from urllib.parse import unquote  # noqa: PLC0415

        from chatflow.storage.sqlite import SQLiteStore  # noqa: PLC0415

        path = target[len("sqlite://") :]
        if not path.startswith("/") or path == "/":
            raise ValidationError(
                f"SQLite URL {target!r} needs a path: sqlite:///relative.db or sqlite:////abs.db"
            )
        return SQLiteStore(unquote(path[1:]), durable=durable)
    from chatflow.storage.postgres import PostgresStore  # noqa: PLC0415

    return PostgresStore(target, durable=durable)
