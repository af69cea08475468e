"""The default file store: layout, import-time behaviour, freshness, durability, failures."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import chatflow
from chatflow import CorruptStateError, StorageError, WorkflowEngine
from chatflow.storage import FileStateStore, file_state_store

TWO_PHASES = {"name": "w", "phases": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}


def run_python(code: str, cwd: Path, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_import_creates_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHATFLOW_DIR"}
    subprocess.run(
        [sys.executable, "-c", "import chatflow; chatflow.engine; repr(chatflow.engine)"],
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert list(tmp_path.iterdir()) == []


def test_default_dir_and_chatflow_dir_env(tmp_path: Path) -> None:
    code = (
        "import chatflow; e = chatflow.engine;"
        "print(e.start_workflow_instance({'name': 'w', 'phases': [{'name': 'a'}]}, {}, 'f'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "CHATFLOW_DIR"}
    iid = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (tmp_path / ".chatflow" / "instances" / f"{iid}.json").is_file()
    iid = run_python(code, tmp_path, CHATFLOW_DIR=str(tmp_path / "elsewhere")).strip()
    assert (tmp_path / "elsewhere" / "instances" / f"{iid}.json").is_file()


def test_init_switches_the_shared_engine_everywhere(tmp_path: Path) -> None:
    from chatflow import engine as imported_early

    try:
        first = chatflow.init(tmp_path / "one")
        assert first is chatflow.engine is imported_early
        iid = imported_early.start_workflow_instance(TWO_PHASES, {}, "feat")
        chatflow.init(str(tmp_path / "two"))
        assert imported_early.get_workflow_instance_status(iid) is None
        assert (tmp_path / "one" / "instances" / f"{iid}.json").is_file()
        chatflow.init(tmp_path / "one")
        assert imported_early.get_workflow_instance_status(iid) is not None
    finally:
        chatflow.init()


def test_on_disk_layout_is_readable(engine: WorkflowEngine, storage_dir: Path) -> None:
    first = engine.start_workflow_instance(TWO_PHASES, {"k": "中文"}, "feat_user_auth")
    second = engine.start_workflow_instance(TWO_PHASES, {}, "feat_user_auth")
    engine.record_task_artifacts(first, "the prompt", "the response")
    assert (storage_dir / "features" / "feat_user_auth.link").read_text() == f"{first}\n{second}\n"
    text = (storage_dir / "instances" / f"{first}.json").read_text(encoding="utf-8")
    assert '"k":"中文"' in text  # readable, not \\u-escaped
    assert json.loads(text)["state"]["instance_id"] == first
    log = (storage_dir / "instances" / first / "events.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["kind"] for line in log.splitlines()] == [
        "created",
        "artifact",
        "update",
    ]
    tasks = storage_dir / "instances" / first / "tasks"
    assert sorted(p.name for p in tasks.iterdir()) == [
        "a.ai_response.md",
        "a.json",
        "a.prompt.md",
        "a.v1.ai_response.md",
        "a.v1.json",
        "a.v1.prompt.md",
    ]
    assert (storage_dir / ".locks").is_dir()


def test_seed_comma_separated_index_is_read(storage_dir: Path) -> None:
    store = FileStateStore(storage_dir)
    (storage_dir / "features" / "feat.link").write_text("wfi_a,wfi_b\nwfi_c")
    assert store.list_instances_by_feature("feat") == ["wfi_a", "wfi_b", "wfi_c"]


def test_corrupt_index_is_reported(engine: WorkflowEngine, storage_dir: Path) -> None:
    (storage_dir / "features").mkdir(parents=True)
    (storage_dir / "features" / "feat.link").write_text("wfi_a\n../../etc/passwd\n")
    with pytest.raises(CorruptStateError, match=r"feat\.link"):
        engine.get_feature_status("feat")
    # A listed instance that is gone does not hide the rest of its feature.
    iid = engine.start_workflow_instance(TWO_PHASES, {}, "feat")
    (storage_dir / "features" / "feat.link").write_text(f"wfi_gone\n{iid}\n")
    assert engine.get_feature_status("feat")["total_instances"] == 1


def test_cache_never_serves_state_another_writer_replaced(storage_dir: Path) -> None:
    reader = WorkflowEngine(storage_dir=storage_dir)
    writer = WorkflowEngine(storage_dir=storage_dir)
    iid = writer.start_workflow_instance(TWO_PHASES, {}, "feat")
    assert reader.get_feature_status("feat")["created_count"] == 1  # now cached by the reader
    for expected in ("b", "c"):
        writer.trigger_next_step(iid, meta={"n": 1})  # same-size writes, back to back
        state = reader.get_workflow_instance_status(iid)
        assert state is not None and state.current_phase == expected
    run_python(
        f"from chatflow import WorkflowEngine as E; E(storage_dir={str(storage_dir)!r})"
        f".trigger_next_step({iid!r})",
        storage_dir.parent,
    )
    assert reader.get_feature_status("feat")["completed_count"] == 1
    state = reader.get_workflow_instance_status(iid)
    assert state is not None and state.status == "completed"


@pytest.mark.parametrize("durable", [True, False])
def test_durability_option_controls_fsync(
    storage_dir: Path, durable: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir, durable=durable)
    iid = engine.start_workflow_instance(TWO_PHASES, {}, "feat")
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    monkeypatch.setattr(os, "fdatasync", counting_fsync)
    engine.trigger_next_step(iid)
    assert len(calls) == (1 if durable else 0)  # the log append: the head is a projection


def test_failed_write_leaves_state_and_folder_clean(
    engine: WorkflowEngine, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = engine.start_workflow_instance(TWO_PHASES, {}, "feat")
    before = engine.get_workflow_instance_status(iid)

    real_write = os.write

    def disk_full(fd: int, data: Any) -> int:
        if not bytes(data).startswith(b'{"hash"'):  # not the event: e.g. multiprocessing's pipe
            return real_write(fd, data)
        real_write(fd, bytes(data)[:10])  # part of the event lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(StorageError, match="No space left"):
        engine.trigger_next_step(iid)
    monkeypatch.undo()
    assert engine.get_workflow_instance_status(iid) == before
    leftovers = [p.name for p in (storage_dir / "instances").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert engine.trigger_next_step(iid).current_phase == "b"


def test_stray_temp_files_are_ignored(engine: WorkflowEngine, storage_dir: Path) -> None:
    iid = engine.start_workflow_instance(TWO_PHASES, {}, "feat")
    (storage_dir / "instances" / f".{iid}.json.999.dead.tmp").write_text("{half")
    (storage_dir / "features" / ".feat.link.999.dead.tmp").write_text("wfi_")
    assert engine.list_features() == ["feat"]
    assert engine.get_feature_status("feat")["total_instances"] == 1
    assert engine.trigger_next_step(iid).current_phase == "b"


def test_unwritable_storage_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    engine = WorkflowEngine(storage_dir=blocker / ".chatflow")
    with pytest.raises(StorageError, match="cannot create storage folder"):
        engine.start_workflow_instance(TWO_PHASES, {}, "feat")


def test_a_failed_head_write_after_the_commit_is_not_a_failed_step(
    engine: WorkflowEngine, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = engine.start_workflow_instance(TWO_PHASES, {}, "feat")

    def disk_full(src: Any, dst: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    assert engine.trigger_next_step(iid).current_phase == "b"  # the log append committed it
    monkeypatch.undo()
    assert engine.get_workflow_instance_status(iid).current_phase == "b"  # type: ignore[union-attr]
    assert engine.trigger_next_step(iid).current_phase == "c"  # the stale head is rebuilt
    assert engine.verify(iid) is None


def test_planted_symlinks_never_redirect_writes(
    engine: WorkflowEngine, storage_dir: Path, tmp_path: Path
) -> None:
    iid = engine.start_workflow_instance(TWO_PHASES, {}, "feat")
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = storage_dir / "instances" / iid
    folder.rename(tmp_path / "moved")
    folder.symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="is a symlink"):
        engine.trigger_next_step(iid)
    with pytest.raises(StorageError, match="is a symlink"):
        engine.record_task_artifacts(iid, "p", "r")
    assert list(outside.iterdir()) == []
    folder.unlink()
    (tmp_path / "moved").rename(folder)
    (folder / "tasks").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="is a symlink"):
        engine.record_task_artifacts(iid, "p", "r")
    assert list(outside.iterdir()) == []
    (folder / "tasks").unlink()
    log = folder / "events.jsonl"
    target = tmp_path / "target.jsonl"
    target.write_text("")
    log.rename(tmp_path / "log.jsonl")
    log.symlink_to(target)
    with pytest.raises(StorageError):
        engine.trigger_next_step(iid)
    assert target.read_text() == ""


def _settle(storage_dir: Path) -> None:
    """Date every index file an hour back, as if last changed long ago, so the overview
    keeps what it reads of them (a file changed within ``SETTLED_NS`` is read again)."""
    for path in (storage_dir / "features").iterdir():
        old = path.stat().st_mtime_ns - 3600 * 10**9
        os.utime(path, ns=(old, old))


def _fresh_overview(storage_dir: Path) -> list[Any]:
    """The overview as a new store object reads it, with nothing cached."""
    return FileStateStore(storage_dir).list_feature_counts()


def test_overview_reads_only_index_files_that_changed(
    storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    store = engine.state_store
    assert isinstance(store, FileStateStore)
    for feature in ("feat_a", "feat_b"):
        engine.start_workflow_instance(TWO_PHASES, {}, feature)
    _settle(storage_dir)
    first = store.list_feature_counts()
    read: list[str] = []
    real_rollup = store._rollup

    def rollup(feature_id: str) -> Any:
        read.append(feature_id)
        return real_rollup(feature_id)

    monkeypatch.setattr(store, "_rollup", rollup)
    assert store.list_feature_counts() == first
    assert read == []  # both answered from the cache
    engine.start_workflow_instance(TWO_PHASES, {}, "feat_c")  # changed just now
    assert store.list_feature_counts() == _fresh_overview(storage_dir)
    assert store.list_feature_counts() == _fresh_overview(storage_dir)
    assert read == ["feat_c", "feat_c"]  # not kept: its files may change again unseen


def test_overview_cache_never_serves_counts_another_process_changed(storage_dir: Path) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    iid = engine.start_workflow_instance(TWO_PHASES, {}, "feat_a")
    engine.start_workflow_instance(TWO_PHASES, {}, "feat_b")
    store = engine.state_store
    other = f"from chatflow import WorkflowEngine as E; e = E(storage_dir={str(storage_dir)!r})\n"
    schema = json.dumps(TWO_PHASES)
    for change in (
        f"e.cancel({iid!r}, reason='dropped')",  # a status line appended
        f"print(e.start_workflow_instance({schema}, {{}}, 'feat_a'))",  # an id appended
        f"e.start_workflow_instance({schema}, {{}}, 'feat_new')",  # a new feature
        f"e.state_store.delete_instance({iid!r})",  # .link rewritten, one id fewer
        "e.state_store.delete_instance(e.list_instances(feature_id='feat_b')[0].instance_id)",
    ):
        _settle(storage_dir)
        before = store.list_feature_counts()  # cached
        run_python(other + change, storage_dir.parent)
        after = store.list_feature_counts()
        assert after == _fresh_overview(storage_dir)
        assert after != before
    assert [found.feature_id for found in after] == ["feat_a", "feat_new"]
    assert [count.status for count in after[0].counts] == ["created"]


def test_overview_keeps_no_summary_that_read_a_head(storage_dir: Path) -> None:
    # An id with no status line (listed by hand) is counted from its head, which can
    # change without the index files: such a feature is read again on every overview.
    WorkflowEngine(storage_dir=storage_dir).start_workflow_instance(TWO_PHASES, {}, "feat")
    (storage_dir / "features" / "feat.status").write_text("")
    instances, away = storage_dir / "instances", storage_dir.parent / "away"
    instances.rename(away)
    instances.mkdir()
    _settle(storage_dir)
    store = FileStateStore(storage_dir)
    assert store.list_feature_counts()[0].counts == []  # gone: not counted
    instances.rmdir()
    away.rename(instances)  # put back by hand; no index file changed
    assert [count.instances for count in store.list_feature_counts()[0].counts] == [1]


def test_overview_cache_is_bounded(storage_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    for feature in ("feat_a", "feat_b", "feat_c"):
        engine.start_workflow_instance(TWO_PHASES, {}, feature)
    _settle(storage_dir)
    monkeypatch.setattr(file_state_store, "OVERVIEW_CACHE_IDS", 4)  # two one-id features
    store = FileStateStore(storage_dir)
    for _ in range(2):
        assert store.list_feature_counts() == _fresh_overview(storage_dir)
        assert sorted(store._summaries) == ["feat_a", "feat_b"]
        assert store._summary_ids == 4
