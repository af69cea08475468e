"""The default file store: layout, import-time behaviour, freshness, durability, failures."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import chatflow
from chatflow import CorruptStateError, StorageError, WorkflowEngine
from chatflow.storage import FileStateStore
from chatflow.storage.file_state_store import encode_state

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
    assert '"k": "中文"' in text  # readable, not \\u-escaped
    assert json.loads(text)["instance_id"] == first
    tasks = storage_dir / "instances" / first / "tasks"
    assert sorted(p.name for p in tasks.iterdir()) == ["a.ai_response.md", "a.json", "a.prompt.md"]
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
    (storage_dir / "features" / "feat.link").write_text("wfi_gone\n")
    with pytest.raises(CorruptStateError, match="wfi_gone"):
        engine.get_feature_status("feat")


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


def test_mtime_strictly_increases_so_signatures_differ(storage_dir: Path) -> None:
    """Each write must move mtime past the last version's even when the clock does not:
    the file is stamped an hour ahead before every write, as a coarse or lagging clock
    would leave it, so only the store's own bump can make the new mtime larger."""
    store = FileStateStore(storage_dir, durable=False)
    state: dict[str, Any] = {
        "instance_id": "wfi_x",
        "feature_id": "f",
        "status": "running",
        "current_phase": "a",
    }
    store.create_state(state)
    path = storage_dir / "instances" / "wfi_x.json"
    ahead = time.time_ns() + 3600 * 10**9
    for _ in range(5):
        os.utime(path, ns=(ahead, ahead))
        store.update_state("wfi_x", lambda s: s)
        assert path.stat().st_mtime_ns > ahead
        ahead = path.stat().st_mtime_ns


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
    engine.trigger_next_step(iid)
    assert len(calls) == (2 if durable else 0)  # the file, then its folder


def test_failed_write_leaves_state_and_folder_clean(
    engine: WorkflowEngine, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = engine.start_workflow_instance(TWO_PHASES, {}, "feat")
    before = engine.get_workflow_instance_status(iid)

    def disk_full(src: Any, dst: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
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


def test_encoding_puts_one_history_entry_per_line() -> None:
    state = {"instance_id": "i", "history": [{"phase": "a"}, {"phase": "b"}]}
    lines = encode_state(state).decode().splitlines()
    assert '    {"phase": "a"},' in lines and '    {"phase": "b"}' in lines
    assert json.loads(encode_state(state)) == state


def _entry_store(storage_dir: Path) -> tuple[FileStateStore, Path]:
    store = FileStateStore(storage_dir, durable=False)
    store.create_state(
        {
            "instance_id": "wfi_x",
            "feature_id": "f",
            "status": "running",
            "current_phase": "a",
            "history": [{"n": 0, "note": "first"}],
        }
    )
    return store, storage_dir / "instances" / "wfi_x.json"


def test_incremental_encoding_matches_a_full_encoding(storage_dir: Path) -> None:
    store, path = _entry_store(storage_dir)

    def step(state: dict[str, Any]) -> dict[str, Any]:
        state["history"][-1]["closed"] = True  # in place, on the lent state
        state["history"].append({"n": len(state["history"]), "note": "x"})
        state["history"][0] = {**state["history"][0], "note": f"edited {len(state['history'])}"}
        state["events"] = [*state.get("events", []), {"e": len(state["history"])}]
        return state

    for _ in range(30):
        written = store.update_state("wfi_x", step)
    assert path.read_bytes() == encode_state(written)
    assert FileStateStore(storage_dir).load_state("wfi_x") == written


def test_failed_mutation_leaves_no_trace_in_cache_or_file(storage_dir: Path) -> None:
    store, path = _entry_store(storage_dir)
    store.update_state("wfi_x", lambda s: s)  # this process now holds a lendable copy
    before = path.read_bytes()

    def vandalise_then_fail(state: dict[str, Any]) -> dict[str, Any]:
        state["history"][0]["note"] = "vandalised"
        state["status"] = "failed"
        raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        store.update_state("wfi_x", vandalise_then_fail)
    assert path.read_bytes() == before
    loaded = store.load_state("wfi_x")
    assert loaded is not None and loaded["history"][0]["note"] == "first"
    written = store.update_state("wfi_x", lambda s: s)
    assert written["history"][0]["note"] == "first" and written["status"] == "running"
