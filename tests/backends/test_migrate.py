"""Moving between stores: file -> SQLite -> PostgreSQL -> file keeps everything, verified."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from chatflow import CorruptStateError, ValidationError
from chatflow.cli import main
from chatflow.storage import FileStateStore, IWorkflowStateStore, MemoryStore
from chatflow.storage.migrate import display_name, migrate
from chatflow.testing import increment, make_state
from store_harness import PostgresHarness


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fill(store: IWorkflowStateStore) -> None:
    """Two features, instances in several states (ids not in creation order), artifacts."""
    for number, iid in enumerate(["wfi_zz", "wfi_aa", "wfi_mm"]):
        status = ["completed", "running", "paused"][number]
        store.create_state(make_state("feat_auth", instance_id=iid, status=status))
    store.create_state(make_state("feat_docs", instance_id="wfi_doc", events=[{"k": "x"}]))
    store.update_state("wfi_aa", increment)
    for iid, phase in [("wfi_zz", "design"), ("wfi_zz", "implementation"), ("wfi_doc", "a")]:
        prompt, response = f"# {phase}\nprompt é \x00", f"response to {phase}\n"
        record = {
            "phase_name": phase,
            "status": "completed",
            "started_at": 1.5,
            "ended_at": 2.5,
            "prompt_checksum": _sha(prompt),
            "response_checksum": _sha(response),
        }
        feature = "feat_docs" if iid == "wfi_doc" else "feat_auth"
        store.save_task_artifacts(feature, iid, phase, record, prompt, response)
    store.put_schema("flow", "1.1", "h11", {"name": "flow", "title": "é \x00"})


def _snapshot(store: IWorkflowStateStore) -> dict[str, Any]:
    """Everything a store holds, in a comparable form."""
    features = {
        feature: [
            (
                store.load_state(iid),
                {p: store.load_task_artifacts(iid, p) for p in store.list_task_phases(iid)},
            )
            for iid in store.list_instances_by_feature(feature)
        ]
        for feature in store.list_features()
    }
    rows = store.list_schemas()
    schemas = sorted((r.name, str(r.version), r.content_hash, r.schema) for r in rows)
    return {"features": features, "registered schemas": schemas}


def test_round_trip_file_sqlite_postgres_file_is_identical(
    tmp_path: Path, pg_harness: PostgresHarness
) -> None:
    origin = FileStateStore(tmp_path / "origin")
    _fill(origin)
    pg_url = f"{pg_harness.url}?schema={pg_harness.schema}"
    hops = [str(tmp_path / "origin"), f"sqlite:///{tmp_path}/state.db", pg_url]
    hops.append(str(tmp_path / "back"))
    for source, target in itertools.pairwise(hops):
        report = migrate(source, target)
        assert (report.instances_copied, report.artifacts_copied) == (4, 3)
        assert report.conflicts == []
    assert _snapshot(FileStateStore(tmp_path / "back")) == _snapshot(origin)


def test_re_running_copies_nothing_twice(tmp_path: Path) -> None:
    source, target = str(tmp_path / "src"), f"sqlite:///{tmp_path}/state.db"
    _fill(FileStateStore(source))
    migrate(source, target)
    again = migrate(source, target)
    assert (again.instances_copied, again.instances_updated, again.instances_unchanged) == (0, 0, 4)
    assert (again.artifacts_copied, again.artifacts_unchanged) == (0, 3)
    FileStateStore(source).update_state("wfi_mm", increment)
    third = migrate(source, target)
    assert (third.instances_copied, third.instances_updated) == (0, 1)


def test_an_instance_changed_in_the_target_is_a_conflict_and_kept(tmp_path: Path) -> None:
    source, target = MemoryStore(), MemoryStore()
    _fill(source)
    migrate(source, target)
    changed = target.update_state("wfi_aa", increment)
    report = migrate(source, target)
    assert report.conflicts == ["wfi_aa"]
    assert target.load_state("wfi_aa") == changed


def test_a_source_whose_texts_do_not_match_its_log_is_refused() -> None:
    source, target = MemoryStore(), MemoryStore()
    _fill(source)
    loaded = source.load_task_artifacts("wfi_doc", "a")
    assert loaded is not None
    edited = json.dumps([loaded["record"], "edited", loaded["response"]])
    source._instances["wfi_doc"].texts[("a", 1)] = edited  # damage behind the store's back
    with pytest.raises(CorruptStateError, match=r"wfi_doc at event 2 .*prompt does not match"):
        migrate(source, target)
    assert target.load_state("wfi_doc") is None


def test_a_missing_source_is_refused_not_created(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        migrate(tmp_path / "typo", f"sqlite:///{tmp_path}/state.db")
    assert not (tmp_path / "typo").exists()
    with pytest.raises(ValidationError, match="does not exist"):
        migrate(f"sqlite:///{tmp_path}/none.db", tmp_path / "out")


def test_passwords_are_masked_in_names() -> None:
    assert display_name("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    assert display_name("postgresql://u@h/db?schema=x") == "postgresql://u@h/db?schema=x"


def test_cli_migrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(FileStateStore(tmp_path / "src"))
    target = f"sqlite:///{tmp_path}/state.db"
    assert main(["migrate", "--from", str(tmp_path / "src"), "--to", target]) == 0
    out = capsys.readouterr().out
    assert "4 instances copied" in out
    assert "3 artifacts copied" in out
    assert main(["migrate", "--from", str(tmp_path / "nope"), "--to", target]) == 3  # not found
    err = capsys.readouterr().err.strip()
    assert err.startswith("chatflow: error: source") and "\n" not in err
