"""Files touched: the paths an agent wrote during a visit and the SHA-256 of what they
held then (``WorkflowEngine.record_files``; ``chatflow hook claude PostToolUse``).

Recorded as a ``files_touched`` event of the instance's current visit, so the
hash-chained log keeps them (``verify`` checks them with every other event) and
``show``, the web page and ``history`` list them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chatflow.core import lifecycle
from chatflow.core.models import EventKind, WorkflowInstanceState
from chatflow.errors import InvalidTransitionError, ValidationError

MAX_FILES = 100  # in one event: a hook records one tool call's files
MAX_HASHED = 256 << 20  # bytes: a bigger file is recorded with its size, not hashed
_CHUNK = 1 << 20
_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not wait for a writer
_BINARY: int = getattr(os, "O_BINARY", 0)


def check_open(state: WorkflowInstanceState) -> None:
    """Files are touched during a visit: a finished instance has none open, and an
    agent's later writes must not change its record."""
    if state.status.is_finished:
        raise InvalidTransitionError(
            f"instance {state.instance_id!r} is {state.status.value}: files touched are "
            "recorded during an open visit (bind another instance: chatflow use ID)",
            instance_id=state.instance_id,
        )


def file_entries(
    paths: Iterable[str | os.PathLike[str]], root: str | os.PathLike[str] | None
) -> list[dict[str, Any]]:
    """Each path (relative to ``root`` when inside it) with the SHA-256 and size of the
    file as it is now; ``sha256`` is ``None`` for a path that is no file (deleted)."""
    entries: dict[str, dict[str, Any]] = {}
    base = Path(root).resolve() if root is not None else None
    for given in paths:
        if not isinstance(given, (str, os.PathLike)) or not str(given):
            raise ValidationError(f"a file path must be non-empty text, not {given!r}")
        path = Path(base or ".", given) if base is not None else Path(given)
        path = path.absolute()
        shown = _shown(path, base)
        entries[shown] = {"path": shown, **_digest(path)}
    if len(entries) > MAX_FILES:
        raise ValidationError(f"at most {MAX_FILES} files in one record, not {len(entries)}")
    return list(entries.values())


def _shown(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return path.resolve().relative_to(base).as_posix()
        except ValueError:
            pass
    return str(path)


def _digest(path: Path) -> dict[str, Any]:
    """The file's SHA-256 and size. Only a regular file is read, and only one of at most
    ``MAX_HASHED`` bytes: a hook must answer at once, so a FIFO or a device (which would
    block or never end) is no file (``sha256``/``bytes`` ``None``), and a bigger or
    unreadable file keeps its size with ``sha256`` ``None``."""
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _BINARY)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return {"sha256": None, "bytes": None}
    except OSError:  # unreadable (permissions)
        return {"sha256": None, "bytes": _regular_size(path)}
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return {"sha256": None, "bytes": None}
        if info.st_size > MAX_HASHED:
            return {"sha256": None, "bytes": info.st_size}
        digest, size = hashlib.sha256(), 0
        while size <= MAX_HASHED and (chunk := file.read(_CHUNK)):
            digest.update(chunk)
            size += len(chunk)
    if size > MAX_HASHED:  # (grew while read)
        return {"sha256": None, "bytes": size}
    return {"sha256": digest.hexdigest(), "bytes": size}


def _regular_size(path: Path) -> int | None:
    """The size of a regular file, if it can be had (``None``: not one, or unknown)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def note_files(
    state: WorkflowInstanceState,
    files: list[dict[str, Any]],
    actor: str | None,
    now: float,
) -> None:
    """Log the files touched during the instance's current (latest) visit."""
    index = len(state.history) - 1
    phase = state.history[index].phase if index >= 0 else state.current_phase
    data = {"files": files, "history_index": index}
    lifecycle.log_event(state, EventKind.FILES_TOUCHED, now, actor, phase, data)
