"""Helpers to run the ``chatflow`` command: in this process by default (``main(argv)``
with its own working folder, environment, standard streams and exit code: much faster
than a Python start per call), or as the real executable in a subprocess, as users run
it (``Runner(cwd, in_process=False)``; ``CHATFLOW_TEST_SUBPROCESS=1`` makes every
runner do so, to compare the two). ``test_smoke.py`` and the terminal tests keep running
the real executable."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    """``run(*args)`` runs ``chatflow args`` in the test's folder and returns the result."""

    def __init__(self, cwd: Path, *, in_process: bool | None = None) -> None:
        self.cwd = cwd
        if in_process is None:
            in_process = os.environ.get("CHATFLOW_TEST_SUBPROCESS") != "1"
        self.in_process = in_process

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        if self.in_process:
            return run_in_process(list(args), self.cwd, env or base_env(), stdin or "")
        return subprocess.run(
            [EXECUTABLE, *args],
            cwd=self.cwd,
            env=env or base_env(),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            check=False,
        )

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


def run_in_process(
    args: list[str], cwd: Path, env: dict[str, str], stdin: str
) -> subprocess.CompletedProcess[str]:
    """``chatflow.cli.main(args)`` as a subprocess would run it: in ``cwd`` with
    ``env``, reading ``stdin``, its output and exit status captured (an uncaught
    exception prints its traceback and exits 1, as Python does)."""
    from chatflow.cli import main

    out, err = _stream(), _stream()
    with _isolated(cwd, env, _stream(stdin.encode("utf-8")), out, err):
        try:
            code: object = main(args)
        except SystemExit as exit_:  # argparse: --help, usage errors
            code = exit_.code
        except BaseException:  # noqa: BLE001 - what the interpreter would do
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    if code is None:
        code = 0
    elif not isinstance(code, int):
        err.write(f"{code}\n")
        code = 1
    return subprocess.CompletedProcess([EXECUTABLE, *args], code, _text(out), _text(err))


def _stream(data: bytes = b"") -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=None)


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8", "replace").replace("\r\n", "\n")


@contextlib.contextmanager
def _isolated(
    cwd: Path,
    env: dict[str, str],
    stdin: io.TextIOWrapper,
    out: io.TextIOWrapper,
    err: io.TextIOWrapper,
) -> Iterator[None]:
    """This process's working folder, environment, standard streams and ``chatflow``
    logger set for one call, and put back after it."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    streams = sys.stdin, sys.stdout, sys.stderr
    chatflow_log = logging.getLogger("chatflow")
    handlers, level = list(chatflow_log.handlers), chatflow_log.level
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdin, sys.stdout, sys.stderr = stdin, out, err
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        chatflow_log.handlers[:] = handlers
        chatflow_log.setLevel(level)
