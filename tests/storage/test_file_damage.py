"""Damage to a file-store instance's head, log or both (issue 15).

Whatever the damage, loading gives exactly the last acknowledged state or raises
``CorruptStateError`` naming the instance; loading, triggering, ``verify`` and
``doctor`` without ``--fix`` change no damaged byte; ``doctor --fix`` rebuilds what it
can, moves aside (keeps) what it cannot, and never drops an instance whose log is whole.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from chatflow import CorruptStateError, WorkflowEngine
from chatflow.storage import FileStateStore, file_doctor
from chatflow.storage.spi import RawInstance
from chatflow.testing.damage import DAMAGES, cut, flip

SCHEMA = {
    "name": "loop",
    "phases": [
        {"name": "a", "max_visits": 50},
        {"name": "b", "transitions": [{"to": "a"}]},
    ],
}
FEATURE = "feat_damage"
Damage = Callable[[RawInstance], RawInstance | None]  # None: the log file is removed


def _events(change: Callable[[list[bytes]], object]) -> Damage:
    """A damage to the log's lines (each with its newline), changed in place."""

    def damaged(stored: RawInstance) -> RawInstance:
        events = list(stored.events)
        change(events)
        return replace(stored, events=tuple(events))

    return damaged


def _swap(i: int, j: int) -> Damage:
    def swap(events: list[bytes]) -> None:
        events[i], events[j] = events[j], events[i]

    return _events(swap)


def _edit(i: int) -> Damage:
    """A letter or digit of line ``i`` (-1: the last) changed, its length kept."""
    return _events(lambda events: events.__setitem__(i, flip(events[i])))


def _cut_inside(i: int, fraction: float) -> Damage:
    return _events(lambda events: events.__setitem__(slice(i, None), [cut(events[i], fraction)]))


def _head(change: Callable[[bytes], bytes]) -> Damage:
    return lambda stored: replace(stored, head=change(stored.head or b""))


HEAD_DAMAGE: dict[str, Damage] = {
    "missing": DAMAGES["lose_head"],
    "empty": _head(lambda data: b""),
    "garbage": _head(lambda data: b"\x00\xff{not json" * 3),
    "cut_half": DAMAGES["garble_head"],
    "cut_last_byte": _head(lambda data: data[:-2]),
    "same_length_edit": _head(lambda data: data.replace(b'"running"', b'"paused!"', 1)),
}

_random = random.Random(15)
LOG_DAMAGE: dict[str, Damage] = {
    "garbage": _events(lambda events: events.__setitem__(slice(None), [b"\x00\xfe garbage\n"] * 4)),
    "empty": _events(list.clear),
    "missing": lambda stored: None,
    "cut_between_lines": DAMAGES["drop_last_event"],
    "cut_after_first_line": _events(lambda events: events.__delitem__(slice(1, None))),
    **{
        f"cut_inside_line_{n}_{int(f * 100)}": _cut_inside(n, f)
        for n, f in [(-1, _random.random()) for _ in range(3)] + [(2, _random.random()), (0, 0.5)]
    },
    "cut_inside_last_line": DAMAGES["truncate_mid_event"],
    "line_repeated": _events(lambda events: events.insert(2, events[2])),
    "last_line_repeated": _events(lambda events: events.insert(-1, events[-1])),
    "lines_swapped": _swap(2, 3),
    "last_lines_swapped": _swap(-1, -2),
    "line_removed": _events(lambda events: events.__delitem__(2)),
    "last_line_removed": DAMAGES["drop_last_event"],
    "edit_middle_line": _edit(2),
    "edit_last_line": _edit(-1),
}

CASES = (
    [(head, None) for head in HEAD_DAMAGE]
    + [(None, log) for log in LOG_DAMAGE]
    + [
        (head, log)
        for head in ("missing", "garbage", "cut_half")
        for log in ("cut_between_lines", "cut_inside_last_line", "last_line_removed", "empty")
    ]
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, object]]:
    """A store with one instance several steps in, and its last acknowledged state."""
    folder = tmp_path_factory.mktemp("template") / ".chatflow"
    engine = WorkflowEngine(storage_dir=folder)
    iid = engine.start_workflow_instance(SCHEMA, {"n": 0}, FEATURE)
    for n in range(5):
        engine.trigger_next_step(iid, {"n": n})
        if n == 2:
            engine.record_task_artifacts(iid, f"prompt {n}", f"response {n}")
    expected = FileStateStore(folder).load_state(iid)
    assert expected is not None
    return folder, iid, expected


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of the instances folder, by path relative to the store."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted((folder / "instances").rglob("*"))
        if path.is_file()
    }


def _damage(folder: Path, iid: str, head: str | None, log: str | None) -> None:
    """This case's damage, through the store's raw access (``chatflow.testing.damage``)."""
    access = FileStateStore(folder).raw_access()
    stored: RawInstance | None = access.read(iid)
    for damage in (HEAD_DAMAGE.get(head or ""), LOG_DAMAGE.get(log or "")):
        if damage is not None and stored is not None:
            stored = damage(stored)
    if stored is None:  # the log file removed (beyond raw access: the head stays)
        (folder / "instances" / iid / "events.jsonl").unlink()
    else:
        access.write(iid, stored)


def _unchanged_or_appended(
    before: dict[str, bytes], after: dict[str, bytes], log: str, head: str
) -> None:
    """No byte of a stored file was changed or removed: a step appends to the log, and
    replaces the head and the record of the log's last committed event (projections)."""
    for name, data in before.items():
        assert name in after, f"{name} was removed"
        if name == log:
            assert after[name].startswith(data), f"{name} was rewritten, not appended to"
        elif name not in (head, log.replace("events.jsonl", "committed")):
            assert after[name] == data, f"{name} was changed"


def _damaged_copy(
    template: tuple[Path, str, dict[str, object]], tmp_path: Path, head: str | None, log: str | None
) -> tuple[Path, str, dict[str, object], dict[str, bytes]]:
    """A copy of the template store with this case's damage done, and its files' bytes."""
    source, iid, expected = template
    folder = tmp_path / ".chatflow"
    shutil.copytree(source, folder)
    _damage(folder, iid, head, log)
    return folder, iid, expected, _files(folder)


@pytest.mark.parametrize(("head", "log"), CASES, ids=str)
def test_damage_loads_the_acknowledged_state_or_is_corrupt_and_changes_nothing(
    template: tuple[Path, str, dict[str, object]],
    tmp_path: Path,
    head: str | None,
    log: str | None,
) -> None:
    folder, iid, expected, before = _damaged_copy(template, tmp_path, head, log)
    store = FileStateStore(folder)
    log_name = f"instances/{iid}/events.jsonl"

    try:
        loaded = store.load_state(iid)
    except CorruptStateError as error:
        error_text, loaded = str(error), None
        assert iid in error_text
    else:
        assert loaded == expected
    if log is not None:
        assert loaded is None, "a damaged log must not load"
    problem = store.verify(iid)
    clean = head == "missing" and log is None
    assert (problem is None) == clean, problem
    findings = file_doctor.check(store)
    assert (not findings) == (head is None and log is None)
    assert _files(folder) == before  # reading, verify and doctor change nothing

    engine = WorkflowEngine(store=FileStateStore(folder))
    try:
        engine.trigger_next_step(iid, {"n": "after"})
    except CorruptStateError as error:
        error_text, stepped = str(error), False
        assert iid in error_text
    else:  # an unreadable head is moved aside and rebuilt; damage a step does not read
        stepped = True  # (the middle of the log) stays as it is, and is still reported
        assert head != "same_length_edit"  # a readable head that disagrees: refused
    after = _files(folder)
    head_name = f"instances/{iid}.json"
    if not stepped:
        assert after == before  # a refused step changes nothing
    else:
        _unchanged_or_appended(before, after, log_name, head_name)
        if head not in (None, "missing"):  # the damaged head, kept whole
            [kept] = FileStateStore(folder).moved_aside()
            assert Path(kept).read_bytes() == before[head_name]
        assert (FileStateStore(folder).verify(iid) is None) == (log is None)


@pytest.mark.parametrize(("head", "log"), CASES, ids=str)
def test_doctor_fix_rebuilds_what_it_can_and_keeps_every_damaged_byte(
    template: tuple[Path, str, dict[str, object]],
    tmp_path: Path,
    head: str | None,
    log: str | None,
) -> None:
    folder, iid, expected, before = _damaged_copy(template, tmp_path, head, log)
    store = FileStateStore(folder)
    file_doctor.fix(store, file_doctor.check(store))
    fresh = FileStateStore(folder)
    if log is None:  # rebuilt, listed and verified
        assert fresh.load_state(iid) == expected
        assert fresh.verify(iid) is None
        assert iid in fresh.list_instance_ids()
        assert [s.instance_id for s in fresh.list_instances()] == [iid]
        assert file_doctor.check(fresh) == []
    else:  # moved aside, whole, and still reported until a person acts
        kinds = {finding.kind for finding in file_doctor.check(fresh)}
        assert kinds == {"quarantined_instance"}, kinds
        assert iid in fresh.list_instance_ids()
    kept = [Path(p) for p in fresh.moved_aside()]
    kept_bytes = {p.read_bytes() for q in kept for p in [q, *q.rglob("*")] if p.is_file()}
    now = _files(folder)
    for name, data in before.items():
        assert now.get(name) == data or data in kept_bytes, f"{name} was lost"


def test_a_lost_head_and_a_log_cut_at_a_line_end_is_corrupt_not_an_older_state(
    template: tuple[Path, str, dict[str, object]], tmp_path: Path
) -> None:
    """The log's last committed event is recorded beside it: with the head gone, a log
    that lost whole lines off its end is still known to be shorter than it was."""
    folder, iid, _, before = _damaged_copy(template, tmp_path, "missing", "last_line_removed")
    store = FileStateStore(folder)
    with pytest.raises(CorruptStateError, match="lines were lost off its end") as caught:
        store.load_state(iid)
    assert iid in str(caught.value)
    [finding] = file_doctor.check(store)
    assert (finding.kind, finding.instance_id) == ("damaged_log", iid)
    assert _files(folder) == before
