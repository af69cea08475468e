"""Repairs the file store makes by itself: only a crash's leftovers, each logged as a
WARNING on the ``chatflow`` logger and recorded for ``chatflow doctor`` (issues 15, 20)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from backends.test_upgrade import write_file_store
from chatflow import WorkflowEngine
from chatflow.storage import FileStateStore, file_doctor

SCHEMA = {
    "name": "loop",
    "phases": [{"name": "a", "max_visits": 50}, {"name": "b", "transitions": [{"to": "a"}]}],
}
TORN = b'{"hash":"5f0c2e","head":"9a1'  # a step's line, cut by a crash mid-write


def started(folder: Path, steps: int = 3) -> tuple[WorkflowEngine, str]:
    engine = WorkflowEngine(storage_dir=folder)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_repair")
    for n in range(steps):
        engine.trigger_next_step(iid, {"n": n})
    return engine, iid


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("chatflow")
    ]


def test_a_torn_unacknowledged_line_loads_as_the_last_state_and_the_next_event_is_its_own_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / ".chatflow"
    _, iid = started(folder)
    store = FileStateStore(folder)
    acknowledged = store.load_state(iid)
    log = folder / "instances" / iid / "events.jsonl"
    with log.open("ab") as file:  # the head was written after the last whole line
        file.write(TORN)
    damaged = log.read_bytes()

    fresh = FileStateStore(folder)
    assert fresh.load_state(iid) == acknowledged  # never corrupt: the head proves it
    assert fresh.verify(iid) is None
    assert [s.instance_id for s in fresh.list_instances()] == [iid]
    assert {f.kind for f in file_doctor.check(fresh)} == {"stale_head"}
    assert log.read_bytes() == damaged  # reading, verify and doctor cut nothing
    assert not warnings(caplog)

    state = WorkflowEngine(store=fresh).trigger_next_step(iid, {"n": "next"})
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a whole line ...
    assert all(json.loads(line)["seq"] for line in lines[:-1])  # ... each one an event
    assert TORN not in log.read_bytes()
    assert FileStateStore(folder).load_state(iid)["version"] == state.version  # type: ignore[index]
    assert FileStateStore(folder).verify(iid) is None
    [kept] = fresh.moved_aside()
    assert Path(kept).read_bytes() == TORN  # the cut bytes are kept, not deleted
    [warning] = warnings(caplog)
    assert iid in warning and "torn" in warning and kept in warning
    [record] = fresh.repairs()
    assert record["instance_id"] == iid and record["kept"] == kept


@pytest.mark.parametrize("damage", ["head_missing", "head_behind", "head_garbled"])
def test_a_head_rebuilt_from_the_log_is_logged_and_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    folder = tmp_path / ".chatflow"
    engine, iid = started(folder)
    head = folder / "instances" / f"{iid}.json"
    if damage == "head_missing":
        head.unlink()
    elif damage == "head_garbled":  # a lost write: its bytes are moved aside, kept
        head.write_bytes(b'{\n "_last_at": 12')
    else:  # a crash between a step's commit and its head write
        behind = head.read_bytes()
        engine.trigger_next_step(iid, {"n": "last"})
        head.write_bytes(behind)
    expected = FileStateStore(folder).load_state(iid)
    assert not warnings(caplog)  # reading repairs nothing
    report = file_doctor.check(FileStateStore(folder))
    kind = "damaged_head" if damage == "head_garbled" else "stale_head"
    assert [(f.kind, f.instance_id) for f in report] == [(kind, iid)]

    WorkflowEngine(storage_dir=folder).trigger_next_step(iid, {"n": "after"})
    told = warnings(caplog)
    assert all(iid in warning for warning in told)
    assert "head rebuilt" in told[-1]
    store = FileStateStore(folder)
    assert [r["instance_id"] for r in store.repairs()] == [iid] * len(told)
    if damage == "head_garbled":
        assert len(told) == 2 and "moved aside" in told[0]
        [kept] = store.moved_aside()
        assert Path(kept).read_bytes() == b'{\n "_last_at": 12'
    assert store.verify(iid) is None
    assert len(store.load_state(iid)["history"]) == len(expected["history"]) + 1  # type: ignore[index]
    assert file_doctor.check(store) == []


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_1x_folder_is_read_without_a_write_and_upgraded_by_a_step_or_doctor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / ".chatflow"
    write_file_store(folder)
    before = _tree(folder)
    store = FileStateStore(folder)
    engine = WorkflowEngine(store=store)
    ids = sorted(store.list_instance_ids())
    for iid in ids:  # every read: states, artifacts, verify, roll-ups, listings
        assert store.load_state(iid) is not None
        assert engine.verify(iid) is None
        for task in ("design", "implement"):
            store.load_task_artifacts(iid, task)
    for feature in store.list_features():
        engine.get_feature_status(feature)
    store.list_feature_counts()
    findings = file_doctor.check(store)
    assert _tree(folder) == before, "a read wrote to a 1.x folder"
    assert not warnings(caplog) and store.repairs() == []
    old = {(f.kind, f.instance_id) for f in findings}
    assert {("old_format", iid) for iid in ids} <= old  # doctor shows what is not upgraded
    first = ids[0]
    engine.trigger_next_step(first)  # the first write upgrades that instance
    upgraded = warnings(caplog)
    assert len(upgraded) == 1 and "1.x" in upgraded[0] and first in upgraded[0]
    file_doctor.fix(store, file_doctor.check(store))  # doctor --fix upgrades the rest
    assert sorted({r["instance_id"] for r in store.repairs() if "upgraded" in r["repair"]}) == ids
    fresh = FileStateStore(folder)
    assert file_doctor.check(fresh) == []
    assert all(fresh.verify(iid) is None for iid in ids)


def test_a_reader_overtaken_by_two_steps_reads_again_instead_of_calling_it_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".chatflow"
    engine, iid = started(folder)
    head = folder / "instances" / f"{iid}.json"
    before = head.read_bytes()  # what a reader read just before two more steps ...
    engine.trigger_next_step(iid, {"n": "one"})
    with (folder / "instances" / iid / "events.jsonl").open("ab") as file:
        file.write(TORN)  # ... the second still being appended when it reads the log
    store = FileStateStore(folder)
    real = store._read_bytes
    heads = [before]
    monkeypatch.setattr(
        store,
        "_read_bytes",
        lambda path: heads.pop() if path.endswith(".json") and heads else real(path),
    )
    assert store.load_state(iid) == FileStateStore(folder).load_state(iid)
