"""The real ``chatflow`` executable in subprocesses: the rest of ``tests/cli`` runs the
command in-process (``_cli.run_in_process``), so these check that what users run starts,
reads and writes a store, and exits with the documented codes and one-line errors."""

from __future__ import annotations

from pathlib import Path

from ._cli import SubprocessRunner, refused


def test_the_executable_starts_steps_shows_and_lists(tmp_path: Path) -> None:
    run = SubprocessRunner(tmp_path)
    iid = run.start()
    stepped = run.json("next", iid, "--data", "n=1")
    assert stepped["instance_id"] == iid and stepped["current_phase"] == "review"
    shown = run.json("show", iid)
    assert shown["instance_id"] == iid
    listed = run.ok("list")
    assert iid in listed.stdout
    assert run.ok("--help").stdout.startswith("usage: chatflow")


def test_the_executable_exits_with_the_documented_codes(tmp_path: Path) -> None:
    run = SubprocessRunner(tmp_path)
    bogus = run("bogus")  # argparse: a usage error, with the usage lines
    assert bogus.returncode == 2 and "invalid choice: 'bogus'" in bogus.stderr
    assert "Traceback" not in bogus.stderr
    refused(run("list"), 3, "no ChatFlow store there")  # a read creates no store
    iid = run.start()
    refused(run("show", "wfi_0000000000000000"), 3, "wfi_0000000000000000")
    refused(run("approve", iid, "--by", "ann"), 1)  # nothing waits for approval
