"""Pick a store from a folder path or a URL, importing its driver only when used.

``open_store(".chatflow")`` or ``file:///abs/path`` -> ``FileStateStore``;
``memory://`` -> ``MemoryStore``; ``sqlite:///path/state.db`` -> ``SQLiteStore``;
``postgresql://...`` (or ``postgres://``) -> ``PostgresStore``. Other schemes can be
added with ``register_store_scheme``; an unknown scheme is an error, never a folder
named after the URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from chatflow.errors import StoreNotFoundError, StoreURLError, ValidationError
from chatflow.storage.base import IWorkflowStateStore

StoreOpener = Callable[[str, bool], IWorkflowStateStore]
"""Builds a store from its URL and the ``durable`` flag."""


def _open_memory(url: str, durable: bool) -> IWorkflowStateStore:
    from chatflow.storage.memory import MemoryStore  # noqa: PLC0415

    return MemoryStore()


def _open_file(url: str, durable: bool) -> IWorkflowStateStore:
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415

    from chatflow.storage.file_state_store import FileStateStore  # noqa: PLC0415

    return FileStateStore(unquote(urlsplit(url).path), durable=durable)


def _open_sqlite(url: str, durable: bool) -> IWorkflowStateStore:
    from chatflow.storage.sqlite import SQLiteStore  # noqa: PLC0415

    return SQLiteStore(_sqlite_path(url), durable=durable)


def _sqlite_path(url: str) -> str:
    """The database file a ``sqlite:///relative.db`` or ``sqlite:////abs.db`` URL names."""
    from urllib.parse import unquote  # noqa: PLC0415

    path = url.split("://", 1)[1]
    if not path.startswith("/") or path == "/":
        raise StoreURLError(
            f"SQLite URL {url!r} needs a path: sqlite:///relative.db or sqlite:////abs.db"
        )
    return unquote(path[1:])


def _open_postgres(url: str, durable: bool) -> IWorkflowStateStore:
    from chatflow.storage.postgres import PostgresStore  # noqa: PLC0415

    return PostgresStore(url, durable=durable)


_OPENERS: dict[str, StoreOpener] = {
    "file": _open_file,
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
}


def register_store_scheme(scheme: str, opener: StoreOpener) -> None:
    """Make ``open_store`` (and ``chatflow.init``, ``--dir``) open ``scheme://...`` URLs
    with ``opener(url, durable)``: how a third-party store plugs in."""
    if not _is_scheme(scheme):
        raise ValidationError(f"invalid URL scheme {scheme!r}: use letters, digits, '+-.'")
    _OPENERS[scheme.lower()] = opener


def url_scheme(target: str | os.PathLike[str]) -> str | None:
    """The lower-cased scheme if ``target`` is written as a URL (``x://...``), else None."""
    if not isinstance(target, str) or "://" not in target:
        return None
    scheme = target.split("://", 1)[0]
    return scheme.lower() if _is_scheme(scheme) else None


def is_store_url(target: str | os.PathLike[str]) -> bool:
    """True if ``target`` names a store by URL (known scheme or not) rather than a folder."""
    return url_scheme(target) is not None


def require_store(target: str | os.PathLike[str], what: str = "store") -> None:
    """Raise ``StoreNotFoundError`` unless ``target`` names a store that already exists.

    Callers that only read use it so that a mistyped folder, file or schema is an error,
    not a new empty store: a file store is a folder with ``instances/`` in it, a SQLite
    store an existing file, a PostgreSQL store a schema holding ChatFlow's tables (asked
    over one connection, creating nothing). Memory and third-party stores pass.
    """
    check_target(target)
    if _store_exists(target):
        return
    from chatflow.storage.migrate import display_name  # noqa: PLC0415 - messages only

    path = _local_path(target)
    folder = url_scheme(target) in (None, "file")
    why = "is a file, not a folder" if folder and path and path.is_file() else "does not exist"
    raise StoreNotFoundError(
        f"{what} {display_name(target)!r} {why} (no ChatFlow store there)",
        **({"path": str(path)} if path is not None else {}),
    )


def _store_exists(target: str | os.PathLike[str]) -> bool:
    """False only for a store known not to exist (see ``require_store``)."""
    scheme = url_scheme(target)
    if scheme in ("postgresql", "postgres"):
        from chatflow.storage.postgres import PostgresStore  # noqa: PLC0415

        store = PostgresStore(str(target), min_size=0)
        try:
            return store.exists()
        finally:
            store.close()
    path = _local_path(target)
    if path is None:
        return True
    return (path / "instances").is_dir() if scheme in (None, "file") else path.is_file()


def _local_path(target: str | os.PathLike[str]) -> Path | None:
    """The file or folder a folder path, ``file://`` or ``sqlite://`` URL names."""
    scheme = url_scheme(target)
    if scheme is None:
        return Path(target)
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415

    text = str(target)
    if scheme == "file":
        return Path(unquote(urlsplit(text).path))
    if scheme == "sqlite":
        return Path(_sqlite_path(text))
    return None


def check_target(target: str | os.PathLike[str]) -> None:
    """``StoreURLError`` if ``target`` cannot name a store: checked before anything is
    opened, so a typo is a usage error, never a folder named after it."""
    scheme = url_scheme(target)
    if scheme is None:
        text = os.fspath(target)
        head = text.split(":", 1)[0].lower() if isinstance(text, str) else ""
        if ":" in text and head in _OPENERS and head != "file":
            raise StoreURLError(
                f"store URL {text!r} needs '{head}://' (e.g. {_EXAMPLES.get(head, head + '://...')})"
            )
        return
    if scheme not in _OPENERS:
        known = ", ".join(f"{name}://" for name in sorted(_OPENERS))
        raise StoreURLError(
            f"unknown store URL scheme {scheme!r} in {target!r} (supported: {known})"
        )
    if scheme == "sqlite":
        assert isinstance(target, str)
        _sqlite_path(target)


_EXAMPLES = {
    "sqlite": "sqlite:///state.db",
    "postgresql": "postgresql://user@host/db",
    "postgres": "postgres://user@host/db",
    "memory": "memory://",
}


def open_store(target: str | os.PathLike[str], *, durable: bool = True) -> IWorkflowStateStore:
    """The store ``target`` names: a folder path, or a URL of a registered scheme."""
    check_target(target)
    scheme = url_scheme(target)
    if scheme is None:
        from chatflow.storage.file_state_store import FileStateStore  # noqa: PLC0415

        return FileStateStore(target, durable=durable)
    assert isinstance(target, str)
    return _OPENERS[scheme](target, durable)


def _is_scheme(text: str) -> bool:
    """RFC 3986: a letter, then letters, digits, ``+``, ``-`` or ``.``."""
    return (
        bool(text)
        and text[0].isascii()
        and text[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "+-.") for c in text)
    )
