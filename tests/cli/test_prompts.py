"""Questions the ``chatflow`` command asks a person at a terminal (a real pseudo-terminal
on stdin): only an explicit yes does anything destructive."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ._cli import EXECUTABLE, Runner, base_env

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def answer_at_a_terminal(run: Runner, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``chatflow args`` with a terminal on stdin that types ``answer``."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode())  # typed ahead; the command reads one line
        return subprocess.run(
            [EXECUTABLE, *args],
            cwd=run.cwd,
            env=base_env(),
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
def test_delete_at_a_terminal_deletes_only_after_yes(run: Runner) -> None:
    iid = run.start()
    for answer in ("\n", "n\n", "yes please\n"):  # Enter alone is no
        kept = answer_at_a_terminal(run, answer, "delete", iid)
        assert kept.returncode == 1, kept.stderr
        assert "delete 1 instance" in kept.stdout and "[y/N]" in kept.stdout
        assert "nothing deleted" in kept.stderr
        assert run.json("show", iid)["instance_id"] == iid
    gone = answer_at_a_terminal(run, "Y\n", "delete", iid)
    assert gone.returncode == 0, gone.stderr
    assert run("show", iid).returncode == 3
