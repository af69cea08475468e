"""The index of waiting instances: which instance waits under a deadline, until when.

``due`` over 10,000 waiting instances must not read 10,000 heads, so the file and SQLite
stores keep a journal beside their data (``<folder>/waits.log``, ``<database>-waits``):
one line per wait started (``+ ID VISIT DUE_AT``) and per wait ended (``- ID VISIT
DUE_AT``). It is derived data, and always a superset of the real waits:

- a wait's ``+`` line is appended *before* the step that starts it commits (inside the
  instance's transaction), so a killed process cannot leave a committed wait unlisted
  (the line is not synced: after a power failure, ``doctor --fix`` rebuilds the index);
- its ``-`` line after the step that ends it commits; a kill before then leaves a
  stale entry, which ``due`` finds (the head no longer waits so) and clears.

Entries are keyed by instance, visit and due time, so a ``-`` for an old wait never
removes a newer one, whatever order racing processes append in. The instance's head is
always the truth: ``due`` re-reads the head of every candidate, and acting happens in the
instance's transaction. ``rebuild`` (``chatflow doctor``) appends every head's wait and
folds the journal to its live entries, under an exclusive lock that appenders share.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from chatflow.errors import StorageError


class WaitKey(NamedTuple):
    """One wait: the visit it belongs to and when it is due."""

    visit: int
    due_at: float


class WaitIndex:
    """The journal of one store's waits (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def exists(self) -> bool:
        return self.path.exists()

    def add(self, instance_id: str, key: WaitKey) -> None:
        """Record a wait, before the step that starts it commits. Not synced: a killed
        process loses nothing the kernel was given; after a power failure, ``doctor
        --fix`` rebuilds the index (a sync here would double a durable step's cost)."""
        self._append(_line("+", instance_id, key))

    def clear(self, instance_id: str, key: WaitKey) -> None:
        """Record that a wait ended (a lost line only leaves a stale entry)."""
        self._append(_line("-", instance_id, key))

    def live(self) -> dict[str, list[WaitKey]]:
        """Instance id -> its waits not ended, from the journal (torn lines skipped)."""
        try:
            with open(self.path, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise StorageError(f"cannot read the waits index {self.path}: {error}") from error
        return _fold(text.splitlines(keepends=True))

    def rebuild(self, waits: Iterable[tuple[str, WaitKey]]) -> int:
        """Add every given wait (each head's), then fold the journal to its live entries;
        return how many. Safe while other processes step: they append under the shared
        lock this takes exclusively."""
        for instance_id, key in waits:
            self.add(instance_id, key)
        with self._locked(exclusive=True):
            live = self.live()
            lines = [_line("+", iid, key) for iid, keys in live.items() for key in keys]
            temp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            with open(temp, "w", encoding="utf-8") as file:
                file.write("".join(lines))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        return len(lines)

    def _append(self, line: str) -> None:
        data = ("\n" + line).encode("utf-8")  # a torn line before it cannot swallow it
        try:
            with self._locked(exclusive=False):
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)  # one small write: appended whole
                finally:
                    os.close(fd)
        except OSError as error:
            raise StorageError(f"cannot write the waits index {self.path}: {error}") from error

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        try:
            import fcntl  # noqa: PLC0415 - POSIX; elsewhere appends go unlocked
        except ImportError:
            yield
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _line(sign: str, instance_id: str, key: WaitKey) -> str:
    return f"{sign} {instance_id} {key.visit} {key.due_at!r}\n"


def _fold(lines: list[str]) -> dict[str, list[WaitKey]]:
    live: dict[str, dict[WaitKey, None]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or not line.endswith("\n") or parts[0] not in ("+", "-"):
            continue  # a torn last line, or damage: the heads stay the truth
        try:
            key = WaitKey(int(parts[2]), float(parts[3]))
        except ValueError:
            continue
        keys = live.setdefault(parts[1], {})
        if parts[0] == "+":
            keys[key] = None
        else:
            keys.pop(key, None)
    return {iid: list(keys) for iid, keys in live.items() if keys}


def index_of(store: object) -> WaitIndex | None:
    """The waits index of a file or SQLite store; ``None`` for others (``due`` then
    reads every active instance's head)."""
    # Only a loaded module's class can be the store's: nothing is imported to find out.
    files = sys.modules.get("chatflow.storage.file_state_store")
    if files is not None and isinstance(store, files.FileStateStore):
        return WaitIndex(store.base_dir / "waits.log")
    sqlite = sys.modules.get("chatflow.storage.sqlite")
    if sqlite is not None and isinstance(store, sqlite.SQLiteStore):
        return WaitIndex(store.path.with_name(store.path.name + "-waits"))
    return None
