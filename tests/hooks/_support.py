"""Run the ``chatflow`` command in a real git repository (in this process, as the CLI
tests do; ``chatflow_process`` for the real executable), and Claude Code hook payloads
shaped as its hooks reference documents them (common fields: session_id,
transcript_path, cwd, permission_mode, hook_event_name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cli_runner import run_in_process

SRC = Path(__file__).resolve().parents[2] / "src"

WORKFLOW: dict[str, Any] = {
    "name": "hooked",
    "version": 1,
    "phases": [
        {
            "name": "plan",
            "title": "Plan the change",
            "template": "Plan {{ goal }} for {{ team }}.",
            "exit_requires": {"artifacts": ["prompt", "response"]},
        },
        {"name": "review", "exit_requires": {"approvals": 1}},
        {"name": "build", "requires_approval": True},
    ],
}


def env(**extra: str) -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if k not in ("CHATFLOW_DIR", "NO_COLOR")}
    found["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])
    found.update(extra)
    return found


def chatflow(
    cwd: Path, *args: str, stdin: str = "", extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``chatflow ARGS`` in this process (``cli_runner``): what a subprocess would give,
    without an interpreter's start-up per call."""
    return run_in_process(args, cwd=cwd, env=env(**(extra_env or {})), stdin=stdin)


def chatflow_process(cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m chatflow ARGS`` as its own process, as Claude Code runs a hook; one
    that blocks fails the test (``TimeoutExpired``) instead of hanging it."""
    return subprocess.run(
        [sys.executable, "-m", "chatflow", *args],
        cwd=cwd,
        env=env(),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def ok(cwd: Path, *args: str) -> str:
    result = chatflow(cwd, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def git_repository(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    (folder / "src").mkdir()
    return folder


def payload(event: str, cwd: Path, session: str = "sess-1", **fields: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": str(cwd / ".transcript.jsonl"),
        "cwd": str(cwd),
        "permission_mode": "default",
        "hook_event_name": event,
        **fields,
    }


def hook(cwd: Path, event: str, body: Any) -> subprocess.CompletedProcess[str]:
    """``chatflow hook claude EVENT`` with ``body`` (a payload, or raw text) on stdin."""
    text = body if isinstance(body, str) else json.dumps(body)
    result = chatflow(cwd, "hook", "claude", event, stdin=text)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def answer(result: subprocess.CompletedProcess[str]) -> Any:
    """The hook's JSON answer (``None`` when it printed nothing)."""
    return json.loads(result.stdout) if result.stdout.strip() else None


def start(repo: Path) -> str:
    (repo / "hooked.json").write_text(json.dumps(WORKFLOW), encoding="utf-8")
    out = ok(
        repo, "start", "hooked.json", "--feature", "feat_login", "--var", "goal=login", "--json"
    )
    instance_id: str = json.loads(out)["instance_id"]
    return instance_id


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file of the project but git's and the store's: what `init` may have changed."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".git" not in path.parts and ".chatflow" not in path.parts
    }
