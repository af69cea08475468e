"""Schemas from JSON/YAML files, found by name and version; instances pin their schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import chatflow
from chatflow import SchemaError, SchemaNotFoundError, ValidationError, WorkflowEngine, load_schema
from chatflow.core.schema import schema_hash
from repo_paths import FIXTURES


def schema(version: Any, *phases: str) -> dict[str, Any]:
    return {"name": "flow", "version": version, "phases": [{"name": p} for p in phases]}


def write_json(folder: Path, name: str, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_load_json_and_yaml(tmp_path: Path) -> None:
    json_file = write_json(tmp_path, "a.json", schema(1, "x", "y"))
    yaml_file = tmp_path / "b.yaml"
    yaml_file.write_text("name: flow\nversion: 1\nphases:\n  - name: x\n  - name: y\n")
    assert load_schema(json_file) == load_schema(yaml_file) == schema(1, "x", "y")


def test_load_reports_file_and_problems(tmp_path: Path) -> None:
    bad = write_json(tmp_path, "bad.json", {"name": "f", "phases": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(SchemaError) as caught:
        load_schema(bad)
    assert str(bad) in str(caught.value)
    assert caught.value.problems == [f"{bad}: phases[1].name: duplicate phase name 'a'"]  # type: ignore[attr-defined]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SchemaError, match=r"broken.json:1:2: not valid JSON"):
        load_schema(broken)
    dated = tmp_path / "dated.yaml"
    dated.write_text("name: f\nphases:\n  - name: a\n    due: 2024-01-01\n")
    with pytest.raises(SchemaError, match="date"):  # YAML dates are not JSON
        load_schema(dated)


def test_yaml_without_pyyaml_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail
    path = tmp_path / "a.yaml"
    path.write_text("name: f\n")
    with pytest.raises(Exception, match=r"chatflow-engine\[yaml\]"):
        load_schema(path)


def test_find_by_name_latest_version_and_pin(tmp_path: Path) -> None:
    user_dir = tmp_path / "workflows"
    write_json(user_dir, "v1.json", schema(1, "a"))
    write_json(user_dir, "v2.json", schema("2.0", "a", "b"))
    write_json(user_dir, "v10.json", schema("2.10", "a", "b", "c"))
    engine = WorkflowEngine(tmp_path / ".chatflow", schema_dirs=[user_dir])
    assert [(w.name, w.version) for w in engine.list_workflows()] == [
        ("flow", 1),
        ("flow", "2.0"),
        ("flow", "2.10"),
    ]
    latest = engine.start_workflow_instance(initial_context={}, feature_id="f", schema_name="flow")
    pinned = engine.start_workflow_instance(None, {}, "f", schema_name="flow", schema_version=1)
    state = engine.get_workflow_instance_status(latest)
    assert state is not None and len(state.workflow_schema["phases"]) == 3
    # Editing the file later never changes a running instance.
    write_json(user_dir, "v10.json", schema("2.10", "a", "z"))
    assert engine.get_schema("flow")["phases"][1] == {"name": "z"}
    state = engine.trigger_next_step(latest)
    assert state.current_phase == "b"
    assert engine.trigger_next_step(pinned).status == "completed"
    started = engine.get_workflow_history(latest)[0]
    assert started.data["schema_version"] == "2.10"
    assert started.data["schema_hash"] == schema_hash(schema("2.10", "a", "b", "c"))


def test_storage_schemas_folder_and_registration(tmp_path: Path) -> None:
    storage = tmp_path / ".chatflow"
    write_json(storage / "schemas", "s.json", schema(1, "stored"))
    engine = WorkflowEngine(storage)
    assert engine.get_schema("flow")["phases"] == [{"name": "stored"}]
    info = engine.register_schema(schema(1, "registered"))  # registered wins over files
    assert (info.name, info.version, info.source) == ("flow", 1, "registered")
    assert engine.get_schema("flow", 1)["phases"] == [{"name": "registered"}]
    engine.register_schema(write_json(tmp_path, "other.json", {**schema(3, "p"), "name": "o"}))
    assert [w.name for w in engine.list_workflows()] == ["flow", "o"]


def test_not_found_names_the_broken_files(tmp_path: Path) -> None:
    folder = tmp_path / "wf"
    write_json(folder, "broken.json", {"name": "flow", "phases": []})
    engine = WorkflowEngine(tmp_path / ".chatflow", schema_dirs=[folder])
    with pytest.raises(SchemaNotFoundError, match=r"broken.json") as caught:
        engine.get_schema("flow")
    assert isinstance(caught.value, LookupError)
    assert engine.list_workflows() == []
    assert len(engine.schemas.problems()) == 1
    with pytest.raises(SchemaNotFoundError):
        engine.get_schema("flow", version=7)


def test_start_arguments_are_checked(tmp_path: Path) -> None:
    engine = WorkflowEngine(tmp_path / ".chatflow")
    engine.register_schema(schema(1, "a"))
    with pytest.raises(ValidationError, match="not both"):
        engine.start_workflow_instance(schema(1, "a"), {}, "f", schema_name="flow")
    with pytest.raises(ValidationError, match="invalid schema version"):
        engine.start_workflow_instance(None, {}, "f", schema_name="flow", schema_version="x")
    with pytest.raises(ValidationError, match="automation_level"):
        engine.start_workflow_instance(schema(1, "a"), {}, "f", automation_level=101)
    path = write_json(tmp_path, "file.json", schema(1, "from_file"))
    iid = engine.start_workflow_instance(path, {}, "f")  # a Path is read as a schema file
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.current_phase == "from_file"


def test_registered_schemas_outlive_the_process_and_reach_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatflow.cli import main

    storage = tmp_path / ".chatflow"
    WorkflowEngine(storage).register_schema(schema("2.1", "a", "b"))
    later = WorkflowEngine(storage)  # a new engine: nothing cached in memory
    assert [(w.name, w.version, w.source) for w in later.list_workflows()] == [
        ("flow", "2.1", "registered")
    ]
    assert main(["--dir", str(storage), "workflows"]) == 0
    assert "flow" in capsys.readouterr().out
    assert main(["--dir", str(storage), "demo"]) == 0
    capsys.readouterr()
    assert main(["--dir", str(storage), "workflows", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(w["name"], w["version"]) for w in listed] == [("code_generation", 1), ("flow", "2.1")]


def test_a_damaged_stored_schema_is_reported_not_used(tmp_path: Path) -> None:
    storage = tmp_path / ".chatflow"
    engine = WorkflowEngine(storage)
    engine.register_schema(schema(1, "a"))
    (stored,) = (storage / ".schemas").glob("*.json")
    data = json.loads(stored.read_text())
    data["schema"]["phases"] = []
    stored.write_text(json.dumps(data))
    fresh = WorkflowEngine(storage)
    with pytest.raises(SchemaNotFoundError, match="stored schema 'flow' version 1"):
        fresh.get_schema("flow")
    stored.write_text("{broken")
    with pytest.raises(chatflow.CorruptStateError, match="unreadable"):
        fresh.list_workflows()


# Under 400 bytes of YAML naming 9**6 (531,441) strings.
ALIAS_BOMB = FIXTURES / "alias_bomb.yaml"


def test_a_yaml_alias_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    """A few hundred bytes may name millions of values: the schema's size as JSON is
    bounded (``MAX_SCHEMA_BYTES``) before anything walks it, and nothing is stored."""
    pytest.importorskip("yaml")
    path = ALIAS_BOMB
    assert path.stat().st_size < 400
    engine = WorkflowEngine(storage_dir=tmp_path / "store", durable=False)
    with pytest.raises(SchemaError, match="larger than 1,048,576 bytes"):
        engine.register_schema(path)
    with pytest.raises(SchemaError, match="larger than"):
        load_schema(path)
    import yaml

    with pytest.raises(SchemaError, match="larger than"):  # the same from a dict
        engine.start_workflow_instance(yaml.safe_load(path.read_text()), {}, "feat_bomb")
    assert engine.list_workflows() == []
    assert engine.list_features() == []


def test_schema_files_are_bounded_in_size_and_in_what_they_hold(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    phases = [{"name": "a", "description": "x" * 1_100_000}]
    big.write_text(json.dumps({"name": "big", "phases": phases}), encoding="utf-8")
    with pytest.raises(SchemaError, match="larger than 1,048,576 bytes"):
        load_schema(big)
    huge_number = tmp_path / "number.json"
    huge_number.write_text('{"name": "n", "version": ' + "1" * 5000 + "}", encoding="utf-8")
    with pytest.raises(SchemaError, match="holds a value that cannot be read"):
        load_schema(huge_number)


def test_a_version_names_one_definition(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Registering the same schema again changes nothing; other content under the same
    name and version is refused with ``replace=False`` (naming both hashes), and
    replaced with a warning by default (the library's behaviour before the rule)."""
    engine = WorkflowEngine(tmp_path / ".chatflow", durable=False)
    first, changed = schema(1, "a"), schema(1, "a", "b")
    engine.register_schema(first)
    engine.register_schema(first, replace=False)
    with pytest.raises(ValidationError, match="already registered with other content") as caught:
        engine.register_schema(changed, replace=False)
    message = str(caught.value)
    assert schema_hash(first)[:16] in message and schema_hash(changed)[:16] in message
    assert engine.get_schema("flow", 1) == first
    with caplog.at_level("WARNING", logger="chatflow"):
        engine.register_schema(changed)
    assert schema_hash(first)[:16] in caplog.text
    assert engine.get_schema("flow", 1) == changed
