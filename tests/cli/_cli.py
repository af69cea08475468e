"""Helpers to run ``chatflow``: in the test process (``Runner``, the ``run`` fixture, fast)
or as the real executable in a subprocess (``SubprocessRunner``, ``run_subprocess``), as
users run it, for what only a process shows (entry point, exit codes, stdin, signals)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from cli_runner import run_in_process

EXECUTABLE = shutil.which("chatflow", path=str(Path(sys.executable).parent)) or "chatflow"

REVIEW_FLOW: dict[str, Any] = {
    "name": "review_flow",
    "version": 2,
    "phases": [
        {"name": "draft"},
        {"name": "review", "requires_approval": True, "max_retries": 1},
        {"name": "ship"},
    ],
}


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CHATFLOW_DIR", "NO_COLOR")}
    env.update(extra)
    return env


class Runner:
    """``run(*args)`` runs ``chatflow args`` in the test's folder and returns the result.

    In this process (``cli_runner.run_in_process``), with the same environment, folder,
    streams and exit status a subprocess would have.
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_in_process(args, cwd=self.cwd, env=env or base_env(), stdin=stdin or "")

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self(*args)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def start(self, *args: str) -> str:
        """Start a review_flow instance; return its id."""
        workflow = self.cwd / "review_flow.json"
        if not workflow.exists():
            workflow.write_text(json.dumps(REVIEW_FLOW), encoding="utf-8")
        view = self.json("start", str(workflow), "--feature", "feat_a", *args)
        instance_id: str = view["instance_id"]
        return instance_id


class SubprocessRunner(Runner):
    """The real ``chatflow`` executable in a subprocess, for what only a process shows."""

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXECUTABLE, *args],
            cwd=self.cwd,
            env=env or base_env(),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            check=False,
        )


def refused(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    """One error line with ``code`` (after any warnings), no traceback, naming ``fragments``."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("chatflow: error: ")]
    assert len(errors) == 1, result.stderr
    assert all(line.startswith("chatflow: warning: ") for line in lines if line not in errors)
    for fragment in fragments:
        assert fragment in errors[0]
