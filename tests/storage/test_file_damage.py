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
from pathlib import Path

import pytest

from chatflow import CorruptStateError, WorkflowEngine
from chatflow.storage import FileStateStore, file_doctor

SCHEMA = {
    "name": "loop",
    "phases": [
        {"name": "a", "max_visits": 50},
        {"name": "b", "transitions": [{"to": "a"}]},
    ],
}
FEATURE = "feat_damage"
Damage = Callable[[bytes], bytes | None]  # None: the file is removed


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _swap(data: bytes, i: int, j: int) -> bytes:
    lines = _lines(data)
    lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def _without(data: bytes, i: int) -> bytes:
    lines = _lines(data)
    del lines[i]
    return b"".join(lines)


def _repeat(data: bytes, i: int) -> bytes:
    lines = _lines(data)
    lines.insert(i, lines[i])
    return b"".join(lines)


def _edit(data: bytes, i: int) -> bytes:
    """Change one character of line ``i`` (-1: the last) without changing its length:
    a digit of the first number after its hash (it is part of every event)."""
    lines = _lines(data)
    line = lines[i]
    at = next(n for n in range(80, len(line)) if line[n : n + 1].isdigit())
    digit = b"%d" % ((int(line[at : at + 1]) + 1) % 10)
    lines[i] = line[:at] + digit + line[at + 1 :]
    return b"".join(lines)


def _cut(at: Callable[[bytes], int]) -> Damage:
    return lambda data: data[: at(data)]


def _line_end(i: int) -> Callable[[bytes], int]:
    return lambda data: sum(len(line) for line in _lines(data)[: i + 1])


def _inside(i: int, fraction: float) -> Callable[[bytes], int]:
    def at(data: bytes) -> int:
        lines = _lines(data)
        start = sum(len(line) for line in lines[:i])
        return start + max(1, int(len(lines[i]) * fraction))

    return at


HEAD_DAMAGE: dict[str, Damage] = {
    "missing": lambda data: None,
    "empty": lambda data: b"",
    "garbage": lambda data: b"\x00\xff{not json" * 3,
    "cut_half": lambda data: data[: len(data) // 2],
    "cut_last_byte": lambda data: data[:-2],
    "same_length_edit": lambda data: data.replace(b'"running"', b'"paused!"', 1),
}

_random = random.Random(15)
LOG_DAMAGE: dict[str, Damage] = {
    "garbage": lambda data: b"\x00\xfe garbage\n" * 4,
    "empty": lambda data: b"",
    "missing": lambda data: None,
    "cut_between_lines": _cut(_line_end(-2)),
    "cut_after_first_line": _cut(_line_end(0)),
    **{
        f"cut_inside_line_{n}_{int(f * 100)}": _cut(_inside(n, f))
        for n, f in [(-1, _random.random()) for _ in range(3)] + [(2, _random.random()), (0, 0.5)]
    },
    "line_repeated": lambda data: _repeat(data, 2),
    "last_line_repeated": lambda data: _repeat(data, -1),
    "lines_swapped": lambda data: _swap(data, 2, 3),
    "last_lines_swapped": lambda data: _swap(data, -1, -2),
    "line_removed": lambda data: _without(data, 2),
    "last_line_removed": lambda data: _without(data, -1),
    "edit_middle_line": lambda data: _edit(data, 2),
    "edit_last_line": lambda data: _edit(data, -1),
}

CASES = (
    [(head, None) for head in HEAD_DAMAGE]
    + [(None, log) for log in LOG_DAMAGE]
    + [
        (head, log)
        for head in ("missing", "garbage", "cut_half")
        for log in ("cut_between_lines", "cut_inside_line_-1_53", "last_line_removed", "empty")
        if log in LOG_DAMAGE
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
    for name, damage in (
        (f"instances/{iid}.json", HEAD_DAMAGE.get(head or "")),
        (f"instances/{iid}/events.jsonl", LOG_DAMAGE.get(log or "")),
    ):
        if damage is None:
            continue
        path = folder / name
        changed = damage(path.read_bytes())
        if changed is None:
            path.unlink()
        else:
            path.write_bytes(changed)


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
