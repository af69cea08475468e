"""Data written by ChatFlow 1.x (one whole-state document per instance) opens and
upgrades in place, on every persistent store, from a fixture checked into ``tests/``."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chatflow import WorkflowEngine, WorkflowInstanceState
from chatflow.storage import FileStateStore, IWorkflowStateStore
from chatflow.storage._log import sha256_hex
from chatflow.storage._migrations import MIGRATIONS as STEPS
from chatflow.storage._migrations import statements
from chatflow.storage.postgres import PostgresStore, migrations
from chatflow.storage.sqlite import MIGRATIONS, SQLiteStore

FIXTURE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "chatflow_1x_store.json").read_text("utf-8")
)
SUFFIXES = (".prompt.md", ".ai_response.md", ".json")


def old_artifacts() -> dict[tuple[str, str], dict[str, Any]]:
    """(instance, task) -> {record, prompt, response} as 1.x stored them."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for key, text in FIXTURE["artifacts"].items():
        iid, name = key.split("/")
        for suffix, field in zip(SUFFIXES, ("prompt", "response", "record"), strict=True):
            if name.endswith(suffix):
                value = json.loads(text) if field == "record" else text
                found.setdefault((iid, name[: -len(suffix)]), {})[field] = value
    return found


def write_file_store(folder: Path) -> None:
    for iid, text in FIXTURE["instances"].items():
        path = folder / "instances" / f"{iid}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for feature, text in FIXTURE["features"].items():
        path = folder / "features" / f"{feature}.link"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="ascii")
    for key, text in FIXTURE["artifacts"].items():
        iid, name = key.split("/")
        path = folder / "instances" / iid / "tasks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))


def old_rows() -> list[tuple[Any, ...]]:
    rows = []
    for feature, text in FIXTURE["features"].items():
        for iid in text.split():
            state = json.loads(FIXTURE["instances"][iid])
            columns = ("status", "current_phase", "created_at", "updated_at", "version")
            rows.append((iid, feature, *(state[c] for c in columns), json.dumps(state)))
    return rows


def artifact_rows(encode: Any) -> list[tuple[Any, ...]]:
    return [
        (
            iid,
            task,
            json.loads(FIXTURE["instances"][iid])["feature_id"],
            json.dumps(a["record"]),
            encode(a["prompt"]),
            encode(a["response"]),
            sha256_hex(a["prompt"]),
            sha256_hex(a["response"]),
        )
        for (iid, task), a in old_artifacts().items()
    ]


def check_upgraded(store: IWorkflowStateStore) -> None:
    engine = WorkflowEngine(store=store)
    for iid, text in FIXTURE["instances"].items():
        state = engine.get_workflow_instance_status(iid)
        assert state == WorkflowInstanceState.from_dict(json.loads(text))
        assert engine.verify(iid) is None
    for (iid, task), old in old_artifacts().items():
        assert store.load_task_artifacts(iid, task) == old
    assert sorted(store.list_features()) == sorted(FIXTURE["features"])
    rollup = engine.get_feature_status("feat_user_auth")
    assert (rollup["total_instances"], rollup["failed_count"]) == (2, 1)
    for feature, text in FIXTURE["features"].items():
        assert store.list_instances_by_feature(feature) == text.split()
    first = FIXTURE["features"]["feat_user_auth"].split()[0]
    assert engine.trigger_next_step(first).status == "completed"  # keeps working
    engine.record_task_artifacts(first, "again", "again", phase_name="design")
    assert engine.get_task_artifacts(first, "design", version=1).prompt == "# design prompt"  # type: ignore[union-attr]
    assert engine.verify(first) is None


def test_a_1x_folder_upgrades_in_place(tmp_path: Path) -> None:
    write_file_store(tmp_path / ".chatflow")
    check_upgraded(FileStateStore(tmp_path / ".chatflow"))
    check_upgraded_again = WorkflowEngine(storage_dir=tmp_path / ".chatflow")
    assert check_upgraded_again.verify(next(iter(FIXTURE["instances"]))) is None


def write_sqlite_store(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.executemany(
            "INSERT INTO instances (instance_id, feature_id, status, current_phase, created_at, "
            "updated_at, version, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            old_rows(),
        )
        conn.executemany(
            "INSERT INTO task_artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", artifact_rows(str)
        )


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_1x_sqlite_file_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    write_sqlite_store(path)
    store = SQLiteStore(path)
    try:
        check_upgraded(store)
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # the runner recorded each step
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(STEPS)


def test_a_1x_sqlite_file_is_read_without_a_write_until_a_write_or_doctor_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    write_sqlite_store(path)
    before = _files(tmp_path)
    store = SQLiteStore(path)
    engine = WorkflowEngine(store=store)
    for iid, text in FIXTURE["instances"].items():  # every read, from the 1.x rows
        assert engine.get_workflow_instance_status(iid) == WorkflowInstanceState.from_dict(
            json.loads(text)
        )
        assert engine.verify(iid) is None
    for (iid, task), old in old_artifacts().items():
        assert store.load_task_artifacts(iid, task) == old
    assert engine.get_feature_status("feat_user_auth")["total_instances"] == 2
    store.list_feature_counts()
    assert store.needs_upgrade and not caplog.records
    store.close()
    assert _files(tmp_path) == before, "a read wrote to a 1.x database"

    target = f"sqlite:///{path}"
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}
    chatflow = [sys.executable, "-m", "chatflow", "--dir", target, "doctor"]
    listed = subprocess.run(chatflow, capture_output=True, text=True, env=env, check=False)
    assert listed.returncode == 1 and "old_database" in listed.stdout, listed.stderr
    assert _files(tmp_path) == before  # doctor only reads
    fixed = subprocess.run(
        [*chatflow, "--fix"], capture_output=True, text=True, env=env, check=False
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "upgraded" in fixed.stderr and "1.x" in fixed.stderr  # logged as a warning
    upgraded = SQLiteStore(path)
    try:
        assert not upgraded.needs_upgrade
        check_upgraded(upgraded)
    finally:
        upgraded.close()


def test_a_1x_sqlite_file_is_upgraded_by_its_first_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    write_sqlite_store(path)
    store = SQLiteStore(path)
    try:
        first = FIXTURE["features"]["feat_user_auth"].split()[0]
        assert store.needs_upgrade
        WorkflowEngine(store=store).trigger_next_step(first)
        assert not store.needs_upgrade
        assert any("1.x" in r.getMessage() for r in caplog.records)
    finally:
        store.close()
    again = SQLiteStore(path)
    try:
        assert not again.needs_upgrade and again.load_state(first) is not None
    finally:
        again.close()


def test_a_1x_postgres_schema_upgrades_in_place(pg_url: str, pg_schema: str) -> None:
    import psycopg

    schema = f"{pg_schema}_old"
    quoted = f'"{schema}"'
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {quoted}")
        conn.execute(
            f"CREATE TABLE {quoted}.schema_migrations (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for statement in migrations(quoted)[0]:
            conn.execute(statement)
        conn.execute(f"INSERT INTO {quoted}.schema_migrations (version) VALUES (1)")
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {quoted}.instances (instance_id, feature_id, status, "
                "current_phase, created_at, updated_at, version, state) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                old_rows(),
            )
            cursor.executemany(
                f"INSERT INTO {quoted}.task_artifacts VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                artifact_rows(lambda text: text.encode("utf-8")),
            )
    store = PostgresStore(pg_url, schema=schema)
    try:
        check_upgraded(store)
    finally:
        store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the runner recorded each step
        rows = conn.execute(f"SELECT version FROM {quoted}.schema_migrations ORDER BY 1")
        assert [row[0] for row in rows] == list(range(1, len(STEPS) + 1))


def test_both_sql_stores_run_one_list_of_steps() -> None:
    """One ordered list, each step in both dialects; each store's statements are it."""
    assert all(set(step.statements) == {"sqlite", "postgresql"} for step in STEPS)
    assert statements("sqlite", "") == MIGRATIONS
    assert migrations('"s"') == statements("postgresql", '"s".')
    assert len(MIGRATIONS) == len(migrations('"s"')) == len(STEPS)


@pytest.mark.parametrize("kind", ["file"])
def test_fixture_is_what_1x_wrote(kind: str) -> None:
    """Guard against editing the fixture into the new format by mistake."""
    for text in FIXTURE["instances"].values():
        assert "history" in json.loads(text)
