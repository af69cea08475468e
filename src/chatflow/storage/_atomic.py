"""Crash-safe file replacement: a reader sees the old file or the new one, never a mix.

A lock gives exclusion, not durability. Each write goes to a temp file in the target's
own folder (so ``os.replace`` is an atomic rename on one filesystem), is flushed and
fsynced, renamed over the target, and then the folder is fsynced so the rename itself
survives a power cut. ``durable=False`` skips both fsyncs: still atomic against a
killed process, no longer against a power failure.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from chatflow.errors import StorageError

TEMP_SUFFIX = ".tmp"


def write_atomic(
    path: Path, data: bytes, *, durable: bool, min_mtime_ns: int = 0
) -> os.stat_result:
    """Replace ``path`` with ``data`` atomically; return the new file's stat.

    ``min_mtime_ns`` lets the caller (holding the file's lock) make the new file's
    modification time strictly greater than the old one's, so a (inode, size, mtime)
    signature always changes between versions even on filesystems with a coarse clock.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if min_mtime_ns:
                now = os.fstat(fd).st_mtime_ns
                if now < min_mtime_ns:
                    os.utime(fd if os.utime in os.supports_fd else temp, ns=(min_mtime_ns,) * 2)
            if durable:
                os.fsync(fd)
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as error:
        _discard(temp)
        raise StorageError(
            f"cannot write {path}: {error.strerror or error}", path=str(path)
        ) from error
    if durable:
        fsync_dir(path.parent)
    return stat


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op on Windows, where folders can't be opened)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def not_a_file(path: str | Path) -> StorageError:
    """The error for a FIFO, device or folder found where a stored file should be."""
    return StorageError(f"{path} is not a regular file; refusing to use it", path=str(path))


def _discard(temp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


_O_BINARY: int = getattr(os, "O_BINARY", 0)
