"""The file store's surroundings: planted symlinks and FIFOs are refused with a clear
error (never followed, never waited on), and reading needs no write access at all."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow import StorageError, WorkflowEngine
from chatflow.storage import FileStateStore

pytestmark = pytest.mark.skipif(os.name == "nt", reason="symlinks and FIFOs are POSIX here")

SCHEMA = {"name": "w", "phases": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}

# Runs chatflow commands in one process (each as `chatflow --dir FOLDER ...`) and prints
# each one's exit status and its output, as JSON.
COMMANDS = """
import contextlib, io, json, sys
from chatflow.cli.main import main
results = []
for command in json.loads(sys.argv[2]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        status = main(["--dir", sys.argv[1], *command])
    results.append([status, err.getvalue()])
print(json.dumps(results))
"""

# Makes every way of writing a file fail (read-only filesystem, full disk) and records
# each attempt, then runs COMMANDS.
NO_WRITES = (
    """
import builtins, errno, io, os, sys
CODE = int(os.environ["NO_WRITES_ERRNO"])
attempts = []
def refuse(what, path):
    attempts.append(f"{what} {path}")
    raise OSError(CODE, os.strerror(CODE), str(path))
real_open, real_mkdir, real_builtin_open = os.open, os.mkdir, builtins.open
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
def no_write_open(path, flags, *args, **kwargs):
    if flags & WRITE:
        refuse("open", path)
    return real_open(path, flags, *args, **kwargs)
def no_mkdir(path, *args, **kwargs):
    if os.path.isdir(path):
        raise FileExistsError(errno.EEXIST, "exists", str(path))
    refuse("mkdir", path)
def no_write_builtin_open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+"):
        refuse("open", file)
    return real_builtin_open(file, mode, *args, **kwargs)
os.open, os.mkdir = no_write_open, no_mkdir
builtins.open = io.open = no_write_builtin_open
for name in ("replace", "rename", "link", "unlink", "truncate", "ftruncate", "utime", "symlink"):
    setattr(os, name, lambda *a, _name=name, **k: refuse(_name, a[0] if a else ""))
import atexit
atexit.register(lambda: print("ATTEMPTS", attempts, file=sys.stderr))
"""
    + COMMANDS
)


def run_commands(
    folder: Path, commands: list[list[str]], code: str = COMMANDS, **env: str
) -> list[tuple[int, str]]:
    child = subprocess.run(
        [sys.executable, "-c", code, str(folder), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=60,  # a FIFO would hang forever: fail instead
        env={**os.environ, **env},
        check=True,
    )
    return [(status, err) for status, err in json.loads(child.stdout.splitlines()[-1])]


@pytest.fixture
def store_with_instance(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / ".chatflow"
    engine = WorkflowEngine(storage_dir=folder)
    iid = engine.start_workflow_instance(SCHEMA, {}, "feat_x")
    engine.trigger_next_step(iid, {"n": 1})
    engine.record_task_artifacts(iid, "prompt", "response")
    return folder, iid


@pytest.mark.parametrize("name", ["instances", "features", ".locks"])
def test_a_planted_folder_symlink_is_refused(
    store_with_instance: tuple[Path, str], tmp_path: Path, name: str
) -> None:
    folder, _ = store_with_instance
    moved = tmp_path / "elsewhere"
    (folder / name).rename(moved)
    (folder / name).symlink_to(moved, target_is_directory=True)
    with pytest.raises(StorageError, match="symlink"):
        FileStateStore(folder)
    [(status, err)] = run_commands(folder, [["list"]])
    assert status == 1 and "symlink" in err and "Traceback" not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("which", ["head", "log", "link", "status", "prompt", "repairs"])
def test_a_fifo_in_place_of_a_stored_file_is_refused_not_waited_on(
    store_with_instance: tuple[Path, str], which: str
) -> None:
    folder, iid = store_with_instance
    path = {
        "head": folder / "instances" / f"{iid}.json",
        "log": folder / "instances" / iid / "events.jsonl",
        "link": folder / "features" / "feat_x.link",
        "status": folder / "features" / "feat_x.status",
        "prompt": folder / "instances" / iid / "tasks" / "b.v1.prompt.md",
        "repairs": folder / "repairs.jsonl",
    }[which]
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    commands = [["list"], ["show", iid], ["verify", "--all"], ["doctor"], ["next", iid]]
    results = run_commands(folder, commands)  # returns: nothing waited on the FIFO
    for status, err in results:
        assert "Traceback" not in err
        if status != 0:
            assert "not a regular file" in err, err
    assert any(status != 0 for status, _ in results) or which == "repairs"


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_reading_and_verifying_need_no_write_access(
    store_with_instance: tuple[Path, str], code: int
) -> None:
    folder, iid = store_with_instance
    engine = WorkflowEngine(storage_dir=folder)
    head = folder / "instances" / f"{iid}.json"
    behind = head.read_bytes()
    engine.trigger_next_step(iid, {"n": 2})
    head.write_bytes(behind)  # a crash left the head behind: reads must not repair it
    commands = [
        ["list"],
        ["features"],
        ["show", iid],
        ["history", iid],
        ["artifacts", iid, "b"],
        ["verify", "--all"],
        ["verify", iid],
    ]
    child = subprocess.run(
        [sys.executable, "-c", NO_WRITES, str(folder), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_WRITES_ERRNO": str(code)},
        check=True,
    )
    results = json.loads(child.stdout.splitlines()[-1])
    assert [status for status, _ in results] == [0] * len(commands), results
    assert "ATTEMPTS []" in child.stderr, child.stderr  # not one write was tried
