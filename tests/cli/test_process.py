"""Smoke tests of the real executable: what the in-process runner cannot show.

The other CLI cases run ``chatflow.cli.main`` in the test process (``cli_runner``); these
run the installed ``chatflow`` script and ``python -m chatflow`` as users do, and check
that a process gives the same output, the documented exit codes and reads stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ._cli import Runner, SubprocessRunner, base_env, refused


def test_each_documented_exit_code_from_a_real_process(run_subprocess: SubprocessRunner) -> None:
    iid = run_subprocess.start()
    assert run_subprocess.ok("status", iid).returncode == 0
    refused(run_subprocess("approve", iid, "--by", "alice"), 1, "not waiting for approval")
    usage = run_subprocess("no-such-command")
    assert usage.returncode == 2 and "usage: chatflow" in usage.stderr
    assert "Traceback" not in usage.stderr
    refused(run_subprocess("status", "inst_" + "0" * 32), 3)


def test_stdin_reaches_a_real_process(run_subprocess: SubprocessRunner) -> None:
    iid = run_subprocess.start()
    recorded = run_subprocess(
        "record", iid, "--prompt", "p", "--response-file", "-", stdin="from stdin\n"
    )
    assert recorded.returncode == 0, recorded.stderr
    shown = run_subprocess.ok("artifacts", iid, "draft", "--response")
    assert shown.stdout == "from stdin\n"


def test_python_dash_m_is_the_same_command(run_subprocess: SubprocessRunner) -> None:
    iid = run_subprocess.start()
    module = subprocess.run(
        [sys.executable, "-m", "chatflow", "status", iid, "--json"],
        cwd=run_subprocess.cwd,
        env=base_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert module.returncode == 0, module.stderr
    assert json.loads(module.stdout) == run_subprocess.json("status", iid)


def test_in_process_runner_matches_a_real_process(run_subprocess: SubprocessRunner) -> None:
    """Same store, same commands: identical status, stdout and stderr both ways."""
    in_process = Runner(run_subprocess.cwd)
    iid = run_subprocess.start()
    for args in (
        ("status", iid),
        ("list", "--json"),
        ("history", iid),
        ("approve", iid, "--by", "alice"),
        ("nope",),
        ("status", "inst_" + "0" * 32, "--json"),
        ("-v", "status", iid),
    ):
        real, here = run_subprocess(*args), in_process(*args)
        assert (here.returncode, here.stdout, here.stderr) == (
            real.returncode,
            real.stdout,
            real.stderr,
        ), args
