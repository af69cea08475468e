"""Terminal habits: colour only on a terminal, quiet broken pipes, bash completion, logs."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import EXECUTABLE, Runner, base_env

ESC = "\033["


def on_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``chatflow`` with stdout and stderr on a pseudo-terminal; return what it wrote."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [EXECUTABLE, *args], cwd=cwd, env=env, stdout=follower, stderr=follower, close_fds=True
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait() == 0
    return b"".join(chunks).decode("utf-8")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_colour_only_on_a_terminal_and_never_with_no_color(run: Runner, tmp_path: Path) -> None:
    run.ok("demo")
    env = base_env(TERM="xterm")
    assert ESC in on_terminal(["list"], tmp_path, env)
    assert ESC not in on_terminal(["list"], tmp_path, {**env, "NO_COLOR": "1"})
    assert ESC not in on_terminal(["--no-color", "list"], tmp_path, env)
    assert ESC not in on_terminal(["list", "--no-color"], tmp_path, env)
    assert ESC not in run.ok("list").stdout  # a pipe is not a terminal
    assert ESC not in run.ok("show", run.json("list")[0]["instance_id"]).stdout


def test_broken_pipe_ends_quietly(run: Runner, tmp_path: Path) -> None:
    run.ok("demo")
    iid = run.json("list")[0]["instance_id"]
    for command in (
        "demo | head -1",
        f"show {iid} --json | head -2",
        f"export {iid} | head -c 10",
    ):
        result = subprocess.run(
            ["bash", "-c", f'"{EXECUTABLE}" {command}'],
            cwd=tmp_path,
            env=base_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stderr == "", (command, result.stderr)
    big = "x" * 100_000  # more than a pipe holds, so the write really fails
    started = run.json("start", str(write_flow(tmp_path)), "--feature", "f", "--var", f"big={big}")
    process = subprocess.Popen(
        [EXECUTABLE, "show", started["instance_id"], "--json"],
        cwd=tmp_path,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)
    process.stdout.close()
    assert process.stderr.read() == b""
    assert process.wait() == 141


def write_flow(folder: Path) -> Path:
    path = folder / "flow.json"
    path.write_text('{"name": "flow", "phases": [{"name": "a"}, {"name": "b"}]}', encoding="utf-8")
    return path


def bash_complete(run: Runner, line: str) -> list[str]:
    """What bash completes for ``line`` with the script from ``chatflow completion bash``."""
    script = run.ok("completion", "bash").stdout
    words = line.split(" ")
    program = (
        f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)}); "
        f"COMP_CWORD={len(words) - 1}; _chatflow; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    env = base_env(PATH=f"{Path(EXECUTABLE).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        ["bash", "-c", program], cwd=run.cwd, env=env, capture_output=True, text=True, check=True
    )
    return [word for word in result.stdout.splitlines() if word]


def test_bash_completion_of_commands_ids_phases_and_features(run: Runner, tmp_path: Path) -> None:
    assert {"list", "show", "approve"} <= set(bash_complete(run, "chatflow "))
    assert bash_complete(run, "chatflow sh") == ["show"]
    assert bash_complete(run, "chatflow show ") == []  # no store: nothing, and none created
    assert not (tmp_path / ".chatflow").exists()
    run.ok("demo", "--feature", "feat_x")
    iid = run.json("list")[0]["instance_id"]
    assert bash_complete(run, "chatflow show ") == [iid]
    assert bash_complete(run, f"chatflow jump {iid} d") == ["design"]
    assert bash_complete(run, "chatflow list --feature ") == ["feat_x"]
    assert "--status" in bash_complete(run, "chatflow list --")
    assert "running" in bash_complete(run, "chatflow list --status ")
    assert "zsh" in bash_complete(run, "chatflow completion ")
    assert bash_complete(run, "chatflow workflows r") == ["register"]
    assert "compdef" in run.ok("completion", "zsh").stdout


def test_vv_logs_waiting_for_a_lock(run: Runner, tmp_path: Path) -> None:
    """The library logs through ``logging.getLogger("chatflow")``; ``-vv`` shows debug."""
    from chatflow.storage.file_lock import FileLock

    iid = run.json("start", str(write_flow(tmp_path)), "--feature", "f")["instance_id"]
    lock = FileLock(tmp_path / ".chatflow" / ".locks" / f"{iid}.lock")
    with lock:
        process = subprocess.Popen(
            [EXECUTABLE, "-vv", "next", iid],
            cwd=tmp_path,
            env=base_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        assert process.stderr.readline().startswith("chatflow: info: opened ")
        line = process.stderr.readline()  # blocks until the child reports it is waiting
        assert line.startswith("chatflow: debug: lock ") and "retrying" in line
    assert process.wait() == 0
    assert run.ok("next", iid).stderr == ""  # without -v: warnings only
    opened = run("-v", "show", iid)
    assert opened.returncode == 0
    assert opened.stderr.startswith("chatflow: info: opened FileStateStore(")


def test_list_imports_only_what_it_uses(run: Runner) -> None:
    """Start-up (bench/bench_cli.py): ``list`` loads neither the other commands' modules
    nor ``logging``, whose set-up waits for the library's first log call."""
    run.ok("demo", "--feature", "f")
    program = (
        "import sys\n"
        "from chatflow.cli import main\n"
        "status = main(['list'])\n"
        "names = ('logging', 'chatflow.cli.act', 'chatflow.cli.admin', 'chatflow.cli.ui')\n"
        "print(status, [name for name in names if name in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=run.cwd,
        env=base_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines()[-1] == "0 []"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
@pytest.mark.parametrize(("answer", "deleted"), [("n", False), ("y", True)])
def test_delete_asks_on_a_terminal(run: Runner, tmp_path: Path, answer: str, deleted: bool) -> None:
    iid = run.json("start", str(write_flow(tmp_path)), "--feature", "f")["instance_id"]
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [EXECUTABLE, "delete", iid],
        cwd=tmp_path,
        env=base_env(),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    while b"[y/N]" not in seen:
        seen += os.read(leader, 1024)
    assert f"delete 1 instance: {iid}".encode() in seen
    os.write(leader, f"{answer}\n".encode())
    assert process.wait() == (0 if deleted else 1)
    os.close(leader)
    assert (run("show", iid).returncode == 3) is deleted


def test_completion_reads_the_store_the_line_names(run: Runner, tmp_path: Path) -> None:
    """Ids come from the store ``--dir`` (in any spelling bash passes), ``ui --store``
    or ``$CHATFLOW_DIR`` names, not from ./.chatflow."""
    store = tmp_path / "elsewhere"
    run.ok("--dir", str(store), "demo", "--feature", "feat_x")
    iid = run.json("--dir", str(store), "list")[0]["instance_id"]
    assert bash_complete(run, "chatflow show ") == []
    assert bash_complete(run, f"chatflow --dir {store} show ") == [iid]
    assert bash_complete(run, f"chatflow --dir={store} show ") == [iid]
    assert bash_complete(run, f"chatflow --dir {store} list --feature ") == ["feat_x"]
    direct = run("__complete", "--dir", str(store), "jump", iid, "")
    assert direct.returncode == 0 and "design" in direct.stdout.split(), direct.stderr
    from_env = run("__complete", "show", "", env=base_env(CHATFLOW_DIR=str(store)))
    assert from_env.stdout.split() == [iid]


def test_a_typo_lists_only_the_commands_people_type(run: Runner) -> None:
    result = run("bogus")
    assert result.returncode == 2
    assert "invalid choice: 'bogus'" in result.stderr and "'list'" in result.stderr
    assert "__complete" not in result.stderr
