"""Bring the file store's ``feed.jsonl`` level with the committed logs after a power loss.

Why: a step's commit point is the fdatasync of its log line; its feed line is appended
after it without an fsync (an extra fsync on every step). A power cut can keep the log
line, the head and ``committed`` and lose the feed line, and nothing on the write path
would notice: a webhook delivering from the feed would never see that step.

A power cut is a reboot, so once per boot (the kernel's boot id; elsewhere an estimate
of the boot time) the first reader of the feed compares each instance's log tail with
the feed and appends, under the instance's lock, the lines a lost write left out (each
repair recorded in ``repairs.jsonl``). ``feed.checked`` holds the boot the feed was last
checked in (written, fsynced, after the check); within a boot, a reader reads it once
per store object, so a read of the feed costs nothing more. A crash of a process
without a power cut (the feed's bytes survive it) is repaired by the instance's next
writer and ``chatflow doctor --fix`` as before (``_file_transaction``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chatflow.errors import CorruptStateError, StorageError
from chatflow.storage._atomic import write_atomic
from chatflow.storage._file_feed import feed_lines, line_starts

if TYPE_CHECKING:
    from chatflow.storage.file_state_store import FileStateStore

CHECKED_NAME = "feed.checked"
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_TAIL = 1 << 16


@functools.cache  # (a process lives within one boot)
def boot_key() -> str:
    """What names this boot: the kernel's boot id, or the boot time to ten minutes."""
    try:
        with open(_BOOT_ID, encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return f"t{int(time.time() - time.monotonic()) // 600}"


def checked_in(store: FileStateStore) -> str:
    """The boot the feed was last checked in (``""``: never)."""
    try:
        raw = store._read_bytes(str(store.base_dir / CHECKED_NAME))
    except StorageError:
        return ""
    return (raw or b"").decode("ascii", "replace").strip()


def check(store: FileStateStore) -> int:
    """Append the feed lines of committed events the feed lacks; return how many."""
    fed, since = _fed_seqs(store)
    added = 0
    for iid in _instance_ids(store):
        last = _log_tail_seq(store, iid)
        after = fed.get(iid)
        if after is None and not _written_since(store, iid, since):
            continue  # older than the feed, which starts after it (docs/library.md)
        if last is None or last > (after or 0):  # (unreadable: the full check decides)
            try:
                added += _add_missing(store, iid, after or 0)
            except CorruptStateError as error:  # damage: `chatflow doctor` reports it
                from chatflow._logger import logger  # noqa: PLC0415

                logger(__name__).warning("feed check passed over a damaged instance: %s", error)
    return added


def mark_checked(store: FileStateStore, boot: str) -> None:
    """Record that the feed is level with the logs as of ``boot`` (best effort: a
    store this process cannot write is checked again by the next reader)."""
    with contextlib.suppress(StorageError, OSError, UnicodeEncodeError):
        write_atomic(store.base_dir / CHECKED_NAME, boot.encode("ascii") + b"\n", durable=True)


def _fed_seqs(store: FileStateStore) -> tuple[dict[str, int], float | None]:
    """Each instance's highest ``seq`` in the feed, and when the feed began (``None``:
    a feed made before its header said)."""
    from chatflow.storage._file_feed import _entry  # noqa: PLC0415

    lines = store._feed._read_from(0).split(b"\n")
    try:
        since = json.loads(lines[0]).get("since")
    except (ValueError, AttributeError, RecursionError):
        since = None
    fed: dict[str, int] = {}
    for line in lines[1:]:
        entry = _entry(line) if line else None
        if entry is not None and entry["s"] > fed.get(entry["i"], -1):
            fed[entry["i"]] = entry["s"]
    return fed, since if isinstance(since, int | float) else None


def _written_since(store: FileStateStore, iid: str, since: float | None) -> bool:
    """Whether the instance's log was last written after the feed began."""
    try:
        return since is not None and os.stat(store._log_file(iid)).st_mtime >= since - 1
    except OSError:
        return False


def _instance_ids(store: FileStateStore) -> list[str]:
    try:
        names = os.listdir(store.instances_dir)
    except OSError:
        return []
    return [name for name in names if "." not in name]


def _log_tail_seq(store: FileStateStore, iid: str) -> int | None:
    """The ``seq`` of the log's last complete line, read from its last 64 KiB (all of
    it if that line is longer); ``None``: no log, or an unreadable last line (checked
    in full anyway: see ``check``)."""
    try:
        with open(store._log_file(iid), "rb") as file:
            size = file.seek(0, os.SEEK_END)
            start = max(0, size - _TAIL)
            file.seek(start)
            tail = file.read()
            body = tail[: tail.rfind(b"\n")]
            if start and b"\n" not in body:  # the last line began before the window
                file.seek(0)
                tail = file.read()
                body = tail[: tail.rfind(b"\n")]
    except OSError:
        return None
    try:
        seq = json.loads(body.rsplit(b"\n", 1)[-1]).get("seq")
    except (ValueError, AttributeError, RecursionError):
        return None
    return seq if type(seq) is int else None


def _add_missing(store: FileStateStore, iid: str, after: int) -> int:
    """Under the instance's lock (writers append its feed lines under it): the events
    of its log after ``seq`` ``after`` that the feed lacks, appended with their log
    offsets."""
    with store._instance_lock(iid):
        raw = store._read_bytes(store._log_file(iid)) or b""
        raw = raw[: raw.rfind(b"\n") + 1]  # (a torn line is its next writer's to cut)
        events = store._events(iid, raw)
        if not events:
            return 0
        missing = store._feed.missing(iid, [e for e in events if e["seq"] > after])
        if not missing:
            return 0
        starts = line_starts(0, raw.split(b"\n")[:-1])
        where = dict(zip([e["seq"] for e in events], starts, strict=True))
        feature = _feature_of(store, iid, events)
        store._feed.append(feed_lines(iid, feature, missing, [where[e["seq"]] for e in missing]))
    what = f"added {len(missing)} committed events a lost write left out of the store's feed"
    store._repaired(iid, what)
    return len(missing)


def _feature_of(store: FileStateStore, iid: str, events: list[dict[str, object]]) -> str:
    from chatflow.storage import _log  # noqa: PLC0415

    return str(_log.project_head(events)["state"]["feature_id"])


def ensure(store: FileStateStore, done: list[str]) -> None:
    """Check the feed once per boot (``done`` remembers, per store object, the boot
    this object saw checked)."""
    boot = boot_key()
    if done and done[0] == boot:
        return
    if checked_in(store) != boot and Path(store._feed.path).exists():
        check(store)
        mark_checked(store, boot)
    done[:] = [boot]
