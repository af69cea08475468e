"""``chatflow watch``: the change feed followed from the terminal, until Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from chatflow import WorkflowEngine
from cli_runner import ctrl_c_as_in_a_terminal

from ._cli import EXECUTABLE, Runner, base_env, refused


def _watch(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [EXECUTABLE, "watch", *args],
        cwd=cwd,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,  # noqa: PLW1509 - no threads hold locks here
    )


def _stop(watch: subprocess.Popen[str]) -> tuple[str, str]:
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    return out, err


def test_watch_json_prints_each_new_event_with_its_cursor(run: Runner, tmp_path: Path) -> None:
    first = run.start()
    engine = WorkflowEngine(storage_dir=tmp_path / ".chatflow")
    since = engine.feed_end()
    watch = _watch(tmp_path, "--json", "--since", since, "--feature", "feat_a")
    assert watch.stdout is not None
    run.ok("next", first)
    line = json.loads(watch.stdout.readline())
    assert (line["instance_id"], line["feature_id"], line["kind"]) == (first, "feat_a", "update")
    assert line["phase"] == "review"
    # Its cursor goes on right after it: nothing again, nothing skipped.
    second = run.start()
    follow = engine.events_since(line["cursor"]).events
    assert [(e.instance_id, e.seq) for e in follow] == [(second, 1)]
    created = json.loads(watch.stdout.readline())
    assert (created["instance_id"], created["kind"], created["seq"]) == (second, "created", 1)
    assert _stop(watch)[1] == ""  # Ctrl-C: quietly


def test_watch_text_and_filters(run: Runner, tmp_path: Path) -> None:
    first, other = run.start(), run.start()
    watch = _watch(tmp_path, "--instance", other, "--since", "start")
    assert watch.stdout is not None
    line = watch.stdout.readline()
    assert other in line and "#1 created" in line and first not in line
    out, _ = _stop(watch)
    assert first not in out


def test_watch_refuses_bad_input(run: Runner) -> None:
    run.start()
    refused(run("watch", "--since", "garbage"), 2, "--since", "not a feed cursor", "--since start")
    refused(run("watch", "--since", "00ff00ff00ff00ff.3"), 2, "another store", "--since start")
    for bad in ("garbage", "00ff00ff00ff00ff.3", "1.999999"):  # the command's words only
        error = run("watch", "--since", bad).stderr
        assert "None" not in error and "events_since" not in error, error
    refused(run("watch", "--instance", "wfi_nope"), 3, "wfi_nope")
    refused(run("watch", "--feature", "../x"), 2)
