"""A cross-process, cross-thread, re-entrant lock on a sidecar file.

The base class owns what is the same on every platform: the per-process registry that
makes the lock exclusive between threads and re-entrant within one, timeouts and
polling. The POSIX (``flock``) and Windows (``msvcrt.locking``) classes implement only
the two OS calls, and ``FileLock`` picks the platform's class in one place.

The lock file is never the data file: locking a sidecar means data files can be
replaced atomically (``os.replace``) without disturbing the lock.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from types import TracebackType

from chatflow._logger import logger
from chatflow.errors import LockTimeoutError, StorageError

if os.name == "nt":
    import msvcrt
else:
    import fcntl

__all__ = ["BaseFileLock", "FileLock", "UnixFileLock", "WindowsFileLock"]


class _Held:
    """Process-wide state of one lock path: who holds it and the OS file descriptor."""

    __slots__ = ("__weakref__", "count", "fd", "guard")

    def __init__(self) -> None:
        self.guard = threading.RLock()
        self.count = 0
        self.fd: int | None = None


# Weak: an entry lives while some lock object of its path does (every holder and waiter
# has one), so touching 100,000 instances does not keep 100,000 entries.
_registry: weakref.WeakValueDictionary[str, _Held] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def _held_for(path: str) -> _Held:
    with _registry_lock:
        held = _registry.get(path)
        if held is None:
            held = _registry[path] = _Held()
        return held


def _forget_parent_locks() -> None:
    """In a forked child, drop the parent's lock state.

    Threads that held locks in the parent do not exist in the child, and an inherited
    descriptor shares the parent's OS lock: closing (never unlocking) it keeps the
    parent's lock intact while stopping the child from holding it past the parent.
    """
    global _registry_lock  # noqa: PLW0603 - a lock held at fork time must be replaced
    for held in list(_registry.values()):
        if held.fd is not None:
            os.close(held.fd)
    _registry.clear()
    _registry_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_locks)


class BaseFileLock(ABC):
    """Exclusive lock on ``lock_file_path`` for this thread, against other threads and processes.

    ``timeout`` is seconds to wait (``None`` waits forever); on expiry ``acquire`` raises
    ``LockTimeoutError``. The same thread may acquire it again (re-entrant); each
    ``acquire`` needs its ``release``.
    """

    def __init__(
        self,
        lock_file_path: str | os.PathLike[str],
        timeout: float | None = None,
        *,
        poll_interval: float = 0.002,
    ) -> None:
        self.path = os.path.abspath(lock_file_path)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._held = _held_for(self.path)

    @property
    def is_locked(self) -> bool:
        """True while some thread of this process holds the lock."""
        return self._held.count > 0

    def acquire(self, timeout: float | None = None) -> BaseFileLock:
        """Take the lock, waiting at most ``timeout`` (default: the lock's own timeout)."""
        wait = self.timeout if timeout is None else timeout
        deadline = None if wait is None else time.monotonic() + wait
        held = self._held
        if not held.guard.acquire(timeout=-1 if wait is None else max(wait, 0.0)):
            self._timed_out(wait)
        try:
            if held.count == 0:
                held.fd = self._open_and_lock(deadline, wait)
            held.count += 1
        except BaseException:
            held.guard.release()
            raise
        return self

    def release(self) -> None:
        """Give back one level of the lock; the OS lock is dropped at the outermost level."""
        held = self._held
        if held.count == 0:
            raise RuntimeError(f"release of unlocked lock {self.path}")
        held.count -= 1
        if held.count == 0 and held.fd is not None:
            fd, held.fd = held.fd, None
            try:
                self._unlock(fd)
            finally:
                os.close(fd)
        held.guard.release()

    def __enter__(self) -> BaseFileLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _open_and_lock(self, deadline: float | None, wait: float | None) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StorageError(
                f"cannot open lock file {self.path}: {error.strerror}", path=self.path
            ) from error
        try:
            if deadline is None:
                self._lock(fd, blocking=True)
                return fd
            waited = False
            while not self._lock(fd, blocking=False):
                if time.monotonic() >= deadline:
                    logger(__name__).warning("gave up waiting %s s for lock %s", wait, self.path)
                    self._timed_out(wait)
                if not waited:
                    logger(__name__).debug(
                        "lock %s is held elsewhere; retrying until it is free", self.path
                    )
                    waited = True
                time.sleep(self.poll_interval)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _timed_out(self, wait: float | None) -> None:
        raise LockTimeoutError(
            f"could not lock {self.path} within {wait} s: another thread or process holds it",
            path=self.path,
            timeout=wait,
        )

    @abstractmethod
    def _lock(self, fd: int, *, blocking: bool) -> bool:
        """Lock ``fd``; return False if ``blocking`` is False and someone else holds it."""

    @abstractmethod
    def _unlock(self, fd: int) -> None:
        """Unlock ``fd``."""


class UnixFileLock(BaseFileLock):
    """``flock``-based lock: released by the kernel when the holding process dies."""

    def _lock(self, fd: int, *, blocking: bool) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class WindowsFileLock(BaseFileLock):
    """``msvcrt.locking`` on the first byte; polled, since its blocking mode gives up after 10 s."""

    def _lock(self, fd: int, *, blocking: bool) -> bool:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]
            except OSError:
                if not blocking:
                    return False
                time.sleep(self.poll_interval)
            else:
                return True

    def _unlock(self, fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined,unused-ignore]


FileLock: type[BaseFileLock] = WindowsFileLock if os.name == "nt" else UnixFileLock
