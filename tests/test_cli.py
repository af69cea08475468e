"""The `chatflow` command, run as a real subprocess the way users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def chatflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHATFLOW_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "chatflow", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_demo_runs_the_workflow_and_records_artifacts(tmp_path: Path) -> None:
    result = chatflow("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    iid = result.stdout.split()[1]
    assert "is completed after 3 phases" in result.stdout
    tasks = tmp_path / ".chatflow" / "instances" / iid / "tasks"
    for phase in ("requirement_analysis", "design", "implementation"):
        assert (tasks / f"{phase}.prompt.md").read_text(encoding="utf-8").startswith(f"# {phase}")
        assert (tasks / f"{phase}.ai_response.md").is_file()
    shown = chatflow("status", iid, "--json", cwd=tmp_path)
    state = json.loads(shown.stdout)
    assert state["status"] == "completed"
    assert [entry["task"] for entry in state["history"]] == [
        "requirement_analysis",
        "design",
        "implementation",
    ]
    text = chatflow("status", iid, cwd=tmp_path).stdout
    assert "status:  completed" in text and "implementation" in text
    feature = chatflow("status", "--feature", "feat_user_auth", cwd=tmp_path)
    assert iid in feature.stdout and "completed" in feature.stdout
    overview = json.loads(chatflow("status", "--json", cwd=tmp_path).stdout)
    assert [rollup["feature_id"] for rollup in overview] == ["feat_user_auth"]


def test_dir_option(tmp_path: Path) -> None:
    assert (
        chatflow("--dir", str(tmp_path / "s"), "demo", "--feature", "f2", cwd=tmp_path).returncode
        == 0
    )
    assert (tmp_path / "s" / "features" / "f2.link").is_file()
    assert not (tmp_path / ".chatflow").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("status", "wfi_missing"), "no instance 'wfi_missing'"),
        (("status", "../etc"), "invalid instance_id '../etc'"),
        (("status", "--feature", "a/b"), "invalid feature_id 'a/b'"),
    ],
)
def test_user_mistakes_get_one_line_not_a_traceback(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = chatflow(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("chatflow: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_corrupt_state_is_reported_by_file_name(tmp_path: Path) -> None:
    iid = chatflow("demo", cwd=tmp_path).stdout.split()[1]
    path = tmp_path / ".chatflow" / "instances" / f"{iid}.json"
    path.write_text("{broken", encoding="utf-8")
    result = chatflow("status", iid, cwd=tmp_path)
    assert result.returncode == 1
    assert str(path) in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert chatflow(cwd=tmp_path).returncode == 2
    assert chatflow("nonsense", cwd=tmp_path).returncode == 2
