"""Store URLs: a registry of schemes; an unknown scheme is an error, never a folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow import StoreURLError, ValidationError, WorkflowEngine
from chatflow.storage import IWorkflowStateStore, MemoryStore, open_store, register_store_scheme
from chatflow.storage._open import is_store_url


@pytest.mark.parametrize("url", ["mysql://x/y", "redis://127.0.0.1/0", "S3://bucket/key"])
def test_unknown_scheme_is_an_error_and_creates_nothing(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="unknown store URL scheme") as caught:
        open_store(url)
    assert "sqlite://" in str(caught.value)  # the message lists what would work
    engine = WorkflowEngine(url)
    with pytest.raises(ValidationError, match="unknown store URL scheme"):
        engine.list_features()
    assert list(tmp_path.iterdir()) == []


def test_migrate_to_an_unknown_scheme_makes_no_folder(tmp_path: Path) -> None:
    source = tmp_path / "src"
    WorkflowEngine(source).start_workflow_instance(
        {"name": "w", "phases": [{"name": "a"}]}, {}, "feat_a"
    )
    result = subprocess.run(
        [sys.executable, "-m", "chatflow", "migrate", "--from", str(source), "--to", "mysql://x/y"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "unknown store URL scheme 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_a_registered_scheme_opens_its_store() -> None:
    opened: list[tuple[str, bool]] = []

    def opener(url: str, durable: bool) -> IWorkflowStateStore:
        opened.append((url, durable))
        return MemoryStore()

    register_store_scheme("test-mem", opener)
    engine = WorkflowEngine("TEST-MEM://anything", durable=False)
    assert engine.list_features() == []
    assert isinstance(engine.state_store, MemoryStore)
    assert opened == [("TEST-MEM://anything", False)]


@pytest.mark.parametrize("scheme", ["", "1abc", "a b", "é"])
def test_invalid_scheme_names_are_refused(scheme: str) -> None:
    with pytest.raises(ValidationError, match="invalid URL scheme"):
        register_store_scheme(scheme, lambda url, durable: MemoryStore())


@pytest.mark.parametrize(
    ("target", "is_url"),
    [
        ("sqlite:///x.db", True),
        ("mysql://x", True),
        (".chatflow", False),
        ("./dir://x", False),  # not a scheme before '://': a (strange) folder path
        (Path("memory://"), False),  # a Path is always a folder
        (os.path.join("a", "b"), False),
    ],
)
def test_what_counts_as_a_url(target: str, is_url: bool) -> None:
    assert is_store_url(target) is is_url


_NOT_STORES = ["mysql://x/y", "sqlite:", "sqlite:state.db", "sqlite://", "sqlite:///", "memory:"]


@pytest.mark.parametrize("target", _NOT_STORES)
def test_a_target_that_names_no_store_is_a_store_url_error(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreURLError):
        open_store(target)
    with pytest.raises(StoreURLError):
        WorkflowEngine(target).list_features()
    assert list(tmp_path.iterdir()) == []  # never a folder named "sqlite:state.db"


@pytest.mark.parametrize(
    "words",
    [
        ["--dir", "{t}", "list"],
        ["--dir", "{t}", "start", "wf.json", "--feature", "feat_a"],
        ["ui", "--store", "{t}"],
        ["mcp", "--store", "{t}"],
        ["migrate", "--from", "{t}", "--to", "sqlite:///x.db"],
    ],
)
@pytest.mark.parametrize("target", ["mysql://x/y", "sqlite:state.db"])
def test_the_cli_calls_a_target_that_names_no_store_a_usage_error(
    words: list[str], target: str, tmp_path: Path
) -> None:
    (tmp_path / "wf.json").write_text('{"name": "w", "phases": [{"name": "a"}]}')
    result = subprocess.run(
        [sys.executable, "-m", "chatflow", *(w.format(t=target) for w in words)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr  # usage error (docs/cli.md)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("chatflow: error: ")
    assert "sqlite://" in result.stderr  # says what would work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wf.json"]


def test_chatflow_dir_naming_no_store_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHATFLOW_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "chatflow", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**env, "CHATFLOW_DIR": "mysql://db/x"},
        timeout=60,
    )
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr


def test_a_file_store_target_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for words, code in ((["list"], 3), (["demo"], 1)):
        result = subprocess.run(
            [sys.executable, "-m", "chatflow", "--dir", f"file://{tmp_path}/afile", *words],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == code, result.stderr
        assert result.stderr.count("\n") == 1 and "afile" in result.stderr
        assert "not a folder" in result.stderr
